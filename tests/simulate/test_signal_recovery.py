"""Signal recovery (issue 6's criterion) on the table-level twin of the simulated cohort.

Six replicate cohorts of 300 development and 300 external patients: the simulator's patients,
clinical tables, hazard and outcomes, with the radiomics and slide feature tables emulated from
the latents (``gistrisk.simulate.feature_tables``; the image pipeline itself is run at this size by
``benchmarks/signal_recovery.py``). The real fit (selection in folds, out-of-fold fusion) and the
frozen-model validation are used throughout.

The criterion is checked on the mean over replicates: one external C-index of 300 patients has a
standard error near 0.03, so a single draw cannot order models 0.01-0.03 apart.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from gistrisk.simulate.feature_tables import simulate_tables
from gistrisk.survival.config import load_config
from gistrisk.survival.evaluation import harrell_c
from gistrisk.survival.train import fit_multimodal
from gistrisk.survival.validate import validate

pytestmark = pytest.mark.slow

MODS = ("clinical", "radiomics", "pathology")
REPLICATES = range(6)


def _study(seed: int, permute: bool) -> dict[str, float]:
    d = simulate_tables(300, 300, seed)
    dev, ext = d["development"], d["external"]
    y = dev["outcomes"].copy()
    if permute:
        perm = np.random.default_rng([seed, 1]).permutation(len(y))
        y[["time", "event"]] = y[["time", "event"]].to_numpy()[perm]
    # the defaults, with smaller forests and bootstraps (only point estimates are compared here)
    cfg = load_config(None, {"bootstrap": 20, "n_jobs": 1, "modality": {"rsf": {"n_estimators": 50, "cv_folds": 5}}})
    model = fit_multimodal({m: dev[m] for m in MODS}, y, cfg)
    metrics, _ = validate(model, {m: ext[m] for m in MODS}, ext["outcomes"], bootstrap=20)
    out = {m: metrics[m]["c_index"] for m in (*MODS, "fusion")}
    out["cv_fusion"] = model.cv_metrics_["fusion"]["c_index"]
    out["oracle"] = harrell_c(ext["outcomes"]["time"], ext["outcomes"]["event"], ext["truth"]["lp"])
    return out


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def test_late_fusion_beats_each_modality_externally_and_nears_the_oracle():
    res = pd.DataFrame([_study(s, permute=False) for s in REPLICATES])
    mean = res.mean()
    for m in MODS:
        assert mean["fusion"] > mean[m], f"external C: fusion {mean['fusion']:.3f} vs {m} {mean[m]:.3f}\n{res}"
    assert mean["oracle"] - mean["fusion"] < 0.05, f"\n{res}"
    # and every modality carries signal of its own
    assert (mean[list(MODS)] > 0.6).all(), f"\n{res}"


def test_permuted_outcomes_give_chance_level_c_index():
    res = pd.DataFrame([_study(s, permute=True) for s in REPLICATES])
    mean = res.mean()
    assert abs(mean["fusion"] - 0.5) < 0.05, f"\n{res}"
    assert abs(mean["cv_fusion"] - 0.5) < 0.05, f"\n{res}"
    assert res["cv_fusion"].between(0.4, 0.6).all(), f"\n{res}"
