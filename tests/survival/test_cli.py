"""`gistrisk fit / validate / predict` exactly as the acceptance checks call them."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from gistrisk.survival.synthetic import make_tables


def run(*args, ok=True):
    r = subprocess.run([sys.executable, "-m", "gistrisk", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, fast):
    d = tmp_path_factory.mktemp("cohort")
    for name, seed, n in (("dev", 1, 150), ("ext", 2, 70)):
        tables, out, _ = make_tables(n, p={"clinical": 6, "radiomics": 30, "pathology": 30}, seed=seed)
        (d / name).mkdir()
        for m, df in tables.items():
            df.reset_index().to_csv(d / name / f"{m}.csv", index=False)
        out.reset_index().to_csv(d / name / "outcomes.csv", index=False)
    (d / "fit.yaml").write_text(yaml.safe_dump(fast))
    return d


def _mods(d):
    return [a for m in ("clinical", "radiomics", "pathology") for a in ("--modality", f"{m}={d}/{m}.csv")]


@pytest.mark.slow
def test_fit_validate_predict(cohort, gistrisk_cli):
    """validate and predict in processes of their own, as the acceptance checks call them; fit in this process
    (its own process: test_bad_input_exits_2_with_a_clear_message)."""
    model = cohort / "model"
    r = gistrisk_cli("fit", "--outcomes", cohort / "dev/outcomes.csv", *_mods(cohort / "dev"), "--config",
                     cohort / "fit.yaml", "--out", model)
    assert r.returncode == 0, r.stderr
    assert "fusion" in r.stdout and (model / "model.json").is_file()
    assert [p.name for p in model.iterdir()] == ["model.json"]  # the bundle is one file
    oof = json.loads((model / "model.json").read_text())["oof_scores"]
    assert list(oof["scores"]) == ["clinical", "pathology", "radiomics"] and len(oof["patient_id"]) == 150

    rep = cohort / "report"
    run("validate", "--model", model, "--outcomes", cohort / "ext/outcomes.csv", *_mods(cohort / "ext"),
        "--out", rep, "--bootstrap", "200")
    metrics = json.loads((rep / "metrics.json").read_text())["metrics"]
    html = (rep / "report.html").read_text()
    assert "risk =" in html and "radscore" in html and f"{metrics['fusion']['c_index']:.3f}" in html
    for name in ("clinical", "radiomics", "pathology", "fusion"):
        m = metrics[name]
        assert {"c_index", "c_index_ci", "logrank_p", "n", "events"} <= set(m)
        assert m["c_index_ci"][0] < m["c_index"] < m["c_index_ci"][1]
        assert m["n"] == 70
    assert metrics["fusion"]["c_index"] > 0.7

    # predict on 6 of the external patients: each patient's HTML report takes 0.2-0.4 s to draw
    part = cohort / "ext6"
    part.mkdir()
    for m in ("clinical", "radiomics", "pathology"):
        pd.read_csv(cohort / f"ext/{m}.csv").head(6).to_csv(part / f"{m}.csv", index=False)
    pred = cohort / "pred.csv"
    run("predict", "--model", model, *_mods(part), "--out", pred, "--report-dir", cohort / "patients")
    assert len(list((cohort / "patients").glob("*.html"))) == 6
    df = pd.read_csv(pred)
    assert list(df.columns[:9]) == ["patient_id", "score_clinical", "score_pathology", "score_radiomics", "risk",
                                    "risk_group", "rfs_12", "rfs_36", "rfs_60"]
    assert len(df) == 6 and not df["partial"].any()


def test_every_command_has_help_with_an_example(gistrisk_cli):
    for cmd in ("fit", "validate", "predict"):  # in this process: the commands above run as a user runs them
        r = gistrisk_cli(cmd, "--help")
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert "Example" in out and "--modality" in out


def test_bad_input_exits_2_with_a_clear_message(cohort, tmp_path, gistrisk_cli):
    """fit in a process of its own; predict in this one (its own process: test_fit_validate_predict)."""
    bad = pd.read_csv(cohort / "dev/outcomes.csv")
    bad.loc[3, "event"] = 7
    bad.to_csv(tmp_path / "outcomes.csv", index=False)
    r = run("fit", "--outcomes", tmp_path / "outcomes.csv", *_mods(cohort / "dev"), "--out", tmp_path / "m", ok=False)
    assert r.returncode == 2
    assert "outcomes.csv" in r.stderr and "event must be 0 or 1" in r.stderr and bad.loc[3, "patient_id"] in r.stderr
    r = gistrisk_cli("predict", "--model", tmp_path / "nomodel", *_mods(cohort / "ext"), "--out", tmp_path / "p.csv")
    assert r.returncode == 2 and "no model bundle" in r.stderr
