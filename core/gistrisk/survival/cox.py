"""A small, fast Cox proportional-hazards fitter (Breslow ties, optional ridge penalty).

Stepwise selection and the nested cross-validation refit a Cox model thousands of times;
lifelines' ``CoxPHFitter`` costs tens of milliseconds per fit through pandas, this costs about one.
Tests check coefficients and standard errors against lifelines and scikit-survival (Breslow ties).

Ridge penalty: :func:`fit_cox` maximises ``loglik(beta) - 0.5 * penalizer * ||beta||^2`` on the
covariates as given. lifelines' ``CoxPHFitter`` instead divides each column by its sample SD
(ddof=1) and subtracts ``n * penalizer * 0.5 * ||beta_std||^2``. So on covariates with unit sample
SD, ``fit_cox(X, t, e, penalizer=p)`` equals ``CoxPHFitter(penalizer=p / n, l1_ratio=0)`` (Efron
and Breslow ties agree without tied event times); on z-scores with ddof=0 (the pipeline's
:class:`~gistrisk.survival.preprocess.Preprocessor`) it is ``penalizer=p * (n - 1) / n**2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class CoxResult:
    """A fitted Cox model on centred covariates.

    Attributes
    ----------
    coef : ndarray, shape (p,)
    se : ndarray, shape (p,)          standard errors from the observed information
    mean : ndarray, shape (p,)        the centring vector (training means)
    loglik : float                    partial log-likelihood at ``coef`` (without penalty)
    baseline_time : ndarray, shape (k,)   unique event times
    baseline_cumhaz : ndarray, shape (k,) Breslow cumulative baseline hazard at centred covariates
    converged : bool
    """

    coef: np.ndarray
    se: np.ndarray
    mean: np.ndarray
    loglik: float
    baseline_time: np.ndarray
    baseline_cumhaz: np.ndarray
    converged: bool
    n_iter: int

    @property
    def p_values(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.coef / self.se
        return 2 * stats.norm.sf(np.abs(z))

    def aic(self) -> float:
        return -2 * self.loglik + 2 * len(self.coef)

    def linear_predictor(self, X: np.ndarray) -> np.ndarray:
        """Centred linear predictor, shape (n,)."""
        return (np.asarray(X, float) - self.mean) @ self.coef

    def survival(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Predicted survival S(t | x), shape (n, len(times))."""
        H0 = step_at(self.baseline_time, self.baseline_cumhaz, np.asarray(times, float))
        return np.exp(-np.outer(np.exp(self.linear_predictor(X)), H0))


def step_at(knots: np.ndarray, values: np.ndarray, t: np.ndarray, before: float = 0.0) -> np.ndarray:
    """Right-continuous step function through (knots, values), evaluated at ``t``."""
    idx = np.searchsorted(knots, t, side="right") - 1
    out = np.where(idx >= 0, values[np.clip(idx, 0, None)] if len(values) else before, before)
    return np.asarray(out, float)


def fit_cox(X: np.ndarray, time: np.ndarray, event: np.ndarray, *, penalizer: float = 0.0,
            max_iter: int = 50, tol: float = 1e-9) -> CoxResult:
    """Fit a Cox model by Newton-Raphson with step halving.

    Parameters
    ----------
    X : array, shape (n, p)
    time : array, shape (n,)
    event : array of bool/0-1, shape (n,)
    penalizer : ridge penalty ``0.5 * penalizer * ||beta||^2`` on the partial log-likelihood (a sum over
        events, not a mean); lifelines' equivalent is ``penalizer / n`` on unit-SD covariates (module notes)

    Columns that are constant get coefficient 0 and standard error NaN (no information).
    """
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    n, p = X.shape
    mean = X.mean(axis=0) if n else np.zeros(p)
    dead = np.ptp(X, axis=0) == 0 if n else np.zeros(p, bool)
    if dead.any():
        # a constant column (e.g. the all-zero score of a modality without signal) carries no information:
        # fit the others alone so their standard errors stay defined
        r = fit_cox(X[:, ~dead], time, event, penalizer=penalizer, max_iter=max_iter, tol=tol)
        coef, se = np.zeros(p), np.full(p, np.nan)
        coef[~dead], se[~dead] = r.coef, r.se
        return CoxResult(coef, se, mean, r.loglik, r.baseline_time, r.baseline_cumhaz, r.converged, r.n_iter)
    Xc = X - mean
    # sort by time descending so a cumulative sum is a risk-set sum; ties share the last index
    order = np.argsort(-time, kind="stable")
    Xs, ts, es = Xc[order], time[order], event[order]
    # for each row, index of the last row with the same time (the full risk set for that time)
    grp_end = n - 1 - np.searchsorted(ts[::-1], ts, side="left")
    ev_idx = np.flatnonzero(es)
    ev_end = grp_end[ev_idx]

    def evaluate(beta: np.ndarray, need_hess: bool = True):
        eta = Xs @ beta
        c = eta.max() if n else 0.0
        w = np.exp(eta - c)
        S0 = np.cumsum(w)[ev_end]
        S1 = np.cumsum(w[:, None] * Xs, axis=0)[ev_end]
        ll = float(np.sum(eta[ev_idx] - c - np.log(S0)))
        xbar = S1 / S0[:, None]
        grad = Xs[ev_idx].sum(axis=0) - xbar.sum(axis=0)
        hess = None
        if need_hess:
            S2 = np.cumsum(w[:, None, None] * (Xs[:, :, None] * Xs[:, None, :]), axis=0)[ev_end]
            info = (S2 / S0[:, None, None]).sum(axis=0) - xbar.T @ xbar
            hess = info + penalizer * np.eye(p)
        pen = 0.5 * penalizer * float(beta @ beta)
        return ll, ll - pen, grad - penalizer * beta, hess

    beta = np.zeros(p)
    ll, obj, grad, info = evaluate(beta)
    converged = p == 0
    it = 0
    for _ in range(max_iter):
        if p == 0:
            break
        it += 1
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, grad, rcond=None)[0]
        scale = 1.0
        while True:
            cand = beta + scale * step
            ll_c, obj_c, grad_c, info_c = evaluate(cand)
            if np.isfinite(obj_c) and obj_c >= obj - 1e-12:
                break
            scale /= 2
            if scale < 1e-8:
                cand, ll_c, obj_c, grad_c, info_c = beta, ll, obj, grad, info
                break
        delta = abs(obj_c - obj)
        beta, ll, obj, grad, info = cand, ll_c, obj_c, grad_c, info_c
        if delta < tol * (abs(obj) + tol) or np.max(np.abs(grad)) < 1e-10:
            converged = True
            break
    try:
        cov = np.linalg.inv(info) if p else np.zeros((0, 0))
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        se = np.full(p, np.nan)
    bt, bh = breslow_baseline(Xc @ beta, time, event)
    return CoxResult(beta, se, mean, ll, bt, bh, converged, it)


