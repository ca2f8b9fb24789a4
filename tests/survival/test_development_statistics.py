"""Development figures a reviewer would sign: cross-validated risk groups, same-patient comparisons,
calibration only where patients are at risk, stored cut-offs, proportional hazards, model card,
treatment variables kept out of the risk model."""

import logging

import numpy as np
import pandas as pd
import pytest

from gistrisk.survival.config import load_config
from gistrisk.survival.evaluation import calibration, km_logrank
from gistrisk.survival.fusion import fit_fusion
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import assign_folds, fit_multimodal, ph_test
from gistrisk.survival.validate import validate


@pytest.fixture(scope="module")
def fitted(fast):
    tables, out, _ = make_tables(150, p={"clinical": 6, "radiomics": 30, "pathology": 30}, seed=2,
                                 missing={"pathology": 0.2}, n_signal=2, effect=0.5)
    clin = tables["clinical"]
    # treatment given to high-risk patients: a strong but confounded "risk factor"
    clin["adjuvant_tki"] = (clin["cli_0000"] + clin["cli_0001"] > 0.5).astype(int)
    cfg = load_config(overrides=fast)
    return fit_multimodal(tables, out, cfg), tables, out, cfg


def test_development_risk_groups_are_cross_validated(fitted):
    model, _, out, cfg = fitted
    cv = model.cv_metrics_
    oof = model.oof_scores_[model.modalities_].dropna()
    y = out.loc[oof.index]
    folds = assign_folds(out, cfg.fusion.oof_folds, cfg.seed).loc[oof.index].to_numpy()
    groups = pd.Series("", index=oof.index)
    for k in np.unique(folds):
        tr, te = folds != k, folds == k
        fz = fit_fusion(model.modalities_, oof.to_numpy()[tr], y["time"].to_numpy()[tr], y["event"].to_numpy()[tr])
        groups[te] = np.where(fz.risk(oof.to_numpy()[te]) > fz.cutoff, "high", "low")
    expected = km_logrank(y["time"], y["event"], groups.to_numpy())["logrank_p"]
    assert cv["fusion"]["logrank_p"] == pytest.approx(expected, rel=1e-9)
    assert model.group_curves_["logrank_p"] == pytest.approx(expected, rel=1e-9)
    assert model.group_curves_["cross_validated"] is True


def test_unimodal_c_also_on_the_fusion_patients(fitted):
    model, _, _, _ = fitted
    same = model.cv_metrics_["same_patients_as_fusion"]
    n = model.cv_metrics_["fusion"]["n"]
    assert set(same) == {"clinical", "pathology", "radiomics", "fusion"}
    assert all(v["n"] == n for v in same.values())
    assert model.cv_metrics_["radiomics"]["n"] > n  # everyone with radiomics, beside the fusion patients


def test_treatment_variables_are_left_out_by_default_and_included_on_request(fitted, fast, caplog):
    model, tables, out, _ = fitted
    assert model.info_["treatment"] == {"setting": "exclude", "included": [], "excluded": ["adjuvant_tki"]}
    assert "adjuvant_tki" not in model.input_columns_["clinical"]
    with caplog.at_level(logging.WARNING):
        inc = fit_multimodal({"clinical": tables["clinical"]}, out,
                             load_config(overrides={**fast, "treatment": "include"}))
    assert inc.info_["treatment"]["included"] == ["adjuvant_tki"]
    assert "confounded by indication" in caplog.text


def test_calibration_is_not_estimated_where_nobody_is_at_risk():
    rng = np.random.default_rng(0)
    n = 80
    pred = np.r_[np.full(20, 0.3), rng.uniform(0.6, 0.9, n - 20)]
    time = np.r_[rng.uniform(5, 40, 20), rng.uniform(10, 90, n - 20)]   # the worst group: nobody followed to 60
    event = np.r_[np.zeros(20, int), rng.integers(0, 2, n - 20)]          # ... and all censored
    cal = calibration(pred, time, event, 60.0)
    worst = cal["groups"][0]
    assert worst["n_at_risk"] == 0 and worst["estimable"] is False
    assert worst["observed"] is None and worst["observed_ci"] == [None, None]
    assert cal["not_estimable"] == [0]
    others = cal["groups"][1:]
    assert sum(g["n_at_risk"] for g in others) == int((time[20:] >= 60).sum())
    assert all(g["estimable"] and 0 <= g["observed"] <= 1 for g in others)


def test_validation_leaves_numpys_error_state_alone(fitted):
    """Kaplan-Meier (curves, calibration) no longer goes through lifelines, whose estimator switches numpy's
    divide/invalid warnings off for the whole process: in the Slicer module's Python too."""
    model, tables, out, _ = fitted
    with np.errstate(all="warn"):
        validate(model, {m: df.reset_index() for m, df in tables.items()}, out, bootstrap=20)
        assert np.geterr() == {"divide": "warn", "over": "warn", "under": "warn", "invalid": "warn"}


