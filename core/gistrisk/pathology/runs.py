"""Pathology runs: one slide's tiles (``tile_single``), and cohort runs on the batch engine: slides ->
tiles tables (``tile_cohort``), slides + classifier -> slide features (``feature_cohort``).

Each run builds the batch items and their cache fingerprints, drops cache entries whose outputs were
deleted, writes the failures table and provenance, and returns what happened (counts, output paths,
console lines). ``gistrisk pathology tiles|features`` print what these return.

Console lines (mpp notes and warnings, a stain-setting warning) go to ``on_message`` as they arise and
are kept in the result's ``messages``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from gistrisk.atomic import write_json, write_table
from gistrisk.batch import BatchItem, cache_path, file_fingerprint, run_batch
from gistrisk.errors import InputError
from gistrisk.pathology.manifest import SlideEntry, slide_entries
from gistrisk.pathology.pipeline import MPP_KEYS, save_tile_images, tile_one, tiles_worker, torch_threads_per_job
from gistrisk.pathology.slides import mpp_message
from gistrisk.pathology.tiling import TileConfig
from gistrisk.paths import check_output, sidecar
from gistrisk.provenance import file_sha256, provenance
from qupath_bridge.naming import RULE, file_name_clashes, tile_predictions_file_name

if TYPE_CHECKING:  # torch-backed: loaded only by feature_cohort, so tiling never imports torch
    from gistrisk.pathology.engine import InferenceConfig
    from gistrisk.pathology.features import FeatureConfig

FAILURE_COLUMNS = ["slide_id", "patient_id", "slide", "error_type", "message"]
_EDGE_BYTES = 4 << 20


@dataclass
class _Messages:
    """Console lines of a run: passed on as they arise and kept."""

    on_message: Callable[[str], None] | None
    lines: list[str] = field(default_factory=list)

    def __call__(self, line: str | None) -> None:
        if line:
            self.lines.append(line)
            if self.on_message is not None:
                self.on_message(line)


@dataclass
class TileSlideResult:
    """One slide tiled: the table and provenance written, and the tile counts."""

    table: Path
    provenance: Path
    n_grid: int
    n_tiles: int
    n_labelled: int
    labels: dict[str, int]
    annotated: bool
    images: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The line ``gistrisk pathology tiles --slide`` prints."""
        counts = ", ".join(f"{k} {v}" for k, v in self.labels.items())
        return (f"{self.table}: {self.n_tiles} tiles kept of {self.n_grid} in the grid"
                + (f", {self.n_labelled} labelled ({counts})" if self.annotated else ""))


@dataclass
class TileCohortResult:
    """A tiles cohort run: one ``<slide_id>.tiles.parquet`` per slide done in ``out_dir``."""

    out_dir: Path
    failures: Path
    provenance: Path
    tables: dict[str, Path]
    n_slides: int
    n_done: int
    n_failed: int
    n_cached: int
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The line ``gistrisk pathology tiles`` prints for several slides."""
        return (f"{self.out_dir}: {self.n_done} slides tiled ({self.n_cached} from cache), {self.n_failed} failed"
                + (f" (see {self.failures})" if self.n_failed else ""))


@dataclass
class FeatureCohortResult:
    """A features cohort run: the slide-feature table, its failures table (failed slides and slides
    without tumour tiles) and provenance."""

    table: Path
    failures: Path
    provenance: Path
    review_geojson: Path | None
    n_slides: int
    n_done: int
    n_failed: int
    n_no_tumour: int
    n_cached: int
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The line ``gistrisk pathology features`` prints."""
        return (f"{self.table}: {self.n_done} slides ({self.n_cached} from cache), {self.n_no_tumour} without "
                f"tumour tiles, {self.n_failed} failed"
                + (f" (see {self.failures})" if self.n_failed + self.n_no_tumour else ""))


