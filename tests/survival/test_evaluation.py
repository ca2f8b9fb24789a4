import numpy as np
import pytest
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from gistrisk.survival.evaluation import bootstrap_ci, c_index_summary, calibration, harrell_c, km_logrank, td_auc
from gistrisk.survival.synthetic import make_tables


@pytest.fixture(scope="module")
def data():
    _, out, lp = make_tables(200, p={"x": 2}, seed=3)
    return out["time"].to_numpy(), out["event"].to_numpy(), lp.to_numpy()


def test_harrell_equals_lifelines(data):
    t, e, lp = data
    # lifelines' concordance takes a score where higher = longer survival
    assert harrell_c(t, e, lp) == pytest.approx(concordance_index(t, -lp, e), abs=1e-9)


def test_summary_has_ci_around_estimate_and_is_seeded(data):
    t, e, lp = data
    a = c_index_summary(t, e, lp, n_boot=200, seed=1)
    b = c_index_summary(t, e, lp, n_boot=200, seed=1)
    assert a == b
    lo, hi = a["c_index_ci"]
    assert lo < a["c_index"] < hi and hi - lo < 0.2
    assert a["n"] == 200 and a["events"] == int(e.sum())
    assert 0 < a["censored_fraction"] < 1
    assert a["uno_c_index_ci"][0] < a["uno_c_index"] < a["uno_c_index_ci"][1]


def test_bootstrap_ci_of_random_risk_covers_half(data):
    t, e, _ = data
    r = np.random.default_rng(0).normal(size=len(t))
    lo, hi = bootstrap_ci(lambda i: harrell_c(t[i], e[i], r[i]), len(t), n_boot=300, seed=0)
    assert lo < 0.5 < hi


def test_td_auc_drops_times_outside_follow_up(data):
    t, e, lp = data
    res = td_auc(t, e, lp, [12.0, 36.0, 10_000.0])
    assert res["dropped_times"] == [10_000.0]
    assert res["times"] == [12.0, 36.0]
    assert all(0.5 < a <= 1 for a in res["auc"])


def test_logrank_matches_lifelines(data):
    t, e, lp = data
    g = np.where(lp > np.median(lp), "high", "low")
    res = km_logrank(t, e, g)
    ref = logrank_test(t[g == "high"], t[g == "low"], e[g == "high"], e[g == "low"]).p_value
    assert res["logrank_p"] == pytest.approx(ref)
    assert set(res["curves"]) == {"high", "low"}
    assert res["curves"]["high"]["survival"][-1] < res["curves"]["low"]["survival"][-1]


def test_calibration_orders_groups(data):
    t, e, lp = data
    pred = np.exp(-0.02 * 36 * np.exp(lp))
    cal = calibration(pred, t, e, 36.0, n_groups=4)
    obs = [g["observed"] for g in cal["groups"]]
    assert obs == sorted(obs)  # higher predicted survival groups observe higher survival
