"""Bad GeoJSON: repaired and reported, or a clear QuPathInputError naming the file and the feature."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from qupath_bridge.annotation import Annotation
from qupath_bridge.errors import QuPathInputError
from qupath_bridge.geojson import QuPathBridgeWarning, check_bounds, read_annotations


def _write(path: Path, features: list[dict] | dict) -> Path:
    doc = features if isinstance(features, dict) else {"type": "FeatureCollection", "features": features}
    path.write_text(json.dumps(doc))
    return path


def _feature(coords: list, fid: str = "11111111-2222-3333-4444-555555555555", name: str | None = None,
             cls: str = "Tumor", kind: str = "Polygon") -> dict:
    props: dict = {"objectType": "annotation", "classification": {"name": cls, "color": [200, 0, 0]}}
    if name:
        props["name"] = name
    return {"type": "Feature", "id": fid, "geometry": {"type": kind, "coordinates": coords}, "properties": props}


BOWTIE = [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]


def test_bowtie_is_repaired_with_a_warning_naming_file_and_feature(tmp_path: Path):
    path = _write(tmp_path / "bowtie.geojson", [_feature(BOWTIE, name="bow tie")])
    with pytest.warns(QuPathBridgeWarning) as rec:
        (ann,) = read_annotations(path)
    msg = str(rec[0].message)
    assert str(path) in msg and "11111111-2222-3333-4444-555555555555" in msg and "'bow tie'" in msg
    assert "Self-intersection" in msg and "make_valid" in msg
    # Both triangles of the bow tie survive: 2 x (100 x 50 / 2) = 5000 px^2, not 0 (the signed area).
    assert ann.geometry.is_valid and ann.is_area
    assert ann.geometry.geom_type == "MultiPolygon" and ann.geometry.area == pytest.approx(5000)
    assert ann.class_name == "Tumor" and ann.issues == [msg.split(": ", 1)[1]]


def test_bowtie_without_repair_raises(tmp_path: Path):
    path = _write(tmp_path / "bowtie.geojson", [_feature(BOWTIE)])
    with pytest.raises(QuPathInputError) as e:
        read_annotations(path, repair=False)
    assert str(path) in str(e.value) and "feature 0" in str(e.value) and "not a valid polygon" in str(e.value)


def test_unclosed_ring_is_closed_with_a_warning(tmp_path: Path):
    ring = [[[10, 10], [210, 10], [210, 110], [10, 110]]]  # last point != first
    path = _write(tmp_path / "open.geojson", [_feature(ring, name="open ring")])
    with pytest.warns(QuPathBridgeWarning, match=r"outer ring was not closed"):
        (ann,) = read_annotations(path)
    assert ann.geometry.area == pytest.approx(200 * 100)
    with pytest.raises(QuPathInputError, match="not closed"):
        read_annotations(path, repair=False)


def test_unclosed_hole_and_degenerate_hole(tmp_path: Path):
    rings = [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]],
             [[10, 10], [20, 10], [20, 20], [10, 20]],  # unclosed hole
             [[50, 50], [60, 60], [50, 50]]]  # encloses nothing
    path = _write(tmp_path / "holes.geojson", [_feature(rings)])
    with pytest.warns(QuPathBridgeWarning) as rec:
        (ann,) = read_annotations(path)
    text = " | ".join(str(w.message) for w in rec)
    assert "hole 1 was not closed" in text and "hole 2 has fewer than 3 distinct points" in text
    assert ann.geometry.area == pytest.approx(100 * 100 - 10 * 10)


def test_polygon_without_area_is_kept_as_a_line_not_dropped(tmp_path: Path):
    path = _write(tmp_path / "flat.geojson", [_feature([[[0, 0], [50, 0], [0, 0]]], name="sliver")])
    with pytest.warns(QuPathBridgeWarning, match="kept as a line"):
        (ann,) = read_annotations(path)
    assert not ann.is_area and ann.geometry.geom_type == "LineString"


def test_unreadable_features_are_all_listed(tmp_path: Path):
    feats = [_feature(BOWTIE, fid="a"), _feature([[["x", 1], [2, 3], [4, 5]]], fid="bad-1"),
             _feature([[[0, 0], [1, float("nan")], [2, 2], [0, 0]]], fid="bad-2"),
             {"type": "Feature", "properties": {}}]
    path = _write(tmp_path / "broken.geojson", feats)
    with pytest.raises(QuPathInputError) as e:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", QuPathBridgeWarning)
            read_annotations(path)
    msg = str(e.value)
    assert msg.startswith(f"file {path}: 3 of 4 features cannot be read")
    assert "id bad-1" in msg and "id bad-2" in msg and "NaN" in msg and "feature 3" in msg


def test_empty_feature_collection(tmp_path: Path):
    path = _write(tmp_path / "empty.geojson", [])
    with pytest.raises(QuPathInputError, match="contains no features") as e:
        read_annotations(path)
    assert e.value.file == str(path)
    with pytest.warns(QuPathBridgeWarning, match="no features"):
        assert read_annotations(path, allow_empty=True) == []


def test_garbage_files(tmp_path: Path, cmu_slide: Path, shared_data: Path):
    # a real binary file (the slide itself) given by mistake
    with pytest.raises(QuPathInputError, match="cannot be read as UTF-8|not valid JSON") as e:
        read_annotations(cmu_slide)
    assert str(cmu_slide) in str(e.value)
    # text that is not JSON
    txt = tmp_path / "notes.geojson"
    txt.write_text("Tumour region drawn on slide 3\n")
    with pytest.raises(QuPathInputError, match=r"not valid JSON \(line 1"):
        read_annotations(txt)
    # JSON that is not GeoJSON: a QuPath project file
    qpproj = shared_data / "qupath" / "projects" / "josenimo_Test_QuPath_Project_v0.4.1" / "project.qpproj"
    with pytest.raises(QuPathInputError, match="JSON but not GeoJSON") as e:
        read_annotations(qpproj)
    assert str(qpproj) in str(e.value)
    # a bare geometry
    with pytest.raises(QuPathInputError, match="bare GeoJSON Polygon"):
        read_annotations(_write(tmp_path / "geom.json", {"type": "Polygon", "coordinates": BOWTIE}))
    # no such file
    with pytest.raises(QuPathInputError, match="not found"):
        read_annotations(tmp_path / "missing.geojson")


def test_gzip_export_reads(tmp_path: Path, qp_fixture: Path):
    import gzip

    gz = tmp_path / "a.geojson.gz"
    gz.write_bytes(gzip.compress(qp_fixture.read_bytes()))
    assert [a.class_name for a in read_annotations(gz)] == [a.class_name for a in read_annotations(qp_fixture)]


def test_bounds_against_the_real_slide(cmu_slide: Path, qp_fixture: Path, shared_data: Path):
    openslide = pytest.importorskip("openslide")
    with openslide.OpenSlide(str(cmu_slide)) as slide:
        width, height = slide.dimensions
    assert (width, height) == (2220, 2967)
    anns = read_annotations(qp_fixture)
    assert check_bounds(anns, width, height, file=str(qp_fixture)) == []
    # An export from another (much larger) slide: every object lies outside this one.
    other = read_annotations(shared_data / "qupath" / "geojson" / "v0.4_coscia_03012023_JN.geojson")
    problems = [str(p) for p in check_bounds(other, width, height, file="JN.geojson")]
    assert len(problems) == len(other)
    assert all(p.startswith("file JN.geojson: object") for p in problems)
    assert all("entirely outside the slide" in p and "2220x2967" in p for p in problems)


def test_bounds_partly_outside_and_empty():
    from shapely.geometry import Point, Polygon

    inside = Annotation(Polygon([(0, 0), (100, 0), (100, 100), (0, 100)]))
    edge = Annotation(Polygon([(2200, 10), (2300, 10), (2300, 50), (2200, 50)]), class_name="Tumor", id="edge-1")
    negative = Annotation(Polygon([(-5, 10), (50, 10), (50, 50)]), name="neg")
    empty = Annotation(Point())
    problems = [str(p) for p in check_bounds([inside, edge, negative, empty], 2220, 2967)]
    assert len(problems) == 3
    assert "object 1 (id edge-1, class 'Tumor') extends outside" in problems[0] and "x 2200..2300" in problems[0]
    assert "object 2 (name 'neg') extends outside" in problems[1]
    assert "empty geometry" in problems[2]
    with pytest.raises(ValueError):
        check_bounds([inside], 0, 10)


def test_reader_does_not_modify_or_need_write_access(tmp_path: Path, qp_fixture: Path):
    ro = tmp_path / "ro.geojson"
    shutil.copy(qp_fixture, ro)
    ro.chmod(0o444)
    before = ro.read_bytes()
    read_annotations(ro)
    assert ro.read_bytes() == before