def tile_single(slide: str | Path, out: str | Path, config: TileConfig | None = None, *,
                annotations: str | Path | None = None, mpp: float | None = None,
                mpp_override: float | None = None, backend: str = "auto", repair: bool = True,
                clip_annotations: bool = False, images: str | Path | None = None,
                on_message: Callable[[str], None] | None = None) -> TileSlideResult:
    """Tile one slide: ``out`` (.parquet) and ``<stem>.provenance.json`` beside it; tile PNGs in ``images``
    when given (for looking at tiles)."""
    cfg = config or TileConfig()
    out = Path(out)
    messages = _Messages(on_message)
    params = _tile_params(cfg, backend, repair, clip_annotations)
    df = tile_one(slide, cfg, annotations=annotations, mpp=mpp, backend=backend, repair=repair,
                  clip_annotations=clip_annotations, mpp_override=mpp_override)
    meta = df.attrs["gistrisk"]
    messages(mpp_message(str(slide), meta))
    write_table(out, df)
    prov = sidecar(out, "provenance", ".json")
    write_json(prov, provenance({**params, "mpp": mpp, "mpp_override": mpp_override}, slide=str(slide),
                                annotations=str(annotations) if annotations else None, summary=meta))
    pngs = save_tile_images(df, images, backend=backend, mpp=mpp, mpp_override=mpp_override) if images else []
    return TileSlideResult(table=out, provenance=prov, n_grid=int(meta["n_grid"]), n_tiles=len(df),
                           n_labelled=int(df["label"].notna().sum()),
                           labels={str(k): int(v) for k, v in df["label"].value_counts().items()},
                           annotated=annotations is not None, images=pngs, messages=messages.lines)


def tile_cohort(slides: str | Path | Sequence[SlideEntry], out_dir: str | Path, config: TileConfig | None = None, *,
                mpp: float | None = None, mpp_override: float | None = None, backend: str = "auto",
                repair: bool = True, clip_annotations: bool = False, jobs: int = 1, scheduler: str | None = None,
                progress: bool = True, on_message: Callable[[str], None] | None = None) -> TileCohortResult:
    """Tile every slide; failures are recorded and the rest go on; re-runs resume.

    Parameters
    ----------
    slides : a manifest CSV (``patient_id,slide[,slide_id,annotations,mpp,mpp_override]``), a folder of
        slides, or :class:`~gistrisk.pathology.manifest.SlideEntry` items.
    out_dir : folder for ``<slide_id>.tiles.parquet``, ``tiles.failures.csv``, ``tiles.provenance.json``
        and the cache (``.cache``).
    mpp, mpp_override : for slides whose entry gives none (``mpp`` fills a slide without mpp metadata,
        ``mpp_override`` replaces it).
    jobs, scheduler : local processes, or the address of a Dask scheduler.
    """
    cfg = config or TileConfig()
    entries = slide_entries(slides, mpp, mpp_override)
    out = check_output(out_dir, kind="dir", option="--out")
    out.mkdir(parents=True, exist_ok=True)
    messages = _Messages(on_message)
    params = _tile_params(cfg, backend, repair, clip_annotations)
    cache = out / ".cache"
    items = []
    for e in entries:
        dest = out / f"{e.slide_id}.tiles.parquet"
        inputs = {"slide": e.slide, "slide_id": e.slide_id, "annotations": e.annotations, "mpp": e.mpp,
                  "mpp_override": e.mpp_override, "out": str(dest), **params}
        fp = file_fingerprint(*([e.annotations] if e.annotations else []),
                              params={**inputs, "slide_fp": slide_fingerprint(e.slide)})
        if not dest.exists():  # output deleted since: do not trust the cache
            cache_path(cache, e.slide_id).unlink(missing_ok=True)
        items.append(BatchItem(e.slide_id, inputs, fp))
    res = run_batch(items, tiles_worker, cache_dir=cache, jobs=jobs, scheduler=scheduler, desc="slides",
                    progress=progress)
    by_id = {e.slide_id: e for e in entries}
    for sid, r in res.done.items():
        messages(mpp_message(by_id[sid].slide, r))
    result = TileCohortResult(out_dir=out, failures=out / "tiles.failures.csv", provenance=out / "tiles.provenance.json",
                              tables={sid: Path(r["out"]) for sid, r in res.done.items()}, n_slides=len(entries),
                              n_done=len(res.done), n_failed=len(res.failures), n_cached=res.skipped_cached,
                              messages=messages.lines)
    write_table(result.failures, failure_rows(res.failures, by_id))
    write_json(result.provenance, provenance(params, slides=[e.__dict__ for e in entries], results=res.done,
                                             failures=len(res.failures)))
    return result


