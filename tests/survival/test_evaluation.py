import numpy as np
import pytest
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index

from gistrisk.survival.evaluation import (
    _safe_horizon,
    bootstrap_c,
    c_index_summary,
    calibration,
    harrell_c,
    km_logrank,
    percentile_ci,
    resamples,
    td_auc,
    uno_weights,
    weighted_c,
)
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
    lo, hi = c_index_summary(t, e, r, n_boot=300, seed=0)["c_index_ci"]
    assert lo < 0.5 < hi


@pytest.mark.parametrize("seed", range(8))
def test_bootstrap_c_is_the_statistic_of_each_resample_bit_for_bit(seed):
    """The matrix-product bootstrap against harrell_c / weighted_c run on every resampled set of rows: small
    cohorts with tied times and risks, a NaN risk, an infinite time, undefined weights, resamples without an
    event or a pair."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 60))
    time = np.round(rng.exponential(30, n), seed % 2)
    event = rng.random(n) < (0.15 if seed == 3 else 0.5)
    risk = np.round(rng.normal(size=n), 1)
    if seed in (1, 5):
        risk[0] = np.nan
    if seed in (2, 5):
        time[1] = np.inf
    weights = uno_weights(time, event, time, event, _safe_horizon(time, event, time) if seed != 4 else 10.0)
    if seed == 6:  # undefined weights: of an event with pairs, and of the last event (no pair)
        events = np.flatnonzero(event)
        weights[events[0]] = weights[events[np.argmax(time[events])]] = np.nan
    draws = resamples(n, 80, seed)
    harrell = [harrell_c(time[i], event[i], risk[i]) for i in draws]
    uno = [weighted_c(time[i], event[i], risk[i], weights[i]) for i in draws]
    np.testing.assert_array_equal(bootstrap_c(time, event, risk, draws), harrell)
    np.testing.assert_array_equal(bootstrap_c(time, event, risk, draws, weights=weights), uno)
    assert np.isfinite(harrell).any()


def test_summary_intervals_are_percentiles_of_the_resampled_statistics(data):
    t, e, lp = data
    s = c_index_summary(t, e, lp, n_boot=300, seed=2)
    resampled = [harrell_c(t[i], e[i], lp[i]) for i in resamples(len(t), 300, seed=2)]
    assert s["c_index_ci"] == list(percentile_ci(np.array(resampled)))


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
