"""The cohort report from a real fit + validate: self-contained, every section, the numbers it must show."""

import base64
import html as htmllib
import re

import pytest

from gistrisk.report import write_cohort_report
from gistrisk.report.cohort import SECTIONS, dca_tables
from gistrisk.report.render import external_references

FIGURES = ("forest", "cindex", "km", "tdauc", "calibration", "dca", "nomogram")


@pytest.fixture(scope="module")
def report(fitted, tmp_path_factory):
    d = tmp_path_factory.mktemp("cohort_report")
    out = write_cohort_report(
        d / "report.html", model=fitted["model"], metrics=fitted["metrics"], predictions=fitted["pred"],
        outcomes=fitted["yext"], clinical=fitted["ext"]["clinical"], dev_outcomes=fitted["ydev"],
        dev_clinical=fitted["dev"]["clinical"], title="Test report", bootstrap=50, validation_seed=0,
        extra_hashes={"radiomics params": "ab" * 32}, figures_dir=d / "figures")
    return out, htmllib.unescape(out.read_text(encoding="utf-8")), d / "figures"


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
def test_c_index_numbers_formula_and_table_one(report, fitted):
    _, html, _ = report
    model, metrics = fitted["model"], fitted["metrics"]
    assert {"clinical", "radiomics", "pathology", "fusion", "early_fusion", "modified_nih"} <= set(metrics)
    for name, m in metrics.items():
        lo, hi = m["c_index_ci"]
        assert f"{m['c_index']:.3f}" in html and f"{lo:.3f}–{hi:.3f}" in html, name
    for name, m in model.cv_metrics_.items():
        if isinstance(m, dict):
            assert f"{m['c_index']:.3f}" in html, name
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
    # at a threshold below every predicted risk the model treats everyone: same as treat all
    risk = 1 - pred.loc[ids, "rfs_36"]
    low = dca["36"].index[dca["36"].index <= risk.min()]
    if len(low):
        assert dca["36"].loc[low[0], "Late fusion model"] == pytest.approx(dca["36"].loc[low[0], "treat all"])
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
