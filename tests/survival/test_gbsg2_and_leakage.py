"""Correctness on real data (GBSG2 recurrence-free survival, breast-cancer gene expression)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from gistrisk.survival.config import ModalityConfig, load_config
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.evaluation import harrell_c
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.survival.train import fit_multimodal


def test_gbsg2_plain_cox_reference(gbsg2):
    # the reference: Cox on all GBSG2 features gives about 0.67 on a 25% split
    X, out = gbsg2
    Xtr, Xte, ytr, yte = train_test_split(X, out, test_size=0.25, random_state=0)
    pre = Preprocessor(corr_threshold=None).fit(Xtr)
    r = fit_cox(pre.transform(Xtr).to_numpy(), ytr["time"], ytr["event"])
    c = harrell_c(yte["time"], yte["event"], r.linear_predictor(pre.transform(Xte).to_numpy()))
    assert 0.64 <= c <= 0.71


@pytest.mark.slow
def test_gbsg2_clinical_pipeline_held_out_c_index(gbsg2):
    X, out = gbsg2
    Xtr, Xte, ytr, yte = train_test_split(X, out, test_size=0.25, random_state=0)
    p = ModalityPipeline("clinical", ModalityConfig(), seed=0).fit(Xtr, ytr["time"], ytr["event"])
    assert p.score(Xte, yte["time"], yte["event"]) >= 0.64
    assert "pnodes" in p.selected_  # number of positive nodes is the known strongest predictor
    assert 1 <= len(p.selected_) <= 5


def _breast_p_gt_n(seed=0):
    from sksurv.datasets import load_breast_cancer

    X, y = load_breast_cancer()
    X = X.select_dtypes("number")
    rng = np.random.default_rng(seed)
    noise = pd.DataFrame(rng.normal(size=(len(X), 300)), columns=[f"noise_{i}" for i in range(300)])
    X = pd.concat([X.reset_index(drop=True), noise], axis=1)
    X.index = pd.Index([f"B{i:03d}" for i in range(len(X))], name="patient_id")
    out = pd.DataFrame({"time": y["t.tdm"] / 30.44, "event": y["e.tdm"].astype(int)}, index=X.index)
    return X, out


@pytest.mark.slow
def test_permuted_outcomes_give_chance_level_cv_c_index(fast):
    """Leakage detector: selection inside folds, so permuted outcomes give C near 0.5 (p >> n)."""
    X, out = _breast_p_gt_n()
    assert X.shape[1] > X.shape[0]
    rng = np.random.default_rng(42)
    perm = out.iloc[rng.permutation(len(out))].set_axis(out.index)
    cfg = load_config(overrides={**fast, "fusion": {"oof_folds": 5, "early_fusion": False}})
    model = fit_multimodal({"genes": X}, perm, cfg)
    c = model.cv_metrics_["genes"]["c_index"]
    assert abs(c - 0.5) <= 0.07, c
    # positive control: the same pipeline finds a planted signal at p >> n, so a C near 0.5 above
    # means "no leak", not "cannot learn"
    from gistrisk.survival.synthetic import make_tables

    tables, y, _ = make_tables(150, p={"r": 400}, n_signal=3, effect=0.7, seed=1, corr=0.0)
    planted = fit_multimodal(tables, y, cfg)
    assert planted.cv_metrics_["r"]["c_index"] > 0.65
