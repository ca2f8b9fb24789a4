"""A modality whose cross-validated LASSO prefers the empty model carries no signal: no feature, score 0."""

import json
import logging

import numpy as np
import pytest

from gistrisk.survival.config import load_config
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.synthetic import make_tables


@pytest.fixture(scope="module")
def cfg(fast):
    return load_config(overrides=fast).modality


@pytest.mark.parametrize("selection, pca", [("paper", None), ("coxnet", None), ("paper", 6)])
def test_pure_noise_gives_no_signal(fast, selection, pca, caplog):
    # pure noise; with this seed the cross-validated LASSO prefers the largest penalty
    tables, out, _ = make_tables(80, p={"r": 15}, n_signal=0, seed=6, corr=0.0)
    cfg = load_config(overrides={**fast, "modality": {**fast["modality"], "selection": selection,
                                                      "cluster": {"enabled": True},
                                                      "preprocess": {"pca_components": pca}}}).modality
    with caplog.at_level(logging.WARNING):
        p = ModalityPipeline("r", cfg, seed=0).fit(tables["r"], out["time"], out["event"])
    assert p.no_signal_ and p.selected_ == [] and p.cutoff_ == 0.0 and p.clusters_ is None
    assert "empty model" in p.warnings_[-1] and "empty model" in caplog.text
    assert "rsf" not in p.steps_ and "stepwise" not in p.steps_
    np.testing.assert_array_equal(p.score(tables["r"]), np.zeros(80))
    assert p.hazard_ratios().empty
    # the null Cox: Nelson-Aalen baseline, survival the same for everyone
    assert p.cox_.coef.shape == (0,) and len(p.cox_.baseline_time) == out.loc[out.event == 1, "time"].nunique()
    d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
    assert d["no_signal"] is True and d["selected"] == []
    assert d["cox"]["coef"] == d["cox"]["se"] == d["cox"]["mean"] == []
    q = ModalityPipeline.from_dict(d)
    assert q.no_signal_
    np.testing.assert_array_equal(q.score(tables["r"].iloc[:7]), np.zeros(7))


def test_strong_signal_keeps_features(cfg):
    tables, out, _ = make_tables(80, p={"r": 15}, n_signal=2, effect=1.0, seed=6, corr=0.0)
    p = ModalityPipeline("r", cfg, seed=0).fit(tables["r"], out["time"], out["event"])
    assert not p.no_signal_ and {"r_0000", "r_0001"} <= set(p.selected_)
    assert ModalityPipeline.from_dict(p.to_dict()).no_signal_ is False
    assert np.std(p.score(tables["r"])) > 0.5
