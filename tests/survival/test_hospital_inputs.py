"""Tables shaped like a hospital's export, and hostile inputs: read right, or refused in one line.

Each refusal names the file, patient, column and value; no command prints a traceback, exits 0
with a NaN, or overwrites an input.
"""

import hashlib
import json
import logging

import numpy as np
import pandas as pd
import pytest
import yaml

from gistrisk.errors import BundleError, InputError
from gistrisk.simulate.feature_tables import FeatureEmulation, simulate_tables
from gistrisk.survival.config import load_config
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.tables import load_features, load_outcomes, match_ids

EMULATION = FeatureEmulation(n_texture=10, n_radiomics_noise=20, n_deep=32, n_nuisance=4)
MODS = ("clinical", "radiomics", "pathology")
# the clinical model keeps every column, so the site is certainly one of its inputs
KEEP_ALL = {"lasso": {"enabled": False}, "rsf": {"enabled": False}, "stepwise": {"enabled": False}}


def refused(r, *words):
    assert r.returncode == 2, r.stdout + r.stderr
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line, r.stderr
    for w in words:
        assert w in line[0], line[0]
    return line[0]


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, fast, gistrisk):
    d = tmp_path_factory.mktemp("hospital")
    sim = simulate_tables(160, 60, seed=3, emulation=EMULATION)
    for name, tables in sim.items():
        (d / name).mkdir()
        for m in (*MODS, "outcomes"):
            tables[m].reset_index().to_csv(d / name / f"{m}.csv", index=False)
    cfg = {**fast, "bootstrap": 50, "modalities": {"clinical": {**KEEP_ALL, "min_events_per_feature": 1}}}
    (d / "fit.yaml").write_text(yaml.safe_dump(cfg))
    r = gistrisk("fit", "--outcomes", d / "development/outcomes.csv", *mods(d / "development"),
                 "--config", d / "fit.yaml", "--out", d / "model")
    assert r.returncode == 0, r.stderr
    return d


def mods(folder, only=MODS, **override):
    return [a for m in only for a in ("-m", f"{m}={override.get(m, folder / f'{m}.csv')}")]


def hospital_export(clinical: pd.DataFrame) -> pd.DataFrame:
    """The same patients written as a hospital would: sub-sites, codes, Chinese, units, Y/N."""
    spell = {"stomach": ["Stomach (antrum)", "gastric body", "GEJ", "C16.3", "胃", "STOMACH"],
             "small intestine": ["Small Intestine", "jejunum", "C17.2", "小肠"], "colorectum": ["C18.7", "结肠"],
             "other": ["other"]}
    out = clinical.copy()
    out["site"] = [spell[s][i % len(spell[s])] for i, s in enumerate(clinical["site"])]
    out["rupture"] = clinical["rupture"].map({0: "N", 1: "ruptured"})
    out["sex"] = clinical["sex"].map({"male": "男", "female": "F"})
    out["mitoses_per_5mm2"] = [f"{m} /5mm2" for m in clinical["mitoses_per_5mm2"]]
    out["tumour_size_cm"] = [f"{10 * s:.0f} mm" if i % 2 else s for i, s in enumerate(clinical["tumour_size_cm"])]
    return out


# ---- predict and validate on a hospital's export --------------------------------------------------------

