"""Real CT inputs for the radiomics tests (from ../shared/data); lung2 and its crops: tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def ct_dir(shared_data: Path) -> Path:
    return shared_data / "ct"


@pytest.fixture(scope="session")
def pat2_dir(ct_dir: Path) -> Path:
    return ct_dir / "dicom_ct_rtstruct_pat2"
