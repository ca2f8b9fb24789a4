"""One GeoJSON Feature <-> one Annotation, in each QuPath schema (0.2, 0.3, 0.4+).

Schemas (from real exports, see ../shared/data/qupath/geojson):

- 0.2: ``id`` is the Java class ("PathAnnotationObject"), ``classification`` {name, colorRGB (packed int)},
  ``measurements`` a list of {name, value} (often ``[]``).
- 0.3: ``properties.object_type`` ("annotation"), no ``id``.
- 0.4+: UUID ``id``, ``properties.objectType``, ``classification`` {name | names, color [r, g, b]},
  ``properties.color`` for an object's own colour, ``measurements`` a map, ``geometry.isEllipse``,
  ``nucleusGeometry`` beside ``geometry`` for cells.
"""

from __future__ import annotations

import math
from typing import Any

from shapely.geometry.base import BaseGeometry

from qupath_bridge.annotation import JAVA_CLASS_TO_OBJECT_TYPE, OBJECT_TYPE_TO_JAVA_CLASS, Annotation
from qupath_bridge.colors import parse_color, rgb_to_packed
from qupath_bridge.geometry import geometry_from_geojson, geometry_to_geojson

#: Keys mapped to Annotation fields; every other property is kept in ``Annotation.properties``.
_MAPPED = {"objectType", "object_type", "classification", "name", "color", "measurements", "nucleusGeometry"}


def schema_of(version: str) -> str:
    """QuPath version string ("0.2.3", "0.4", "0.6.0-rc3") -> schema "0.2", "0.3" or "0.4"."""
    try:
        major, minor = (int(p) for p in version.split("-")[0].split(".")[:2])
    except ValueError:
        raise ValueError(f"not a QuPath version: {version!r} (expected e.g. '0.4' or '0.5.1')") from None
    if (major, minor) < (0, 3):
        return "0.2"
    if (major, minor) < (0, 4):
        return "0.3"
    return "0.4"


def _class(cls: Any) -> tuple[str | None, tuple[int, int, int] | None]:
    """A QuPath classification (dict in any schema, or a bare string) -> (name, colour)."""
    if cls is None:
        return None, None
    if isinstance(cls, str):
        return (cls or None), None
    if not isinstance(cls, dict):
        return None, None
    names = cls.get("names")
    name: str | None
    if isinstance(names, list) and names:
        name = ": ".join(str(n) for n in names)
    else:
        name = cls.get("name")
        name = str(name) if name not in (None, "") else None
    color = parse_color(cls.get("color")) or parse_color(cls.get("colorRGB"))
    return name, color


def _measurements(m: Any, issues: list[str], what: str) -> dict[str, float]:
    """A measurement map (0.4+) or list of {name, value} (0.2/0.3) -> {name: float}."""
    if m is None:
        return {}
    items: list[tuple[Any, Any]]
    if isinstance(m, dict):
        items = list(m.items())
    elif isinstance(m, list):
        items = [(d.get("name"), d.get("value")) for d in m if isinstance(d, dict)]
    else:
        issues.append(f"{what}: measurements of type {type(m).__name__} ignored (expected a map or a list)")
        return {}
    out: dict[str, float] = {}
    for k, v in items:
        if k is None:
            continue
        try:
            out[str(k)] = math.nan if v is None else float(v)
        except (TypeError, ValueError):
            issues.append(f"{what}: measurement {k!r} is not a number ({v!r}); ignored")
    return out


def feature_label(feat: dict, index: int) -> str:
    """How to name feature ``index`` in messages: its position plus id and name when present."""
    parts = []
    fid = feat.get("id") if isinstance(feat, dict) else None
    if fid and isinstance(fid, str) and fid not in JAVA_CLASS_TO_OBJECT_TYPE:
        parts.append(f"id {fid}")
    props = feat.get("properties") if isinstance(feat, dict) else None
    if isinstance(props, dict) and props.get("name"):
        parts.append(f"name {props['name']!r}")
    return f"feature {index}" + (f" ({', '.join(parts)})" if parts else "")


