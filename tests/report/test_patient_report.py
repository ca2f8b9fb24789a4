"""Per-patient reports: full and partial predictions, contributions, the NIH category, batch + resume."""

import html as htmllib

import numpy as np
import pandas as pd
import pytest

from gistrisk.report import write_patient_report
from gistrisk.report.patient import contributions
from gistrisk.report.patient_batch import write_patient_reports
from gistrisk.report.render import external_references

MONTHS = np.arange(0.0, 121.0, 3.0)


def _tables(fitted, ids=None):
    t = {k: v.reset_index() for k, v in fitted["ext"].items()}
    if ids is not None:
        t = {k: v[v["patient_id"].isin(ids)] for k, v in t.items()}
    return t


def _write(fitted, pid, tmp_path):
    model = fitted["model"]
    pred = fitted["pred"].set_index("patient_id").loc[pid]
    curve = model.predict_survival(_tables(fitted), MONTHS).loc[pid].to_numpy()
    out = write_patient_report(tmp_path / f"{pid}.html", model=model, prediction=pred, survival_curve=(MONTHS, curve),
                               modified_nih=pred["modified_nih"], patient_id=pid,
                               features={"age": 61.0, "site": "stomach"})
    return pred, htmllib.unescape(out.read_text(encoding="utf-8"))


def test_contributions_add_up_to_the_fused_risk(fitted):
    pred = fitted["pred"].set_index("patient_id")
    for _pid, row in pred.head(10).iterrows():
        c = contributions(fitted["model"], row)
        assert set(c) == set(row["fusion_model"].split("+"))
        assert sum(c.values()) == pytest.approx(row["risk"])


@pytest.mark.slow
def test_full_prediction_report(fitted, tmp_path):
    full = fitted["pred"][~fitted["pred"]["partial"]]
    pid = full["patient_id"].iloc[0]
    pred, html = _write(fitted, pid, tmp_path)
    assert external_references(html) == []
    assert html.count("data:image/png;base64,") == 2
    assert "PARTIAL PREDICTION" not in html
    assert f"Risk group: <span class=\"{pred['risk_group']}\">{pred['risk_group'].upper()}" in html
    for h in (12, 36, 60):
        assert f"{100 * pred[f'rfs_{h}']:.0f}%" in html
    assert f"classification is {pred['modified_nih']} risk" in html
    assert fitted["model"].main_fusion.formula() in html
    assert "stomach" in html and "61" in html


@pytest.mark.slow
def test_partial_prediction_is_flagged(fitted, tmp_path):
    part = fitted["pred"][fitted["pred"]["partial"]]
    assert len(part), "the validation cohort lacks radiomics for some patients"
    pid = part["patient_id"].iloc[0]
    pred, html = _write(fitted, pid, tmp_path)
    assert "PARTIAL PREDICTION" in html and "missing modality: Radiomics" in html
    assert "This is a PARTIAL prediction: radiomics data were not available" in html
    # scored by the clinical + pathology fusion, whose formula is shown
    assert fitted["model"].fusion_["clinical+pathology"].formula() in html


def test_no_modality_at_all(fitted, tmp_path):
    model = fitted["model"]
    row = {"patient_id": "X1", **{f"score_{m}": np.nan for m in model.modalities_}, "risk": np.nan,
           "risk_group": "", "rfs_12": np.nan, "rfs_36": np.nan, "rfs_60": np.nan, "modalities_used": "",
           "partial": True, "fusion_model": ""}
    out = write_patient_report(tmp_path / "x.html", model=model, prediction=row,
                               survival_curve=(MONTHS, np.full(len(MONTHS), np.nan)))
    html = htmllib.unescape(out.read_text(encoding="utf-8"))
    assert "No risk could be computed for patient X1" in html and "PARTIAL PREDICTION" in html
    assert "data:image" not in html


@pytest.mark.slow
def test_batch_writes_an_index_and_resumes(fitted, tmp_path):
    ids = fitted["pred"]["patient_id"].iloc[:4].tolist()
    idx = write_patient_reports(tmp_path, model=fitted["model"], tables=_tables(fitted, ids), months=MONTHS)
    assert idx["status"].tolist() == ["written"] * 4
    assert sorted(p.name for p in tmp_path.glob("*.html")) == sorted(f"{i}.html" for i in ids)
    assert pd.read_csv(tmp_path / "index.csv")["patient_id"].tolist() == idx["patient_id"].tolist()
    again = write_patient_reports(tmp_path, model=fitted["model"], tables=_tables(fitted, ids), months=MONTHS)
    assert again["status"].tolist() == ["exists"] * 4
