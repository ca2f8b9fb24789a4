"""QuPath projects 0.3.2 to 0.6.0 parse without QuPath; paquo-based reading skips without a QuPath install."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from qupath_bridge.errors import QuPathInputError, QuPathUnavailableError
from qupath_bridge.geojson import read_annotations
from qupath_bridge.project import locate_image, read_project, read_project_annotations, uri_to_path

PROJECTS = Path("qupath") / "projects"


def test_v060_project(shared_data: Path):
    p = read_project(shared_data / PROJECTS / "coscia_demo_Qupath_project_v0.6.0")
    assert p.version == "0.6.0" and len(p.images) == 1
    (im,) = p.images
    assert (im.entry_id, im.name) == (1, "TD_01_verysmall_mIF.ome.tif")
    assert im.uri == "file:/Volumes/RD_Coscia/Jose/__TestDatasets/TD_01_verysmall_mIF.ome.tif"
    assert im.server_path == "/Volumes/RD_Coscia/Jose/__TestDatasets/TD_01_verysmall_mIF.ome.tif"
    assert im.builder_types == ("uri",) and im.provider.endswith("BioFormatsServerBuilder")
    assert im.args == ["--series", "0"]
    assert (im.width, im.height) == (1000, 1000) and im.mpp == pytest.approx(0.34571008852182383)
    assert im.has_data and im.object_counts() == {"Annotations": 10, "Cells": 121}
    assert im.tags == [] and im.randomized_name == "bf4022d3-e6b5-4a51-b28e-60ad20eaa681"
    assert p.classes[0] == ("single_cells_demo", (255, 0, 255))  # packed -65281


def test_v041_project_matches_its_geojson_export(shared_data: Path):
    p = read_project(shared_data / PROJECTS / "josenimo_Test_QuPath_Project_v0.4.1" / "project.qpproj")
    assert p.version == "0.4.1"
    (im,) = p.images
    # percent-escapes decoded, Windows drive letter kept
    assert im.server_path == ("C:/Users/jnimoca/Jose_BI/Projects---Repositories/9_Qupath_to_AnnData/"
                              "QuPath_Annotation_to_AnnData/Test Data (MCMICRO Exemplar 001)/registration/"
                              "Exemplar001_subset.tif")
    assert (im.width, im.height) == (1833, 957) and im.mpp == pytest.approx(0.65, rel=1e-5)
    # the project's class colours (signed packed ints) equal the colours in the image's GeoJSON export
    anns = read_annotations(shared_data / "qupath" / "geojson" / "v0.4.1_josenimo_Exemplar001_subset.geojson")
    project_colours = dict(p.classes)
    assert {a.class_name: a.color for a in anns} == {k: project_colours[k] for k in {a.class_name for a in anns}}
    assert im.object_counts() == {"Annotations": len(anns)}
    summary = im.summary["hierarchy"]["annotationClassificationCounts"]
    assert summary == {c: sum(a.class_name == c for a in anns) for c in summary}


def test_v050_paquo_project_with_pyramidize_and_orphan_data(shared_data: Path):
    root = shared_data / PROJECTS / "uwloci_qppaquo_v0.5.0-rc2"
    p = read_project(root)
    assert p.version == "0.5.0-rc2"
    assert [im.name for im in p.images] == ["OS-2.ndpi", "OS-3.ndpi", "Copy of 88_region_2_original.tif"]
    os2, _, pyr = p.images
    assert os2.builder_types == ("uri",) and os2.provider.endswith("OpenslideServerBuilder")
    assert os2.width is None and os2.mpp is None and not os2.has_data  # plain URI entry, no metadata, no data
    assert pyr.builder_types == ("pyramidize", "uri") and pyr.provider.endswith("ImageJServerBuilder")
    assert pyr.server_path == ("D:/QuPath_projects/PDAC_CP annotation validation/image_export/"
                               "Copy of 88_region_2_original.tif")
    # the pyramidized server's own levels (3), not the wrapped single-level image's
    assert [lv["downsample"] for lv in pyr.levels] == [1.0, 4.0, 16.0]
    assert pyr.has_data and pyr.object_counts() == {}
    assert [d.name for d in p.orphan_data_dirs] == ["5"]  # data for an entry no longer in the project
    assert ("Tumor", (0, 255, 255)) in p.classes


def test_v032_bare_qpproj_434_entries(shared_data: Path):
    p = read_project(shared_data / PROJECTS / "nedaghohabi_v0.3.2_project.qpproj")
    assert p.version == "0.3.2" and len(p.images) == 434
    assert len({im.entry_id for im in p.images}) == 434
    assert all(im.builder_types == ("uri",) and im.name.endswith(".svs") for im in p.images)
    assert all(im.server_path.startswith("I:/COAD-TCGA-Diagnostic-Slide/") for im in p.images)
    assert all(im.data_dir is None and not im.has_data for im in p.images)
    first = p.images[0]
    assert (first.width, first.height, first.mpp) == (176501, 85037, 0.252)
    assert p.image("TCGA-D5-5539-01Z-00-DX1.9c46fe78-2adb-4f49-9141-cda135c2c90b") is first  # by stem
    with pytest.raises(QuPathInputError, match="no image named 'nope.svs'"):
        p.image("nope.svs")


@pytest.mark.parametrize("uri, path", [
    ("file:/C:/a%20b/c.svs", "C:/a b/c.svs"),
    ("file:///D:/x/y.tif", "D:/x/y.tif"),
    ("file:/Volumes/s/t.ndpi", "/Volumes/s/t.ndpi"),
    ("file://server/share/u.svs", "//server/share/u.svs"),
    ("https://example.org/img.tif", None),
    (None, None),
])
def test_uri_to_path(uri, path):
    assert uri_to_path(uri) == path


def test_locate_moved_slide(tmp_path: Path, shared_data: Path, cmu_slide: Path):
    """A project made on another machine: find its slide by file name in local folders."""
    doc = json.loads((shared_data / PROJECTS / "nedaghohabi_v0.3.2_project.qpproj").read_text())
    doc["images"] = doc["images"][:1]
    doc["images"][0]["serverBuilder"]["uri"] = "file:/I:/slides/CMU-1-Small-Region.svs"
    qp = tmp_path / "project.qpproj"
    qp.write_text(json.dumps(doc))
    (im,) = read_project(tmp_path).images
    assert locate_image(im) is None
    assert locate_image(im, [tmp_path, cmu_slide.parent]) == cmu_slide


def test_bad_project_files(tmp_path: Path, qp_fixture: Path):
    with pytest.raises(QuPathInputError, match="project file not found"):
        read_project(tmp_path)
    with pytest.raises(QuPathInputError, match="no 'images' list") as e:
        read_project(qp_fixture)  # a GeoJSON given as a project
    assert str(qp_fixture) in str(e.value)
    bad = tmp_path / "project.qpproj"
    bad.write_text("{not json")
    with pytest.raises(QuPathInputError, match="not valid JSON"):
        read_project(bad)
    bad.write_text(json.dumps({"version": "0.5.1", "images": [{"entryID": 3, "imageName": "x.svs"}]}))
    with pytest.raises(QuPathInputError, match=r"image entry 3 \('x.svs'\) has no serverBuilder"):
        read_project(bad)


@pytest.mark.skipif(importlib.util.find_spec("paquo") is not None, reason="paquo is installed here")
def test_without_paquo_the_error_says_what_to_install(shared_data: Path):
    with pytest.raises(QuPathUnavailableError,
                       match=r"needs paquo and a QuPath install.*export_annotations_geojson.groovy"):
        read_project_annotations(shared_data / PROJECTS / "josenimo_Test_QuPath_Project_v0.4.1")


@pytest.mark.qupath
def test_paquo_reads_the_same_objects_as_the_geojson_export(shared_data: Path):
    pytest.importorskip("paquo", reason="paquo not installed (optional extra 'qupath'); no QuPath on this machine")
    from qupath_bridge.project import paquo_available

    if not paquo_available():
        pytest.skip("paquo is installed but finds no QuPath install (set PAQUO_QUPATH_DIR)")
    by_image = read_project_annotations(shared_data / PROJECTS / "josenimo_Test_QuPath_Project_v0.4.1")
    exported = read_annotations(shared_data / "qupath" / "geojson" / "v0.4.1_josenimo_Exemplar001_subset.geojson")
    anns = by_image["Exemplar001_subset.tif"]
    assert sorted(a.id for a in anns) == sorted(a.id for a in exported)
    key = {a.id: a for a in exported}
    for a in anns:
        assert a.class_name == key[a.id].class_name
        assert a.geometry.symmetric_difference(key[a.id].geometry).area < 1e-6 * max(a.geometry.area, 1)