def test_hospital_spellings_give_the_same_predictions_as_the_dictionary_terms(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    clinical = pd.read_csv(ext / "clinical.csv")
    clinical["tumour_size_cm"] = clinical["tumour_size_cm"].round(1)
    clinical.to_csv(tmp_path / "plain.csv", index=False)
    hospital_export(clinical).to_csv(tmp_path / "hospital.csv", index=False)
    a = gistrisk("predict", "--model", cohort / "model", *mods(ext, clinical=tmp_path / "plain.csv"),
                 "--out", tmp_path / "a.csv")
    b = gistrisk("predict", "--model", cohort / "model", *mods(ext, clinical=tmp_path / "hospital.csv"),
                 "--out", tmp_path / "b.csv")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    assert "Stomach (antrum) -> stomach" in b.stderr and "C17.2 -> small intestine" in b.stderr
    pa, pb = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert pa["risk"].notna().all()
    np.testing.assert_allclose(pb["risk"], pa["risk"], rtol=1e-12)


@pytest.mark.parametrize("column, value, words", [
    ("site", "oesophagus", ["patient EXT0003", "column 'site'", "'oesophagus' was never seen in training"]),
    ("site", "liver", ["patient EXT0003", "column 'site'", "'liver' is not in the clinical dictionary"]),
    ("mitoses_per_5mm2", "3 /10HPF", ["patient EXT0003", "column 'mitoses_per_5mm2'", "unit '/10HPF'"]),
    ("ki67_percent", "high", ["patient EXT0003", "column 'ki67_percent'", "'high' is not a number"]),
])
def test_predict_refuses_unseen_categories_and_numbers_it_cannot_read(cohort, gistrisk, tmp_path, column, value,
                                                                      words):
    ext = cohort / "external"
    clinical = pd.read_csv(ext / "clinical.csv").astype({column: object})
    clinical.loc[2, column] = value
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    r = gistrisk("predict", "--model", cohort / "model", *mods(ext, clinical=tmp_path / "clinical.csv"),
                 "--out", tmp_path / "pred.csv")
    refused(r, "clinical.csv", *words)
    assert not (tmp_path / "pred.csv").exists()


def test_unseen_category_and_text_number_refused_by_the_fitted_encoding():
    X = pd.DataFrame({"site": ["stomach", "small intestine"] * 10, "size": np.arange(20.0)},
                     index=pd.Index([f"P{i}" for i in range(20)], name="patient_id"))
    pre = Preprocessor().fit(X)
    new = pd.DataFrame({"site": ["stomach", "oesophagus"], "size": [3.0, 4.0]}, index=["N1", "N2"])
    with pytest.raises(InputError, match=r"patient N2, column 'site': category 'oesophagus' was never seen"):
        pre.check_inputs(new, "new.csv")
    new = pd.DataFrame({"site": ["stomach", None], "size": ["3 /5mm2", None]}, index=["N1", "N2"])
    with pytest.raises(InputError, match=r"patient N1, column 'size': value '3 /5mm2' is not a finite number"):
        pre.check_inputs(new)
    pre.check_inputs(pd.DataFrame({"site": [None], "size": [np.nan]}, index=["N3"]))  # missing stays missing


def test_predict_never_overwrites_an_input_or_writes_over_a_folder(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    table = tmp_path / "clinical.csv"
    table.write_bytes((ext / "clinical.csv").read_bytes())
    before = sha(table)
    refused(gistrisk("predict", "--model", cohort / "model", "-m", f"clinical={table}", "--out", table),
            "--out", "is also an input")
    assert sha(table) == before
    refused(gistrisk("predict", "--model", cohort / "model", "-m", f"clinical={table}", "--out", tmp_path),
            "is an existing folder")
    refused(gistrisk("predict", "--model", cohort / "model", "-m", f"clinical={table}", "--out",
                     cohort / "model" / "model.json"), "is also an input")
    refused(gistrisk("predict", "--model", cohort / "model", "-m", f"clinical={table}", "--out",
                     table / "predictions.csv"), f"{table} is an existing file, not a folder")


def test_validate_without_a_modality_for_the_whole_cohort_scores_what_it_can(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    r = gistrisk("validate", "--model", cohort / "model", "--outcomes", ext / "outcomes.csv",
                 *mods(ext, only=("clinical", "radiomics")), "--out", tmp_path / "val", "--bootstrap", "50")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "val/metrics.json").read_text())["metrics"]
    assert "modality not given" in metrics["pathology"]["not_evaluated"]
    assert "no patient of this cohort has every modality" in metrics["fusion"]["not_evaluated"]
    part = metrics["fusion_including_partial"]
    assert part["n"] == 60 and part["c_index_ci"][0] < part["c_index"] < part["c_index_ci"][1]
    assert metrics["radiomics"]["n"] == 60
    pred = pd.read_csv(tmp_path / "val/predictions.csv")
    assert pred["partial"].all() and pred["risk"].notna().all()
    html = (tmp_path / "val/report.html").read_text()
    assert "not evaluated: modality not given for this cohort" in html
    assert "pathology" in r.stdout and "not evaluated" in r.stdout


def test_validate_refuses_outcomes_that_match_no_patient_with_a_leading_zero_hint(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    y = pd.read_csv(ext / "outcomes.csv")
    y["patient_id"] = y["patient_id"].str.replace("EXT", "EXT0")
    y.to_csv(tmp_path / "outcomes.csv", index=False)
    refused(gistrisk("validate", "--model", cohort / "model", "--outcomes", tmp_path / "outcomes.csv",
                     *mods(ext), "--out", tmp_path / "val"),
            "outcomes.csv", "no patient of the outcomes table", "differ only by leading zeros")


def test_validate_refuses_too_few_bootstrap_resamples(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    refused(gistrisk("validate", "--model", cohort / "model", "--outcomes", ext / "outcomes.csv", *mods(ext),
                     "--out", tmp_path / "val", "--bootstrap", "-5"), "--bootstrap must be at least 20")
    with pytest.raises(InputError, match="bootstrap must be at least 20, got -5"):
        load_config(overrides={"bootstrap": -5})
    with pytest.raises(InputError, match="rsf.n_estimators must be at least 1"):
        load_config(overrides={"modality": {"rsf": {"n_estimators": 0}}})
    with pytest.raises(InputError, match="cox.penalizer must be a finite number"):
        load_config(overrides={"modality": {"cox": {"penalizer": "0.1"}}})


# ---- fit: refused before any work ----------------------------------------------------------------------

def test_fit_refuses_an_infinite_feature_and_writes_no_bundle(cohort, gistrisk, tmp_path):
    dev = cohort / "development"
    rad = pd.read_csv(dev / "radiomics.csv")
    col = rad.columns[4]
    rad.loc[3, col] = np.inf
    rad.to_csv(tmp_path / "radiomics.csv", index=False)
    r = gistrisk("fit", "--outcomes", dev / "outcomes.csv", *mods(dev, radiomics=tmp_path / "radiomics.csv"),
                 "--config", cohort / "fit.yaml", "--out", tmp_path / "model")
    refused(r, "radiomics.csv", f"patient {rad.loc[3, 'patient_id']}", f"column '{col}'", "infinite value 'inf'")
    assert not (tmp_path / "model").exists()


def test_fit_refuses_an_infinite_time(cohort, gistrisk, tmp_path):
    dev = cohort / "development"
    y = pd.read_csv(dev / "outcomes.csv")
    y.loc[4, "time"] = np.inf
    y.to_csv(tmp_path / "outcomes.csv", index=False)
    refused(gistrisk("fit", "--outcomes", tmp_path / "outcomes.csv", *mods(dev), "--out", tmp_path / "model"),
            "outcomes.csv", f"patient {y.loc[4, 'patient_id']}", "column 'time'", "infinite time")


def test_fit_refuses_an_output_that_exists_as_a_file_before_reading_anything(cohort, gistrisk, tmp_path):
    existing = tmp_path / "model"
    existing.write_text("not a folder")
    r = gistrisk("fit", "--outcomes", tmp_path / "missing.csv", *mods(cohort / "development"), "--out", existing)
    refused(r, "--out", "is an existing file")  # said before the (missing) outcomes are even read
    assert existing.read_text() == "not a folder"


def test_days_are_refused_without_a_unit_and_converted_with_one(cohort, gistrisk, tmp_path):
    dev = cohort / "development"
    y = pd.read_csv(dev / "outcomes.csv")
    days = y.assign(time=(y["time"] * 365.25 / 12).round(1))
    days.to_csv(tmp_path / "outcomes_days.csv", index=False)
    refused(gistrisk("fit", "--outcomes", tmp_path / "outcomes_days.csv", *mods(dev), "--out", tmp_path / "m"),
            "outcomes_days.csv", "column 'time'", "looks like days", "--time-unit days")
    back = load_outcomes(tmp_path / "outcomes_days.csv", "days")
    np.testing.assert_allclose(back["time"], y["time"], atol=0.01)
    assert back.attrs["time_unit"] == "days"
    assert load_outcomes(tmp_path / "outcomes_days.csv", "months")["time"].median() > 120  # the user said so
    with pytest.raises(InputError, match="time unit must be one of months, days, weeks, years"):
        load_outcomes(dev / "outcomes.csv", "fortnights")


# ---- the bundle cannot lie ------------------------------------------------------------------------------

@pytest.mark.parametrize("edit, words", [
    (lambda d: d["fusion"].pop(d["main_fusion"]), "main fusion model"),
    (lambda d: d["pipelines"]["radiomics"]["cox"]["coef"].__setitem__(0, float("nan")), "contains NaN"),
    (lambda d: d["fusion"][d["main_fusion"]]["coef"].__setitem__(0, None), "not a finite number at fusion"),
    (lambda d: d["pipelines"]["clinical"]["selected"].pop(), "coefficients for"),
    (lambda d: d.__setitem__("modalities", ["clinical", "radiomics"]), "one entry per modality"),
])
def test_hand_edited_bundles_are_refused(cohort, gistrisk, tmp_path, edit, words):
    d = json.loads((cohort / "model/model.json").read_text())
    edit(d)
    (tmp_path / "model.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match=words):
        MultimodalRiskModel.load(tmp_path)
    ext = cohort / "external"
    refused(gistrisk("predict", "--model", tmp_path, *mods(ext), "--out", tmp_path / "p.csv"), "model.json")


def test_a_model_with_a_non_finite_number_is_never_written(cohort, tmp_path):
    model = MultimodalRiskModel.load(cohort / "model")
    model.pipelines_["radiomics"].cox_.coef[0] = np.nan
    with pytest.raises(BundleError, match=r"pipelines.radiomics.cox.coef\[0\]"):
        model.save(tmp_path / "out")
    assert not (tmp_path / "out" / "model.json").exists()


def test_the_bundle_is_standard_json_and_records_units_and_dictionary(cohort):
    text = (cohort / "model/model.json").read_text()
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"bundle holds {c}"))
    assert d["info"]["inputs"]["time_unit"] == "months"
    assert len(d["info"]["clinical_dictionary"]["sha256"]) == 64
    site = next(f for f in d["clinical_schema"] if f["name"] == "site")
    assert set(site["levels"]) <= {"stomach", "small intestine", "colorectum", "other"}


# ---- reading tables -------------------------------------------------------------------------------------

def test_semicolon_separated_decimal_comma_csv_is_read(tmp_path, caplog):
    y = pd.DataFrame({"patient_id": ["A", "B", "C"], "time": [12.5, 30.25, 7.0], "event": [1, 0, 1]})
    y.to_csv(tmp_path / "o.csv", sep=";", decimal=",", index=False)
    with caplog.at_level(logging.INFO):
        back = load_outcomes(tmp_path / "o.csv")
    assert back["time"].tolist() == [12.5, 30.25, 7.0]
    assert "semicolon-separated with decimal commas" in caplog.text


def test_excel_and_empty_files_are_named(tmp_path):
    xlsx = tmp_path / "clinical.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(InputError, match="clinical.xlsx: Excel"):
        load_features(xlsx, "clinical")
    disguised = tmp_path / "clinical.csv"
    disguised.write_bytes(b"PK\x03\x04" + b"\0" * 40)
    with pytest.raises(InputError, match="clinical.csv: this is an Excel workbook"):
        load_features(disguised, "clinical")
    (tmp_path / "o.csv").write_text("patient_id,time,event\n")
    with pytest.raises(InputError, match="header but no rows"):
        load_outcomes(tmp_path / "o.csv")


def test_a_gb18030_export_with_chinese_labels_is_read(tmp_path):
    text = "patient_id,部位,性别,rupture\nP1,胃窦,男,否\nP2,小肠,女,是\n"
    (tmp_path / "c.csv").write_bytes(text.encode("gb18030"))
    df = load_features(tmp_path / "c.csv", "clinical")
    assert df["部位"].tolist() == ["stomach", "small intestine"] and df["性别"].tolist() == ["male", "female"]
    assert df["rupture"].tolist() == [0.0, 1.0]


def test_ids_that_differ_by_leading_zeros_get_a_hint(tmp_path, caplog):
    feats = pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["095", "096"], name="patient_id"))
    out = pd.DataFrame({"time": [1.0, 2.0], "event": [1, 0]}, index=pd.Index(["95", "96"], name="patient_id"))
    with caplog.at_level(logging.WARNING):
        match_ids(feats, out, "clinical")
    assert "differ only by leading zeros, e.g. '095' vs '95'" in caplog.text


