"""The fast Cox fitter against scikit-survival and lifelines on real data sets."""

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from sksurv.column import encode_categorical
from sksurv.datasets import load_veterans_lung_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis

from gistrisk.survival.cox import cox_with_coef, fit_cox, partial_loglik
from gistrisk.survival.evaluation import harrell_c


@pytest.fixture(scope="module")
def veteran():
    X, y = load_veterans_lung_cancer()
    return encode_categorical(X).astype(float), y["Survival_in_days"], y["Status"]


def test_coefficients_equal_scikit_survival_breslow(veteran):
    X, t, e = veteran
    ours = fit_cox(X.to_numpy(), t, e)
    ref = CoxPHSurvivalAnalysis(ties="breslow").fit(X, np.rec.fromarrays([e, t], names="e,t"))
    np.testing.assert_allclose(ours.coef, ref.coef_, atol=1e-7)
    assert ours.converged


def test_veteran_c_index_matches_documented_value(veteran):
    # scikit-survival's user guide: Cox on the one-hot veteran data, C = 0.736 on the training data
    X, t, e = veteran
    r = fit_cox(X.to_numpy(), t, e)
    assert round(harrell_c(t, e, r.linear_predictor(X.to_numpy())), 3) == 0.736


def test_standard_errors_close_to_lifelines(veteran):
    X, t, e = veteran
    r = fit_cox(X.to_numpy(), t, e)
    df = X.assign(T=t, E=e.astype(int))
    lf = CoxPHFitter().fit(df, "T", "E")  # Efron ties: close to, not equal to, Breslow
    np.testing.assert_allclose(r.se, lf.standard_errors_.to_numpy(), rtol=0.02)


def test_survival_function_equals_scikit_survival(veteran):
    X, t, e = veteran
    r = fit_cox(X.to_numpy(), t, e)
    ref = CoxPHSurvivalAnalysis(ties="breslow").fit(X, np.rec.fromarrays([e, t], names="e,t"))
    times = np.array([10.0, 100.0, 400.0])
    ours = r.survival(X.to_numpy()[:5], times)
    theirs = np.array([[f(s) for s in times] for f in ref.predict_survival_function(X.iloc[:5])])
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_ridge_penalty_shrinks(veteran):
    X, t, e = veteran
    free, pen = fit_cox(X.to_numpy(), t, e), fit_cox(X.to_numpy(), t, e, penalizer=10.0)
    assert np.linalg.norm(pen.coef) < 0.5 * np.linalg.norm(free.coef)


def test_handles_tied_times_and_no_covariates():
    t = np.array([1, 1, 2, 2, 3, 4.0])
    e = np.array([1, 1, 0, 1, 1, 0])
    r = fit_cox(np.zeros((6, 0)), t, e)
    assert r.coef.shape == (0,)
    # Nelson-Aalen at t=1: 2 events / 6 at risk
    assert r.baseline_cumhaz[0] == pytest.approx(2 / 6)


def _tie_free(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 3.0, 0.5]
    t = rng.exponential(np.exp(-(X @ [0.8, -0.2, 0.6])))
    e = (rng.uniform(size=n) < 0.8).astype(int)
    return X, t, e


def test_ridge_penalizer_is_lifelines_penalizer_times_n():
    """fit_cox(penalizer=p) == CoxPHFitter(penalizer=p / n) on unit sample-SD covariates (no tied times, so
    Efron = Breslow); lifelines standardises columns itself and multiplies its penalty by n."""
    X, t, e = _tie_free()
    n = len(t)
    Zs = (X - X.mean(0)) / X.std(0, ddof=1)  # unit sample SD, as lifelines' internal scaling
    Z0 = (X - X.mean(0)) / X.std(0)  # the pipeline's z-scores (ddof=0)
    for p in (2.0, 20.0):
        for Z, lp in ((Zs, p / n), (Z0, p * (n - 1) / n**2)):
            df = pd.DataFrame(Z, columns=["a", "b", "c"]).assign(T=t, E=e)
            lf = CoxPHFitter(penalizer=lp, l1_ratio=0.0).fit(df, "T", "E").params_.to_numpy()
            np.testing.assert_allclose(fit_cox(Z, t, e, penalizer=p).coef, lf, atol=2e-4)
        df = pd.DataFrame(Zs, columns=["a", "b", "c"]).assign(T=t, E=e)
        same = CoxPHFitter(penalizer=p, l1_ratio=0.0).fit(df, "T", "E").params_.to_numpy()
        assert np.abs(fit_cox(Zs, t, e, penalizer=p).coef - same).max() > 0.1  # not lifelines' penalizer as is


def test_constant_column_gets_zero_coefficient_and_the_others_keep_their_fit():
    X, t, e = _tie_free()
    alone = fit_cox(X, t, e)
    with_zero = fit_cox(np.c_[X, np.zeros(len(t))], t, e)  # e.g. the score of a modality without signal
    np.testing.assert_allclose(with_zero.coef, np.r_[alone.coef, 0.0], atol=1e-12)
    np.testing.assert_allclose(with_zero.se[:3], alone.se)
    assert np.isnan(with_zero.se[3]) and with_zero.loglik == pytest.approx(alone.loglik)


def test_partial_loglik_and_fixed_coefficients_match_the_fit(veteran):
    X, t, e = veteran
    A = X.to_numpy()
    r = fit_cox(A, t, e)
    eta = r.linear_predictor(A)
    assert partial_loglik(eta, t, e) == pytest.approx(r.loglik)
    np.testing.assert_allclose(partial_loglik(np.c_[eta, 0 * eta], t, e), [r.loglik, fit_cox(A[:, :0], t, e).loglik])
    fixed = cox_with_coef(A, t, e, r.coef)
    np.testing.assert_allclose(fixed.baseline_cumhaz, r.baseline_cumhaz)
    assert fixed.loglik == pytest.approx(r.loglik) and np.isnan(fixed.se).all()
