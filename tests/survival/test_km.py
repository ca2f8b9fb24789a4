"""Kaplan-Meier and log-rank with arrays against lifelines (the reference the report used until now) on cohorts
with tied times, censoring only, follow-up of 0, single-patient groups and a last time where everyone dies."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test as lifelines_logrank_test
from lifelines.statistics import multivariate_logrank_test

from gistrisk.survival.km import kaplan_meier, logrank_test, survival_with_ci


def cohorts():
    rng = np.random.default_rng(11)
    for i in range(40):
        n = int(rng.integers(2, 120))
        time = np.round(rng.exponential(30, n)) if i % 2 else rng.exponential(30, n)  # ties in every other one
        if i % 5 == 0:
            time[: max(1, n // 10)] = 0.0  # follow-up of 0 (died or lost at surgery)
        event = rng.random(n) < rng.uniform(0.1, 0.9)
        groups = rng.integers(0, int(rng.integers(2, 5)), n)
        yield time, event, groups
    time = np.array([1.0, 2, 2, 3, 3, 3])
    yield time, np.ones(6, bool), np.array([0, 0, 1, 1, 1, 1])  # everyone dies; the last time empties the risk set
    yield np.array([5.0, 6, 7, 8]), np.array([0, 0, 0, 1], bool), np.array(["a", "b", "a", "c"])  # one-patient groups
    yield np.array([4.0, 4, 9, 12, 15]), np.zeros(5, bool), np.array([0, 1, 0, 1, 1])  # no event at all


COHORTS = list(cohorts())  # every one with at least two groups


@pytest.mark.parametrize("k", range(len(COHORTS)))
def test_kaplan_meier_equals_lifelines(k):
    time, event, groups = COHORTS[k]
    for m in [np.ones(len(time), bool), *(groups == g for g in np.unique(groups))]:
        sf = KaplanMeierFitter().fit(time[m], event[m]).survival_function_.iloc[:, 0]
        times, survival = kaplan_meier(time[m], event[m])
        np.testing.assert_array_equal(times, sf.index.to_numpy(float))
        np.testing.assert_allclose(survival, sf.to_numpy(float), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("k", range(len(COHORTS)))
def test_survival_and_interval_at_a_time_equal_lifelines(k):
    time, event, groups = COHORTS[k]
    lf = KaplanMeierFitter().fit(time, event)
    bounds = lf.confidence_interval_survival_function_
    for t in [0.0, *np.quantile(time, [0.1, 0.5, 0.9]), time.max(), time.max() + 5]:
        s, lo, hi = survival_with_ci(time, event, t)
        assert s == pytest.approx(float(lf.predict(t)), rel=1e-13, abs=1e-15)
        np.testing.assert_allclose([lo, hi], bounds.asof(t).to_numpy(float), rtol=1e-10, atol=1e-14)
    assert np.isnan(survival_with_ci(time, event, -1.0)[0])  # before follow-up starts: no estimate


@pytest.mark.parametrize("k", range(len(COHORTS)))
def test_logrank_equals_lifelines(k):
    time, event, groups = COHORTS[k]
    ref = multivariate_logrank_test(time, groups, event)
    stat, df, p = logrank_test(time, event, groups)
    assert df == len(np.unique(groups)) - 1
    if not event.any():
        assert stat == 0 and p == 1 and ref.test_statistic == 0
        return
    assert stat == pytest.approx(ref.test_statistic, rel=1e-9, abs=1e-12)
    assert p == pytest.approx(ref.p_value, rel=1e-9, abs=1e-15)
    if df == 1:  # the two-sample test lifelines has apart
        a = groups == np.unique(groups)[0]
        two = lifelines_logrank_test(time[a], time[~a], event[a], event[~a])
        assert stat == pytest.approx(two.test_statistic, rel=1e-9, abs=1e-12)


def test_one_group_is_refused():
    with pytest.raises(ValueError, match="two groups"):
        logrank_test([1.0, 2.0], [1, 0], [0, 0])
