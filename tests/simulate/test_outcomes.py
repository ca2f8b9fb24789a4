"""The known Cox model: censoring on target, a strong oracle, a recoverable coefficient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gistrisk.simulate.config import Censoring, SimulationConfig
from gistrisk.simulate.outcomes import calibrate_scale, draw_outcomes, harrell_c, linear_predictor
from gistrisk.simulate.patients import draw_patients


def _population(n: int, seed: int, cens: Censoring | None = None):
    cfg = SimulationConfig() if cens is None else SimulationConfig(censoring=cens)
    rng = np.random.default_rng(seed)
    pts = draw_patients(rng, n, "P", cfg, all_modalities=True)
    lp = linear_predictor(pts, cfg.hazard)
    scale = calibrate_scale(lp["lp"].to_numpy(), cfg.hazard.weibull_shape, cfg.censoring)
    out = draw_outcomes(rng, pts["patient_id"], lp["lp"].to_numpy(), scale, cfg.hazard.weibull_shape,
                        cfg.censoring)
    return pts, lp, out


def test_oracle_c_index_matches_lifelines():
    from lifelines.utils import concordance_index

    rng = np.random.default_rng(0)
    t = np.round(rng.exponential(10, 300), 0)  # rounded: ties in time
    e = (rng.random(300) < 0.6).astype(int)
    risk = np.round(rng.standard_normal(300), 1)  # ties in risk
    assert harrell_c(t, e, risk) == pytest.approx(concordance_index(t, -risk, e), abs=1e-9)


@pytest.mark.parametrize("target", [0.5, 0.75])
def test_censoring_fraction_hits_the_configured_target(target):
    _, _, out = _population(1500, 1, Censoring(target=target))
    assert abs((1 - out["event"].mean()) - target) < 0.05
    assert out["time"].min() > 0 and out["time"].max() <= Censoring().followup_months[1]


def test_oracle_is_strong_and_cox_recovers_the_true_linear_predictor():
    from lifelines import CoxPHFitter

    _, lp, out = _population(800, 2)
    oracle = harrell_c(out["time"], out["event"], lp["lp"])
    assert oracle > 0.75
    # each single view of the hazard is weaker than the whole (so fusion has something to gain)
    for part in ("lp_pathology", "lp_radiomics"):
        assert harrell_c(out["time"], out["event"], lp[part]) < oracle - 0.05
    df = pd.DataFrame({"time": out["time"], "event": out["event"], "lp": lp["lp"]})
    coef = CoxPHFitter().fit(df, "time", "event").params_["lp"]
    assert coef == pytest.approx(1.0, abs=0.15)


def test_permuted_risk_gives_chance_concordance():
    _, lp, out = _population(800, 3)
    perm = np.random.default_rng(0).permutation(lp["lp"].to_numpy())
    assert abs(harrell_c(out["time"], out["event"], perm) - 0.5) < 0.05
