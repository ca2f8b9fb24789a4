"""Every real QuPath GeoJSON export in ../shared/data reads with the right objects, classes and shapes.

Expected numbers were counted from the raw JSON (not through the reader) and from the QuPath
projects' summary.json files where the export and the project belong together.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pytest

from qupath_bridge.geojson import QuPathBridgeWarning, read_annotations

# file: (n features, geometry types, class counts (None = unclassified), n with holes, n isEllipse, object types)
EXPECTED = {
    "v0.2_histoqc_geojson_example.json": (
        2, {"MultiPolygon": 2}, {"Tumor": 1, "Invborder": 1}, 1, 0, {"annotation": 2}),
    "v0.3_napari-geojson_qp_all_shapes.geojson": (
        7, {"Polygon": 3, "MultiPoint": 1, "Point": 1, "LineString": 2}, {None: 7}, 0, 0, {"annotation": 7}),
    "v0.4-0.5_coscia_MultiPolygon.geojson": (
        154, {"Polygon": 150, "Point": 3, "MultiPolygon": 1}, None, 0, 0, {"annotation": 154}),
    "v0.4.1_josenimo_Exemplar001_subset.geojson": (
        7, {"Polygon": 7}, {"Immune_Cluster": 3, "Epithelial_Cluster": 3, "Ignore_from_analysis": 1}, 0, 0,
        {"annotation": 7}),
    "v0.4_coscia_03012023_JN.geojson": (
        6, {"Point": 3, "Polygon": 3}, {None: 3, "Tumor": 3}, 0, 1, {"annotation": 6}),
    "v0.4_coscia_2022_12_14_CD163_1-100_ph6.geojson": (1, {"Polygon": 1}, {"Tumor": 1}, 0, 1, {"annotation": 1}),
    "v0.4_coscia_2023_02_02__CD163_CD31_CDH1.geojson": (
        56, {"Point": 3, "Polygon": 53}, {None: 3, "vessels": 4, "Macropages": 10, "Macrophages2": 13, "STB": 4,
                                          "STB_2": 6, "CTB": 7, "CTB2": 6, "CellColumn": 3}, 1, 26, {"annotation": 56}),
    "v0.4_coscia_objects.geojson": (2, {"Polygon": 2}, {"Tumor": 1, None: 1}, 0, 2, {"annotation": 2}),
    "v0.4plus_histoqc_holed_single_feature.geojson": (1, {"Polygon": 1}, {None: 1}, 1, 0, {"annotation": 1}),
    "v0.6_coscia_Single_cells_measurements.geojson": (
        131, {"Polygon": 128, "Point": 3}, {"single_cells_demo": 121, "circles": 4, "two_circles": 2, "class_1": 1,
                                            None: 3}, 0, 6, {"cell": 121, "annotation": 10}),
    "v0.6_coscia_TD_01_verysmall_mIF.geojson": (
        9, {"Polygon": 6, "Point": 3}, {"class_1": 3, "class_2": 3, None: 3}, 0, 0, {"annotation": 9}),
}


def _holes(geom) -> int:
    polys = [geom] if geom.geom_type == "Polygon" else list(getattr(geom, "geoms", []))
    return int(any(len(p.interiors) for p in polys if p.geom_type == "Polygon"))


def _read_clean(path: Path):
    """Read, failing the test if the reader warns: these are untouched QuPath exports."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuPathBridgeWarning)
        return read_annotations(path)


def test_every_real_export_is_covered(shared_data: Path):
    files = {p.name for p in (shared_data / "qupath" / "geojson").iterdir()}
    assert files == set(EXPECTED), "a new real export needs expectations here"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_export_reads(shared_data: Path, name: str):
    n, geoms, classes, holes, ellipses, types = EXPECTED[name]
    anns = _read_clean(shared_data / "qupath" / "geojson" / name)
    assert len(anns) == n
    assert Counter(a.geometry.geom_type for a in anns) == Counter(geoms)
    if classes is not None:
        assert Counter(a.class_name for a in anns) == Counter(classes)
    assert sum(_holes(a.geometry) for a in anns) == holes
    assert sum(a.is_ellipse for a in anns) == ellipses
    assert Counter(a.object_type for a in anns) == Counter(types)
    assert all(a.geometry.is_valid for a in anns)
    # Points and lines are kept but are not areas; every polygon is.
    assert sum(a.is_area for a in anns) == sum(v for k, v in geoms.items() if k in ("Polygon", "MultiPolygon"))


def test_v02_schema_class_colours_and_ids(shared_data: Path):
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.2_histoqc_geojson_example.json")
    by_class = {a.class_name: a for a in anns}
    # colorRGB -3670016 = 0xFFC80000 and -16711936 = 0xFF00FF00 (signed ARGB)
    assert by_class["Tumor"].color == (200, 0, 0)
    assert by_class["Invborder"].color == (0, 255, 0)
    # 0.2 put the Java class in "id": it is the object type, not an identifier
    assert all(a.id is None for a in anns)
    assert all(a.measurements == {} for a in anns)  # 0.2 wrote "measurements": []
    assert all(a.properties == {"isLocked": False} for a in anns)
    assert all(a.geometry.bounds[0] > 20000 for a in anns)  # full-resolution pixels, not downsampled


def test_v03_schema_object_type_and_no_areas_for_points(shared_data: Path):
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.3_napari-geojson_qp_all_shapes.geojson")
    assert all(a.id is None and a.class_name is None for a in anns)
    flagged = [a for a in anns if not a.is_area]
    assert sorted(a.geometry.geom_type for a in flagged) == ["LineString", "LineString", "MultiPoint", "Point"]
    rect = anns[0].geometry
    assert rect.bounds == (298.0, 320.0, 613.0, 609.0)
    assert rect.area == pytest.approx(315 * 289)


