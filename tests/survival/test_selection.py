import pytest

from gistrisk.survival.config import LassoConfig, RSFConfig, StepwiseConfig
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
