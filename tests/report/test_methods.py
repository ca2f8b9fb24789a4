"""Methods text and the deviations from the paper, generated from a model's recorded settings."""

import copy

import pytest

from gistrisk.report.methods import DEVIATIONS, deviations, methods_paragraphs


def _info(fitted) -> dict:
    return copy.deepcopy(fitted["model"].info_)


def _as_paper(info: dict) -> dict:
    """The recorded settings turned back to the paper's method wherever it is stated."""
    p = info["parameters"]
    for cfg in [p["modality"], *p["modalities"].values()]:
        cfg["preprocess"]["pca_components"] = None
        cfg["preprocess"]["log_skewed"] = None
        cfg["cox"]["penalizer"] = 0.0
        cfg["lasso"]["criterion"] = "cindex"
    p["fusion"]["cutoff"] = "maxstat"
    info["no_signal"] = {}
    info["treatment"] = {"setting": "include", "included": [], "excluded": []}
    return info


def test_one_list_with_paper_default_and_why():
    keys = [d.key for d in DEVIATIONS]
    assert len(keys) == len(set(keys))
    assert {"pca", "log1p", "ridge", "lasso_criterion", "no_signal", "treatment", "cutoff", "cv_fusion"} <= set(keys)
    for d in DEVIATIONS:
        assert d.topic and d.paper and d.why, d.key


def test_default_fit_departs_where_its_settings_do(fitted):
    got = {d["key"]: d for d in deviations(_info(fitted), fitted["model"].cv_metrics_)}
    assert {"pca", "log1p", "ridge", "cutoff", "cv_fusion"} <= set(got)
    assert "32 principal components" in got["pca"]["ours"] and "pathology" in got["pca"]["ours"]
    assert "clinical" in got["log1p"]["ours"] and "skewness above 1" in got["log1p"]["ours"]
    assert "0.5 × penalizer × Σβ²" in got["ridge"]["ours"] and "penalizer 0.1" in got["ridge"]["ours"]
    # nothing left out and no modality without signal in this fit: not claimed
    assert "treatment" not in got and "no_signal" not in got


def test_settings_as_the_paper_give_no_deviation(fitted):
    assert deviations(_as_paper(_info(fitted))) == []
    paras = " ".join(methods_paragraphs(_as_paper(_info(fitted))))
    assert "Deviations from the paper" not in paras


def test_each_setting_switches_its_own_deviation(fitted):
    base = _as_paper(_info(fitted))
    cases = {
        "pca": lambda p, i: p["modalities"]["pathology"]["preprocess"].update(pca_components=16),
        "log1p": lambda p, i: p["modalities"]["clinical"]["preprocess"].update(log_skewed=2.0),
        "ridge": lambda p, i: p["modality"]["cox"].update(penalizer=0.5),
        "lasso_criterion": lambda p, i: p["modality"]["lasso"].update(criterion="deviance"),
        "cutoff": lambda p, i: p["fusion"].update(cutoff="median"),
        "no_signal": lambda p, i: i.update(no_signal={"radiomics": "no feature selected"}),
        "treatment": lambda p, i: i.update(treatment={"setting": "exclude", "included": [],
                                                      "excluded": ["adjuvant_tki"]}),
    }
    for key, change in cases.items():
        info = copy.deepcopy(base)
        change(info["parameters"], info)
        assert [d["key"] for d in deviations(info)] == [key], key
    info = copy.deepcopy(base)
    cases["treatment"](info["parameters"], info)
    d = deviations(info)[0]
    assert "adjuvant_tki" in d["ours"] and "confounded by indication" in d["why"]
    info = copy.deepcopy(base)
    cases["no_signal"](info["parameters"], info)
    assert "radiomics" in deviations(info)[0]["ours"]


def test_lasso_criterion_is_named_from_the_settings(fitted):
    info = _info(fitted)
    for cfg in [info["parameters"]["modality"], *info["parameters"]["modalities"].values()]:
        cfg["lasso"].pop("criterion", None)  # a bundle from before lasso.criterion: the C-index rule
    assert "C-index" in methods_paragraphs(info)[0]
    assert "lasso_criterion" not in [d["key"] for d in deviations(info)]
    info["parameters"]["modality"]["lasso"]["criterion"] = "deviance"
    for cfg in info["parameters"]["modalities"].values():
        cfg["lasso"]["criterion"] = "deviance"
    text = methods_paragraphs(info)[0]
    assert "partial-likelihood deviance" in text and "C-index" not in text
    assert any(d["key"] == "lasso_criterion" for d in deviations(info))


def test_cross_validated_fusion_needs_the_evidence(fitted):
    cv = fitted["model"].cv_metrics_
    assert "cross-validated" in cv["fusion"]["risk_groups"]
    assert "cv_fusion" in [d["key"] for d in deviations(_as_paper(_info(fitted)), cv)]
    assert "cv_fusion" not in [d["key"] for d in deviations(_as_paper(_info(fitted)), {})]


def test_included_treatment_is_stated(fitted):
    info = _as_paper(_info(fitted))
    info["treatment"] = {"setting": "include", "included": ["adjuvant_tki"], "excluded": []}
    text = " ".join(methods_paragraphs(info))
    assert "adjuvant_tki" in text and "confounded by indication" in text


@pytest.mark.parametrize("value", [None, {}, {"parameters": None}])
def test_missing_settings_do_not_break(value):
    assert deviations(value or {}) == []


def test_the_radiomics_parameter_file_is_named_with_its_hash():
    info = {"parameters": {}, "extraction": {"radiomics": {"pyradiomics": "3.1.4", "params_file": "gist_ct_paper.yaml",
                                                           "params_sha256": "ab" * 32}}}
    text = " ".join(methods_paragraphs(info))
    assert f"PyRadiomics 3.1.4 and the parameter file gist_ct_paper.yaml (SHA-256 {'ab' * 32})" in text
