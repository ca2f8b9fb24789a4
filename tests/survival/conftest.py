"""Small fast settings and data for the survival-core tests."""

from __future__ import annotations

import pandas as pd
import pytest

from gistrisk.survival.config import FAST_CONFIG, fast_overrides, load_config


@pytest.fixture(scope="session")
def fast():
    """Config overrides that keep the pipeline small for tests (the shared configs/fit_fast.yaml)."""
    return fast_overrides()


@pytest.fixture
def fast_config():
    return load_config(FAST_CONFIG)


@pytest.fixture(scope="module")
def gbsg2():
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    X = X.astype({c: "object" for c in X.columns if str(X[c].dtype) == "category"})
    X.index = [f"G{i:04d}" for i in range(len(X))]
    X.index.name = "patient_id"
    out = pd.DataFrame({"time": y["time"] / 30.44, "event": y["cens"].astype(int)}, index=X.index)
    return X, out


@pytest.fixture(scope="session")
def gistrisk(gistrisk_cli):
    """``gistrisk(*args)``: the command line, run in this process (tests/conftest.py: run_gistrisk)."""
    def run(*args):
        r = gistrisk_cli(*args)
        assert "Traceback" not in r.stderr, r.stderr
        return r
    return run
