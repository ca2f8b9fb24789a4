"""The one object the bridge hands to ``gistrisk``: a QuPath object as a shapely geometry plus its labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapely.geometry.base import BaseGeometry

#: QuPath 0.2 wrote the Java class name in ``id``; 0.3+ write these lower-case names.
JAVA_CLASS_TO_OBJECT_TYPE = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathTileObject": "tile",
    "PathCellObject": "cell",
    "TMACoreObject": "tma_core",
    "PathRootObject": "root",
}
OBJECT_TYPE_TO_JAVA_CLASS = {v: k for k, v in JAVA_CLASS_TO_OBJECT_TYPE.items()}

AREA_TYPES = ("Polygon", "MultiPolygon")


@dataclass
class Annotation:
    """One QuPath object (annotation, detection, tile, cell, ...).

    Attributes
    ----------
    geometry : shapely geometry
        In full-resolution pixel coordinates, origin top-left (QuPath's convention).
    class_name : str or None
        QuPath classification; derived classes are joined as QuPath prints them ("Tumor: Positive").
    object_type : str
        "annotation", "detection", "tile", "cell", "tma_core".
    name, id : str or None
        The object's name and its UUID (QuPath 0.4+; None for older exports).
    color : (r, g, b) or None
        Display colour: the object's own colour if it has one, else its class colour.
    measurements : dict[str, float]
    properties : dict
        Other QuPath properties not mapped to a field (``isLocked``, ``metadata``, ...), kept for writing back.
    is_ellipse : bool
        QuPath 0.4+ ``geometry.isEllipse`` (the polygon approximates an ellipse ROI).
    nucleus_geometry : shapely geometry or None
        A cell's nucleus (QuPath 0.4+ ``nucleusGeometry``).
    issues : list[str]
        What the reader repaired or flagged for this object (also emitted as warnings).
    """

    geometry: BaseGeometry
    class_name: str | None = None
    object_type: str = "annotation"
    name: str | None = None
    id: str | None = None
    color: tuple[int, int, int] | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    is_ellipse: bool = False
    nucleus_geometry: BaseGeometry | None = None
    issues: list[str] = field(default_factory=list)

    @property
    def is_area(self) -> bool:
        """True for a non-empty (Multi)Polygon; points and lines are kept but are not areas."""
        return self.geometry.geom_type in AREA_TYPES and not self.geometry.is_empty

    def label(self) -> str:
        """A short human name for messages: id, name and class where known."""
        parts = []
        if self.id:
            parts.append(f"id {self.id}")
        if self.name:
            parts.append(f"name {self.name!r}")
        if self.class_name:
            parts.append(f"class {self.class_name!r}")
        return ", ".join(parts) or f"unnamed {self.object_type}"
