"""Kaplan-Meier curves, their read-outs (survival at a time with its interval, median, reverse-KM follow-up)
and the log-rank test, with arrays.

What lifelines gives (``KaplanMeierFitter``'s curve and exponential-Greenwood interval;
``multivariate_logrank_test``, unweighted, with its tie handling), everyone entering at time 0: checked
against it in tests/survival/test_km.py (and against scikit-survival and R's survdiff on GBSG2 in
tests/report/test_km_crosscheck.py). Validation, the development figures and the maximally selected
cut-off call them dozens of times per fit; lifelines builds a pandas event table per call (about 40 ms),
these take well under 1 ms.
"""

from __future__ import annotations

import numpy as np
from scipy.special import chdtrc, ndtri


def kaplan_meier(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier survival at time 0 (or the earliest time, if negative) and at every distinct time.

    Parameters
    ----------
    time : array-like, shape (n,)
    event : array-like of bool, shape (n,)

    Returns
    -------
    times, survival : ndarray, shape (m,)
    """
    times, at_risk, deaths = _km_table(time, event)
    return times, np.cumprod(1.0 - deaths / at_risk)


def survival_with_ci(time, event, t: float, level: float = 0.95) -> tuple[float, float, float]:
    """Kaplan-Meier survival at ``t`` (the step at or before it) with its exponential-Greenwood interval
    (lifelines' ``KaplanMeierFitter`` default); NaN before the first time. Returns (survival, lower, upper)."""
    times, at_risk, deaths = _km_table(time, event)
    k = np.searchsorted(times, t, side="right") - 1
    if k < 0:
        return float("nan"), float("nan"), float("nan")
    survival = np.cumprod(1.0 - deaths / at_risk)
    at_risk, deaths = at_risk[: k + 1], deaths[: k + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0).sum()
        log_s = np.log(survival[k])
        spread = ndtri(1 - (1 - level) / 2) * np.sqrt(greenwood) / log_s
        lower, upper = (np.exp(-np.exp(np.log(-log_s) + sign * spread)) for sign in (-1, 1))
    # S = 1 (no event yet) gives 0/0: lifelines reports the interval as [1, 1] there
    return float(survival[k]), float(lower) if np.isfinite(lower) else 1.0, float(upper) if np.isfinite(upper) else 1.0


def km_curve(time, event) -> tuple[np.ndarray, np.ndarray]:
    """Product-limit survival estimate.

    Parameters
    ----------
    time : array, shape (n,)
    event : array of 0/1 or bool, shape (n,)

    Returns
    -------
    times : ndarray, shape (k,)   distinct event times
    survival : ndarray, shape (k,)  S(t) just after each of them
    """
    event = np.asarray(event, bool)
    if not event.any():
        return np.array([]), np.array([])
    times, survival = kaplan_meier(time, event)
    at_events = np.isin(times, np.asarray(time, float)[event])
    return times[at_events], survival[at_events]


def km_at(time, event, t: float) -> float:
    """S(t) by Kaplan-Meier; NaN where ``t`` lies beyond the last follow-up and S has not reached 0."""
    time = np.asarray(time, float)
    if len(time) == 0:
        return float("nan")
    times, surv = km_curve(time, event)
    s = float(surv[times <= t][-1]) if (times <= t).any() else 1.0
    if t > time.max() and s > 0:
        return float("nan")
    return s


def km_median(time, event) -> float:
    """Smallest time at which S(t) <= 0.5 (NaN when the curve never gets there)."""
    times, surv = km_curve(time, event)
    hit = np.flatnonzero(surv <= 0.5)
    return float(times[hit[0]]) if len(hit) else float("nan")


def reverse_km_median_follow_up(time, event) -> float:
    """Median follow-up by the reverse Kaplan-Meier method (censoring treated as the event)."""
    return km_median(time, 1 - np.asarray(event, int))


def logrank_test(time, event, groups) -> tuple[float, int, float]:
    """Log-rank test of equal survival in every group (k >= 2 groups; k - 1 degrees of freedom).

    Parameters
    ----------
    time : array-like, shape (n,)
    event : array-like of bool, shape (n,)
    groups : array-like, shape (n,)
        Group labels; the groups are the distinct labels.

    Returns
    -------
    statistic, degrees_of_freedom, p_value
    """
    time, event, groups = np.asarray(time, float), np.asarray(event, bool), np.asarray(groups)
    labels, g = np.unique(groups, return_inverse=True)
    k = len(labels)
    if k < 2:
        raise ValueError("the log-rank test needs at least two groups")
    death_times = np.unique(time[event])
    # at risk and deaths per event time (rows) and group (columns)
    per_group = [_at_risk_and_deaths(time[g == j], event[g == j], death_times) for j in range(k)]
    at_risk, deaths = np.column_stack([a for a, _ in per_group]), np.column_stack([d for _, d in per_group])
    n, d = at_risk.sum(1), deaths.sum(1)
    observed_minus_expected = (deaths - at_risk * (d / n)[:, None]).sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tie_factor = np.where(n > 1, (n - d) / (n - 1), 1.0)  # lifelines' convention where one is at risk
    weight = tie_factor * d / n**2
    covariance = np.diag((weight[:, None] * at_risk * n[:, None]).sum(0)) - (at_risk * weight[:, None]).T @ at_risk
    z, v = observed_minus_expected[:-1], covariance[:-1, :-1]
    statistic = float(z @ np.linalg.pinv(v) @ z)
    return statistic, k - 1, float(chdtrc(k - 1, statistic))


def _km_table(time, event) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time 0 (or the earliest, if negative) and every distinct time, with the number at risk and of events at each."""
    time, event = np.asarray(time, float), np.asarray(event, bool)
    times = np.unique(np.concatenate([[min(0.0, time.min())], time]))
    return times, *_at_risk_and_deaths(time, event, times)


def _at_risk_and_deaths(time: np.ndarray, event: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number at risk (follow-up >= t) and number of events at t, for each of the sorted times ``at``."""
    follow_up, events = np.sort(time), np.sort(time[event])
    at_risk = len(time) - np.searchsorted(follow_up, at, side="left")
    deaths = np.searchsorted(events, at, side="right") - np.searchsorted(events, at, side="left")
    return at_risk.astype(float), deaths.astype(float)