def cox_with_coef(X: np.ndarray, time: np.ndarray, event: np.ndarray, coef: np.ndarray) -> CoxResult:
    """A Cox model with fixed coefficients (e.g. a penalised Coxnet's), no refit.

    Parameters
    ----------
    X : array, shape (n, p)
    time, event : arrays, shape (n,)
    coef : array, shape (p,)

    Returns
    -------
    CoxResult centred at the training means of ``X``, with the partial log-likelihood and the Breslow
    baseline hazard at ``coef``; ``se`` is NaN (a penalised coefficient has no Wald standard error).
    """
    X = np.asarray(X, float).reshape(len(time), -1)
    coef = np.asarray(coef, float).reshape(-1)
    mean = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
    eta = (X - mean) @ coef
    bt, bh = breslow_baseline(eta, time, event)
    return CoxResult(coef, np.full(len(coef), np.nan), mean, float(partial_loglik(eta, time, event)), bt, bh,
                     True, 0)


def partial_loglik(eta: np.ndarray, time: np.ndarray, event: np.ndarray) -> float | np.ndarray:
    """Breslow partial log-likelihood of linear predictors.

    Parameters
    ----------
    eta : array, shape (n,) or (n, m)     one linear predictor per column (e.g. a Coxnet path)
    time, event : arrays, shape (n,)

    Returns
    -------
    float, or ndarray of shape (m,) when ``eta`` is 2-D
    """
    eta = np.asarray(eta, float)
    E = eta.reshape(len(eta), -1)
    time, event = np.asarray(time, float), np.asarray(event, bool)
    n = len(time)
    order = np.argsort(-time, kind="stable")
    Es, ts = E[order], time[order]
    grp_end = n - 1 - np.searchsorted(ts[::-1], ts, side="left")  # last row tied with each row
    ev = np.flatnonzero(event[order])
    if n == 0 or len(ev) == 0:
        ll = np.zeros(E.shape[1])
    else:
        c = Es.max(axis=0)
        S0 = np.cumsum(np.exp(Es - c), axis=0)[grp_end[ev]]
        ll = (Es[ev] - c - np.log(S0)).sum(axis=0)
    return ll if eta.ndim == 2 else float(ll[0])


def breslow_baseline(eta: np.ndarray, time: np.ndarray, event: np.ndarray):
    """Breslow cumulative baseline hazard at the unique event times."""
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    w = np.exp(eta - eta.max()) if len(eta) else eta
    uniq = np.unique(time[event])
    if len(uniq) == 0:
        return uniq, uniq.copy()
    order = np.argsort(time)
    ts, ws = time[order], w[order]
    at_risk = np.cumsum(ws[::-1])[::-1]  # sum over j with time_j >= ts[i]
    first = np.searchsorted(ts, uniq, side="left")
    d = np.bincount(np.searchsorted(uniq, time[event]), minlength=len(uniq))
    h = d / (at_risk[first] * np.exp(eta.max()))
    return uniq, np.cumsum(h)
