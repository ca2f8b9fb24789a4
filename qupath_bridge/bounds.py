"""Check annotations against the slide they were drawn on (a GeoJSON from another slide, or a downsample)."""

from __future__ import annotations

from typing import Sequence

from qupath_bridge.annotation import Annotation


def check_bounds(annotations: Sequence[Annotation], width: int, height: int, *,
                 file: str | None = None) -> list[str]:
    """List every annotation that is empty or not inside the slide's full-resolution pixel frame.

    Parameters
    ----------
    annotations : sequence of Annotation
    width, height : int
        Slide size at level 0 in pixels; the frame is [0, width] x [0, height], origin top-left.
    file : str, optional
        Named at the start of each message.

    Returns
    -------
    list of str
        One sentence per problem (empty when all fit). Nothing is raised or dropped: the caller decides.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"slide size must be positive, got {width}x{height}")
    prefix = f"file {file}: " if file else ""
    problems = []
    for i, ann in enumerate(annotations):
        who = f"object {i} ({ann.label()})"
        g = ann.geometry
        if g.is_empty:
            problems.append(f"{prefix}{who} has an empty geometry")
            continue
        x0, y0, x1, y1 = g.bounds
        frame = f"bounds x {x0:g}..{x1:g}, y {y0:g}..{y1:g} px; slide is {width}x{height} px"
        if x1 < 0 or y1 < 0 or x0 > width or y0 > height:
            problems.append(f"{prefix}{who} lies entirely outside the slide ({frame}): "
                            "drawn on another image or at another resolution?")
        elif x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            problems.append(f"{prefix}{who} extends outside the slide ({frame})")
    return problems
