"""One class-alias table, in the bridge: the names the old tables disagreed on map the same way."""

from __future__ import annotations

import pytest
from shapely.geometry import box

from qupath_bridge.annotation import Annotation
from qupath_bridge.classes import DEFAULT_ALIASES, map_classes, normalise_class

TISSUE = ["tumour", "stroma", "mucosa", "smooth muscle", "necrosis", "background"]
SPELLINGS = {"Muscularis": "smooth muscle", "muscularis propria": "smooth muscle", "Muscle": "smooth muscle",
             "SmoothMuscle": "smooth muscle", "smooth_muscle": "smooth muscle", "Tumor tissue": "tumour",
             "Tumour tissue": "tumour", "Tumor": "tumour", "necrotic": "necrosis", "BG": "background"}


@pytest.mark.parametrize("name,expected", SPELLINGS.items())
def test_bridge_maps_every_spelling(name, expected):
    [ann] = map_classes([Annotation(box(0, 0, 1, 1), class_name=name)], TISSUE)
    assert ann.class_name == expected


def test_alias_keys_are_normalised_and_point_at_tissue_classes():
    assert all(k == normalise_class(k) for k in DEFAULT_ALIASES)
    assert set(DEFAULT_ALIASES.values()) <= set(TISSUE)
