"""``gistrisk radiomics extract``: one case, a cohort with failures, resume, provenance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from gistrisk.cli import app
from gistrisk.errors import InputError
from gistrisk.provenance import file_sha256
from gistrisk.radiomics import param_file

runner = CliRunner()


def test_help_has_examples() -> None:
    r = runner.invoke(app, ["radiomics", "extract", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "--manifest cases.csv --out features.parquet --jobs 2" in r.output
    assert "--scheduler" in r.output and "dask-jobqueue" in r.output


def test_single_case_row_csv(lung2_crop_files: tuple[Path, Path], tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    out = tmp_path / "row.csv"
    r = runner.invoke(app, ["radiomics", "extract", "--image", str(img), "--mask", str(msk), "--label", "1",
                            "--params", "pyradiomics_baseline", "--patient-id", "L2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    row = pd.read_csv(out)
    assert row.shape == (1, 108) and row.patient_id.tolist() == ["L2"]
    assert row.columns[1:].str.match(r"^original_(shape|firstorder|glcm|glrlm|glszm|gldm|ngtdm)_\w+$").all()
    assert row["original_shape_VoxelVolume"].iloc[0] > 0
    diag = json.loads((tmp_path / "row.diagnostics.json").read_text())
    assert diag["gistrisk_params_sha256"] == file_sha256(param_file("pyradiomics_baseline"))
    prov = json.loads((tmp_path / "row.provenance.json").read_text())
    assert prov["parameters"]["params_sha256"] == diag["gistrisk_params_sha256"]
    assert "pyradiomics-bhklab" in prov["radiomics_versions"]


def test_single_case_bad_input_is_one_clear_line(ct_dir: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "gistrisk", "radiomics", "extract", "--image",
                        str(ct_dir / "brain1_image.nrrd"), "--mask", str(ct_dir / "brain1_label.nrrd"),
                        "--patient-id", "B1", "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "error: file" in r.stderr and "patient B1" in r.stderr and "never go below 0" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "x.csv").exists()


def _manifest(tmp_path: Path, ct_dir: Path, crop: tuple[Path, Path]) -> Path:
    pat2 = ct_dir / "dicom_ct_rtstruct_pat2"
    rows = [
        ("L2crop", crop[0], crop[1], "1", ""),
        ("PAT2", pat2, pat2, "", "GTV-1"),
        ("BRAIN_NOT_CT", ct_dir / "brain1_image.nrrd", ct_dir / "brain1_label.nrrd", "", ""),
        ("NO_ROI", pat2, pat2, "", "PTV"),
        ("MISSING", tmp_path / "gone.nrrd", crop[1], "", ""),
    ]
    m = tmp_path / "cases.csv"
    pd.DataFrame(rows, columns=["patient_id", "image", "mask", "label", "segment"]).to_csv(m, index=False)
    return m


def test_cohort_failures_recorded_rest_go_on_and_resume(ct_dir: Path, lung2_crop_files, tmp_path: Path) -> None:
    m = _manifest(tmp_path, ct_dir, lung2_crop_files)
    out = tmp_path / "out" / "features.parquet"
    args = ["radiomics", "extract", "--manifest", str(m), "--out", str(out), "--params", "pyradiomics_baseline",
            "--no-progress"]
    r = runner.invoke(app, args)
    assert r.exit_code == 1  # some cases failed
    assert "2/5 cases extracted (0 from cache), 3 failed" in r.output
    feats = pd.read_parquet(out)
    assert feats.patient_id.tolist() == ["L2crop", "PAT2"] and feats.shape[1] == 108
    fails = pd.read_csv(tmp_path / "out" / "features.failures.csv").set_index("patient_id")
    assert set(fails.index) == {"BRAIN_NOT_CT", "NO_ROI", "MISSING"}
    assert "never go below 0" in fails.loc["BRAIN_NOT_CT", "message"]
    assert "no ROI named 'PTV'" in fails.loc["NO_ROI", "message"]
    assert "image not found" in fails.loc["MISSING", "message"]
    assert (fails.error_type == "InputError").all()
    diag = pd.read_parquet(tmp_path / "out" / "features.diagnostics.parquet").set_index("patient_id")
    assert diag.loc["PAT2", "gistrisk_roi_voxels"] > 1000
    assert json.loads(diag.loc["PAT2", "gistrisk_image_spacing"])[0] == pytest.approx(0.977, abs=1e-3)
    prov = json.loads((tmp_path / "out" / "features.provenance.json").read_text())
    assert prov["parameters"]["params_sha256"] == file_sha256(param_file("pyradiomics_baseline"))
    assert prov["counts"] == {"cases": 5, "done": 2, "failed": 3, "cached": 0, "features": 107}
    assert "numpy" in prov["versions"]

    # fix one case in the manifest and re-run: the two done cases come from the cache
    df = pd.read_csv(m, dtype=str, keep_default_na=False)
    df.loc[df.patient_id == "NO_ROI", "segment"] = "GTV-1"
    df.to_csv(m, index=False)
    r2 = runner.invoke(app, args)
    assert "3/5 cases extracted (2 from cache), 2 failed" in r2.output
    feats2 = pd.read_parquet(out)
    assert feats2.patient_id.tolist() == ["L2crop", "PAT2", "NO_ROI"]
    pd.testing.assert_series_equal(feats2.iloc[1, 1:], feats2.iloc[2, 1:], check_names=False)  # same ROI
    assert len(pd.read_csv(tmp_path / "out" / "features.failures.csv")) == 2


def test_cohort_cache_invalidated_by_new_parameters(lung2_crop_files, tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    m = tmp_path / "one.csv"
    m.write_text(f"patient_id,image,mask\nL2,{img},{msk}\n")
    params = tmp_path / "p.yaml"
    params.write_text(param_file("pyradiomics_baseline").read_text())
    out = tmp_path / "f.csv"
    args = ["radiomics", "extract", "--manifest", str(m), "--out", str(out), "--params", str(params), "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    e1 = pd.read_csv(out)["original_firstorder_Energy"].iloc[0]
    params.write_text(params.read_text().replace("voxelArrayShift: 2000", "voxelArrayShift: 1000"))
    r = runner.invoke(app, args)
    assert "1/1 cases extracted (0 from cache)" in r.output
    assert pd.read_csv(out)["original_firstorder_Energy"].iloc[0] != pytest.approx(e1)
    assert "(1 from cache)" in runner.invoke(app, args).output


@pytest.mark.slow
def test_cohort_on_two_processes_matches_one(lung2_crop_files, pat2_dir: Path, tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    m = tmp_path / "two.csv"
    m.write_text(f"patient_id,image,mask,segment\nL2,{img},{msk},\nP2,{pat2_dir},{pat2_dir},GTV-1\n")
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out, jobs in ((a, "1"), (b, "2")):
        r = runner.invoke(app, ["radiomics", "extract", "--manifest", str(m), "--out", str(out), "--params",
                                "pyradiomics_baseline", "--jobs", jobs, "--no-progress"])
        assert r.exit_code == 0, r.output
    pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))


def test_manifest_errors(tmp_path: Path) -> None:
    from gistrisk.radiomics.manifest import read_manifest

    bad = tmp_path / "m.csv"
    bad.write_text("patient,image,mask\nA,a.nrrd,b.nrrd\n")
    with pytest.raises(InputError, match="column 'patient_id'"):
        read_manifest(bad)
    bad.write_text("patient_id,image,mask\nA,a.nrrd,b.nrrd\nA,c.nrrd,d.nrrd\n")
    with pytest.raises(InputError, match="duplicate patient_id"):
        read_manifest(bad)
    bad.write_text("patient_id,image,mask,label\nA,a.nrrd,b.nrrd,one\n")
    with pytest.raises(InputError, match="patient A, column 'label': label must be a whole number"):
        read_manifest(bad)
    ok = tmp_path / "sub" / "m.csv"
    ok.parent.mkdir()
    ok.write_text("patient_id,image,mask\nA,img/a.nrrd,/abs/b.nrrd\n")
    (case,) = read_manifest(ok)
    assert case["image"] == str(ok.parent / "img" / "a.nrrd") and case["mask"] == "/abs/b.nrrd"
    assert case["label"] == case["segment"] == ""


def test_bad_parameter_file_stops_cohort_before_any_case(lung2_crop_files, tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    m = tmp_path / "one.csv"
    m.write_text(f"patient_id,image,mask\nL2,{img},{msk}\n")
    p = tmp_path / "typo.yaml"
    p.write_text("setting:\n  binwidth: 25\n")
    r = runner.invoke(app, ["radiomics", "extract", "--manifest", str(m), "--out", str(tmp_path / "f.csv"),
                            "--params", str(p)])
    assert isinstance(r.exception, InputError) and "binwidth" in str(r.exception)
    assert not (tmp_path / "f.csv").exists()


def test_cohort_on_a_dask_scheduler(lung2_crop_files, tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    img, msk = lung2_crop_files
    m = tmp_path / "one.csv"
    m.write_text(f"patient_id,image,mask\nL2,{img},{msk}\nBAD,{img},{tmp_path / 'none.nrrd'}\n")
    out = tmp_path / "f.parquet"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        r = runner.invoke(app, ["radiomics", "extract", "--manifest", str(m), "--out", str(out), "--params",
                                "pyradiomics_baseline", "--scheduler", cluster.scheduler_address, "--no-progress"])
    assert "1/2 cases extracted" in r.output and r.exit_code == 1
    assert pd.read_parquet(out).shape == (1, 108)
    prov = json.loads((tmp_path / "f.provenance.json").read_text())
    assert prov["parameters"]["scheduler"].startswith("tcp://")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_rows_unions_columns_and_keeps_precision(tmp_path: Path, suffix: str) -> None:
    from gistrisk.radiomics.tables import write_rows

    out = tmp_path / f"t{suffix}"
    x = 0.1 + 0.2  # not representable in short decimal text
    write_rows(out, [{"patient_id": "a", "f": x, "d": "text"}, {"patient_id": "b", "g": 1.0, "d": 3}],
               ["patient_id"])
    df = pd.read_csv(out, float_precision="round_trip") if suffix == ".csv" else pd.read_parquet(out)
    assert list(df.columns) == ["patient_id", "f", "d", "g"]
    assert df.f[0] == x and pd.isna(df.f[1]) and df.g[1] == 1.0
    assert str(df.d[1]) == "3"  # a column of mixed kinds is kept as text
