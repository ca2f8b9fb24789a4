"""`gistrisk harmonise`, `predict --site-file` and `validate --harmonise` on a cohort whose second site
shifts and stretches the radiomics features, as another scanner does."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from gistrisk.harmonise.combat import MIN_SITE_CASES
from gistrisk.harmonise.site import reference_sha256
from gistrisk.survival.config import fast_overrides, load_config
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import fit_multimodal


def run(*args, ok=True):
    """``gistrisk ARGS`` in its own process, as a user runs it."""
    r = subprocess.run([sys.executable, "-m", "gistrisk", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def cli(gistrisk_cli):
    """``cli(*args, ok=True)``: as :func:`run`, in this process (tests/conftest.py: run_gistrisk)."""
    def run_here(*args, ok=True):
        r = gistrisk_cli(*args)
        if ok:
            assert r.returncode == 0, r.stderr
        return r
    return run_here


def scanner(radiomics: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Another scanner: every feature shifted by up to 1.5 SD and stretched 1.3-2.5 times."""
    rng = np.random.default_rng(seed)
    shift, stretch = rng.uniform(-1.5, 1.5, radiomics.shape[1]), rng.uniform(1.3, 2.5, radiomics.shape[1])
    return radiomics * stretch + shift


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    d = tmp_path_factory.mktemp("sites")
    p = {"clinical": 5, "radiomics": 40}
    dev, dev_y, _ = make_tables(160, p=p, seed=11, effect=0.7)
    ext, ext_y, _ = make_tables(60, p=p, seed=12, effect=0.7)
    ext = {**ext, "radiomics": scanner(ext["radiomics"], 3)}
    ext = {m: t.rename(index=lambda i: i.replace("P", "E")) for m, t in ext.items()}
    ext_y = ext_y.rename(index=lambda i: i.replace("P", "E"))
    model = fit_multimodal(dev, dev_y, load_config(overrides=fast_overrides()))
    model.save(d / "model")
    for m, t in ext.items():
        t.reset_index().to_csv(d / f"ext_{m}.csv", index=False)
    ext_y.reset_index().to_csv(d / "ext_outcomes.csv", index=False)
    return d, model, dev


def _mods(d):
    return ["-m", f"clinical={d}/ext_clinical.csv", "-m", f"radiomics={d}/ext_radiomics.csv"]


def test_the_bundle_carries_the_development_cohort_as_reference(cohort):
    d, model, dev = cohort
    h = model.info_["harmonisation"]
    ref = h["references"]["radiomics"]
    assert ref["features"] == list(dev["radiomics"].columns) and ref["n"] == 160
    np.testing.assert_allclose(ref["mean"], dev["radiomics"].mean().to_numpy())
    assert "ComBat" in h["method"] and h["min_site_cases"] == MIN_SITE_CASES
    assert set(h["references"]) == {"radiomics"}  # the default harmonises radiomics only


@pytest.mark.slow
def test_site_file_maps_the_site_onto_the_development_cohort_one_patient_at_a_time(cohort, cli):
    d, model, _ = cohort
    site = d / "siteB.json"
    r = cli("harmonise", "--model", d / "model", *_mods(d), "--site", "Hospital B", "--out", site)
    assert "60 cases" in r.stdout and site.is_file()
    doc = json.loads(site.read_text())
    assert doc["site"] == "Hospital B" and doc["modalities"]["radiomics"]["n_cases"] == 60
    assert doc["modalities"]["radiomics"]["reference_sha256"] == \
        model.info_["harmonisation"]["reference_sha256"]["radiomics"]

    cli("predict", "--model", d / "model", *_mods(d), "--site-file", site, "--out", d / "batch.csv")
    r = cli("predict", "--model", d / "model", *_mods(d), "--out", d / "frozen.csv")
    batch, frozen = pd.read_csv(d / "batch.csv"), pd.read_csv(d / "frozen.csv")
    flagged = frozen.loc[frozen["out_of_distribution"].fillna("") != "", "patient_id"]
    assert len(flagged) and "outside the development cohort's range" in r.stderr
    # the patient report of the first flagged patient alone (a report takes about 0.15 s to draw)
    first = d / "first_flagged"
    first.mkdir()
    for m in ("clinical", "radiomics"):
        t = pd.read_csv(d / f"ext_{m}.csv")
        t[t["patient_id"] == flagged.iloc[0]].to_csv(first / f"ext_{m}.csv", index=False)
    cli("predict", "--model", d / "model", *_mods(first), "--out", d / "first.csv", "--report-dir", d / "reports")
    html = (d / "reports" / f"{flagged.iloc[0]}.html").read_text()
    assert "OUTSIDE THE DEVELOPMENT COHORT" in html and "not harmonised" in html
    assert batch["harmonisation"].str.startswith("site Hospital B").all()
    assert frozen["harmonisation"].str.contains("not harmonised").all()
    dev_sd = model.info_["model_card"]["score_ranges"]["radiomics"]["sd"]
    assert frozen["score_radiomics"].std() > 1.25 * dev_sd > batch["score_radiomics"].std()
    assert (frozen["out_of_distribution"].fillna("") != "").sum() > (batch["out_of_distribution"].fillna("") != "").sum()

    one = d / "one"
    one.mkdir()
    for m in ("clinical", "radiomics"):
        t = pd.read_csv(d / f"ext_{m}.csv")
        t[t["patient_id"] == "E0007"].to_csv(one / f"ext_{m}.csv", index=False)
    cli("predict", "--model", d / "model", *_mods(one), "--site-file", site, "--out", d / "single.csv")
    single = pd.read_csv(d / "single.csv").iloc[0]
    row = batch.set_index("patient_id").loc["E0007"]
    for c in ("score_radiomics", "risk", "rfs_60"):
        assert single[c] == pytest.approx(row[c], rel=1e-12, abs=1e-12)


