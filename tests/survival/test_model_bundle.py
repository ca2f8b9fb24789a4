import json

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import BundleError
from gistrisk.survival.evaluation import harrell_c
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import fit_multimodal


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, fast):
    from gistrisk.survival.config import load_config

    tables, out, lp = make_tables(160, p={"clinical": 8, "radiomics": 40, "pathology": 40}, seed=6,
                                  missing={"pathology": 0.15})
    model = fit_multimodal(tables, out, load_config(overrides=fast))
    d = tmp_path_factory.mktemp("bundle")
    model.save(d)
    return model, d, tables, out


def test_bundle_is_json_and_round_trips(fitted):
    model, d, tables, _ = fitted
    raw = json.loads((d / "model.json").read_text())
    assert raw["schema_version"] == 1 and raw["modalities"] == ["clinical", "pathology", "radiomics"]
    assert "versions" in raw["info"] and raw["info"]["parameters"]["seed"] == 0
    loaded = MultimodalRiskModel.load(d)
    t = {k: v.reset_index() for k, v in tables.items()}
    pd.testing.assert_frame_equal(model.predict(t), loaded.predict(t))


def test_bundle_carries_the_out_of_fold_scores(fitted, tmp_path):
    """The scores the fusion Cox was fitted on travel in model.json (NaN where a modality is missing)."""
    model, d, tables, out = fitted
    assert [p.name for p in d.iterdir()] == ["model.json"]
    oof = model.oof_scores_
    assert list(oof.index) == list(out.index) and list(oof.columns) == ["clinical", "pathology", "radiomics"]
    assert oof["pathology"].isna().sum() == len(out) - len(tables["pathology"])
    pd.testing.assert_frame_equal(MultimodalRiskModel.load(d).oof_scores_, oof)
    pd.testing.assert_frame_equal(MultimodalRiskModel.from_dict(model.to_dict()).oof_scores_, oof)
    raw = json.loads((d / "model.json").read_text())
    raw["oof_scores"]["scores"]["clinical"].pop()
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="oof_scores"):
        MultimodalRiskModel.load(tmp_path)


def test_missing_modality_predicted_from_present_ones_and_flagged(fitted):
    model, d, tables, _ = fitted
    pred = model.predict({"clinical": tables["clinical"].reset_index(), "radiomics": tables["radiomics"].reset_index()})
    assert pred["partial"].all()
    assert (pred["fusion_model"] == "clinical+radiomics").all()
    assert pred["risk"].notna().all() and pred["score_pathology"].isna().all()
    full = model.predict({k: v.reset_index() for k, v in tables.items()})
    has_all = full["score_pathology"].notna()
    assert not full.loc[has_all, "partial"].any() and full.loc[~has_all, "partial"].all()


def test_predictions_are_sensible(fitted):
    model, _, tables, out = fitted
    pred = model.predict({k: v.reset_index() for k, v in tables.items()}).set_index("patient_id")
    assert ((pred["rfs_12"] >= pred["rfs_36"]) & (pred["rfs_36"] >= pred["rfs_60"])).all()
    assert set(pred["risk_group"]) == {"low", "high"}
    assert pred.loc[pred.risk_group == "high", "rfs_36"].mean() < pred.loc[pred.risk_group == "low", "rfs_36"].mean()
    assert harrell_c(out.loc[pred.index, "time"], out.loc[pred.index, "event"], pred["risk"]) > 0.7


def test_fusion_beats_each_modality_in_cv(fitted):
    model = fitted[0]
    cv = model.cv_metrics_
    assert cv["fusion"]["c_index"] > max(cv[m]["c_index"] for m in model.modalities_)
    for k in ("clinical", "radiomics", "pathology", "fusion", "early_fusion"):
        lo, hi = cv[k]["c_index_ci"]
        assert lo < cv[k]["c_index"] < hi


def test_missing_corrupt_and_newer_bundles_refused(fitted, tmp_path):
    _, d, _, _ = fitted
    with pytest.raises(BundleError, match="no model bundle"):
        MultimodalRiskModel.load(tmp_path / "nowhere")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="corrupt"):
        MultimodalRiskModel.load(tmp_path)
    raw = json.loads((d / "model.json").read_text())
    raw["schema_version"] = 99
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="newer"):
        MultimodalRiskModel.load(tmp_path)
    raw["schema_version"] = 1
    del raw["pipelines"]["clinical"]["cox"]
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError, match="incomplete or corrupt"):
        MultimodalRiskModel.load(tmp_path)


def test_clustering_is_frozen_and_applies_to_new_rows(fitted):
    model, _, tables, _ = fitted
    p = model.pipelines_["pathology"]  # clustering on by default for pathology, as in the paper
    assert len(p.clusters_["centers"]) == 2
    lab = p.cluster(tables["pathology"])
    assert set(np.unique(lab)) == {0, 1}
    assert (p.cluster(tables["pathology"].iloc[:5]) == lab[:5]).all()


def test_validate_tests_frozen_clusters_by_logrank(fitted):
    from gistrisk.survival.validate import validate

    model, _, tables, out = fitted
    metrics, pred = validate(model, {k: v.reset_index() for k, v in tables.items()}, out, bootstrap=50)
    cl = metrics["pathology"]["clusters"]
    assert set(cl["km"]) == {"0", "1"} and 0 <= cl["logrank_p"] <= 1
    assert "clusters" not in metrics["radiomics"]
    assert metrics["fusion"]["n"] == int((~pred["partial"]).sum())


def test_predict_from_scores_equals_predict(fitted):
    model, _, tables, _ = fitted
    t = {k: v.reset_index() for k, v in tables.items()}
    S = model.scores(t)
    pd.testing.assert_frame_equal(model.predict_from_scores(S, tables=t), model.predict(t))
    scores_only = model.predict_from_scores(S)  # flags the scores alone
    assert (scores_only["out_of_distribution"].str.count("score=") <=
            model.predict(t)["out_of_distribution"].str.count("score=")).all()
    S2 = S.copy()
    S2["score_pathology"] = np.nan
    part = model.predict_from_scores(S2)
    assert part["partial"].all() and (part["fusion_model"] == "clinical+radiomics").all()
    np.testing.assert_allclose(model.predict_survival_from_scores(S, [12, 36]).to_numpy(),
                               model.predict(t)[["rfs_12", "rfs_36"]].to_numpy())


def test_same_seed_same_model_and_numbers(fitted, fast):
    from gistrisk.survival.config import load_config

    model, _, tables, out = fitted
    again = fit_multimodal(tables, out, load_config(overrides=fast))
    a, b = model.to_dict(), again.to_dict()
    for d in (a, b):
        d["info"].pop("created")
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
