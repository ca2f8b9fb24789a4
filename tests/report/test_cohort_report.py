"""The cohort report from a real fit + validate: self-contained, every section, the numbers it must show."""

import base64
import copy
import html as htmllib
import re

import numpy as np
import pandas as pd
import pytest

from gistrisk.report import plots, write_cohort_report
from gistrisk.report.cohort_report import SECTIONS, dca_tables, development_checks
from gistrisk.report.render import external_references
from gistrisk.survival.train import ph_test

FIGURES = ("forest", "cindex", "km", "tdauc", "calibration", "dca", "nomogram")


@pytest.mark.slow
def test_self_contained_with_every_section(report):
    path, html, _ = report
    assert external_references(html) == []
    imgs = re.findall(r'<img[^>]*src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == len(FIGURES)
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    for i, heading in enumerate(SECTIONS.values(), 1):
        assert f"{i}. {heading}" in html


def test_external_reference_detector():
    assert external_references('<img src="https://x.org/a.png"><a href="#km">k</a>') == ["https://x.org/a.png"]
    assert external_references('<link href="style.css"><img src="data:image/png;base64,AAA">') == ["style.css"]


@pytest.mark.slow
def test_c_index_numbers_formula_and_table_one(report, fitted, section):
    _, html, _ = report
    model, metrics = fitted["model"], fitted["metrics"]
    assert {"clinical", "radiomics", "pathology", "fusion", "early_fusion", "modified_nih"} <= set(metrics)
    for name, m in metrics.items():
        lo, hi = m["c_index_ci"]
        assert f"{m['c_index']:.3f}" in html and f"{lo:.3f}–{hi:.3f}" in html, name
    for name, m in model.cv_metrics_.items():
        if isinstance(m, dict) and "c_index" in m:
            assert f"{m['c_index']:.3f}" in html, name
    # summaries in cv_metrics (same_patients_as_fusion, proportional_hazards, ...) are not models
    rows = re.findall(r"<tr(?: class=\"main\")?><td>([^<]+)</td>", section(html, "cindex"))
    assert set(rows) == {"Clinical", "Radiomics", "Pathomics", "Early fusion", "Late fusion",
                         "Late fusion (incl. partial)", "Modified NIH"}
    assert model.main_fusion.formula() in html
    for f in model.fusion_.values():  # every subset model for patients missing a modality
        assert f.formula() in html
    ydev, yext = fitted["ydev"], fitted["yext"]
    ev = int(ydev["event"].sum())
    assert f"{ev} ({100 * ev / len(ydev):.1f}%)" in html
    n_val = len(fitted["pred"])
    ev_val = int(yext.loc[fitted["pred"]["patient_id"], "event"].sum())
    assert f"{ev_val} ({100 * ev_val / n_val:.1f}%)" in html
    partial = int(fitted["pred"]["partial"].sum())
    assert partial > 0 and f"{partial} predicted" in html
    # the development NIH C-index is computed when the development clinical table is given
    assert re.search(r"Modified NIH</td>\s*<td class=\"num\">0\.\d{3}</td>", html)
    assert "ab" * 32 in html and "50 bootstrap resamples" in html and "seed 0" in html
    assert "development cohort (out-of-fold scores)" in html


@pytest.mark.slow
def test_decision_curve_uses_km_and_one_minus_rfs(fitted):
    from lifelines import KaplanMeierFitter

    pred = fitted["pred"].set_index("patient_id")
    y = fitted["yext"]
    nih = pred["modified_nih"].dropna()
    dca, n = dca_tables(pred, y, nih)
    assert set(dca) == {"36", "60"}
    ids = pred.index[pred["rfs_36"].notna() & pred["rfs_60"].notna()].intersection(nih.index)
    assert n == len(ids)
    s = float(KaplanMeierFitter().fit(y.loc[ids, "time"], y.loc[ids, "event"]).predict(36.0))
    assert dca["36"].loc[0.2, "treat all"] == pytest.approx((1 - s) - s * 0.25)
    # at a threshold below every predicted risk the model treats everyone: same as treat all (a
    # threshold chosen from the risks, so that this is checked whatever the default grid starts at)
    risk = 1 - pred.loc[ids, "rfs_36"]
    low, _ = dca_tables(pred, y, nih, thresholds=[risk.min() / 2])
    row = low["36"].iloc[0]
    assert 0 < low["36"].index[0] < risk.min()
    assert row["Late fusion model"] == pytest.approx(row["treat all"])
    treat_hi = (nih.loc[ids] == "high").to_numpy()
    s_hi = float(KaplanMeierFitter().fit(y.loc[ids, "time"][treat_hi], y.loc[ids, "event"][treat_hi]).predict(60.0))
    assert dca["60"].loc[0.3, "Modified NIH: treat high only"] == pytest.approx(
        treat_hi.mean() * ((1 - s_hi) - s_hi * 0.3 / 0.7))


@pytest.mark.slow
def test_figures_saved_as_png(report):
    _, _, figdir = report
    for name in FIGURES:
        data = (figdir / f"{name}.png").read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5000, name


def test_outcomes_without_time_are_refused(fitted, tmp_path):
    from gistrisk.errors import InputError

    with pytest.raises(InputError, match="time"):
        write_cohort_report(tmp_path / "r.html", model=fitted["model"], metrics=fitted["metrics"],
                            predictions=fitted["pred"], outcomes=fitted["yext"].drop(columns="time"))
    assert not (tmp_path / "r.html").exists()


def test_predictions_that_do_not_match_are_refused(fitted, tmp_path):
    from gistrisk.errors import InputError

    pred = fitted["pred"].copy()
    with pytest.raises(InputError, match="no predicted patient has an outcome"):
        write_cohort_report(tmp_path / "r.html", model=fitted["model"], metrics=fitted["metrics"],
                            predictions=pred.assign(patient_id="Z" + pred["patient_id"]), outcomes=fitted["yext"])
    with pytest.raises(InputError, match="risk"):
        write_cohort_report(tmp_path / "r.html", model=fitted["model"], metrics=fitted["metrics"],
                            predictions=pred.drop(columns="risk"), outcomes=fitted["yext"])
    # the caller's tables are not modified
    assert fitted["pred"].equals(pred) and "patient_id" in fitted["pred"].columns


@pytest.mark.slow
def test_same_inputs_give_the_same_report(report, fitted, tmp_path):
    _, first, _ = report
    again = write_cohort_report(
        tmp_path / "again.html", model=fitted["model"], metrics=fitted["metrics"], predictions=fitted["pred"],
        outcomes=fitted["yext"], clinical=fitted["ext"]["clinical"], dev_outcomes=fitted["ydev"],
        dev_clinical=fitted["dev"]["clinical"], title="Test report", bootstrap=50, validation_seed=0,
        extra_hashes={"radiomics params": "ab" * 32})
    second = htmllib.unescape(again.read_text(encoding="utf-8"))
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00")
    assert stamp.sub("T", first) == stamp.sub("T", second)  # figures included, byte for byte


@pytest.mark.slow
def test_hazard_ratios_are_labelled_post_selection_and_descriptive(report, fitted, section):
    _, html, _ = report
    sec = section(html, "features")
    # in-sample Wald statistics after selecting from thousands of features: not inferential
    assert "post-selection" in sec and "descriptive" in sec and "not inferential" in sec
    assert "<th>p (descriptive)</th>" in sec and "<th>p</th>" not in sec
    assert "<th>95% CI (descriptive)</th>" in sec
    fig = plots.forest_plot({m: p.hazard_ratios() for m, p in fitted["model"].pipelines_.items()})
    assert "post-selection" in fig.axes[0].get_title() and "descriptive" in fig.axes[0].get_xlabel()


@pytest.mark.slow
def test_decision_curves_warn_when_the_model_includes_treatment(report, fitted, write_report, section, tmp_path):
    _, html, _ = report
    assert fitted["model"].info_["treatment"]["included"] == []
    plain = section(html, "dca")
    assert "confounded by indication" not in plain and "not interpretable" not in plain
    model = copy.deepcopy(fitted["model"])
    model.info_["treatment"] = {"setting": "include", "included": ["adjuvant_tki"], "excluded": []}
    _, html2 = write_report(fitted, tmp_path / "r.html", model=model)
    warned = section(html2, "dca")
    assert "adjuvant_tki" in warned and "confounded by indication" in warned and "not interpretable" in warned
    assert 'class="alert"' in warned


@pytest.mark.slow
def test_calibration_group_not_followed_to_the_horizon(fitted, write_report, section, tmp_path):
    metrics = copy.deepcopy(fitted["metrics"])
    groups = [{"predicted": 0.9, "n": 10, "n_at_risk": 4, "estimable": True, "observed": 0.85,
               "observed_ci": [0.7, 0.95]},
              {"predicted": 0.7, "n": 10, "n_at_risk": 2, "estimable": True, "observed": 0.6,
               "observed_ci": [0.4, 0.8]},
              {"predicted": 0.4, "n": 9, "n_at_risk": 0, "estimable": False, "observed": None,
               "observed_ci": [None, None]}]
    metrics["fusion"]["calibration"] = {"60": {"horizon": 60.0, "groups": groups, "not_estimable": [2]}}
    _, html = write_report(fitted, tmp_path / "r.html", metrics=metrics)
    sec = section(html, "calibration")
    assert "not estimable (no patient of this group followed to 60 months)" in sec
    assert re.search(r"<td[^>]*>9</td>\s*<td[^>]*>0</td>", sec)  # n and number at risk of that group
    assert "0.850 (0.700–0.950)" in sec
    assert "3 years" in sec  # the absent horizon is still named


@pytest.mark.slow
def test_methods_list_the_deviations_from_the_paper(report, fitted, section):
    _, html, _ = report
    sec = section(html, "methods")
    assert "Deviations from the paper" in sec
    # the fitted settings depart on these (pathology PCA 32, clinical log1p, ridge 0.1, median cut-off)
    assert "32 principal components" in sec and "log1p" in sec and "ridge" in sec and "median" in sec
    assert "cross-validated" in sec


def test_forest_plot_draws_penalised_coefficients_without_ci():
    # selection: coxnet keeps shrunken coefficients with no Wald standard error (CI and p are NaN)
    nan = float("nan")
    hrs = {"clinical": pd.DataFrame({"feature": ["a", "b"], "label": ["a", "b"], "coef": [0.3, -0.2],
                                     "hr": np.exp([0.3, -0.2]), "hr_low": [nan, nan], "hr_high": [nan, nan],
                                     "p": [nan, nan]}),
           "radiomics": pd.DataFrame({"feature": ["r"], "label": ["r"], "coef": [0.5], "hr": [np.exp(0.5)],
                                      "hr_low": [1.2], "hr_high": [2.1], "p": [0.01]})}
    fig = plots.forest_plot(hrs)
    lo, hi = fig.axes[0].get_xlim()
    assert np.isfinite([lo, hi]).all() and lo < np.exp(-0.2) and hi > 2.1


def test_a_constant_score_is_named_in_the_proportional_hazards_table():
    rng = np.random.default_rng(4)
    x = rng.normal(size=150)
    t, e = rng.exponential(20, 150) * np.exp(-0.5 * x), (rng.random(150) < 0.7).astype(int)
    fusion = ph_test(np.c_[x, np.zeros(150)], t, e, ["clinical", "radiomics"], penalizer=0.1)
    row = development_checks({"proportional_hazards": {"fusion": fusion}}, {})["ph"][0]
    assert row["terms"].startswith("clinical: ") and row["terms"].endswith("; radiomics: constant, not tested")


def test_development_checks_are_in_the_c_index_section(fitted, report, section):
    model = fitted["model"]
    html = section(report[1], "cindex")
    assert "every model on the same patients" in html and "Proportional hazards (Schoenfeld residuals)" in html
    same = model.cv_metrics_["same_patients_as_fusion"]
    n = same["fusion"]["n"]
    assert html.count(f"{n} / ") >= len(same)
    for r in model.cv_metrics_["proportional_hazards"].values():
        for term in r["p"]:
            assert f"{term}: " in html
    assert model.cv_metrics_["selection_comparison"]  # fitted with the paper chain: Coxnet beside it
    assert "paper chain (LASSO, forest, stepwise)" in html
