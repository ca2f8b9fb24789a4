"""Signal recovery (issue 6's criterion) on the table-level twin of the simulated cohort.

Six replicate cohorts of 300 development and 300 external patients: the simulator's patients,
clinical tables, hazard and outcomes, with the radiomics and slide feature tables emulated from
the latents (``gistrisk.simulate.feature_tables``; the image pipeline itself is run at this size by
``benchmarks/signal_recovery.py``). The real fit (selection in folds, out-of-fold fusion) and the
frozen-model validation are used throughout.

The criterion is checked on the mean over replicates: one external C-index of 300 patients has a
standard error near 0.03, so a single draw cannot order models 0.01-0.03 apart. That study takes
several minutes, so it runs in ``make test-full`` (marker ``full``) and ``make bench``; ``make test``
runs one smaller replicate of each as a smoke test of the same code path.
"""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from gistrisk.simulate.recovery import FORCE_SELECTION, criterion, twin_replicate
from gistrisk.simulate.recovery import MODALITIES as MODS
from gistrisk.survival.config import load_config

pytestmark = pytest.mark.slow

REPLICATES = range(6)


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def test_one_replicate_recovers_signal_and_permuted_outcomes_do_not():
    """Smoke test of the whole fit -> frozen validate path on one 150 + 150 twin (make test)."""
    res = twin_replicate(0, n_dev=150, n_ext=150)
    assert res["fusion"] > 0.7 and res["oracle"] - res["fusion"] < 0.1, res
    assert max(res[m] for m in MODS) > 0.65, res
    perm = twin_replicate(0, n_dev=150, n_ext=150, permute=True, config=load_config(None, FORCE_SELECTION))
    assert abs(perm["fusion"] - 0.5) < 0.12 and abs(perm["cv_fusion"] - 0.5) < 0.12, perm


@pytest.mark.full
def test_late_fusion_beats_each_modality_externally_and_nears_the_oracle():
    res = pd.DataFrame([twin_replicate(s) for s in REPLICATES])
    mean = res.mean()
    for m in MODS:
        assert mean["fusion"] > mean[m], f"external C: fusion {mean['fusion']:.3f} vs {m} {mean[m]:.3f}\n{res}"
    assert mean["oracle"] - mean["fusion"] < 0.05, f"\n{res}"
    assert criterion(res)["met"]
    # and every modality carries signal of its own
    assert (mean[list(MODS)] > 0.6).all(), f"\n{res}"


@pytest.mark.full
def test_permuted_outcomes_give_chance_level_c_index():
    res = pd.DataFrame([twin_replicate(s, permute=True, config=load_config(None, FORCE_SELECTION))
                        for s in REPLICATES])
    mean = res.mean()
    assert abs(mean["fusion"] - 0.5) < 0.05, f"\n{res}"
    assert abs(mean["cv_fusion"] - 0.5) < 0.05, f"\n{res}"
    assert res["cv_fusion"].between(0.4, 0.6).all(), f"\n{res}"
