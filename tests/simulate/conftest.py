"""A small simulated cohort, made once per test session (about 5 s on 2 cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

SEED = 7


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> dict[str, Path]:
    """Paths returned by simulate_cohort for 12 development and 4 external patients."""
    from gistrisk.simulate.study import simulate_cohort

    return simulate_cohort(tmp_path_factory.mktemp("sim") / "cohort", 12, 4, SEED)
