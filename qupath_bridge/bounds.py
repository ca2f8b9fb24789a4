"""Check annotations against the slide they were drawn on (a GeoJSON from another slide, or a downsample)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qupath_bridge.annotation import Annotation

EMPTY = "empty"
OUTSIDE = "outside"
PARTLY_OUTSIDE = "partly outside"


@dataclass(frozen=True)
class BoundsProblem:
    """One annotation that does not fit the slide.

    Attributes
    ----------
    index : int
        Position in the list checked.
    label : str
        ``Annotation.label()`` (id, name, class).
    kind : str
        :data:`EMPTY` (empty geometry), :data:`OUTSIDE` (entirely outside the slide) or
        :data:`PARTLY_OUTSIDE` (crosses the slide's edge).
    bounds : (x0, y0, x1, y1) or None
        The geometry's bounds in level-0 pixels; None when empty.
    width, height : int
        The slide's level-0 size.
    file : str or None
    """

    index: int
    label: str
    kind: str
    bounds: tuple[float, float, float, float] | None
    width: int
    height: int
    file: str | None = None

    @property
    def fatal(self) -> bool:
        """True when clipping cannot save the object (empty or entirely outside)."""
        return self.kind != PARTLY_OUTSIDE

    @property
    def message(self) -> str:
        """The problem as a sentence for people (without the file)."""
        who = f"object {self.index} ({self.label})"
        if self.kind == EMPTY:
            return f"{who} has an empty geometry"
        x0, y0, x1, y1 = self.bounds or (0, 0, 0, 0)
        frame = f"bounds x {x0:g}..{x1:g}, y {y0:g}..{y1:g} px; slide is {self.width}x{self.height} px"
        if self.kind == OUTSIDE:
            return f"{who} lies entirely outside the slide ({frame}): drawn on another image or at another resolution?"
        return f"{who} extends outside the slide ({frame})"

    def __str__(self) -> str:
        return f"file {self.file}: {self.message}" if self.file else self.message


def check_bounds(annotations: Sequence[Annotation], width: int, height: int, *,
                 file: str | None = None) -> list[BoundsProblem]:
    """List every annotation that is empty or not inside the slide's full-resolution pixel frame.

    Parameters
    ----------
    annotations : sequence of Annotation
    width, height : int
        Slide size at level 0 in pixels; the frame is [0, width] x [0, height], origin top-left.
    file : str, optional
        Recorded in each problem.

    Returns
    -------
    list of BoundsProblem
        Empty when all fit. Nothing is raised or dropped: the caller decides (``kind``, ``fatal``).
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"slide size must be positive, got {width}x{height}")
    problems = []
    for i, ann in enumerate(annotations):
        g = ann.geometry
        if g.is_empty:
            kind, bounds = EMPTY, None
        else:
            x0, y0, x1, y1 = (float(v) for v in g.bounds)
            bounds = (x0, y0, x1, y1)
            if x1 < 0 or y1 < 0 or x0 > width or y0 > height:
                kind = OUTSIDE
            elif x0 < 0 or y0 < 0 or x1 > width or y1 > height:
                kind = PARTLY_OUTSIDE
            else:
                continue
        problems.append(BoundsProblem(i, ann.label(), kind, bounds, width, height, file))
    return problems