def feature_cohort(classifier: str | Path, slides: str | Path | Sequence[SlideEntry], out: str | Path, *,
                   mpp: float | None = None, mpp_override: float | None = None, backend: str = "auto",
                   feature: FeatureConfig | dict | None = None, inference: InferenceConfig | dict | None = None,
                   min_tissue: float = 0.5, stain_normalise: str | None = None,
                   review_geojson: str | Path | None = None, jobs: int = 1, scheduler: str | None = None,
                   progress: bool = True, on_message: Callable[[str], None] | None = None) -> FeatureCohortResult:
    """Slide-level pathomics of every slide: the mean 2048-d ResNet50 feature of its tumour tiles.

    Failures are recorded and the rest go on; re-runs resume from ``<out stem>.cache``. Slides without
    tumour tiles get NaN features, flag ``no_tumour_tiles`` and a row in the failures table.

    Parameters
    ----------
    classifier : classifier folder (or its ``classifier.safetensors``); read before the batch, so a bad
        file stops the run before any slide.
    slides : a manifest CSV, a folder of slides, or :class:`~gistrisk.pathology.manifest.SlideEntry` items.
    out : the table (.parquet or .csv); beside it ``<stem>.failures.csv`` and ``<stem>.provenance.json``.
    mpp, mpp_override : for slides whose entry gives none, as in :func:`tile_cohort`.
    feature, inference : tumour-tile pooling and batched inference settings, or dicts of their fields
        (defaults: their defaults).
    min_tissue : minimum tissue fraction of a tile; tile size and mpp are the classifier's.
    stain_normalise : None = the classifier's training setting; another value is used with a warning.
    review_geojson : folder for one ``<slide file name>.tiles.geojson`` per slide, named as QuPath's
        import_tile_predictions.groovy looks for it; slides whose names give one file are refused.
    jobs, scheduler : local processes, or the address of a Dask scheduler.
    """
    from gistrisk.pathology.engine import InferenceConfig
    from gistrisk.pathology.features import FLAG_NO_TUMOUR, FeatureConfig, features_table
    from gistrisk.pathology.model import load_classifier
    from gistrisk.pathology.pipeline import features_worker
    from gistrisk.pathology.stain import resolve_stain

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--out {out}: give a .parquet or .csv file")
    review = Path(review_geojson) if review_geojson else None
    if review is not None:
        check_output(review, kind="dir", option="--review-geojson")
    entries = slide_entries(slides, mpp, mpp_override)
    messages = _Messages(on_message)
    fcfg = feature if isinstance(feature, FeatureConfig) else FeatureConfig(**(feature or {}))
    infer = (inference if isinstance(inference, InferenceConfig) else InferenceConfig(**(inference or {}))).to_dict()
    classifier = Path(classifier)
    clf_file = classifier / "classifier.safetensors" if classifier.is_dir() else classifier
    _, header = load_classifier(clf_file)  # fail fast on a bad classifier, before the batch
    clf_hash = file_sha256(clf_file)
    stain, stain_warning = resolve_stain(header.get("stain"), stain_normalise)
    if stain_warning:
        messages(f"warning: {stain_warning}")
    tcfg = TileConfig(tile_size=header["tile_size"], target_mpp=float(header["mpp"]), min_tissue_fraction=min_tissue)
    review_names = review_file_names(entries) if review is not None else {}
    params = {"classifier_sha256": clf_hash, "tile_config": tcfg.to_dict(), "feature": fcfg.to_dict(),
              "backend": backend, "stain": stain.to_dict()}
    if review is not None:
        review.mkdir(parents=True, exist_ok=True)
    cache = out.with_name(out.stem + ".cache")
    items = []
    for e in entries:
        geo = str(review / review_names[e.slide_id]) if review is not None else None
        inputs = {"slide": e.slide, "slide_id": e.slide_id, "patient_id": e.patient_id, "mpp": e.mpp,
                  "mpp_override": e.mpp_override, "classifier": str(clf_file.resolve()), "inference": infer,
                  "review_geojson": geo,
                  "torch_threads": torch_threads_per_job(jobs) if (jobs > 1 and not scheduler) else None,
                  **params}
        fp_params = {k: v for k, v in inputs.items() if k not in ("inference", "torch_threads", "classifier")}
        fp_params["slide_fp"] = slide_fingerprint(e.slide)
        if geo and not Path(geo).exists():  # review file deleted since: recompute
            cache_path(cache, e.slide_id).unlink(missing_ok=True)
        items.append(BatchItem(e.slide_id, inputs, file_fingerprint(params=fp_params)))
    res = run_batch(items, features_worker, cache_dir=cache, jobs=jobs, scheduler=scheduler, desc="slides",
                    progress=progress)
    by_id = {e.slide_id: e for e in entries}
    results = list(res.done.values())
    for sid, r in res.done.items():
        messages(mpp_message(by_id[sid].slide, r))
    write_table(out, features_table(results))
    fails = failure_rows(res.failures, by_id)
    flagged = [{"slide_id": r["slide_id"], "patient_id": r["patient_id"], "slide": by_id[r["slide_id"]].slide,
                "error_type": FLAG_NO_TUMOUR,
                "message": f"no tile predicted tumour with probability >= {fcfg.tumour_threshold} among "
                           f"{r['n_tiles']} tissue tiles; features left empty (NaN)"}
               for r in results if r.get("flag") == FLAG_NO_TUMOUR]
    fails = pd.concat([fails, pd.DataFrame(flagged, columns=fails.columns)], ignore_index=True)
    result = FeatureCohortResult(table=out, failures=sidecar(out, "failures", ".csv"),
                                 provenance=sidecar(out, "provenance", ".json"), review_geojson=review,
                                 n_slides=len(entries), n_done=len(results), n_failed=len(res.failures),
                                 n_no_tumour=len(flagged), n_cached=res.skipped_cached, messages=messages.lines)
    write_table(result.failures, fails)
    write_json(result.provenance,
               provenance({**params, "inference": infer}, classifier=str(clf_file),
                          classifier_header={k: v for k, v in header.items() if k != "versions"},
                          slides=[e.__dict__ for e in entries],
                          slide_mpp={sid: {k: r.get(k) for k in MPP_KEYS} for sid, r in res.done.items()},
                          n_done=len(results),
                          n_failed=len(res.failures), n_no_tumour=len(flagged), skipped_cached=res.skipped_cached))
    return result


