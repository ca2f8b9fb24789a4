"""Bidirectional stepwise Cox by AIC: after a removal, an addition must beat the model now held."""

import numpy as np
import pandas as pd

from gistrisk.survival.config import StepwiseConfig
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.selection import StepwiseCoxSelector


def _redundant_first_feature(seed=3, n=200, k=6):
    """x1 ~ x2 + x3 enters first (strongest alone) and is redundant once x2 and x3 are in; k noise columns."""
    rng = np.random.default_rng(seed)
    x2, x3 = rng.normal(size=n), rng.normal(size=n)
    x1 = (x2 + x3) / np.sqrt(2) + 0.35 * rng.normal(size=n)
    noise = rng.normal(size=(n, k))
    t = rng.exponential(np.exp(-0.8 * (x2 + x3)))
    c = rng.exponential(2.0, size=n)
    X = pd.DataFrame(np.c_[x1, x2, x3, noise], columns=["x1", "x2", "x3"] + [f"n{j}" for j in range(k)])
    return X, np.minimum(t, c), (t <= c).astype(int)


def test_both_directions_every_step_lowers_aic():
    X, t, e = _redundant_first_feature()
    s = StepwiseCoxSelector(StepwiseConfig(direction="both", criterion="aic", max_features=6)).fit(X, t, e)
    steps = [(h["step"], h["feature"]) for h in s.details_["history"]]
    assert ("remove", "x1") in steps  # the construction: x1 enters, then leaves
    held, aics = [], [fit_cox(np.zeros((len(t), 0)), t, e).aic()]
    for step, feature in steps:
        held = held + [feature] if step == "add" else [f for f in held if f != feature]
        aics.append(fit_cox(X[held].to_numpy(), t, e).aic())
    assert set(held) == set(s.selected_)
    assert all(b < a for a, b in zip(aics, aics[1:])), np.round(aics, 2)
    assert aics[-1] <= min(aics)
    assert {"x2", "x3"} <= set(s.selected_) and "x1" not in s.selected_
