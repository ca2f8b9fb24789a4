"""check_bounds returns records (kind, index, bounds) that callers use without parsing sentences."""

from __future__ import annotations

import pytest
from shapely.geometry import Point, box

from qupath_bridge.annotation import Annotation
from qupath_bridge.bounds import EMPTY, OUTSIDE, PARTLY_OUTSIDE, BoundsProblem, check_bounds


def test_problems_are_records():
    anns = [Annotation(box(0, 0, 100, 100)),
            Annotation(box(2200, 10, 2300, 50), class_name="Tumor", id="edge-1"),
            Annotation(box(5000, 5000, 5100, 5100), name="far"),
            Annotation(Point())]
    problems = check_bounds(anns, 2220, 2967, file="a.geojson")
    assert all(isinstance(p, BoundsProblem) for p in problems)
    assert [(p.index, p.kind) for p in problems] == [(1, PARTLY_OUTSIDE), (2, OUTSIDE), (3, EMPTY)]
    edge, far, empty = problems
    assert edge.bounds == (2200, 10, 2300, 50) and edge.label == "id edge-1, class 'Tumor'"
    assert (edge.width, edge.height, edge.file) == (2220, 2967, "a.geojson")
    assert empty.bounds is None
    assert [p.fatal for p in problems] == [False, True, True]
    # the sentence is for people; the file prefix is in str() only
    assert far.message.startswith("object 2 (name 'far') lies entirely outside the slide")
    assert str(far) == f"file a.geojson: {far.message}"
    assert str(check_bounds(anns[3:], 10, 10)[0]) == "object 0 (unnamed annotation) has an empty geometry"


def test_bad_slide_size_is_a_programming_error():
    with pytest.raises(ValueError):
        check_bounds([], 0, 10)
