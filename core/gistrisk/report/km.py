"""A small Kaplan-Meier estimator (product limit) used by the report's tables and decision curves.

Kept separate from lifelines so the decision-curve and follow-up numbers can be checked by hand.
"""

from __future__ import annotations

import numpy as np


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
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    uniq = np.unique(time[event])
    if len(uniq) == 0:
        return uniq, uniq.copy()
    at_risk = np.array([(time >= t).sum() for t in uniq], float)
    deaths = np.array([(event & (time == t)).sum() for t in uniq], float)
    return uniq, np.cumprod(1.0 - deaths / at_risk)


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
