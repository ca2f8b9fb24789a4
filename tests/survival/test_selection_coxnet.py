"""``selection: coxnet``: the cross-validated Coxnet is the final model (no RSF, stepwise or refit)."""

import json

import numpy as np
from sksurv.linear_model import CoxnetSurvivalAnalysis
from sksurv.util import Surv

from gistrisk.survival.config import load_config
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.survival.synthetic import make_tables


def test_coxnet_pipeline_is_the_coxnet_at_the_cv_alpha(fast):
    tables, out, _ = make_tables(120, p={"r": 15}, n_signal=2, effect=0.8, seed=2, corr=0.3)
    X, t, e = tables["r"], out["time"].to_numpy(), out["event"].to_numpy()
    cfg = load_config(overrides={**fast, "modality": {**fast["modality"], "selection": "coxnet"}}).modality
    p = ModalityPipeline("r", cfg, seed=0).fit(X, t, e)
    assert not p.no_signal_ and "coxnet" in p.steps_
    assert not {"lasso", "rsf", "stepwise"} & set(p.steps_)
    alpha = p.steps_["coxnet"]["alpha"]

    pre = cfg.preprocess
    Z = Preprocessor(corr_threshold=pre.corr_threshold, log_skewed=pre.log_skewed).fit(X).transform(X)
    ref = CoxnetSurvivalAnalysis(l1_ratio=cfg.lasso.l1_ratio, n_alphas=cfg.lasso.n_alphas,
                                 alpha_min_ratio=cfg.lasso.alpha_min_ratio, fit_baseline_model=True)
    ref.fit(Z.to_numpy(), Surv.from_arrays(e.astype(bool), t))
    assert np.isclose(ref.alphas_, alpha).sum() == 1
    j = int(np.flatnonzero(np.isclose(ref.alphas_, alpha))[0])
    coef = ref.coef_[:, j]
    assert p.selected_ == [c for c, b in zip(Z.columns, coef) if b != 0]
    assert {"r_0000", "r_0001"} <= set(p.selected_)
    np.testing.assert_allclose(p.cox_.coef, coef[coef != 0], atol=1e-6)
    diff = p.score(X) - ref.predict(Z.to_numpy(), alpha=alpha)  # equal up to centring
    assert np.ptp(diff) < 1e-6
    # Breslow baseline for the fixed Coxnet coefficients: the same survival curves as scikit-survival's
    times = np.quantile(t, [0.2, 0.5, 0.8])
    ours = p.cox_.survival(p.preprocessor_.transform(X.iloc[:5]).to_numpy(), times)
    theirs = np.array([[f(s) for s in times] for f in ref.predict_survival_function(Z.to_numpy()[:5], alpha=alpha)])
    np.testing.assert_allclose(ours, theirs, atol=1e-6)

    hr = p.hazard_ratios()
    np.testing.assert_allclose(hr["coef"], p.cox_.coef)
    assert hr["p"].isna().all()  # a penalised coefficient has no Wald p-value
    d = p.to_dict()
    assert d["selection"] == "coxnet" and d["no_signal"] is False
    q = ModalityPipeline.from_dict(json.loads(json.dumps(d)))
    np.testing.assert_allclose(q.score(X), p.score(X))