def test_several_slides_per_patient_average_numbers_and_carry_text(tmp_path):
    df = pd.DataFrame({"patient_id": ["A", "A", "B"], "slide_id": ["a1", "a2", "b1"], "scanner": ["aperio"] * 3,
                       "path_0000": [1.0, 3.0, 5.0], "path_0001": [0.0, np.nan, 1.0]})
    df.to_csv(tmp_path / "p.csv", index=False)
    out = load_features(tmp_path / "p.csv", "pathology")
    assert out.loc["A", "path_0000"] == 2.0 and out.loc["A", "path_0001"] == 0.0
    assert out["scanner"].tolist() == ["aperio", "aperio"]
    df.loc[1, "scanner"] = "hamamatsu"
    df.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(InputError, match=r"p.csv, patient A, column 'scanner': the patient's slides disagree"):
        load_features(tmp_path / "p.csv", "pathology")


def test_predict_says_what_it_imputed_and_fails_for_patients_it_cannot_predict(cohort, gistrisk, tmp_path):
    ext = cohort / "external"
    clinical = pd.read_csv(ext / "clinical.csv")
    clinical.loc[0, "ki67_percent"] = np.nan
    clinical.to_csv(tmp_path / "clinical.csv", index=False)
    r = gistrisk("predict", "--model", cohort / "model", *mods(ext, clinical=tmp_path / "clinical.csv"),
                 "--out", tmp_path / "pred.csv")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False).set_index("patient_id")
    inputs = MultimodalRiskModel.load(cohort / "model").input_columns_["clinical"]
    for pid, row in clinical.set_index("patient_id")[inputs].iterrows():
        assert pred.loc[pid, "imputed"] == ";".join(f"clinical:{c}" for c in row.index[row.isna()])
    assert "clinical:ki67_percent" in pred.loc["EXT0001", "imputed"] and (pred["imputed"] == "").any()
    assert "imputed with the training median/mode" in r.stderr
    # a bundle without a fusion for radiomics alone (fit skips subsets with too few patients)
    d = json.loads((cohort / "model/model.json").read_text())
    del d["fusion"]["radiomics"]
    (tmp_path / "model").mkdir()
    (tmp_path / "model/model.json").write_text(json.dumps(d))
    rad = pd.read_csv(ext / "radiomics.csv").iloc[:3]
    rad.to_csv(tmp_path / "radiomics.csv", index=False)
    r = gistrisk("predict", "--model", tmp_path / "model", "-m", f"radiomics={tmp_path / 'radiomics.csv'}",
                 "--out", tmp_path / "pred2.csv")
    assert r.returncode == 1 and "3 patient(s) could not be predicted" in r.stderr
    assert pd.read_csv(tmp_path / "pred2.csv")["risk"].isna().all()
