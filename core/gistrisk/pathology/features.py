"""Slide-level pathomics: the mean feature of a slide's tumour tiles (2048-d with the paper's ResNet50;
the embedding size of the encoder otherwise)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gistrisk.pathology.annotations import bridge_errors
from gistrisk.pathology.columns import RESNET50_DIM, feature_columns  # torch-free, shared with simulate
from gistrisk.pathology.tumour import FeatureConfig, tumour_mask  # the tumour rule (torch-free)
from qupath_bridge.tiles import write_tile_predictions

FLAG_NO_TUMOUR = "no_tumour_tiles"

#: the columns of the paper's ResNet50 features, path_0000..path_2047
FEATURE_COLUMNS = feature_columns(RESNET50_DIM)


def pool_tumour_features(probs: np.ndarray, feats: np.ndarray, classes: list[str],
                         config: FeatureConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean feature of tumour tiles.

    probs: (N, C); feats: (N, D) -> (vector (D,) float64, NaN when no tumour tile;
    tumour mask (N,) bool).
    """
    mask = tumour_mask(probs, classes, config)
    if not mask.any():
        return np.full(feats.shape[1] if feats.ndim == 2 else RESNET50_DIM, np.nan), mask
    return feats[mask].astype(np.float64).mean(axis=0), mask


def features_table(results: list[dict], dim: int = RESNET50_DIM) -> pd.DataFrame:
    """Worker results -> ``patient_id, slide_id, n_tumour_tiles, path_0000..path_{dim-1}, n_tiles, flag``
    (``dim``: the encoder's embedding size)."""
    rows = np.full((len(results), dim), np.nan)
    for i, r in enumerate(results):
        if r.get("features") is not None:
            rows[i] = np.asarray(r["features"], np.float64)
    head = pd.DataFrame({
        "patient_id": pd.array([r["patient_id"] for r in results], dtype="string"),
        "slide_id": pd.array([r["slide_id"] for r in results], dtype="string"),
        "n_tumour_tiles": np.array([r["n_tumour_tiles"] for r in results], np.int64),
    })
    tail = pd.DataFrame({
        "n_tiles": np.array([r["n_tiles"] for r in results], np.int64),
        "flag": pd.array([r.get("flag") for r in results], dtype="string"),
    })
    return pd.concat([head, pd.DataFrame(rows, columns=feature_columns(dim)), tail], axis=1)


def tile_predictions_frame(tiles: pd.DataFrame, probs: np.ndarray, classes: list[str],
                           tumour_mask: np.ndarray) -> pd.DataFrame:
    """Per-tile table for review: x, y, width, height (level 0), prob_<class>, predicted_class, is_tumour."""
    out = pd.DataFrame({"x": tiles["x"].to_numpy(), "y": tiles["y"].to_numpy(),
                        "width": tiles["size0"].to_numpy(), "height": tiles["size0"].to_numpy()})
    for j, c in enumerate(classes):
        out[f"prob_{c}"] = probs[:, j]
    out["predicted_class"] = np.asarray(classes, dtype=object)[probs.argmax(axis=1)] if len(probs) else []
    out["is_tumour"] = tumour_mask
    return out


def write_review_geojson(path: str | Path, preds: pd.DataFrame, classes: list[str], provenance: dict) -> None:
    """Per-tile predictions as QuPath GeoJSON (tiles classified, tumour probability as a measurement).

    Name the file with ``qupath_bridge.naming.tile_predictions_file_name(<slide file name>)`` so that
    groovy/import_tile_predictions.groovy finds it. Raises InputError for a bad table."""
    size = int(preds["width"].iloc[0]) if len(preds) else 1
    with bridge_errors():
        write_tile_predictions(path, preds, tile_size_px=size, classes=classes, class_column="predicted_class",
                               provenance=provenance)
