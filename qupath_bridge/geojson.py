"""Read and write QuPath GeoJSON as QuPath 0.2 to 0.6 write it.

Accepted layouts: a FeatureCollection, a bare array of Features (0.2) and a single Feature.
Coordinates are full-resolution pixels, origin top-left. Points and lines are kept and flagged
(``Annotation.is_area`` is False). Invalid polygons are repaired and reported with a
:class:`QuPathBridgeWarning` naming the file and the feature; with ``repair=False`` they raise.

Empty files: an empty FeatureCollection raises :class:`QuPathInputError` by default (an export that
lost its annotations should not look like "no tumour"); ``allow_empty=True`` returns ``[]`` with a
warning instead.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qupath_bridge.annotation import Annotation
from qupath_bridge.bounds import BoundsProblem, check_bounds
from qupath_bridge.classes import map_classes
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.features import annotation_to_feature, feature_to_annotation, schema_of
from qupath_bridge.files import json_default, write_text_atomic
from qupath_bridge.geometry import simple_polygons
from qupath_bridge.tiles import write_tile_predictions
from qupath_bridge.warnings_ import QuPathBridgeWarning

__all__ = ["Annotation", "read_annotations", "write_annotations", "write_tile_predictions", "check_bounds",
           "BoundsProblem", "map_classes", "load_features", "QuPathBridgeWarning", "QuPathInputError"]

_MAX_LISTED = 10


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise QuPathInputError("GeoJSON file not found" if not path.exists() else "is not a file", file=str(path))
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise QuPathInputError(f"cannot be read as UTF-8 text ({e}); a QuPath GeoJSON export was expected",
                         file=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise QuPathInputError(f"is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                         "a QuPath GeoJSON export was expected", file=str(path)) from None


def load_features(path: str | os.PathLike) -> list[Any]:
    """The raw Feature dicts of a QuPath GeoJSON file, whatever its top-level layout.

    Raises
    ------
    QuPathInputError
        Missing file, not JSON, or JSON that is not GeoJSON features.
    """
    path = Path(path)
    doc = _load_json(path)
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        kind = doc.get("type")
        if kind == "FeatureCollection" or (kind is None and isinstance(doc.get("features"), list)):
            feats = doc.get("features")
            if not isinstance(feats, list):
                raise QuPathInputError("FeatureCollection without a 'features' list", file=str(path))
            return feats
        if kind == "Feature":
            return [doc]
        if kind in ("Polygon", "MultiPolygon", "Point", "LineString", "MultiPoint", "MultiLineString"):
            raise QuPathInputError(f"is a bare GeoJSON {kind} geometry, not a Feature; QuPath objects need Features",
                             file=str(path))
    raise QuPathInputError(f"is JSON but not GeoJSON (top level is {type(doc).__name__}"
                     f"{' of type ' + repr(doc.get('type')) if isinstance(doc, dict) else ''}); "
                     "expected a FeatureCollection, an array of Features or a Feature", file=str(path))


def read_annotations(path: str | os.PathLike, *, repair: bool = True, allow_empty: bool = False) -> list[Annotation]:
    """Read every object in a QuPath GeoJSON export.

    Parameters
    ----------
    path : path
        A ``.geojson``/``.json`` file (gzip-compressed is accepted).
    repair : bool
        Close unclosed rings and fix invalid polygons (``shapely.make_valid``), warning for each;
        if False, such features raise.
    allow_empty : bool
        Return ``[]`` with a warning for a file with no features instead of raising.

    Returns
    -------
    list of Annotation
        In file order; coordinates are full-resolution pixels, origin top-left.

    Raises
    ------
    QuPathInputError
        Naming the file: missing, not JSON, not GeoJSON, empty (unless allowed), or features that
        cannot be read (all of them listed, up to 10).
    """
    path = Path(path)
    feats = load_features(path)
    if not feats:
        if allow_empty:
            warnings.warn(f"file {path}: contains no features (empty FeatureCollection)", QuPathBridgeWarning,
                          stacklevel=2)
            return []
        raise QuPathInputError("contains no features (empty FeatureCollection): was the export run on an image "
                         "without annotations? Pass allow_empty=True to accept it", file=str(path))
    fast = simple_polygons([f.get("geometry") if isinstance(f, dict) else None for f in feats])
    out: list[Annotation] = []
    errors: list[str] = []
    for i, feat in enumerate(feats):
        try:
            ann = feature_to_annotation(feat, i, repair=repair, geometry=fast[i])
        except ValueError as e:
            errors.append(str(e))
            continue
        for issue in ann.issues:
            warnings.warn(f"file {path}: {issue}", QuPathBridgeWarning, stacklevel=2)
        out.append(ann)
    if errors:
        listed = "; ".join(errors[:_MAX_LISTED])
        more = f"; and {len(errors) - _MAX_LISTED} more" if len(errors) > _MAX_LISTED else ""
        raise QuPathInputError(f"{len(errors)} of {len(feats)} features cannot be read: {listed}{more}", file=str(path))
    return out


def write_annotations(path: str | os.PathLike, annotations: Sequence[Annotation], *, qupath_version: str = "0.4",
                      provenance: dict[str, Any] | None = None) -> None:
    """Write annotations atomically as QuPath would export them.

    Parameters
    ----------
    path : path
    annotations : sequence of Annotation
    qupath_version : str
        "0.4" (default; also right for 0.5 and 0.6): FeatureCollection, UUID ids, ``objectType``,
        measurement maps. "0.3": ``object_type``, ``colorRGB``. "0.2": a bare array with the Java
        class in ``id``.
    provenance : dict, optional
        Stored as a top-level ``"gistrisk"`` member of the FeatureCollection (a GeoJSON foreign
        member that QuPath ignores); not written for the 0.2 array layout.
    """
    schema = schema_of(qupath_version)
    feats = [annotation_to_feature(a, schema=schema) for a in annotations]
    doc: Any
    if schema == "0.2":
        doc = feats
    else:
        doc = {"type": "FeatureCollection", "features": feats}
        if provenance is not None:
            doc["gistrisk"] = provenance
    write_text_atomic(path, json.dumps(doc, separators=(",", ":"), default=json_default) + "\n")

