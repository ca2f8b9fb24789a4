"""Fixtures for the qupath_bridge tests."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def qp_fixture() -> Path:
    """Annotations for CMU-1-Small-Region.svs in QuPath 0.4+ exportObjectsToGeoJson form (see data/README.md)."""
    return HERE / "data" / "cmu1_small_region_annotations_qupath05.geojson"


@pytest.fixture(scope="session")
def cmu_slide(shared_data: Path) -> Path:
    """The real Aperio slide (2220 x 2967 px at level 0)."""
    path = shared_data / "wsi" / "CMU-1-Small-Region.svs"
    if not path.is_file():
        pytest.skip(f"real slide not found at {path}")
    return path
