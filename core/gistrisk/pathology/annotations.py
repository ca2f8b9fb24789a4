"""QuPath annotations for one slide: read (via qupath_bridge), map classes, check they fit the slide."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import shapely

from gistrisk.errors import InputError
from gistrisk.pathology.classes import CLASSES
from qupath_bridge.bounds import check_bounds
from qupath_bridge.classes import map_classes
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.geojson import read_annotations


@contextlib.contextmanager
def bridge_errors() -> Iterator[None]:
    """Turn qupath_bridge's input errors into gistrisk's InputError (same message, file and column),
    so the CLI prints them as one line and exits 2."""
    try:
        yield
    except QuPathInputError as e:
        raise InputError(e.message, file=e.file, column=e.column) from None


def load_slide_annotations(path: str | Path, width: int, height: int, *, classes: Sequence[str] = CLASSES,
                           aliases: dict[str, str] | None = None, repair: bool = True,
                           clip_to_slide: bool = False) -> list:
    """Annotations usable for tile labels: areas with a known class, inside the slide.

    Parameters
    ----------
    path : QuPath GeoJSON export (any version qupath_bridge reads).
    width, height : slide size at level 0 (px).
    aliases : extra {QuPath class name: class}, on top of the bridge's table
        (``qupath_bridge.classes.DEFAULT_ALIASES``).
    repair : close unclosed rings and fix self-intersections (each repair is warned about);
        False makes them errors.
    clip_to_slide : clip annotations that extend past the slide edge instead of raising.

    Raises
    ------
    InputError
        Naming the file: unreadable/empty GeoJSON, unknown classes (with the nearest known class),
        invalid polygons (without repair), an annotation entirely outside the slide, or one partly
        outside (unless ``clip_to_slide``), or no classified area at all.
    """
    file = str(path)
    with bridge_errors():
        try:
            anns = read_annotations(path, repair=repair)
        except QuPathInputError:
            raise
        except ValueError as e:  # geometry errors with repair=False
            raise InputError(str(e), file=file) from e
        anns = map_classes(anns, list(classes), aliases, file=file)
    problems = check_bounds(anns, width, height, file=file)
    fatal = any(p.fatal for p in problems)
    if fatal or (problems and not clip_to_slide):
        hint = "" if fatal else " (pass --clip-annotations to clip them to the slide)"
        raise InputError(f"{len(problems)} annotation(s) do not fit the {width}x{height}-px slide{hint}: "
                         + "; ".join(p.message for p in problems[:5]), file=file)
    frame = shapely.box(0, 0, width, height)
    usable, skipped = [], 0
    for a in anns:
        if not a.is_area or a.class_name is None:
            skipped += 1
            continue
        if problems:
            a.geometry = a.geometry.intersection(frame)
        usable.append(a)
    if skipped:
        warnings.warn(f"file {file}: {skipped} object(s) ignored for tile labels (points, lines or "
                      "unclassified)", stacklevel=2)
    if not usable:
        raise InputError(f"no classified area annotation among {len(anns)} object(s); tile labels need "
                         f"polygons classified as one of {list(classes)}", file=file)
    return usable
