"""The cohort on disk: reproducible, resumable, honest about failures, with its truth recorded."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import InputError
from gistrisk.simulate.config import SimulationConfig
from gistrisk.simulate.outcomes import harrell_c
from gistrisk.simulate.patients import CLINICAL_COLUMNS, SITES, clinical_table, draw_patients
from gistrisk.simulate.study import simulate_cohort

TABLES = ("clinical", "outcomes", "truth", "radiomics_manifest", "slide_manifest")
SMALL = SimulationConfig(wsi_size=1024, min_annotated=1)  # quarter-size slides where size is not tested


def _files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != "cohort.json")


@pytest.mark.slow
def test_same_seed_same_bytes_different_seed_differs(tmp_path):
    a = simulate_cohort(tmp_path / "a", 3, 1, seed=11, config=SMALL)
    simulate_cohort(tmp_path / "b", 3, 1, seed=11, config=SMALL, workers=2)  # order-free jobs
    c = simulate_cohort(tmp_path / "c", 3, 1, seed=12, config=SMALL)
    files = _files(tmp_path / "a")
    assert files == _files(tmp_path / "b")
    assert any(f.suffix == ".tiff" for f in files) and any(f.name.endswith(".seg.nrrd") for f in files)
    for f in files:  # tables, NRRDs, TIFFs and GeoJSON: byte-identical
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    for name in ("development", "external"):
        for t in TABLES[:3]:
            assert a[f"{name}_{t}"].read_bytes() != c[f"{name}_{t}"].read_bytes()


def test_cli_writes_a_cohort_and_reports_the_oracle(tmp_path):
    from typer.testing import CliRunner

    from gistrisk.cli import app

    res = CliRunner().invoke(app, ["simulate", "--out", str(tmp_path / "cli"), "--patients", "2",
                                   "--external", "1", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "development: 2 patients" in res.output and "oracle C-index" in res.output
    rec = json.loads((tmp_path / "cli" / "cohort.json").read_text())
    assert rec["parameters"]["seed"] == 3 and rec["parameters"]["n_external"] == 1
    assert (tmp_path / "cli" / "external" / "wsi" / "EXT0001.tiff").is_file()


def test_cohort_json_records_truth_and_provenance(cohort):
    rec = json.loads(cohort["cohort_json"].read_text())
    assert rec["parameters"]["seed"] == 7 and rec["parameters"]["n_patients"] == 12
    assert {"numpy", "SimpleITK", "slicerio", "tifffile"} <= set(rec["versions"])
    assert rec["parameters"]["config"]["hazard"]["weibull_shape"] == rec["weibull_shape"]
    for name in ("development", "external"):
        c = rec["cohorts"][name]
        d = cohort[f"{name}_dir"]
        truth = pd.read_csv(d / "truth.csv")
        out = pd.read_csv(d / "outcomes.csv")
        assert (truth["patient_id"] == out["patient_id"]).all()
        lp = truth[["lp_size", "lp_clinical", "lp_radiomics", "lp_pathology"]].sum(axis=1)
        assert np.allclose(lp, truth["lp"])
        expected = harrell_c(out["time"], out["event"], truth["lp"])
        if out["event"].sum():
            assert c["oracle_c_index"] == pytest.approx(expected, abs=1e-4)
        else:  # no event: no comparable pair, recorded as null rather than NaN (invalid JSON)
            assert np.isnan(expected) and c["oracle_c_index"] is None
        assert c["n"] == len(truth) and c["events"] == out["event"].sum()
        assert json.loads((d / "cohort.json").read_text())["oracle_c_index"] == c["oracle_c_index"]
    ext = rec["cohorts"]["external"]
    assert ext["n_ct"] == ext["n_wsi"] == ext["n_all_modalities"] == ext["n"] == 4


def test_manifests_point_at_existing_files(cohort):
    for name in ("development", "external"):
        d = cohort[f"{name}_dir"]
        rad = pd.read_csv(d / "radiomics_manifest.csv")
        wsi = pd.read_csv(d / "slide_manifest.csv", keep_default_na=False)
        truth = pd.read_csv(d / "truth.csv")
        assert set(rad["patient_id"]) == set(truth.loc[truth["has_ct"], "patient_id"])
        assert set(wsi["patient_id"]) == set(truth.loc[truth["has_wsi"], "patient_id"])
        for col in ("image", "mask"):
            assert all((d / p).is_file() for p in rad[col])
        assert all((d / p).is_file() for p in wsi["slide"])
        assert all((d / p).is_file() for p in wsi["annotations"] if p)
        assert wsi["slide_id"].is_unique


def test_development_misses_modalities_like_the_paper():
    cfg = SimulationConfig()
    pts = draw_patients(np.random.default_rng(0), 1000, "P", cfg, all_modalities=False)
    assert pts["has_ct"].mean() == pytest.approx(cfg.ct_fraction, abs=0.04)
    assert pts["has_wsi"].mean() == pytest.approx(cfg.wsi_fraction, abs=0.04)
    assert 0.5 < (pts["has_ct"] & pts["has_wsi"]).mean() < 0.75  # the paper: 163 of 254


def test_clinical_table_is_realistic_with_some_missing_values():
    cfg = SimulationConfig()
    rng = np.random.default_rng(1)
    pts = draw_patients(rng, 1000, "P", cfg, all_modalities=True)
    clin = clinical_table(pts, rng, cfg)
    assert tuple(clin.columns) == CLINICAL_COLUMNS
    assert set(clin["site"]) == set(SITES)
    assert (clin["site"] == "stomach").mean() == pytest.approx(0.6, abs=0.05)
    assert clin["tumour_size_cm"].between(1.8, 22).all()
    assert 4.0 < clin["tumour_size_cm"].median() < 7.0
    assert 0.1 < (clin["mitoses_per_5mm2"] > 5).mean() < 0.4
    assert set(clin["rupture"]) == {0, 1} and clin["rupture"].mean() < 0.1
    for col, frac in cfg.missing.items():
        assert clin[col].isna().mean() == pytest.approx(frac, abs=0.03), col
    for col in ("patient_id", "site", "tumour_size_cm", "mitoses_per_5mm2", "rupture"):
        assert clin[col].notna().all()  # what the modified NIH score needs is always there
    # adjuvant TKI is given more often to high-risk patients (as in practice)
    big = clin["tumour_size_cm"] > 10
    assert clin.loc[big, "adjuvant_tki"].mean() > clin.loc[~big, "adjuvant_tki"].mean() + 0.2


@pytest.mark.slow
def test_resume_keeps_files_and_refuses_other_parameters(tmp_path):
    out = tmp_path / "run"
    p = simulate_cohort(out, 3, 1, seed=5, config=SMALL)
    slide = p["external_dir"] / "wsi" / "EXT0001.tiff"
    before = slide.read_bytes()
    stamp = slide.stat().st_mtime_ns
    ct = next((p["development_dir"] / "ct").glob("*.seg.nrrd"))
    ct.unlink()  # an interrupted run: one file missing
    simulate_cohort(out, 3, 1, seed=5, config=SMALL)
    assert slide.stat().st_mtime_ns == stamp  # kept, not rewritten
    assert ct.is_file()
    with pytest.raises(InputError, match="other parameters"):
        simulate_cohort(out, 3, 1, seed=6, config=SMALL)
    simulate_cohort(out, 3, 1, seed=5, config=SMALL, overwrite=True)
    assert slide.read_bytes() == before


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_refuses_an_out_that_is_a_file_or_lies_under_one(tmp_path, under):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    with pytest.raises(InputError, match="is an existing file"):
        simulate_cohort(taken / "sim" if under else taken, 2, 0, seed=1)
    assert taken.read_text() == "mine"


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        simulate_cohort(tmp_path, 2, 0, seed=1)


@pytest.mark.slow
def test_a_failed_image_is_recorded_and_the_batch_goes_on(tmp_path):
    out = tmp_path / "run"
    probe = simulate_cohort(out, 3, 1, seed=5, config=SMALL)
    victim = probe["external_dir"] / "wsi" / "EXT0001.tiff"
    victim.unlink()
    victim.mkdir()  # a directory where the slide must go: writing it fails for real
    p = simulate_cohort(out, 3, 1, seed=5, config=SMALL)
    fails = pd.read_csv(p["external_failures"])
    assert list(fails[["patient_id", "modality"]].itertuples(index=False, name=None)) == [("EXT0001", "wsi")]
    assert "EXT0001" not in set(pd.read_csv(p["external_slide_manifest"])["patient_id"])
    assert "EXT0001" in set(pd.read_csv(p["external_radiomics_manifest"])["patient_id"])
    assert json.loads(p["cohort_json"].read_text())["cohorts"]["external"]["failures"] == 1
    victim.rmdir()
    p = simulate_cohort(out, 3, 1, seed=5, config=SMALL)  # fixed and resumed: the failure is gone
    assert "external_failures" not in p and victim.is_file()


def test_image_settings_do_not_change_the_tables(tmp_path):
    """Slide size and the number of annotated slides change images, never the patients' data."""
    a = simulate_cohort(tmp_path / "a", 3, 0, seed=4, config=SMALL)
    b = simulate_cohort(tmp_path / "b", 3, 0, seed=4, config=SimulationConfig(wsi_size=512, min_annotated=3))
    for t in ("clinical", "outcomes"):
        assert a[f"development_{t}"].read_bytes() == b[f"development_{t}"].read_bytes()
