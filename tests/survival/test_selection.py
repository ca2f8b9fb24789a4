import numpy as np
import pytest
from sksurv import ensemble

from gistrisk.survival.config import LassoConfig, RSFConfig, StepwiseConfig
from gistrisk.survival.evaluation import as_surv
from gistrisk.survival.forest import RandomSurvivalForest
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.survival.selection import LassoCoxSelector, RSFSelector, StepwiseCoxSelector
from gistrisk.survival.synthetic import make_tables


def _data(p=200, n=200, seed=0):
    tables, out, _ = make_tables(n, p={"r": p}, n_signal=3, effect=0.8, seed=seed, corr=0.0)
    X = Preprocessor(corr_threshold=None).fit(tables["r"]).transform(tables["r"])
    return X, out["time"].to_numpy(), out["event"].to_numpy()


def test_lasso_keeps_signal_features_in_p_larger_than_n():
    X, t, e = _data(p=300, n=150)
    s = LassoCoxSelector(LassoConfig(cv_folds=3, n_alphas=25), seed=0).fit(X, t, e)
    assert {"r_0000", "r_0001", "r_0002"} <= set(s.selected_)
    assert len(s.selected_) <= 30
    assert s.details_["cv_c_index"] > 0.6


def test_rsf_importance_ranks_signal_first():
    X, t, e = _data(p=12)
    s = RSFSelector(RSFConfig(n_estimators=50, cv_folds=3, n_repeats=1, top_k=4), seed=0).fit(X, t, e)
    top = sorted(s.importances_, key=s.importances_.get, reverse=True)[:3]
    assert set(top) == {"r_0000", "r_0001", "r_0002"}
    assert len(s.selected_) <= 4


@pytest.mark.parametrize("settings", [{"min_samples_leaf": 5, "max_features": "sqrt", "random_state": 0},
                                      {"min_samples_leaf": 3, "max_features": 0.5, "random_state": 7,
                                       "max_depth": 4},
                                      {"min_samples_leaf": 2, "bootstrap": False, "random_state": 3},
                                      {"min_samples_leaf": 4, "oob_score": True, "random_state": 5},
                                      {"min_samples_leaf": 5, "random_state": 1, "n_jobs": 2}])
def test_the_forest_grows_scikit_survivals_trees(settings):
    """Bit for bit scikit-survival's RandomSurvivalForest: every split, every prediction."""
    X, t, e = _data(p=12, n=120, seed=2)
    A, y = X.to_numpy(float), as_surv(t, e)
    ours = RandomSurvivalForest(n_estimators=30, **settings).fit(A[:90], y[:90])
    ref = ensemble.RandomSurvivalForest(n_estimators=30, **settings).fit(A[:90], y[:90])
    for a, b in zip(ours.estimators_, ref.estimators_, strict=True):
        assert a.random_state == b.random_state and a.get_params() == b.get_params()
        for field in ("feature", "threshold", "n_node_samples", "value"):
            np.testing.assert_array_equal(getattr(a.tree_, field), getattr(b.tree_, field))
    assert getattr(ours, "oob_score_", None) == getattr(ref, "oob_score_", None)
    for forest in (ours, ref):  # trees added in one thread: several threads add them in any order
        forest.set_params(n_jobs=1)
    np.testing.assert_array_equal(ours.predict(A[90:]), ref.predict(A[90:]))
    np.testing.assert_array_equal(ours.predict_cumulative_hazard_function(A[90:], return_array=True),
                                  ref.predict_cumulative_hazard_function(A[90:], return_array=True))


@pytest.mark.parametrize("bad", [{"n_estimators": 0}, {"min_samples_leaf": 0}, {"n_estimators": 2.5}])
def test_rsf_settings_built_in_python_are_still_validated(bad):
    """The trees skip scikit-learn's parameter checks (speed); the forest still refuses a bad setting."""
    X, t, e = _data(p=5, n=40)
    with pytest.raises(ValueError, match="parameter of RandomSurvivalForest must be"):
        RSFSelector(RSFConfig(**bad), seed=0).fit(X, t, e)

def test_stepwise_forward_aic_and_backward_p():
    X, t, e = _data(p=8)
    fwd = StepwiseCoxSelector(StepwiseConfig(direction="forward", max_features=5)).fit(X, t, e)
    assert {"r_0000", "r_0001", "r_0002"} <= set(fwd.selected_)
    bwd = StepwiseCoxSelector(StepwiseConfig(direction="backward", criterion="p", max_features=3)).fit(X, t, e)
    assert set(bwd.selected_) == {"r_0000", "r_0001", "r_0002"}


def test_stepwise_respects_event_cap():
    X, t, e = _data(p=8)
    s = StepwiseCoxSelector(StepwiseConfig(max_features=5), max_features=2).fit(X, t, e)
    assert len(s.selected_) <= 2
