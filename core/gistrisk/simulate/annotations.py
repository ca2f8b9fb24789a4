"""Partial tissue annotations as QuPath 0.4+ exports them (GeoJSON FeatureCollection).

Like the paper's pathologists ("reasonable, not perfect"), each class gets one annotation that
covers part of its region, drawn a little inside the true border and with a simplified outline.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import box, mapping

from gistrisk.atomic import write_json
from qupath_bridge.colors import class_color


def _round(obj: Any) -> Any:
    """Coordinates rounded to 0.1 px, as lists (mapping() gives tuples)."""
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):
            return [round(float(v), 1) for v in obj]
        return [_round(o) for o in obj]
    return obj


def partial_annotations(rng: np.random.Generator, regions: dict[str, Any],
                        margin: float = 12.0) -> list[tuple[str, Any]]:
    """(class, geometry) pairs: each region shrunk by ``margin`` px, cut to a random window
    covering 50-100 % of its bounding box, and simplified; empty results are left out."""
    out = []
    for name, geom in regions.items():
        g = geom.buffer(-margin)
        if g.is_empty:
            continue
        x0, y0, x1, y1 = g.bounds
        fw, fh = rng.uniform(0.5, 1.0, 2)
        ox, oy = rng.uniform(0.0, 1.0, 2)
        wx, wy = (x1 - x0) * fw, (y1 - y0) * fh
        win = box(x0 + ox * (x1 - x0 - wx), y0 + oy * (y1 - y0 - wy),
                  x0 + ox * (x1 - x0 - wx) + wx, y0 + oy * (y1 - y0 - wy) + wy)
        g = g.intersection(win).simplify(2.0)
        if g.is_empty or g.area < 1000 or g.geom_type not in ("Polygon", "MultiPolygon"):
            continue
        out.append((name, g))
    return out


def feature_collection(rng: np.random.Generator, annotations: list[tuple[str, Any]]) -> dict[str, Any]:
    """QuPath 0.4+ GeoJSON: Features with a UUID id, objectType "annotation", classification (colours:
    the bridge's tissue palette)."""
    feats = []
    for name, geom in annotations:
        fid = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        geo = mapping(geom)
        feats.append({
            "type": "Feature", "id": fid,
            "geometry": {"type": geo["type"], "coordinates": _round(geo["coordinates"])},
            "properties": {"objectType": "annotation",
                           "classification": {"name": name, "color": list(class_color(name))}},
        })
    return {"type": "FeatureCollection", "features": feats}


def write_annotations(path: Path, rng: np.random.Generator, regions: dict[str, Any]) -> int:
    """Write the partial annotations of one slide; returns how many features were written."""
    fc = feature_collection(rng, partial_annotations(rng, regions))
    write_json(path, fc)
    return len(fc["features"])
