"""Small fast settings and data for the survival-core tests."""

from __future__ import annotations

import pandas as pd
import pytest

from gistrisk.survival.config import load_config

FAST = {"bootstrap": 100, "modality": {"rsf": {"n_estimators": 30, "cv_folds": 3, "n_repeats": 1},
                                       "lasso": {"cv_folds": 3, "n_alphas": 20}},
        "fusion": {"oof_folds": 3}}


@pytest.fixture(scope="session")
def fast():
    """Config overrides that keep the pipeline small for tests."""
    return FAST


@pytest.fixture
def fast_config():
    return load_config(overrides=FAST)


@pytest.fixture(scope="module")
def gbsg2():
    from sksurv.datasets import load_gbsg2

    X, y = load_gbsg2()
    X = X.astype({c: "object" for c in X.columns if str(X[c].dtype) == "category"})
    X.index = [f"G{i:04d}" for i in range(len(X))]
    X.index.name = "patient_id"
    out = pd.DataFrame({"time": y["time"] / 30.44, "event": y["cens"].astype(int)}, index=X.index)
    return X, out
