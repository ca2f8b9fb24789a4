"""map_classes: QuPath class names as typed by pathologists -> the model's tissue classes."""

from __future__ import annotations

from pathlib import Path

import pytest

from qupath_bridge.errors import QuPathInputError
from qupath_bridge.geojson import QuPathBridgeWarning, map_classes, read_annotations

TISSUE = ["tumour", "stroma", "mucosa", "smooth muscle", "necrosis", "background"]


def test_case_spelling_underscores_and_derived_classes(qp_fixture: Path):
    anns = read_annotations(qp_fixture)
    mapped = map_classes(anns, TISSUE, file=str(qp_fixture))
    # Tumor -> tumour (spelling), Smooth_muscle -> smooth muscle, "Tumor: Positive" -> base class tumour
    assert [a.class_name for a in mapped] == ["tumour", "stroma", "necrosis", "smooth muscle", "tumour", None]
    assert any("derived class 'Tumor: Positive'" in i for i in mapped[4].issues)
    # inputs untouched, geometry shared
    assert [a.class_name for a in anns][:2] == ["Tumor", "Stroma"]
    assert mapped[0].geometry is anns[0].geometry


def test_known_classes_keep_their_spelling(qp_fixture: Path):
    mapped = map_classes(read_annotations(qp_fixture), ["Tumor", "Stroma", "Necrosis", "Smooth Muscle"])
    assert [a.class_name for a in mapped][:4] == ["Tumor", "Stroma", "Necrosis", "Smooth Muscle"]


def test_unknown_class_names_file_class_count_and_hint(shared_data: Path):
    path = shared_data / "qupath" / "geojson" / "v0.4_coscia_2023_02_02__CD163_CD31_CDH1.geojson"
    anns = read_annotations(path)
    known = ["vessels", "Macrophages", "Macrophages2", "STB", "STB_2", "CTB", "CTB2", "CellColumn"]
    with pytest.raises(QuPathInputError) as e:
        map_classes(anns, known, file=str(path))
    msg = str(e.value)
    # the real file has a misspelt class: "Macropages" (10 objects)
    assert msg.startswith(f"file {path}: unknown class 'Macropages' (10 objects; did you mean 'Macrophages'?)")
    assert e.value.file == str(path)
    # an alias fixes it
    fixed = map_classes(anns, known, {"Macropages": "Macrophages"}, file=str(path))
    assert sum(a.class_name == "Macrophages" for a in fixed) == 10


def test_non_strict_leaves_unknown_unclassified_with_warning(shared_data: Path):
    path = shared_data / "qupath" / "geojson" / "v0.4.1_josenimo_Exemplar001_subset.geojson"
    anns = read_annotations(path)
    with pytest.warns(QuPathBridgeWarning, match=r"unknown classes 'Epithelial_Cluster' \(3 objects"):
        mapped = map_classes(anns, ["immune cluster"], file=str(path), strict=False)
    assert [a.class_name for a in mapped].count("immune cluster") == 3
    assert [a.class_name for a in mapped].count(None) == 4
    assert all("left unclassified" in a.issues[-1] for a in mapped if a.class_name is None)


def test_default_aliases_only_when_target_known(qp_fixture: Path):
    from dataclasses import replace

    ann = read_annotations(qp_fixture)[0]
    bg, muscle = replace(ann, class_name="BG"), replace(ann, class_name="Muscularis propria")
    assert [a.class_name for a in map_classes([bg, muscle], TISSUE)] == ["background", "smooth muscle"]
    with pytest.raises(QuPathInputError, match="unknown classes 'BG'"):
        map_classes([bg, muscle], ["tumour"])


def test_alias_to_an_unknown_class_is_a_programming_error(qp_fixture: Path):
    with pytest.raises(ValueError, match="not one of the known classes"):
        map_classes(read_annotations(qp_fixture), TISSUE, {"Tumor": "neoplasm"})
