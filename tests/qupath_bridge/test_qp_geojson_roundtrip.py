"""Write -> read keeps geometry, classes and everything QuPath wrote, in each QuPath schema."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from shapely.geometry import Polygon

from qupath_bridge.annotation import Annotation
from qupath_bridge.geojson import load_features, read_annotations, write_annotations

SCHEMA = {"v0.2": "0.2", "v0.3": "0.3"}


def _real(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "qupath" / "geojson").iterdir())


def test_real_exports_rewrite_identically(shared_data: Path, tmp_path: Path):
    """Reading a real export and writing it back in its own schema gives the same features, member for member."""
    for src in _real(shared_data):
        version = SCHEMA.get(src.name[:4], "0.4")
        out = tmp_path / src.name
        write_annotations(out, read_annotations(src), qupath_version=version)
        original, rewritten = load_features(src), load_features(out)
        assert len(rewritten) == len(original), src.name
        for i, (a, b) in enumerate(zip(original, rewritten)):
            assert a == b, f"{src.name} feature {i} differs"
        layout = json.loads(out.read_text())
        assert isinstance(layout, list) if version == "0.2" else layout["type"] == "FeatureCollection"


def test_roundtrip_keeps_area_classes_and_holes_across_schemas(shared_data: Path, tmp_path: Path):
    src = shared_data / "qupath" / "geojson" / "v0.4_coscia_2023_02_02__CD163_CD31_CDH1.geojson"
    anns = read_annotations(src)
    for version in ("0.2", "0.3", "0.4", "0.5.1", "0.6.0"):
        out = tmp_path / f"v{version}.geojson"
        write_annotations(out, anns, qupath_version=version)
        back = read_annotations(out)
        assert [a.class_name for a in back] == [a.class_name for a in anns]
        assert [a.color for a in back] == [a.color for a in anns]
        for a, b in zip(anns, back):
            assert b.geometry.area == pytest.approx(a.geometry.area, rel=1e-12)
            assert b.geometry.equals(a.geometry)
        if version.startswith("0.2") or version.startswith("0.3"):
            assert all(b.id is None for b in back)  # older schemas had no UUIDs
        else:
            assert [b.id for b in back] == [a.id for a in anns]
            assert sum(b.is_ellipse for b in back) == 26


def test_derived_class_written_as_names_and_read_back(qp_fixture: Path, tmp_path: Path):
    anns = read_annotations(qp_fixture)
    out = tmp_path / "derived.geojson"
    write_annotations(out, anns)
    feat = load_features(out)[4]
    assert feat["properties"]["classification"] == {"names": ["Tumor", "Positive"], "color": [200, 50, 50]}
    assert read_annotations(out)[4].class_name == "Tumor: Positive"
    # The fixture itself round-trips member for member.
    assert load_features(out) == load_features(qp_fixture)


def test_new_annotations_nan_measurement_and_provenance(tmp_path: Path):
    square = Annotation(geometry=Polygon([(0, 0), (224, 0), (224, 224), (0, 224)]), class_name="tumour",
                        color=(200, 0, 0), measurements={"score": 0.25, "missing": math.nan})
    out = tmp_path / "new.geojson"
    write_annotations(out, [square], provenance={"parameters": {"seed": 7}})
    doc = json.loads(out.read_text())
    assert doc["gistrisk"] == {"parameters": {"seed": 7}}
    (back,) = read_annotations(out)
    assert back.class_name == "tumour" and back.geometry.area == 224 * 224
    assert back.measurements["score"] == 0.25 and math.isnan(back.measurements["missing"])
    assert back.id is None and back.object_type == "annotation"


def test_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path, qp_fixture: Path):
    anns = read_annotations(qp_fixture)
    out = tmp_path / "sub" / "a.geojson"
    write_annotations(out, anns)
    write_annotations(out, anns[:2])  # overwrite
    assert len(read_annotations(out)) == 2
    assert [p.name for p in out.parent.iterdir()] == ["a.geojson"]


def test_bad_version_string(tmp_path: Path, qp_fixture: Path):
    with pytest.raises(ValueError, match="not a QuPath version"):
        write_annotations(tmp_path / "x.geojson", read_annotations(qp_fixture), qupath_version="latest")
