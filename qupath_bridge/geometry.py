"""GeoJSON geometry <-> shapely, with the checks and repairs QuPath exports need.

Every repair is returned as a sentence for the caller to warn about; nothing is dropped silently.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity


class GeometryError(ValueError):
    """A geometry that cannot be read (or is invalid and repair was not allowed)."""


def _positions(coords: Any, what: str) -> np.ndarray:
    """A list of [x, y(, z)] positions -> float array (n, 2); raise GeometryError if malformed."""
    try:
        arr = np.asarray(coords, dtype=float)
    except (TypeError, ValueError) as e:
        raise GeometryError(f"{what}: coordinates are not a list of [x, y] numbers ({e})") from None
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] == 0:
        raise GeometryError(f"{what}: coordinates are not a list of [x, y] positions (shape {arr.shape})")
    arr = arr[:, :2]
    if not np.isfinite(arr).all():
        raise GeometryError(f"{what}: coordinates contain NaN or infinity")
    return arr


def _ring(coords: Any, what: str, repair: bool, issues: list[str]) -> np.ndarray | None:
    """A linear ring, closed if it was not; None if it has fewer than 3 distinct points."""
    arr = _positions(coords, what)
    if not np.array_equal(arr[0], arr[-1]):
        if not repair:
            raise GeometryError(f"{what} is not closed (first point {arr[0].tolist()} != last {arr[-1].tolist()})")
        issues.append(f"{what} was not closed; closed it by repeating the first point")
        arr = np.vstack([arr, arr[:1]])
    if _distinct_points(arr) < 3:
        return None
    return arr


def _distinct_points(arr: np.ndarray) -> int:
    """min(number of distinct points, 3), in O(n) (np.unique sorts and dominated reading large files)."""
    differs = (arr != arr[0]).any(axis=1)
    if not differs.any():
        return 1
    second = arr[differs.argmax()]
    return 3 if (differs & (arr != second).any(axis=1)).any() else 2


def _polygon(rings: Any, what: str, repair: bool, issues: list[str]) -> BaseGeometry:
    if not isinstance(rings, list) or not rings:
        raise GeometryError(f"{what}: a polygon needs a list of rings")
    shell = _ring(rings[0], f"{what} outer ring", repair, issues)
    if shell is None:
        pts = _positions(rings[0], what)
        if not repair:
            raise GeometryError(f"{what}: outer ring has fewer than 3 distinct points (no area)")
        issues.append(f"{what}: outer ring has fewer than 3 distinct points; kept as a line, not an area")
        return Point(pts[0]) if _distinct_points(pts) == 1 else LineString(pts)
    holes = []
    for i, r in enumerate(rings[1:], start=1):
        h = _ring(r, f"{what} hole {i}", repair, issues)
        if h is None:
            if not repair:
                raise GeometryError(f"{what} hole {i} has fewer than 3 distinct points")
            issues.append(f"{what} hole {i} has fewer than 3 distinct points; ignored (it encloses no area)")
            continue
        holes.append(h)
    return Polygon(shell, holes)


def _build(g: Any, what: str, repair: bool, issues: list[str]) -> BaseGeometry:
    if not isinstance(g, dict) or "type" not in g:
        raise GeometryError(f"{what}: missing or malformed 'geometry'")
    kind = g["type"]
    if kind == "GeometryCollection":
        parts = [_build(p, f"{what} part {i}", repair, issues) for i, p in enumerate(g.get("geometries") or [])]
        return GeometryCollection(parts)
    coords = g.get("coordinates")
    if coords is None:
        raise GeometryError(f"{what}: {kind} without coordinates")
    if kind == "Point":
        return Point(_positions([coords], what)[0])
    if kind == "MultiPoint":
        return MultiPoint(_positions(coords, what))
    if kind == "LineString":
        pts = _positions(coords, what)
        if len(pts) < 2:
            raise GeometryError(f"{what}: a LineString needs at least 2 points")
        return LineString(pts)
    if kind == "MultiLineString":
        return MultiLineString([_positions(c, f"{what} line {i}") for i, c in enumerate(coords)])
    if kind == "Polygon":
        return _polygon(coords, what, repair, issues)
    if kind == "MultiPolygon":
        if not isinstance(coords, list):
            raise GeometryError(f"{what}: MultiPolygon coordinates must be a list of polygons")
        parts = [_polygon(p, f"{what} polygon {i}", repair, issues) for i, p in enumerate(coords)]
        polys = [p for p in parts if isinstance(p, Polygon)]
        if len(polys) == len(parts):
            return MultiPolygon(polys)
        return GeometryCollection(parts)
    raise GeometryError(f"{what}: unsupported geometry type {kind!r}")


def _polygonal_part(g: BaseGeometry) -> BaseGeometry:
    """The (Multi)Polygon part of a make_valid result (which may add zero-area lines or points)."""
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    polys: list[Polygon] = []
    for part in getattr(g, "geoms", []):
        if part.geom_type == "Polygon":
            polys.append(part)
        elif part.geom_type == "MultiPolygon":
            polys.extend(part.geoms)
    if not polys:
        return g
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)


def geometry_from_geojson(g: Any, *, repair: bool = True, what: str = "geometry") -> tuple[BaseGeometry, list[str]]:
    """Build a shapely geometry from a GeoJSON geometry dict.

    Parameters
    ----------
    g : dict
        GeoJSON geometry (``type``, ``coordinates``; QuPath's extra ``isEllipse`` is ignored here).
    repair : bool
        Close unclosed rings and fix invalid polygons with ``shapely.make_valid``; if False, raise instead.
    what : str
        How to name this geometry in messages.

    Returns
    -------
    geometry, issues
        The geometry and one sentence per repair made.

    Raises
    ------
    GeometryError
        Malformed coordinates, an unsupported type, or an invalid geometry with ``repair=False``.
    """
    issues: list[str] = []
    geom = _build(g, what, repair, issues)
    if geom.geom_type in ("Polygon", "MultiPolygon", "GeometryCollection") and not geom.is_valid:
        reason = explain_validity(geom)
        if not repair:
            raise GeometryError(f"{what} is not a valid polygon: {reason}")
        before = geom.area
        fixed = _polygonal_part(shapely.make_valid(geom))
        issues.append(f"{what} was invalid ({reason}); repaired with make_valid "
                      f"to a {fixed.geom_type} (area {before:.1f} -> {fixed.area:.1f} px^2)")
        geom = fixed
    return geom, issues


def simple_polygons(geoms: list[Any]) -> list[BaseGeometry | None]:
    """Bulk fast path for the common case: one-ring Polygons that are closed, finite and valid.

    Builds them with vectorised shapely calls (tiles and cell exports hold 10^5 of them). Entries that
    are anything else, or fail a check, come back as None for :func:`geometry_from_geojson` to handle
    (and report) one by one.

    Parameters
    ----------
    geoms : list
        GeoJSON geometry dicts (or anything: non-dicts come back as None).

    Returns
    -------
    list, same length as ``geoms``
    """
    out: list[BaseGeometry | None] = [None] * len(geoms)
    idx, rings = [], []
    for i, g in enumerate(geoms):
        if type(g) is dict and g.get("type") == "Polygon":
            c = g.get("coordinates")
            if type(c) is list and len(c) == 1 and type(c[0]) is list and len(c[0]) >= 4:
                idx.append(i)
                rings.append(c[0])
    if not idx:
        return out
    lengths = np.fromiter((len(r) for r in rings), dtype=np.int64, count=len(rings))
    try:
        arr = np.array([pt for r in rings for pt in r], dtype=float)
    except (TypeError, ValueError):  # ragged or non-numeric somewhere: let the careful path say where
        return out
    if arr.ndim != 2 or arr.shape[1] < 2:
        return out
    arr = arr[:, :2]
    ends = np.cumsum(lengths)
    starts = ends - lengths
    good = np.logical_and.reduceat(np.isfinite(arr).all(axis=1), starts)
    good &= (arr[starts] == arr[ends - 1]).all(axis=1)
    if not good.any():
        return out
    ring_of_point = np.repeat(np.arange(len(rings)), lengths)
    keep = good[ring_of_point]
    renumber = np.cumsum(good) - 1
    polys = shapely.polygons(shapely.linearrings(arr[keep], indices=renumber[ring_of_point[keep]]))
    valid = shapely.is_valid(polys)
    for k, ring_index in enumerate(np.flatnonzero(good)):
        if valid[k]:
            out[idx[ring_index]] = polys[k]
    return out


def _num(v: float) -> float | int:
    """Whole numbers as int, as QuPath writes them (smaller files, same values)."""
    f = float(v)
    return int(f) if f.is_integer() and abs(f) < 2**53 else f


def _coords(seq) -> list[list[float | int]]:
    return [[_num(c[0]), _num(c[1])] for c in seq]


def geometry_to_geojson(geom: BaseGeometry) -> dict[str, Any]:
    """A shapely geometry as a GeoJSON geometry dict (2-D, whole numbers written as ints)."""
    t = geom.geom_type
    if t == "Point":
        return {"type": "Point", "coordinates": _coords(geom.coords)[0]}
    if t == "MultiPoint":
        return {"type": "MultiPoint", "coordinates": [_coords(p.coords)[0] for p in geom.geoms]}
    if t in ("LineString", "LinearRing"):
        return {"type": "LineString", "coordinates": _coords(geom.coords)}
    if t == "MultiLineString":
        return {"type": "MultiLineString", "coordinates": [_coords(p.coords) for p in geom.geoms]}
    if t == "Polygon":
        return {"type": "Polygon", "coordinates": _polygon_coords(geom)}
    if t == "MultiPolygon":
        return {"type": "MultiPolygon", "coordinates": [_polygon_coords(p) for p in geom.geoms]}
    if t == "GeometryCollection":
        return {"type": "GeometryCollection", "geometries": [geometry_to_geojson(p) for p in geom.geoms]}
    raise GeometryError(f"cannot write geometry type {t!r} as GeoJSON")


def _polygon_coords(p: Polygon) -> list:
    return [_coords(p.exterior.coords)] + [_coords(r.coords) for r in p.interiors]
