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
from sklearn.model_selection import StratifiedKFold

from gistrisk.survival.config import LassoConfig, RSFConfig, StepwiseConfig
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.evaluation import as_surv, harrell_c

log = logging.getLogger(__name__)


def event_folds(event: np.ndarray, n_folds: int, seed: int):
    """Folds stratified by event status (as many as the events allow)."""
    event = np.asarray(event, int)
    k = int(max(2, min(n_folds, event.sum(), (1 - event).sum() or n_folds)))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(event)), event))


class LassoCoxSelector:
    """LASSO-Cox (Coxnet) with the penalty chosen by cross-validated Harrell's C."""

    def __init__(self, config: LassoConfig | None = None, seed: int = 0):
        self.config = config or LassoConfig()
        self.seed = seed

    def _coxnet(self, alphas=None):
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        c = self.config
        return CoxnetSurvivalAnalysis(l1_ratio=c.l1_ratio, n_alphas=c.n_alphas, alphas=alphas,
                                      alpha_min_ratio=c.alpha_min_ratio, max_iter=100000, tol=1e-7)

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> "LassoCoxSelector":
        y = as_surv(time, event)
        A = X.to_numpy(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = self._coxnet().fit(A, y)
            alphas = path.alphas_
            scores = np.zeros((0, len(alphas)))
            for tr, te in event_folds(event, self.config.cv_folds, self.seed):
                m = self._coxnet(alphas).fit(A[tr], y[tr])
                risk = A[te] @ m.coef_  # (n_te, n_alphas)
                row = [harrell_c(time[te], event[te], risk[:, j]) if np.any(risk[:, j] != 0) else 0.5
                       for j in range(m.coef_.shape[1])]
                row += [0.5] * (len(alphas) - len(row))
                scores = np.vstack([scores, row])
        mean = np.nanmean(scores, axis=0)
        best = int(np.nanargmax(mean))
        coef = path.coef_[:, min(best, path.coef_.shape[1] - 1)]
        nz = np.flatnonzero(coef)
        if len(nz) == 0:
            # nothing survives the chosen penalty: keep the first features to enter the path
            nz_any = [np.flatnonzero(path.coef_[:, j]) for j in range(path.coef_.shape[1])]
            nz = next((z for z in nz_any if len(z)), np.array([], int))
            log.warning("LASSO-Cox selected no feature at the CV-best alpha; kept the first to enter the path")
        if len(nz) > self.config.max_features:
            nz = nz[np.argsort(-np.abs(coef[nz]))[: self.config.max_features]]
        self.alpha_ = float(alphas[best])
        self.cv_c_index_ = mean.tolist()
        self.alphas_ = alphas.tolist()
        self.selected_ = [X.columns[i] for i in sorted(nz)]
        self.details_ = {"alpha": self.alpha_, "cv_c_index": float(mean[best]), "n_selected": len(self.selected_)}
        return self


class RSFSelector:
    """Random survival forest permutation importance, averaged over CV folds; positive ones kept."""

    def __init__(self, config: RSFConfig | None = None, seed: int = 0):
        self.config = config or RSFConfig()
        self.seed = seed

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> "RSFSelector":
        from sksurv.ensemble import RandomSurvivalForest

        c = self.config
        A = X.to_numpy(float)
        y = as_surv(time, event)
        rng = np.random.default_rng(self.seed)
        imp = np.zeros(A.shape[1])
        folds = event_folds(event, c.cv_folds, self.seed)
        for k, (tr, te) in enumerate(folds):
            rsf = RandomSurvivalForest(n_estimators=c.n_estimators, min_samples_leaf=c.min_samples_leaf,
                                       max_features="sqrt", random_state=self.seed + k, n_jobs=1).fit(A[tr], y[tr])
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
    """Stepwise Cox selection (forward, backward or both) by AIC or by Wald p-values."""

    def __init__(self, config: StepwiseConfig | None = None, penalizer: float = 0.0, max_features: int | None = None):
        self.config = config or StepwiseConfig()
        self.penalizer = penalizer
        self.max_features = max_features

    def _score(self, A, cols, time, event):
        r = fit_cox(A[:, cols], time, event, penalizer=self.penalizer)
        return r.aic(), r

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> "StepwiseCoxSelector":
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
                    chosen = self._backward(A, chosen, time, event, history, limit, names=X.columns, once=True)
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
