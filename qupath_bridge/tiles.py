"""Tile predictions -> QuPath 0.4+ GeoJSON tile/detection objects, for review as a heat map in QuPath.

Each tile becomes a square ``objectType: "tile"`` (or ``"detection"``) feature classified as its
predicted class, with measurements ``"tumour probability"`` and ``<prob_prefix><class>`` for every
class. In QuPath: Measure > Show measurement maps > "tumour probability" (or run
``groovy/import_tile_predictions.groovy``).
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qupath_bridge.classes import normalise_class
from qupath_bridge.colors import class_color
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.files import write_text_atomic
from qupath_bridge.warnings_ import QuPathBridgeWarning

TUMOUR_MEASUREMENT = "tumour probability"
CLASS_COLUMNS = ("predicted_class", "pred_class", "prediction", "class_name", "label")
_NAMESPACE = uuid.UUID("6f1c2a52-4a43-4b1e-9a57-1f0d8f0b6a11")  # fixed: same tile -> same UUID every run
_PROB_TOL = 1e-6


def _rows(df: pd.DataFrame, mask: np.ndarray, n: int = 5) -> str:
    idx = df.index[mask][:n].tolist()
    return f"rows {idx}{' ...' if mask.sum() > n else ''}"


def _numeric(df: pd.DataFrame, col: str, file: str) -> np.ndarray:
    try:
        v = pd.to_numeric(df[col], errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as e:
        raise QuPathInputError(f"tile table column is not numeric ({e})", file=file, column=col) from None
    bad = ~np.isfinite(v)
    if bad.any():
        raise QuPathInputError(f"tile table has missing or infinite values in {_rows(df, bad)}", file=file, column=col)
    return v


def write_tile_predictions(path: str | os.PathLike, tiles: pd.DataFrame, *, tile_size_px: int,
                           classes: Sequence[str], prob_prefix: str = "prob_", object_type: str = "tile",
                           class_column: str | None = None, tumour_class: str | None = None,
                           provenance: dict[str, Any] | None = None) -> None:
    """Write one slide's tile predictions as QuPath 0.4+ GeoJSON (atomically).

    Parameters
    ----------
    path : path
        Output ``.geojson``.
    tiles : DataFrame, shape (n_tiles, ...)
        ``x``, ``y`` (top-left, level-0 pixels); optional ``width``/``height`` (else ``tile_size_px``);
        ``<prob_prefix><class>`` for every class; optional predicted class column (``class_column``, or
        the first of ``predicted_class``, ``pred_class``, ``prediction``, ``class_name``, ``label``;
        if none, the arg-max of the probabilities).
    tile_size_px : int
        Tile side in level-0 pixels when the table has no width/height.
    classes : sequence of str
        Class names, in the classifier's order.
    prob_prefix : str
    object_type : {"tile", "detection"}
    class_column : str, optional
    tumour_class : str, optional
        Which class is "tumour probability"; found by name (tumour/tumor, any case) when omitted.
    provenance : dict, optional
        Stored as the FeatureCollection's ``"gistrisk"`` member (QuPath ignores it).

    Raises
    ------
    QuPathInputError
        Naming the file and column: missing columns, non-numeric or missing values, probabilities
        outside [0, 1], predicted classes not in ``classes``, no tumour class.
    """
    file = str(path)
    if object_type not in ("tile", "detection"):
        raise ValueError(f"object_type must be 'tile' or 'detection', got {object_type!r}")
    classes = [str(c) for c in classes]
    if not classes:
        raise ValueError("classes is empty")
    for col in ("x", "y"):
        if col not in tiles.columns:
            raise QuPathInputError(f"tile table has no {col!r} column (top-left level-0 pixel)", file=file, column=col)
    prob_cols = [f"{prob_prefix}{c}" for c in classes]
    missing = [c for c in prob_cols if c not in tiles.columns]
    if missing:
        raise QuPathInputError(f"tile table lacks probability columns {missing} (one per class)", file=file,
                         column=missing[0])
    if tumour_class is None:
        found = [c for c in classes if normalise_class(c) == "tumour"]
        if not found:
            raise QuPathInputError(f"no tumour class among {classes}; pass tumour_class=", file=file)
        tumour_class = found[0]
    elif tumour_class not in classes:
        raise ValueError(f"tumour_class {tumour_class!r} is not one of {classes}")

    x, y = _numeric(tiles, "x", file), _numeric(tiles, "y", file)
    w = _numeric(tiles, "width", file) if "width" in tiles.columns else np.full(len(tiles), float(tile_size_px))
    h = _numeric(tiles, "height", file) if "height" in tiles.columns else np.full(len(tiles), float(tile_size_px))
    if ((w <= 0) | (h <= 0)).any():
        raise QuPathInputError(f"tiles with non-positive size in {_rows(tiles, (w <= 0) | (h <= 0))}", file=file,
                         column="width")
    probs = (np.column_stack([_numeric(tiles, c, file) for c in prob_cols]) if len(tiles)
             else np.zeros((0, len(classes))))
    bad = ((probs < -_PROB_TOL) | (probs > 1 + _PROB_TOL)).any(axis=1)
    assert isinstance(bad, np.ndarray)  # probs is 2-D: one flag per row
    if bad.any():
        raise QuPathInputError(f"probabilities outside [0, 1] in {_rows(tiles, bad)}", file=file, column=prob_cols[0])
    pred = _predicted(tiles, classes, probs, class_column, file)

    colors = {c: list(class_color(c)) for c in classes}
    t_idx = classes.index(tumour_class)
    feats = []
    for i in range(len(tiles)):
        x0, y0, x1, y1 = _n(x[i]), _n(y[i]), _n(x[i] + w[i]), _n(y[i] + h[i])
        meas = {TUMOUR_MEASUREMENT: float(probs[i, t_idx])}
        meas.update({pc: float(probs[i, j]) for j, pc in enumerate(prob_cols)})
        feats.append({
            "type": "Feature",
            "id": str(uuid.uuid5(_NAMESPACE, f"{object_type}:{x0}:{y0}:{x1}:{y1}")),
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
            "properties": {"objectType": object_type,
                           "classification": {"name": pred[i], "color": colors[pred[i]]},
                           "measurements": meas},
        })
    if not feats:
        warnings.warn(f"file {file}: no tiles to write; the file holds an empty FeatureCollection",
                      QuPathBridgeWarning, stacklevel=2)
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if provenance is not None:
        doc["gistrisk"] = provenance
    write_text_atomic(path, json.dumps(doc, separators=(",", ":")) + "\n")


def _n(v: float) -> float | int:
    return int(v) if float(v).is_integer() else float(v)


def _predicted(tiles: pd.DataFrame, classes: list[str], probs: np.ndarray, class_column: str | None,
               file: str) -> list[str]:
    col = class_column or next((c for c in CLASS_COLUMNS if c in tiles.columns), None)
    if col is None:
        return [classes[j] for j in probs.argmax(axis=1)] if len(tiles) else []
    if col not in tiles.columns:
        raise QuPathInputError("tile table has no such predicted-class column", file=file, column=col)
    values = tiles[col]
    if pd.api.types.is_integer_dtype(values):
        bad = (values < 0) | (values >= len(classes))
        if bad.any():
            raise QuPathInputError(f"class index out of range 0..{len(classes) - 1} in {_rows(tiles, bad.to_numpy())}",
                             file=file, column=col)
        return [classes[int(v)] for v in values]
    names = values.astype(str).tolist()
    bad = np.array([n not in classes for n in names])
    if bad.any():
        unknown = sorted({n for n, b in zip(names, bad) if b})
        raise QuPathInputError(f"predicted classes {unknown} are not among {classes} ({_rows(tiles, bad)})",
                         file=file, column=col)
    return names