def feature_to_annotation(feat: Any, index: int, *, repair: bool = True,
                          geometry: BaseGeometry | None = None) -> Annotation:
    """Parse one GeoJSON Feature written by any QuPath version.

    ``geometry``, when given, is the feature's geometry already built and checked in bulk
    (:func:`qupath_bridge.geometry.simple_polygons`). Raises ``ValueError`` (``GeometryError`` for
    geometry) with the feature named; the caller adds the file.
    """
    what = feature_label(feat, index)
    if not isinstance(feat, dict) or (feat.get("type") not in (None, "Feature")):
        raise ValueError(f"{what} is not a GeoJSON Feature")
    props = feat.get("properties") or {}
    if not isinstance(props, dict):
        raise ValueError(f"{what}: 'properties' is not an object")
    geom_dict = feat.get("geometry")
    issues: list[str]
    if geometry is not None:
        geom, issues = geometry, []
    else:
        geom, issues = geometry_from_geojson(geom_dict, repair=repair, what=what)

    fid = feat.get("id")
    object_type = props.get("objectType") or props.get("object_type")
    if fid in JAVA_CLASS_TO_OBJECT_TYPE:
        object_type = object_type or JAVA_CLASS_TO_OBJECT_TYPE[fid]
        fid = None
    class_name, class_color = _class(props.get("classification"))
    nucleus = feat.get("nucleusGeometry", props.get("nucleusGeometry"))
    nucleus_geom = None
    if nucleus is not None:
        nucleus_geom, more = geometry_from_geojson(nucleus, repair=repair, what=f"{what} nucleus")
        issues += more
    name = props.get("name")
    return Annotation(
        geometry=geom,
        class_name=class_name,
        object_type=str(object_type or "annotation"),
        name=str(name) if name not in (None, "") else None,
        id=str(fid) if fid not in (None, "") else None,
        color=parse_color(props.get("color")) or class_color,
        measurements=_measurements(props.get("measurements"), issues, what),
        properties={k: v for k, v in props.items() if k not in _MAPPED},
        is_ellipse=bool(isinstance(geom_dict, dict) and geom_dict.get("isEllipse")),
        nucleus_geometry=nucleus_geom,
        issues=issues,
    )


def annotation_to_feature(ann: Annotation, *, schema: str = "0.4") -> dict[str, Any]:
    """One Annotation as a Feature in QuPath's ``schema`` ("0.2", "0.3" or "0.4", also for 0.5/0.6)."""
    geometry = geometry_to_geojson(ann.geometry)
    props: dict[str, Any] = {}
    feat: dict[str, Any] = {"type": "Feature"}
    if schema == "0.4":
        if ann.id:
            feat["id"] = ann.id
        if ann.is_ellipse:
            geometry["isEllipse"] = True
        props["objectType"] = ann.object_type
    elif schema == "0.3":
        props["object_type"] = ann.object_type
    else:
        feat["id"] = OBJECT_TYPE_TO_JAVA_CLASS.get(ann.object_type, "PathAnnotationObject")
    feat["geometry"] = geometry
    if ann.nucleus_geometry is not None:
        feat["nucleusGeometry"] = geometry_to_geojson(ann.nucleus_geometry)
    if ann.name:
        props["name"] = ann.name
    if ann.class_name:
        cls: dict[str, Any] = {}
        parts = ann.class_name.split(": ")
        if schema == "0.4" and len(parts) > 1:
            cls["names"] = parts
        else:
            cls["name"] = ann.class_name
        if ann.color is not None:
            if schema == "0.4":
                cls["color"] = list(ann.color)
            else:
                cls["colorRGB"] = rgb_to_packed(ann.color)
        props["classification"] = cls
    elif ann.color is not None:
        props["color"] = list(ann.color) if schema == "0.4" else rgb_to_packed(ann.color)
    props.update({k: v for k, v in ann.properties.items() if k not in _MAPPED})
    if ann.measurements or schema == "0.2":
        if schema == "0.4":
            props["measurements"] = {k: float(v) for k, v in ann.measurements.items()}
        else:
            props["measurements"] = [{"name": k, "value": float(v)} for k, v in ann.measurements.items()]
    feat["properties"] = props
    return feat
