"""The fast Cox fitter against scikit-survival and lifelines on real data sets."""

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from sksurv.column import encode_categorical
from sksurv.datasets import load_veterans_lung_cancer
from sksurv.linear_model import CoxPHSurvivalAnalysis

from gistrisk.survival.cox import fit_cox
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
