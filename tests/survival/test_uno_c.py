"""Uno's C equals scikit-survival's concordance_index_ipcw bit for bit (ties, tau, bootstrap resamples and
the cases where it is undefined included), with the censoring weights computed once per bootstrap."""

import numpy as np
import pytest
from sksurv.metrics import concordance_index_ipcw

from gistrisk.survival.evaluation import _safe_horizon, as_surv, c_index_summary, uno_c, uno_weights, weighted_c


def _reference(tt, te, time, event, risk, tau) -> float:
    try:
        return float(concordance_index_ipcw(as_surv(tt, te), as_surv(time, event), risk, tau=tau)[0])
    except (ValueError, ZeroDivisionError):
        return float("nan")


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def _cohort(rng, n):
    time = rng.integers(1, max(2, n // 3), n).astype(float)  # many tied times
    event = rng.uniform(size=n) < rng.uniform(0.2, 0.9)
    risk = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # many tied risks
    risk[: n // 10] += 1e-9  # ties within sksurv's tolerance
    return time, event, risk


@pytest.mark.parametrize("seed", range(30))
def test_equals_scikit_survival_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    time, event, risk = _cohort(rng, int(rng.integers(5, 300)))
    tt, te, _ = _cohort(rng, int(rng.integers(5, 300)))  # a training cohort: its censoring weights
    own = seed % 3 == 0  # the test cohort as its own training cohort
    if own:
        tt, te = time, event
    for tau in (_safe_horizon(tt, te, time), float(np.quantile(time, 0.5)), float(time.max()) + 1):
        expected = _reference(tt, te, time, event, risk, tau)
        got = uno_c(time, event, risk, train_time=None if own else tt, train_event=None if own else te, tau=tau)
        assert _same(got, expected), (tau, got, expected)
        w = uno_weights(tt, te, time, event, tau)
        for _ in range(5):  # bootstrap resamples: duplicated rows, rows whose weight is undefined
            i = rng.integers(0, len(time), len(time))
            assert _same(weighted_c(time[i], event[i], risk[i], w[i]),
                         _reference(tt, te, time[i], event[i], risk[i], tau))


@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar divide:RuntimeWarning")  # the reference, 0/0
def test_undefined_cases_give_nan_as_the_reference_does():
    t, e, r = np.array([1.0, 2, 3, 4]), np.array([True, False, True, False]), np.array([0.3, 0.2, 0.1, 0.0])
    cases = [
        (t, np.zeros(4, bool), t, e, r, 3.5),  # training cohort all censored
        (t, e, t, np.zeros(4, bool), r, 3.5),  # test cohort all censored
        (t, e, t, e, np.array([0.3, np.nan, 0.1, 0.0]), 3.5),  # a risk is NaN
        (np.array([1.0, 2]), np.array([True, False]), np.array([5.0, 6]), np.array([True, False]),
         np.array([0.1, 0.2]), 7.0),  # test events beyond the training follow-up
        (t, np.array([True, True, True, False]), t, np.array([True, False, True, True]), r, 4.5),  # G(4) = 0
        (t, e, np.array([3.0, 3]), np.array([True, True]), np.array([0.1, 0.2]), 3.5),  # no comparable pair
        (t, e, t, e, r, 0.5),  # tau before every event: all weights zero
    ]
    for tt, te, time, event, risk, tau in cases:
        expected = _reference(tt, te, time, event, risk, tau)
        assert np.isnan(expected)
        assert np.isnan(uno_c(time, event, risk, train_time=tt, train_event=te, tau=tau))


def test_summary_interval_is_the_bootstrap_of_the_reference():
    rng = np.random.default_rng(3)
    time, event, risk = _cohort(rng, 80)
    s = c_index_summary(time, event, risk, n_boot=500, seed=4)
    tau = s["uno_tau"]
    boot = np.random.default_rng(4)
    vals = np.array([_reference(time, event, time[i], event[i], risk[i], tau)
                     for i in (boot.integers(0, 80, 80) for _ in range(100))])
    vals = vals[np.isfinite(vals)]
    assert s["uno_c_index_ci"] == [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]