def test_v04_uuid_names_colours(shared_data: Path):
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.4-0.5_coscia_MultiPolygon.geojson")
    assert anns[0].id == "c1bb1604-39e8-49fe-8f09-aaed31bb6a79"
    assert anns[0].name == "Spreading_CC_13.30"
    assert anns[0].class_name == "C18" and anns[0].color == (161, 115, 81)
    assert all(a.name for a in anns)  # every one of the 154 features carries a name
    assert len({a.id for a in anns}) == 154
    classes = Counter(a.class_name for a in anns)
    assert len(classes) == 44 and classes["C18"] == 45 and classes[None] == 3  # 43 wells + unclassified
    assert [a.name for a in anns if a.geometry.geom_type == "Point"] == ["Calib1", "Calib2", "Calib3"]


def test_v04_object_colour_without_class(shared_data: Path):
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.4_coscia_objects.geojson")
    circle = next(a for a in anns if a.name == "nice circle")
    assert circle.class_name is None and circle.color == (0, 255, 0) and circle.is_ellipse


def test_holes_preserved(shared_data: Path):
    (ann,) = _read_clean(shared_data / "qupath" / "geojson" / "v0.4plus_histoqc_holed_single_feature.geojson")
    outer = (13369 - 10098) * (19491 - 16763)
    assert len(ann.geometry.interiors) == 1
    assert 0 < ann.geometry.area < outer  # the hole is subtracted
    assert ann.geometry.area == pytest.approx(outer - abs(_shoelace(ann.geometry.interiors[0].coords)))


def _shoelace(coords) -> float:
    xs, ys = zip(*coords)
    return 0.5 * sum(xs[i] * ys[i + 1] - xs[i + 1] * ys[i] for i in range(len(xs) - 1))


def test_v06_cell_measurement_maps(shared_data: Path):
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.6_coscia_Single_cells_measurements.geojson")
    cells = [a for a in anns if a.object_type == "cell"]
    assert len(cells) == 121 and all(c.measurements for c in cells)
    first = cells[0]
    assert first.measurements["Cell: Area"] == 113.0
    assert first.measurements["Cell: Perimeter"] == pytest.approx(47.37241661847109)
    assert all(isinstance(v, float) for c in cells for v in c.measurements.values())


def test_export_matches_its_project_summary(shared_data: Path):
    """The 0.6 export and the 0.6 project's summary.json describe the same image: counts must agree."""
    import json

    summary = json.loads((shared_data / "qupath" / "projects" / "coscia_demo_Qupath_project_v0.6.0" / "data" / "1"
                          / "summary.json").read_text())["hierarchy"]
    anns = _read_clean(shared_data / "qupath" / "geojson" / "v0.6_coscia_Single_cells_measurements.geojson")
    assert sum(a.object_type == "annotation" for a in anns) == summary["objectTypeCounts"]["Annotations"]
    assert sum(a.object_type == "cell" for a in anns) == summary["objectTypeCounts"]["Cells"]
    ann_classes = Counter(a.class_name or "Unclassified" for a in anns if a.object_type == "annotation")
    assert dict(ann_classes) == summary["annotationClassificationCounts"]


def test_fixture_in_qupath_export_form(qp_fixture: Path):
    anns = _read_clean(qp_fixture)
    assert [a.class_name for a in anns] == ["Tumor", "Stroma", "Necrosis", "Smooth_muscle", "Tumor: Positive", None]
    tumour = anns[0]
    assert tumour.name == "tumour core" and tumour.properties == {"isLocked": True}
    assert tumour.measurements == {"Area µm^2": 185432.5, "Perimeter µm": 2012.25}
    outer = [(300, 300), (1200, 250), (1350, 900), (900, 1300), (350, 1100), (300, 300)]
    assert tumour.geometry.area == pytest.approx(abs(_shoelace(outer)) - 200 * 200)
    assert anns[2].is_ellipse and not anns[0].is_ellipse
    assert anns[5].geometry.coords[0] == (100.5, 2900.25) and not anns[5].is_area


def test_bulk_fast_path_equals_careful_path(shared_data: Path):
    """simple_polygons (vectorised) must build exactly what geometry_from_geojson builds, or defer (None)."""
    from qupath_bridge.geojson import load_features
    from qupath_bridge.geometry import geometry_from_geojson, simple_polygons

    n_fast = 0
    for path in sorted((shared_data / "qupath" / "geojson").iterdir()):
        geoms = [f["geometry"] for f in load_features(path)]
        for g, fast in zip(geoms, simple_polygons(geoms)):
            if fast is None:
                continue
            n_fast += 1
            careful, issues = geometry_from_geojson(g)
            assert issues == [] and fast.equals_exact(careful, tolerance=0)
    assert n_fast > 300  # most real polygons take the fast path
    # what needs care is deferred: a bow tie, an open ring, a hole, a NaN, a point
    tricky = [{"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
              {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
              {"type": "Polygon", "coordinates": [[[0, 0], [9, 0], [9, 9], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 1]]]},
              {"type": "Polygon", "coordinates": [[[0, 0], [1, float("nan")], [1, 1], [0, 0]]]},
              {"type": "Point", "coordinates": [1, 2]},
              {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 0]]]}]
    assert [g is None for g in simple_polygons(tricky)] == [True, True, True, True, True, False]
