"""Feature selection as in the paper: LASSO-Cox, random survival forest importance, stepwise Cox.

Each selector takes a DataFrame ``X`` (n, p) of preprocessed features and survival arrays
``time``/``event`` (n,), and sets ``selected_`` (list of column names) and ``details_``.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import StratifiedKFold
from sksurv.linear_model import CoxnetSurvivalAnalysis

from gistrisk.survival.config import LassoConfig, RSFConfig, StepwiseConfig
from gistrisk.survival.cox import fit_cox, partial_loglik
from gistrisk.survival.evaluation import as_surv, harrell_c
from gistrisk.survival.forest import RandomSurvivalForest

log = logging.getLogger(__name__)


def event_folds(event: np.ndarray, n_folds: int, seed: int):
    """Folds stratified by event status (as many as the events allow)."""
    event = np.asarray(event, int)
    k = int(max(2, min(n_folds, event.sum(), (1 - event).sum() or n_folds)))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(event)), event))


class LassoCoxSelector:
    """LASSO-Cox (Coxnet) with the penalty chosen by cross-validation.

    ``criterion="deviance"`` (default) follows glmnet's ``cv.glmnet`` for Cox (``grouped=TRUE``): the
    deviance of fold k is ``-2 * (l(b_k) - l_-k(b_k))``, with ``b_k`` fitted without fold k, ``l`` the
    partial log-likelihood of all rows and ``l_-k`` that of the training rows (Verweij & van
    Houwelingen 1993). It is used rather than the plain held-out partial likelihood because a held-out
    fold of a few dozen patients has tiny risk sets of its own; here each held-out event is compared with
    its full risk set. Per alpha the fold deviances are divided by the fold's events and averaged
    weighted by events; the standard error is the weighted SD over folds / sqrt(K - 1) (as glmnet).
    The Breslow saturated term glmnet adds with tied times is constant in alpha and left out.
    ``criterion="cindex"`` maximises the mean held-out Harrell's C instead (the empty model counts 0.5).
    ``one_se`` takes the largest alpha whose CV value is within one standard error of the best.

    Attributes
    ----------
    alphas_ : list of float, shape (n_alphas,)      the path, largest first
    cv_mean_, cv_se_ : list of float, (n_alphas,)   the criterion's CV mean and standard error
    cv_deviance_, cv_c_index_ : list of float       both criteria's CV means (NaN where a fold's path stopped)
    alpha_ : float                                   chosen penalty
    coef_ : ndarray, shape (p,)                      Coxnet coefficients at ``alpha_`` on all rows
    empty_ : bool                                    the chosen model has no feature (CV prefers the null model)
    selected_ : list of str                          non-zero features (at most ``max_features``; [] when empty)
    details_ : dict
    """

    def __init__(self, config: LassoConfig | None = None, seed: int = 0):
        self.config = config or LassoConfig()
        self.seed = seed

    def _coxnet(self, alphas=None):
        c = self.config
        return CoxnetSurvivalAnalysis(l1_ratio=c.l1_ratio, n_alphas=c.n_alphas, alphas=alphas,
                                      alpha_min_ratio=c.alpha_min_ratio, max_iter=100000, tol=1e-7)

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> LassoCoxSelector:
        c = self.config
        time, event = np.asarray(time, float), np.asarray(event, int)
        y = as_surv(time, event)
        A = X.to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = self._coxnet().fit(A, y)
            alphas = np.asarray(path.alphas_, float)
            folds = event_folds(event, c.cv_folds, self.seed)
            dev = np.full((len(folds), len(alphas)), np.nan)  # -2 * (l_full - l_train) per fold
            cidx = np.full((len(folds), len(alphas)), np.nan)
            w = np.zeros(len(folds))  # events per held-out fold
            for k, (tr, te) in enumerate(folds):
                B = self._coxnet(alphas).fit(A[tr], y[tr]).coef_  # (p, m), m <= n_alphas if the path stopped
                m = B.shape[1]
                dev[k, :m] = -2 * (partial_loglik(A @ B, time, event) - partial_loglik(A[tr] @ B, time[tr], event[tr]))
                risk = A[te] @ B
                cidx[k, :m] = [harrell_c(time[te], event[te], risk[:, j]) if np.any(risk[:, j] != 0) else 0.5
                               for j in range(m)]
                w[k] = event[te].sum()
        dev_mean, dev_se = _weighted_cv(dev / w[:, None], w)
        c_mean, c_se = _weighted_cv(cidx, np.ones(len(folds)))
        sign = 1.0 if c.criterion == "deviance" else -1.0  # minimise deviance, maximise C
        mean, se = (dev_mean, dev_se) if c.criterion == "deviance" else (c_mean, c_se)
        score = np.where(np.isfinite(mean), sign * mean, np.inf)
        best = int(np.argmin(score))
        chosen = best
        if c.one_se and np.isfinite(se[best]):
            chosen = int(np.flatnonzero(score <= score[best] + se[best])[0])  # alphas are decreasing
        coef = path.coef_[:, min(chosen, path.coef_.shape[1] - 1)]
        nz = np.flatnonzero(coef)
        self.empty_ = len(nz) == 0
        if self.empty_:
            log.info("LASSO-Cox: cross-validation prefers the empty model (alpha %.4g, no feature)", alphas[chosen])
        if len(nz) > c.max_features:
            nz = nz[np.argsort(-np.abs(coef[nz]))[: c.max_features]]
        self.alphas_ = alphas.tolist()
        self.cv_mean_, self.cv_se_ = mean.tolist(), se.tolist()
        self.cv_deviance_, self.cv_c_index_ = dev_mean.tolist(), c_mean.tolist()
        self.alpha_ = float(alphas[chosen])
        self.coef_ = np.asarray(coef, float)
        self.selected_ = [X.columns[i] for i in sorted(nz)]
        self.details_ = {"criterion": c.criterion, "one_se": c.one_se, "alpha": self.alpha_,
                         "alpha_index": chosen, "alpha_min": float(alphas[best]),
                         "cv_deviance": _finite(dev_mean[chosen]), "cv_c_index": _finite(c_mean[chosen]),
                         "n_selected": len(self.selected_), "empty": self.empty_}
        return self


def _weighted_cv(values: np.ndarray, w: np.ndarray):
    """Weighted mean over folds and its standard error (glmnet's cvm, cvsd), each shape (n_alphas,).

    ``values`` (K, n_alphas) may hold NaN (a fold whose path stopped early); ``w`` (K,) are fold weights.
    """
    ok = np.isfinite(values)
    W = np.where(ok, w[:, None], 0.0)
    V = np.where(ok, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (W * V).sum(0) / W.sum(0)
        var = (W * (V - mean) ** 2).sum(0) / W.sum(0)
        se = np.sqrt(var / (ok.sum(0) - 1))
    return mean, se


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


class RSFSelector:
    """Random survival forest permutation importance, averaged over CV folds; positive ones kept."""

    def __init__(self, config: RSFConfig | None = None, seed: int = 0):
        self.config = config or RSFConfig()
        self.seed = seed

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> RSFSelector:
        c = self.config
        A = X.to_numpy(float)
        y = as_surv(time, event)
        rng = np.random.default_rng(self.seed)
        imp = np.zeros(A.shape[1])
        folds = event_folds(event, c.cv_folds, self.seed)
        for k, (tr, te) in enumerate(folds):
            # the forest still validates its own parameters (a bad RSFConfig gets scikit-learn's message);
            # only each tree's re-validation of them is skipped: a fifth of a forest's time at these sizes
            with sklearn.config_context(skip_parameter_validation=True):
                rsf = RandomSurvivalForest(n_estimators=c.n_estimators, min_samples_leaf=c.min_samples_leaf,
                                           max_features="sqrt", random_state=self.seed + k,
                                           n_jobs=1).fit(A[tr], y[tr])
            base = harrell_c(time[te], event[te], rsf.predict(A[te]))
            # one batched predict per repeat: every feature's permuted copy stacked together
            for _ in range(c.n_repeats):
                n_te = len(te)
                stacked = np.repeat(A[te][None], A.shape[1], axis=0)
                perm = rng.permutation(n_te)
                for j in range(A.shape[1]):
                    stacked[j, :, j] = A[te][perm, j]
                pred = rsf.predict(stacked.reshape(-1, A.shape[1])).reshape(A.shape[1], n_te)
                imp += np.array([base - harrell_c(time[te], event[te], pred[j]) for j in range(A.shape[1])])
        imp /= len(folds) * c.n_repeats
        imp = np.nan_to_num(imp, nan=0.0)
        order = np.argsort(-imp)
        keep = [i for i in order if imp[i] > 0][: c.top_k] or list(order[:1])
        self.importances_ = dict(zip(X.columns, imp.tolist()))
        self.selected_ = [X.columns[i] for i in sorted(keep)]
        self.details_ = {"n_selected": len(self.selected_), "importances": self.importances_}
        return self


class StepwiseCoxSelector:
    """Stepwise Cox selection (forward, backward or both) by AIC or by Wald p-values.

    With ``direction="both"`` each addition is followed by at most one removal; by AIC, every accepted
    step (addition or removal) lowers the AIC of the model currently held.
    """

    def __init__(self, config: StepwiseConfig | None = None, penalizer: float = 0.0, max_features: int | None = None):
        self.config = config or StepwiseConfig()
        self.penalizer = penalizer
        self.max_features = max_features

    def _score(self, A, cols, time, event):
        r = fit_cox(A[:, cols], time, event, penalizer=self.penalizer)
        return r.aic(), r

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> StepwiseCoxSelector:
        c = self.config
        limit = min(c.max_features, self.max_features or c.max_features, X.shape[1])
        A = X.to_numpy(float)
        chosen: list[int] = [] if c.direction != "backward" else list(range(X.shape[1]))
        history: list[dict[str, Any]] = []
        if c.direction == "backward":
            chosen = self._backward(A, chosen, time, event, history, limit, names=X.columns)
        else:
            best_aic = self._score(A, [], time, event)[0] if c.criterion == "aic" else None
            while len(chosen) < limit:
                cands = [j for j in range(A.shape[1]) if j not in chosen]
                if not cands:
                    break
                trials = [(self._score(A, chosen + [j], time, event), j) for j in cands]
                if c.criterion == "aic":
                    (aic, _), j = min(trials, key=lambda t: t[0][0])
                    if aic >= best_aic:
                        break
                    best_aic = aic
                else:
                    (_, r), j = min(trials, key=lambda t: t[0][1].p_values[-1])
                    if r.p_values[-1] > c.p_enter:
                        break
                chosen.append(j)
                history.append({"step": "add", "feature": X.columns[j]})
                if c.direction == "both":
                    n_before = len(chosen)
                    chosen = self._backward(A, chosen, time, event, history, limit, names=X.columns, once=True)
                    if c.criterion == "aic" and len(chosen) < n_before:
                        # a removal lowered the AIC: the next addition must beat the model now held
                        best_aic = self._score(A, chosen, time, event)[0]
        if not chosen:
            # nothing improved the criterion: keep the feature with the largest univariate Wald z
            fits = [self._score(A, [j], time, event)[1] for j in range(A.shape[1])]
            chosen = [int(np.argmax([abs(r.coef[0]) / max(r.se[0], 1e-12) for r in fits]))]
            history.append({"step": "fallback", "feature": X.columns[chosen[0]]})
        self.selected_ = [X.columns[j] for j in sorted(chosen)]
        self.details_ = {"history": history, "n_selected": len(self.selected_)}
        return self

    def _backward(self, A, chosen, time, event, history, limit, names=None, once=False):
        c = self.config
        chosen = list(chosen)
        while len(chosen) > 1:
            aic, r = self._score(A, chosen, time, event)
            if c.criterion == "aic":
                trials = [(self._score(A, [k for k in chosen if k != j], time, event)[0], j) for j in chosen]
                aic_rm, j = min(trials)
                if aic_rm >= aic and len(chosen) <= limit:
                    break
            else:
                worst = int(np.nanargmax(r.p_values))
                if r.p_values[worst] <= c.p_remove and len(chosen) <= limit:
                    break
                j = chosen[worst]
            chosen.remove(j)
            history.append({"step": "remove", "feature": None if names is None else names[j]})
            if once:
                break
        return chosen
