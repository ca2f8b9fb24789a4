"""LASSO-Cox penalty by cross-validated partial-likelihood deviance (cv.glmnet's rule), the one-SE rule,
the C-index criterion, the empty model, and their config keys."""

import numpy as np
import pytest
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.util import Surv

from gistrisk.errors import InputError
from gistrisk.survival.config import LassoConfig, load_config
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.survival.selection import LassoCoxSelector, event_folds
from gistrisk.survival.synthetic import make_tables


def _data(n=120, p=15, n_signal=2, effect=0.6, seed=1):
    tables, out, _ = make_tables(n, p={"r": p}, n_signal=n_signal, effect=effect, seed=seed, corr=0.0)
    X = Preprocessor(corr_threshold=None).fit(tables["r"]).transform(tables["r"])
    return X, out["time"].to_numpy(), out["event"].to_numpy()


def _loglik(eta, time, event):
    """Breslow partial log-likelihood, written out row by row (independent of gistrisk.survival.cox)."""
    return sum(eta[i] - np.log(np.exp(eta[time >= time[i]]).sum()) for i in np.flatnonzero(event))


def _reference_cv(X, t, e, alphas, folds):
    """glmnet's grouped Cox CV: per fold -2 (l_full - l_train) / events, event-weighted mean and SE."""
    A, y = X.to_numpy(), Surv.from_arrays(e.astype(bool), t)
    raw, w = [], []
    for tr, te in folds:
        B = CoxnetSurvivalAnalysis(l1_ratio=1.0, alphas=alphas).fit(A[tr], y[tr]).coef_
        assert B.shape[1] == len(alphas)
        d = [-2 * (_loglik(A @ b, t, e) - _loglik(A[tr] @ b, t[tr], e[tr])) for b in B.T]
        raw.append(np.array(d) / e[te].sum())
        w.append(e[te].sum())
    raw, w = np.array(raw), np.array(w, float)
    cvm = (w[:, None] * raw).sum(0) / w.sum()
    cvsd = np.sqrt((w[:, None] * (raw - cvm) ** 2).sum(0) / w.sum() / (len(w) - 1))
    return cvm, cvsd


def test_deviance_is_the_default_and_follows_cv_glmnet():
    X, t, e = _data()
    s = LassoCoxSelector(LassoConfig(cv_folds=4, n_alphas=12), seed=3).fit(X, t, e)
    assert s.details_["criterion"] == "deviance"
    cvm, cvsd = _reference_cv(X, t, e, np.array(s.alphas_), event_folds(e, 4, 3))
    np.testing.assert_allclose(s.cv_deviance_, cvm, rtol=1e-6)
    np.testing.assert_allclose(s.cv_se_, cvsd, rtol=1e-6)
    assert s.alpha_ == s.alphas_[int(np.argmin(cvm))]
    assert {"r_0000", "r_0001"} <= set(s.selected_)

    one = LassoCoxSelector(LassoConfig(cv_folds=4, n_alphas=12, one_se=True), seed=3).fit(X, t, e)
    best = int(np.argmin(cvm))
    expected = int(np.flatnonzero(cvm <= cvm[best] + cvsd[best])[0])  # largest alpha within one SE
    assert 0 < expected < best and one.alpha_ == s.alphas_[expected]
    assert {"r_0000", "r_0001"} <= set(one.selected_) < set(s.selected_)  # sparser, the signal kept


def test_cindex_criterion_is_kept():
    X, t, e = _data()
    s = LassoCoxSelector(LassoConfig(cv_folds=4, n_alphas=12, criterion="cindex"), seed=3).fit(X, t, e)
    assert s.details_["criterion"] == "cindex"
    assert s.alpha_ == s.alphas_[int(np.nanargmax(s.cv_c_index_))]
    assert s.details_["cv_c_index"] > 0.6


@pytest.mark.parametrize("criterion", ["deviance", "cindex"])
def test_empty_model_is_reported_not_replaced(criterion):
    # pure noise; with this seed both criteria prefer the largest penalty (no feature)
    X, t, e = _data(n=80, p=15, n_signal=0, seed=6)
    s = LassoCoxSelector(LassoConfig(cv_folds=3, n_alphas=20, criterion=criterion), seed=0).fit(X, t, e)
    assert s.empty_ and s.selected_ == [] and s.details_["empty"]
    assert s.alpha_ == s.alphas_[0]
    assert not np.any(s.coef_)


@pytest.mark.parametrize("key, value", [("criterion", "auc"), ("criterion", 1), ("one_se", "yes")])
def test_lasso_config_values_refused(key, value):
    with pytest.raises(InputError, match=rf"modality\.lasso\.{key}"):
        load_config(overrides={"modality": {"lasso": {key: value}}})


def test_selection_config_values():
    cfg = load_config()
    assert (cfg.modality.lasso.criterion, cfg.modality.lasso.one_se, cfg.modality.selection) == \
        ("deviance", False, "paper")
    assert load_config(overrides={"modalities": {"clinical": {"selection": "coxnet"}}}) \
        .for_modality("clinical").selection == "coxnet"
    with pytest.raises(InputError, match=r"modalities\.clinical\.selection must be paper or coxnet"):
        load_config(overrides={"modalities": {"clinical": {"selection": "glmnet"}}})
    with pytest.raises(InputError, match=r"modality\.selection.*lasso\.enabled"):
        load_config(overrides={"modality": {"selection": "coxnet", "lasso": {"enabled": False}}})