def review_file_names(entries: Sequence[SlideEntry]) -> dict[str, str]:
    """{slide_id: review GeoJSON file name}, by the QuPath rule from the slide file's name (QuPath's image
    name). Slides whose names give one file are refused: the file could not say which slide it is."""
    names = [Path(e.slide).name for e in entries]
    clashes = file_name_clashes(names)
    if clashes:
        listed = "; ".join(" and ".join(entries[i].slide for i in c.indices) + f" would both be {c.file_name}"
                           for c in clashes[:5])
        raise InputError(f"--review-geojson: {listed}{' ...' if len(clashes) > 5 else ''}. The QuPath import "
                         f"script finds a slide's file by {RULE}; rename the slide files so the names differ")
    return {e.slide_id: tile_predictions_file_name(n) for e, n in zip(entries, names)}


def slide_fingerprint(path: str | Path) -> str:
    """Cheap content fingerprint of a (multi-GB) slide: size + sha256 of its first and last 4 MiB.

    Hashing whole slides on every resume would cost minutes per cohort; a replaced, re-scanned or
    truncated file changes its size or its header/trailer (TIFF directories live there).
    """
    p = Path(path)
    if not p.is_file():
        return f"missing:{p}"
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        h.update(f.read(_EDGE_BYTES))
        if size > _EDGE_BYTES:
            f.seek(max(_EDGE_BYTES, size - _EDGE_BYTES))
            h.update(f.read())
    return h.hexdigest()


def failure_rows(failures: list[dict], entries: dict[str, SlideEntry]) -> pd.DataFrame:
    """Batch failure records -> a table naming patient, slide and the error."""
    rows = []
    for f in failures:
        e = entries.get(f["key"])
        rows.append({"slide_id": f["key"], "patient_id": e.patient_id if e else None,
                     "slide": e.slide if e else None, "error_type": f["error_type"], "message": f["message"]})
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def _tile_params(cfg: TileConfig, backend: str, repair: bool, clip_annotations: bool) -> dict:
    """The tiling settings recorded in provenance and in each slide's cache fingerprint."""
    return {"tile_config": cfg.to_dict(), "backend": backend, "repair": repair, "clip_annotations": clip_annotations}
