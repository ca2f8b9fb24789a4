"""Shared fixtures: the real data in ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("GISTRISK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real test data; tests needing it skip with a reason when it is absent."""
    root = _shared_data()
    if not root.is_dir():
        pytest.skip(f"real data folder not found at {root} (set GISTRISK_SHARED_DATA)")
    return root
