"""Decision-curve analysis for a time-to-event outcome (censoring-aware net benefit).

Net benefit at threshold probability ``pt`` of treating the patients a strategy selects
(Vickers et al., BMC Med Inform Decis Mak 2008; the ``stdca`` procedure):

    NB(pt) = P(treated) * [(1 - S_treated(h)) - S_treated(h) * pt / (1 - pt)]

where ``S_treated(h)`` is the Kaplan-Meier RFS at the horizon ``h`` among the treated, so censored
patients count through the product-limit estimate rather than being dropped. "Treat all" uses the
whole cohort's KM; "treat none" is 0. A model treats patients whose predicted risk of recurrence by
``h`` is at least ``pt``; a fixed rule (e.g. modified NIH intermediate + high) treats the same
patients at every threshold. Where the treated group's KM is undefined at ``h`` (all followed less
than ``h`` and not every one recurred) the net benefit is NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gistrisk.survival.km import km_at

DEFAULT_THRESHOLDS = np.round(np.arange(0.05, 0.6001, 0.01), 2)


def net_benefit(time, event, treat, threshold: float, horizon: float) -> float:
    """Net benefit of treating the patients flagged in ``treat`` (bool, shape (n,)) at ``threshold``."""
    time, event, treat = np.asarray(time, float), np.asarray(event, int), np.asarray(treat, bool)
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    px = treat.mean() if len(treat) else 0.0
    if px == 0:
        return 0.0
    s = km_at(time[treat], event[treat], horizon)
    if np.isnan(s):
        return float("nan")
    return float(px * ((1 - s) - s * threshold / (1 - threshold)))


def decision_curve(time, event, horizon: float, thresholds=DEFAULT_THRESHOLDS, *,
                   risks: dict[str, np.ndarray] | None = None,
                   rules: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Net benefit per strategy over ``thresholds``.

    Parameters
    ----------
    time, event : arrays, shape (n,)
    horizon : months at which recurrence is counted
    thresholds : threshold probabilities, shape (k,)
    risks : name -> predicted probability of recurrence by ``horizon``, shape (n,) (NaN rows are
        never treated by that model)
    rules : name -> bool array, shape (n,), the patients a fixed rule treats

    Returns
    -------
    DataFrame, shape (k, n_strategies + 2), indexed by threshold; columns are the strategies,
    ``"treat all"`` and ``"treat none"``.
    """
    time, event = np.asarray(time, float), np.asarray(event, int)
    thresholds = np.asarray(thresholds, float)
    out: dict[str, list[float] | np.ndarray] = {}
    for name, r in (risks or {}).items():
        r = np.asarray(r, float)
        out[name] = [net_benefit(time, event, np.nan_to_num(r, nan=-1.0) >= pt, pt, horizon) for pt in thresholds]
    for name, rule in (rules or {}).items():
        out[name] = [net_benefit(time, event, rule, pt, horizon) for pt in thresholds]
    everyone = np.ones(len(time), bool)
    out["treat all"] = [net_benefit(time, event, everyone, pt, horizon) for pt in thresholds]
    out["treat none"] = np.zeros(len(thresholds))
    return pd.DataFrame(out, index=pd.Index(thresholds, name="threshold"))
