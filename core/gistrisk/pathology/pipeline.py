"""One slide end to end: tiles (and labels), or tiles -> classifier -> slide feature vector.

The ``*_worker`` functions are the batch engine's workers: top-level, JSON in, JSON out.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from PIL import Image

from gistrisk.atomic import atomic_path, write_table
from gistrisk.pathology.annotations import load_slide_annotations
from gistrisk.pathology.embeddings import write_embeddings
from gistrisk.pathology.features import (
    FLAG_NO_TUMOUR,
    FeatureConfig,
    pool_tumour_features,
    tile_predictions_frame,
    write_review_geojson,
)
from gistrisk.pathology.slides import Slide
from gistrisk.pathology.stain import StainConfig
from gistrisk.pathology.tiling import TileConfig, tile_slide
from gistrisk.provenance import file_sha256, provenance

if TYPE_CHECKING:  # torch-backed modules load only when features are computed (`tiles` stays light)
    from gistrisk.pathology.engine import InferenceConfig

#: how a slide's mpp was chosen (see :class:`Slide`), kept in tiles metadata and batch results
MPP_KEYS = ("mpp", "mpp_source", "mpp_recorded", "mpp_unused")
#: the features run's settings recorded in each slide's embeddings file (and read back by `aggregate`)
EMBEDDING_PARAMETERS = ("classifier_sha256", "tile_config", "feature", "backend", "stain", "encoder")
_CLASSIFIERS: dict[tuple[str, float], tuple[Any, dict]] = {}


def tile_one(slide: str | Path, config: TileConfig | None = None, *, annotations: str | Path | None = None,
             mpp: float | None = None, backend: str = "auto", slide_id: str | None = None,
             repair: bool = True, clip_annotations: bool = False,
             mpp_override: float | None = None) -> pd.DataFrame:
    """Open, (read annotations,) tile: the table :func:`gistrisk.pathology.tiling.tile_slide` returns.

    ``mpp`` only fills a slide without mpp metadata; ``mpp_override`` replaces it (see :class:`Slide`).
    """
    with Slide(slide, backend=backend, mpp=mpp, mpp_override=mpp_override) as s:
        anns = None
        if annotations:
            anns = load_slide_annotations(annotations, *s.dimensions, repair=repair, clip_to_slide=clip_annotations)
        return tile_slide(s, config, annotations=anns, annotations_file=str(annotations) if annotations else None,
                          slide_id=slide_id)


def save_tile_images(tiles: pd.DataFrame, folder: str | Path, *, backend: str = "auto",
                     mpp: float | None = None, mpp_override: float | None = None) -> list[Path]:
    """Write each tile as ``<slide_id>_x<x>_y<y>[_<label>].png`` (for looking at tiles, not for training)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    handles: dict[str, Slide] = {}
    try:
        for r in tiles.itertuples(index=False):
            s = handles.get(r.slide)
            if s is None:
                s = handles[r.slide] = Slide(r.slide, backend=backend, mpp=mpp, mpp_override=mpp_override)
            arr = s.read_tile(r.x, r.y, r.level, r.read_size, r.tile_size)
            label = f"_{str(r.label).replace(' ', '-')}" if isinstance(r.label, str) else ""
            path = folder / f"{r.slide_id}_x{r.x}_y{r.y}{label}.png"
            with atomic_path(path) as tmp:
                Image.fromarray(arr).save(tmp, format="PNG")
            out.append(path)
    finally:
        for h in handles.values():
            h.close()
    return out


def tiles_worker(inputs: dict) -> dict:
    """Batch worker: tile one slide and write its Parquet to ``inputs["out"]``."""
    df = tile_one(inputs["slide"], TileConfig.from_dict(inputs["tile_config"]), annotations=inputs.get("annotations"),
                  mpp=inputs.get("mpp"), backend=inputs.get("backend", "auto"), slide_id=inputs["slide_id"],
                  repair=inputs.get("repair", True), clip_annotations=inputs.get("clip_annotations", False),
                  mpp_override=inputs.get("mpp_override"))
    write_table(inputs["out"], df)
    meta = df.attrs["gistrisk"]
    return {"slide_id": inputs["slide_id"], "out": inputs["out"], "n_grid": meta["n_grid"], "n_tiles": len(df),
            "n_labelled": int(df["label"].notna().sum()),
            "labels": {str(k): int(v) for k, v in df["label"].value_counts().items()},
            **{k: meta[k] for k in MPP_KEYS}}


def load_classifier_cached(path: str | Path):
    """:func:`gistrisk.pathology.model.load_classifier`, once per process per file version."""
    from gistrisk.pathology.model import load_classifier  # noqa: PLC0415 - torch: `tiles` never loads it

    p = Path(path)
    p = p / "classifier.safetensors" if p.is_dir() else p
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)
    if key not in _CLASSIFIERS:
        _CLASSIFIERS.clear()
        _CLASSIFIERS[key] = load_classifier(p)
    return _CLASSIFIERS[key]