@pytest.mark.slow
def test_validate_reports_frozen_and_harmonised_side_by_side_and_never_reads_outcomes(cohort, cli):
    d, _, _ = cohort
    y = pd.read_csv(d / "ext_outcomes.csv")
    shuffled = y.assign(time=y["time"].sample(frac=1, random_state=0).to_numpy(),
                        event=y["event"].sample(frac=1, random_state=0).to_numpy())
    shuffled.to_csv(d / "shuffled.csv", index=False)
    outs = {}
    for name, outcomes in (("true", d / "ext_outcomes.csv"), ("shuffled", d / "shuffled.csv")):
        outs[name] = d / f"val_{name}"
        r = cli("validate", "--model", d / "model", "--outcomes", outcomes, *_mods(d), "--harmonise", "auto",
                "--bootstrap", "50", "--out", outs[name], "--no-report" if name == "shuffled" else "--report")
    assert "features harmonised" in r.stdout or "harmonised" in r.stdout
    a = pd.read_csv(outs["true"] / "predictions_harmonised.csv").set_index("patient_id").sort_index()
    b = pd.read_csv(outs["shuffled"] / "predictions_harmonised.csv").set_index("patient_id").sort_index()
    pd.testing.assert_series_equal(a["score_radiomics"], b["score_radiomics"])
    m = json.loads((outs["true"] / "metrics.json").read_text())
    assert "c_index" in m["metrics"]["radiomics"] and "c_index" in m["harmonised"]["metrics"]["radiomics"]
    assert m["harmonised"]["source"].startswith("auto") and "ComBat" in m["harmonised"]["method"]
    before, after = m["score_distribution"]["radiomics"], m["harmonised"]["score_distribution"]["radiomics"]
    assert after["sd"] < before["sd"] and after["outside_development_p01_p99"] <= before["outside_development_p01_p99"]
    html = (outs["true"] / "report.html").read_text()
    assert "Validation with harmonised features" in html and "reference-site ComBat" in html


def test_too_few_cases_and_a_site_file_of_another_model_are_refused(cohort, tmp_path, cli):
    d, model, _ = cohort
    for m in ("clinical", "radiomics"):
        t = pd.read_csv(d / f"ext_{m}.csv")
        t.head(MIN_SITE_CASES - 1).to_csv(tmp_path / f"ext_{m}.csv", index=False)
    r = run("harmonise", "--model", d / "model", *_mods(tmp_path), "--site", "small", "--out", tmp_path / "s.json",
            ok=False)
    assert r.returncode == 2 and f"at least {MIN_SITE_CASES} cases" in r.stderr and "Traceback" not in r.stderr

    other = MultimodalRiskModel.load(d / "model")
    other.info_["harmonisation"]["references"]["radiomics"]["mean"][0] += 1.0
    other.info_["harmonisation"]["reference_sha256"]["radiomics"] = reference_sha256(
        other.info_["harmonisation"]["references"]["radiomics"])
    other.save(tmp_path / "other")
    cli("harmonise", "--model", tmp_path / "other", *_mods(d), "--site", "B", "--out", tmp_path / "other.json")
    r = cli("predict", "--model", d / "model", *_mods(d), "--site-file", tmp_path / "other.json",
            "--out", tmp_path / "p.csv", ok=False)
    assert r.returncode == 2 and "another model" in r.stderr and "Traceback" not in r.stderr