def test_early_fusion_groups_use_the_training_cut_off(fitted):
    model, tables, out, _ = fitted
    cut = model.early_fusion_["cutoff"]
    ext = {m: df.reset_index() for m, df in tables.items()}
    metrics, _ = validate(model, ext, out, bootstrap=20)
    risk = model.early_fusion_risk(ext)
    high = int((risk > cut).sum())
    assert metrics["early_fusion"]["at_risk"]["high"][0] == high


def test_proportional_hazards_check_flags_crossing_hazards():
    rng = np.random.default_rng(3)
    n = 400
    x_ph = rng.normal(size=n)
    x_cross = rng.integers(0, 2, n).astype(float)
    # x_cross = 1: early events then none (hazard ratio flips over time)
    t = np.where(x_cross == 1, rng.exponential(8, n), rng.exponential(30, n) + 15) * np.exp(-0.5 * x_ph)
    e = (t < 60).astype(int)
    t = np.minimum(t, 60)
    res = ph_test(np.c_[x_ph, x_cross], t, e, ["ph", "crossing"], penalizer=0.0)
    assert res["p"]["crossing"] < 0.001 and "crossing" in res["violated_at_0.05"]
    assert res["p"]["ph"] > 0.05


def test_proportional_hazards_check_leaves_a_constant_score_out_and_names_it():
    """A modality without signal scores 0 for everyone: the fusion's check tests the other scores and names the
    constant one, instead of failing as a whole (lifelines cannot fit a constant covariate)."""
    rng = np.random.default_rng(3)
    n = 200
    x = rng.normal(size=n)
    t, e = rng.exponential(20, n) * np.exp(-0.5 * x), (rng.random(n) < 0.7).astype(int)
    res = ph_test(np.c_[x, np.zeros(n)], t, e, ["clinical", "radiomics"], penalizer=0.1)
    assert "error" not in res and set(res["p"]) == {"clinical"} and res["constant"] == ["radiomics"]
    only = ph_test(np.zeros((n, 1)), t, e, ["radiomics"], penalizer=0.1)
    assert "error" not in only and only["p"] == {} and only["constant"] == ["radiomics"] and only["min_p"] is None


def test_ph_checks_and_model_card_are_in_the_bundle(fitted):
    model, tables, _, _ = fitted
    ph = model.cv_metrics_["proportional_hazards"]
    assert set(ph) == {"clinical", "pathology", "radiomics", "fusion"}
    assert set(ph["fusion"]["p"]) == {"clinical", "pathology", "radiomics"}
    assert all(0 <= p <= 1 for r in ph.values() for p in r["p"].values())
    card = model.info_["model_card"]
    assert card["n"] == 150 and card["events"] == int(fitted[2]["event"].sum())
    for m in model.modalities_:
        for c in model.pipelines_[m].preprocessor_.numeric_:
            v = tables[m][c]
            assert card["input_ranges"][m][c]["min"] == pytest.approx(v.min())
            assert card["input_ranges"][m][c]["max"] == pytest.approx(v.max())


def test_predict_names_inputs_and_scores_outside_the_development_range(fitted):
    model, tables, _, _ = fitted
    c = model.pipelines_["clinical"].preprocessor_.numeric_[0]
    new = {m: t.iloc[:3].copy() for m, t in tables.items()}
    v = tables["clinical"][c]
    new["clinical"].loc[new["clinical"].index[1], c] = v.max() + 2 * v.std()
    pred = model.predict({m: t.reset_index() for m, t in new.items()}).set_index("patient_id")
    flags = pred["out_of_distribution"]
    pid = new["clinical"].index[1]
    assert f"clinical:{c}=" in flags[pid] and "2.0 SD above" in flags[pid]
    assert "development" in flags[pid]
    assert model.info_["model_card"]["score_ranges"]["clinical"]["max"] >= pred["score_clinical"].drop(pid).max()
    score = pred.loc[pid, "score_clinical"]
    assert ("clinical score=" in flags[pid]) == (score > model.info_["model_card"]["score_ranges"]["clinical"]["max"])


def test_a_modality_without_signal_leaves_the_fusion_and_says_so(fast, caplog):
    tables, out, _ = make_tables(150, p={"clinical": 6, "radiomics": 30}, seed=2, n_signal=2, effect=0.5)
    rng = np.random.default_rng(0)
    tables["noise"] = pd.DataFrame(rng.normal(size=(150, 20)), index=out.index,
                                   columns=[f"n{i}" for i in range(20)])
    with caplog.at_level(logging.WARNING):
        model = fit_multimodal(tables, out, load_config(overrides=fast))
    assert "noise" in model.info_["no_signal"] and "empty model" in model.info_["no_signal"]["noise"]
    assert model.modalities_ == ["clinical", "radiomics"] and "noise" not in model.main_fusion.modalities
    assert "carries no signal" in caplog.text and "leaves the fusion" in caplog.text
    assert "no feature selected" in model.cv_metrics_["noise"]["no_signal"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        pred = model.predict({m: df.reset_index() for m, df in tables.items()})
    assert not pred["partial"].any() and pred["risk"].notna().all()
    assert "'noise' carried no signal" in caplog.text
