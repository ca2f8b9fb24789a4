"""Pathology runs: one slide's tiles (``tile_single``), and cohort runs on the batch engine: slides ->
tiles tables (``tile_cohort``), slides + classifier -> slide features and per-tile embeddings
(``feature_cohort``); and stored embeddings -> slide features without the network (``aggregate_embeddings``).

Each run builds the batch items and their cache fingerprints, drops cache entries whose outputs were
deleted, writes the failures table and provenance, and returns what happened (counts, output paths,
console lines). ``gistrisk pathology tiles|features`` print what these return.

Console lines (mpp notes and warnings, a stain-setting warning) go to ``on_message`` as they arise and
are kept in the result's ``messages``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from gistrisk.atomic import write_json, write_table
from gistrisk.batch import BatchItem, cache_path, file_fingerprint, run_batch
from gistrisk.errors import InputError
from gistrisk.pathology.embeddings import SlideEmbeddings, embedding_files, read_embeddings
from gistrisk.pathology.features import FLAG_NO_TUMOUR, FeatureConfig, features_table, pool_tumour_features
from gistrisk.pathology.manifest import SlideEntry, slide_entries
from gistrisk.pathology.pipeline import (
    MPP_KEYS,
    features_worker,
    save_tile_images,
    tile_one,
    tiles_worker,
    torch_threads_per_job,
)
from gistrisk.pathology.slides import mpp_message
from gistrisk.pathology.stain import resolve_stain
from gistrisk.pathology.tiling import TileConfig
from gistrisk.paths import check_output, sidecar
from gistrisk.provenance import file_sha256, provenance
from qupath_bridge.naming import RULE, file_name_clashes, tile_predictions_file_name

if TYPE_CHECKING:  # torch-backed: loaded only by feature_cohort, so tiling never imports torch
    from gistrisk.pathology.engine import InferenceConfig

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
    embeddings: Path | None = None

    def summary(self) -> str:
        """The line ``gistrisk pathology features`` prints."""
        return (f"{self.table}: {self.n_done} slides ({self.n_cached} from cache), {self.n_no_tumour} without "
                f"tumour tiles, {self.n_failed} failed"
                + (f" (see {self.failures})" if self.n_failed + self.n_no_tumour else ""))


@dataclass
class AggregateResult:
    """Slide features re-computed from stored per-tile embeddings (no network run)."""

    table: Path
    failures: Path
    provenance: Path
    n_slides: int
    n_no_tumour: int
    seconds: float
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """The line ``gistrisk pathology aggregate`` prints."""
        return (f"{self.table}: {self.n_slides} slides from stored embeddings in {self.seconds:.2f} s (no network "
                f"run), {self.n_no_tumour} without tumour tiles" + (f" (see {self.failures})" if self.n_no_tumour
                                                                     else ""))


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
                   progress: bool = True, on_message: Callable[[str], None] | None = None,
                   embeddings: str | Path | bool = True) -> FeatureCohortResult:
    """Slide-level pathomics of every slide: the mean embedding of its tumour tiles (2048-d ResNet50
    features by default; the classifier's encoder decides).

    Failures are recorded and the rest go on; re-runs resume from ``<out stem>.cache``. Slides without
    tumour tiles get NaN features, flag ``no_tumour_tiles`` and a row in the failures table. Every
    tile's embedding, class probabilities and coordinates are kept in ``<slide_id>.h5`` per slide
    (see :mod:`gistrisk.pathology.embeddings`), so :func:`aggregate_embeddings` can recompute the table.

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
    embeddings : folder for the per-slide embeddings files; True (default) = ``<out stem>.embeddings``
        beside ``out``; False = keep none.
    """
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--out {out}: give a .parquet or .csv file")
    review = Path(review_geojson) if review_geojson else None
    if review is not None:
        check_output(review, kind="dir", option="--review-geojson")
    emb_dir = (out.with_name(out.stem + ".embeddings") if embeddings is True
               else Path(embeddings) if embeddings else None)
    if emb_dir is not None:
        check_output(emb_dir, kind="dir", option="--embeddings")
    entries = slide_entries(slides, mpp, mpp_override)
    review_names = review_file_names(entries) if review is not None else {}
    # the torch-backed modules only once the inputs above have passed: a bad one is refused at once
    from gistrisk.pathology.engine import InferenceConfig  # noqa: PLC0415
    from gistrisk.pathology.gpu_decode import DecodeReport  # noqa: PLC0415
    from gistrisk.pathology.model import encoder_spec, load_classifier  # noqa: PLC0415

    messages = _Messages(on_message)
    fcfg = feature if isinstance(feature, FeatureConfig) else FeatureConfig(**(feature or {}))
    infer = (inference if isinstance(inference, InferenceConfig) else InferenceConfig(**(inference or {}))).to_dict()
    classifier = Path(classifier)
    clf_file = classifier / "classifier.safetensors" if classifier.is_dir() else classifier
    _, header = load_classifier(clf_file)  # fail fast on a bad classifier, before the batch
    clf_hash = file_sha256(clf_file)
    encoder = encoder_spec(header)
    stain, stain_warning = resolve_stain(header.get("stain"), stain_normalise)
    if stain_warning:
        messages(f"warning: {stain_warning}")
    tcfg = TileConfig(tile_size=header["tile_size"], target_mpp=float(header["mpp"]), min_tissue_fraction=min_tissue)
    params = {"classifier_sha256": clf_hash, "tile_config": tcfg.to_dict(), "feature": fcfg.to_dict(),
              "backend": backend, "stain": stain.to_dict()}
    if review is not None:
        review.mkdir(parents=True, exist_ok=True)
    if emb_dir is not None:
        emb_dir.mkdir(parents=True, exist_ok=True)
    cache = out.with_name(out.stem + ".cache")
    items = []
    for e in entries:
        geo = str(review / review_names[e.slide_id]) if review is not None else None
        emb = str(emb_dir / f"{e.slide_id}.h5") if emb_dir is not None else None
        inputs = {"slide": e.slide, "slide_id": e.slide_id, "patient_id": e.patient_id, "mpp": e.mpp,
                  "mpp_override": e.mpp_override, "classifier": str(clf_file.resolve()), "inference": infer,
                  "review_geojson": geo, "embeddings": emb, "encoder": encoder.to_dict(),
                  "torch_threads": torch_threads_per_job(jobs) if (jobs > 1 and not scheduler) else None,
                  **params}
        # the encoder is part of the classifier (its hash is in params)
        fp_params = {k: v for k, v in inputs.items()
                     if k not in ("inference", "torch_threads", "classifier", "encoder")}
        fp_params["slide_fp"] = slide_fingerprint(e.slide)
        if any(f and not Path(f).exists() for f in (geo, emb)):  # review or embeddings file deleted: recompute
            cache_path(cache, e.slide_id).unlink(missing_ok=True)
        items.append(BatchItem(e.slide_id, inputs, file_fingerprint(params=fp_params)))
    res = run_batch(items, features_worker, cache_dir=cache, jobs=jobs, scheduler=scheduler, desc="slides",
                    progress=progress)
    by_id = {e.slide_id: e for e in entries}
    results = list(res.done.values())
    for sid, r in res.done.items():
        messages(mpp_message(by_id[sid].slide, r))
        if (r.get("stain_fit") or {}).get("fallback"):
            messages(f"warning: slide {by_id[sid].slide}: {r['stain_fit']['fallback']}")
        for line in DecodeReport(**r["decode"]).messages() if r.get("decode") else []:
            messages(f"warning: slide {by_id[sid].slide}: {line.removeprefix('warning: ')}")
    write_table(out, features_table(results, encoder.feature_dim))
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
                                 n_no_tumour=len(flagged), n_cached=res.skipped_cached, messages=messages.lines,
                                 embeddings=emb_dir)
    write_table(result.failures, fails)
    write_json(result.provenance,
               provenance({**params, "inference": infer, "encoder": encoder.to_dict()}, classifier=str(clf_file),
                          classifier_header={k: v for k, v in header.items() if k != "versions"},
                          slides=[e.__dict__ for e in entries],
                          slide_mpp={sid: {k: r.get(k) for k in MPP_KEYS} for sid, r in res.done.items()},
                          n_done=len(results),
                          n_failed=len(res.failures), n_no_tumour=len(flagged), skipped_cached=res.skipped_cached,
                          embeddings={sid: {"file": r["embeddings"], "sha256": r["embeddings_sha256"]}
                                      for sid, r in res.done.items() if r.get("embeddings")},
                          stain_fit={sid: r.get("stain_fit") for sid, r in res.done.items()},
                          stain_fallbacks=sorted(sid for sid, r in res.done.items()
                                                 if (r.get("stain_fit") or {}).get("fallback")),
                          decode={sid: r.get("decode") for sid, r in res.done.items()},
                          decode_fallbacks={sid: sum(r["decode"]["fallback"].values()) for sid, r in res.done.items()
                                            if (r.get("decode") or {}).get("fallback")}))
    return result


#: what must agree between the slides pooled into one table from stored embeddings
_SAME_RUN = ("classifier_sha256", "encoder", "tile_config", "stain", "backend")


def aggregate_embeddings(embeddings: str | Path | Sequence[str | Path], out: str | Path, *,
                         feature: FeatureConfig | dict | None = None,
                         on_message: Callable[[str], None] | None = None) -> AggregateResult:
    """Slide features from stored per-tile embeddings, without running the network: the table
    :func:`feature_cohort` writes, for any tumour threshold.

    Parameters
    ----------
    embeddings : folders of ``<slide_id>.h5`` files (as ``feature_cohort`` writes them) and/or files;
        all from one classifier, encoder, tile grid and stain setting (else InputError naming two files).
    out : the table (.parquet or .csv); beside it ``<stem>.failures.csv`` (slides without tumour tiles)
        and ``<stem>.provenance.json`` (source: embeddings, each file's sha256; the extraction settings
        ``gistrisk fit`` records, as for the table ``feature_cohort`` writes).
    feature : tumour-tile pooling settings (:class:`~gistrisk.pathology.features.FeatureConfig` or its fields).
    """
    start = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise InputError(f"--out {out}: give a .parquet or .csv file")
    sources = [embeddings] if isinstance(embeddings, (str, Path)) else list(embeddings)
    check_output(out, kind="file", inputs=sources)
    messages = _Messages(on_message)
    fcfg = feature if isinstance(feature, FeatureConfig) else FeatureConfig(**(feature or {}))
    results: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    first: tuple[SlideEmbeddings, dict[str, Any]] | None = None
    for f in embedding_files(sources):
        emb = read_embeddings(f)
        run = {k: emb.parameters.get(k) for k in _SAME_RUN}
        if first is None:
            first = (emb, run)
        else:
            for k in _SAME_RUN:
                if run[k] != first[1][k]:
                    raise InputError(f"{f.name} and {first[0].path.name} come from different features runs "
                                     f"({k}: {str(run[k])[:80]} vs {str(first[1][k])[:80]}); aggregate the embeddings "
                                     "of one classifier and setting at a time", file=str(f))
            if emb.features.shape[1] != first[0].features.shape[1] or emb.classes != first[0].classes:
                raise InputError(f"{f.name} and {first[0].path.name} differ in embedding size or classes", file=str(f))
        if fcfg.tumour_class not in emb.classes:
            raise InputError(f"no class {fcfg.tumour_class!r} among {emb.classes}", file=str(f))
        if any(r["slide_id"] == emb.slide_id for r in results):
            raise InputError(f"slide_id {emb.slide_id!r} appears in two embeddings files", file=str(f))
        vec, mask = pool_tumour_features(emb.probs, emb.features, emb.classes, fcfg)
        n_t = int(mask.sum())
        results.append({"patient_id": emb.patient_id, "slide_id": emb.slide_id, "n_tiles": len(emb.coords),
                        "n_tumour_tiles": n_t, "features": None if n_t == 0 else vec,
                        "flag": FLAG_NO_TUMOUR if n_t == 0 else None})
        records.append({"slide_id": emb.slide_id, "file": str(f), "sha256": file_sha256(f), "slide": emb.slide})
    assert first is not None  # embedding_files returns at least one file
    write_table(out, features_table(results, first[0].features.shape[1]))
    flagged = pd.DataFrame([{"slide_id": r["slide_id"], "patient_id": r["patient_id"], "slide": rec["slide"],
                             "error_type": FLAG_NO_TUMOUR,
                             "message": f"no tile predicted tumour with probability >= {fcfg.tumour_threshold} among "
                                        f"{r['n_tiles']} tissue tiles; features left empty (NaN)"}
                            for r, rec in zip(results, records) if r["flag"] == FLAG_NO_TUMOUR],
                           columns=FAILURE_COLUMNS)
    seconds = time.perf_counter() - start
    result = AggregateResult(table=out, failures=sidecar(out, "failures", ".csv"),
                             provenance=sidecar(out, "provenance", ".json"), n_slides=len(results),
                             n_no_tumour=len(flagged), seconds=seconds, messages=messages.lines)
    write_table(result.failures, flagged)
    first_prov = first[0].provenance
    write_json(result.provenance,
               provenance({**{k: first[0].parameters.get(k) for k in _SAME_RUN}, "feature": fcfg.to_dict(),
                           "source": "embeddings"},
                          embeddings=records, classifier_header=first_prov.get("classifier_header"),
                          extracted_with=first_prov.get("versions"), n_slides=len(results),
                          n_no_tumour=len(flagged), seconds=seconds))
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