def features_one(slide: str | Path, model, header: dict, *, patient_id: str, slide_id: str | None = None,
                 mpp: float | None = None, backend: str = "auto", tile_config: TileConfig | None = None,
                 inference: InferenceConfig | None = None, feature_config: FeatureConfig | None = None,
                 review_geojson: str | Path | None = None, stain: StainConfig | None = None,
                 mpp_override: float | None = None, embeddings: str | Path | None = None,
                 parameters: dict | None = None) -> dict:
    """Slide -> {patient_id, slide_id, n_tiles, n_tumour_tiles, features (D floats or None), flag,
    mpp, mpp_source, mpp_recorded, mpp_unused, embeddings, embeddings_sha256, stain_fit (what the stain
    normalisation fitted on the slide, with a fallback reason if it left the slide as scanned), decode
    (:meth:`~gistrisk.pathology.gpu_decode.DecodeReport.to_dict`: where the tiles were decoded, and how
    many fell back to the CPU path and why; also in the embeddings file's provenance)}.

    ``stain`` (default: the classifier header's setting) is fitted on this slide's tiles.
    ``embeddings``: the HDF5 file to keep every tile's coordinates, embedding and class probabilities
    in (:mod:`gistrisk.pathology.embeddings`), with ``parameters`` (the run's settings) in its provenance.

    The tile grid uses the classifier's tile size and mpp. A slide without tumour tiles gets
    ``features=None`` and ``flag="no_tumour_tiles"`` (never a zero vector).
    """
    # torch-backed: `tiles` never loads them
    from gistrisk.pathology.data import SlideSource  # noqa: PLC0415
    from gistrisk.pathology.engine import predict_tiles  # noqa: PLC0415
    from gistrisk.pathology.gpu_decode import DecodeReport  # noqa: PLC0415

    tcfg = tile_config or TileConfig()
    tcfg = TileConfig.from_dict({**tcfg.to_dict(), "tile_size": int(header["tile_size"]),
                                 "target_mpp": float(header["mpp"])})
    fcfg = feature_config or FeatureConfig()
    with Slide(slide, backend=backend, mpp=mpp, mpp_override=mpp_override) as s:
        tiles = tile_slide(s, tcfg, slide_id=slide_id)
        src = SlideSource(str(s.path), s.backend, s.mpp)
        mpp_info = {k: getattr(s, k) for k in MPP_KEYS}
    fitted: dict = {}
    report = DecodeReport()
    probs, feats = predict_tiles(model, header, tiles, src, inference, stain, stain_fit=fitted, report=report)
    decode = report.to_dict()
    stain_fit = next(iter(fitted.values()), None)  # one slide; None without normalisation
    vec, mask = pool_tumour_features(probs, feats, header["classes"], fcfg)
    sid = slide_id or Path(slide).stem
    if review_geojson:
        preds = tile_predictions_frame(tiles, probs, header["classes"], mask)
        write_review_geojson(review_geojson, preds, header["classes"],
                             provenance({"feature": fcfg.to_dict(), "tile": tcfg.to_dict(),
                                        "stain": (stain.to_dict() if stain else header.get("stain"))},
                                       slide=str(slide)))
    emb_hash = None
    if embeddings:
        write_embeddings(embeddings, tiles, feats, probs, classes=list(header["classes"]), slide_id=sid,
                         patient_id=str(patient_id), slide=str(slide), target_mpp=float(header["mpp"]),
                         level0_mpp=mpp_info["mpp"],
                         provenance=provenance(parameters or {}, slide=str(slide), slide_mpp=mpp_info,
                                               stain_fit=stain_fit, decode=decode,
                                               classifier_header={k: v for k, v in header.items() if k != "versions"}))
        emb_hash = file_sha256(embeddings)
    n_t = int(mask.sum())
    return {"patient_id": str(patient_id), "slide_id": sid, "n_tiles": int(len(tiles)), "n_tumour_tiles": n_t,
            "features": None if n_t == 0 else vec.tolist(), "flag": FLAG_NO_TUMOUR if n_t == 0 else None,
            **mpp_info, "embeddings": str(embeddings) if embeddings else None, "embeddings_sha256": emb_hash,
            "stain_fit": stain_fit, "decode": decode}


def features_worker(inputs: dict) -> dict:
    """Batch worker: one slide's feature vector (see :func:`features_one`)."""
    # torch-backed: `tiles` never loads them
    import torch  # noqa: PLC0415

    from gistrisk.pathology.engine import InferenceConfig  # noqa: PLC0415

    threads = inputs.get("torch_threads")
    if threads:
        torch.set_num_threads(int(threads))
    model, header = load_classifier_cached(inputs["classifier"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return features_one(
            inputs["slide"], model, header, patient_id=inputs["patient_id"], slide_id=inputs["slide_id"],
            mpp=inputs.get("mpp"), mpp_override=inputs.get("mpp_override"), backend=inputs.get("backend", "auto"),
            tile_config=TileConfig.from_dict(inputs["tile_config"]),
            inference=InferenceConfig(**inputs["inference"]),
            feature_config=FeatureConfig(**inputs["feature"]),
            review_geojson=inputs.get("review_geojson"),
            stain=StainConfig.from_dict(inputs["stain"]) if "stain" in inputs else None,
            embeddings=inputs.get("embeddings"),
            parameters={k: inputs[k] for k in EMBEDDING_PARAMETERS if k in inputs})


def torch_threads_per_job(jobs: int) -> int:
    """CPU threads for each of ``jobs`` local workers (so they do not oversubscribe the cores)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))
