"""Synthetic feature tables with a known Cox signal, for tests and benchmarks of the survival core.

Why a third generator: this one is generic and exact. Any number of plain numeric features per
modality, the first ``n_signal`` of each carrying a chosen log hazard ratio under a Cox model, so a
test can check a fitted coefficient or a C-index against the truth in a second. The other two are
realistic instead: ``gistrisk.simulate`` (and its table-level twin ``simulate.feature_tables``)
draws GIST patients, hospital clinical tables, CT and slides, for signal recovery and the demo;
``tests/slicer/demo_cohort.py`` makes a cohort with the Slicer module's real radiomics column names.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_tables(n: int = 200, p: dict[str, int] | None = None, n_signal: int = 3, effect: float = 0.6,
                censor_rate: float = 0.03, seed: int = 0, missing: dict[str, float] | None = None,
                corr: float = 0.3):
    """Feature tables (one per modality) and outcomes drawn from a Cox model with Weibull baseline.

    Parameters
    ----------
    n : patients
    p : features per modality, default ``{"clinical": 10, "radiomics": 50, "pathology": 50}``
    n_signal : features per modality that carry hazard (the first ``n_signal`` columns)
    effect : log hazard ratio per SD of each signal feature
    missing : fraction of patients lacking each modality (whole table rows removed)

    Returns
    -------
    tables : dict[str, DataFrame] indexed by patient_id
    outcomes : DataFrame indexed by patient_id (time in months, event 0/1)
    lp : Series, the true linear predictor
    """
    rng = np.random.default_rng(seed)
    p = p or {"clinical": 10, "radiomics": 50, "pathology": 50}
    ids = [f"P{i:04d}" for i in range(n)]
    tables, lp = {}, np.zeros(n)
    for m, k in p.items():
        shared = rng.normal(size=(n, 1))
        X = np.sqrt(1 - corr) * rng.normal(size=(n, k)) + np.sqrt(corr) * shared
        lp += effect * X[:, :n_signal].sum(axis=1)
        tables[m] = pd.DataFrame(X, index=pd.Index(ids, name="patient_id"), columns=[f"{m[:3]}_{j:04d}" for j in range(k)])
    # Weibull baseline (shape 1.3, scale ~ 60 months), exponential censoring + administrative at 120 months
    u = rng.uniform(size=n)
    t_event = 60.0 * (-np.log(u) / np.exp(lp - lp.mean())) ** (1 / 1.3)
    t_cens = np.minimum(rng.exponential(1 / censor_rate, size=n), 120.0)
    time = np.minimum(t_event, t_cens)
    event = (t_event <= t_cens).astype(int)
    outcomes = pd.DataFrame({"time": np.round(time, 2) + 0.01, "event": event}, index=pd.Index(ids, name="patient_id"))
    for m, frac in (missing or {}).items():
        drop = rng.choice(n, int(frac * n), replace=False)
        tables[m] = tables[m].drop(index=[ids[i] for i in drop])
    return tables, outcomes, pd.Series(lp, index=outcomes.index, name="lp")
