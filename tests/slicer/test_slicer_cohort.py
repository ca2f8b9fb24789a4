"""The Cohort section: cases table -> manifest -> background batch radiomics -> table node."""

from __future__ import annotations

import gc
import sys
import time

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from gistrisk.errors import InputError
from SlicerGISTRiskLib import background_cohort as cohort
from SlicerGISTRiskLib.mrml_convert import table_node_to_dataframe


@pytest.mark.slow
def test_scene_case_runs_through_the_batch_command_and_loads_as_a_table(logic, lung2, lung2_files, lung2_result,
                                                                       tmp_path):
    scene, volume, seg, sid = lung2
    cases = logic.addSceneCase(None, volume, seg, sid, "LUNG2", exportFolder=str(tmp_path / "export"))
    df = table_node_to_dataframe(cases)
    assert df[["patient_id", "label"]].values.tolist() == [["LUNG2", "1"]]
    # the exported files are the scene's CT and segment, voxel for voxel
    ref = sitk.ReadImage(str(lung2_files[0]))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(df["image"][0])), sitk.GetArrayFromImage(ref))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(df["mask"][0]))
    assert int(mask.sum()) == 24644
    # adding the same patient again replaces its row
    cases = logic.addSceneCase(cases, volume, seg, sid, "LUNG2", exportFolder=str(tmp_path / "export"))
    assert cases.GetNumberOfRows() == 1

    out = tmp_path / "cohort" / "features.csv"
    command, env = logic.cohortCommand(cases, str(out), jobs=1, params="pyradiomics_baseline",
                                       python=sys.executable)
    assert command[1:5] == ["-m", "gistrisk", "radiomics", "extract"] and "--manifest" in command
    fractions: list[float] = []
    runner = cohort.SubprocessRunner(command, on_progress=fractions.append, env=env).start()
    state = runner.wait(timeout=300)
    assert state.status == "finished", runner.error_text()
    assert state.fraction == 1.0
    table = logic.loadCohortFeatures(str(out), scene=scene)
    features = table_node_to_dataframe(table)
    assert features["patient_id"].tolist() == ["LUNG2"]
    # the batch command and the Logic agree on every feature
    for name, value in lung2_result.radiomics.features.items():
        assert float(features[name][0]) == pytest.approx(value, rel=1e-9), name


def test_runner_reports_progress_and_can_be_cancelled():
    script = ("import sys, time\n"
              "for i in range(1, 100):\n"
              "    print(f'{i}/100 cases', flush=True); time.sleep(0.05)\n")
    seen: list[float] = []
    runner = cohort.SubprocessRunner([sys.executable, "-c", script], on_progress=seen.append).start()
    while not seen:
        time.sleep(0.01)
    runner.cancel()
    state = runner.wait(timeout=10)
    assert state.status == "cancelled" and state.returncode != 0
    assert 0 < state.fraction < 1 and seen == sorted(seen)


def test_runs_leave_no_pipe_open(open_files):
    """Slicer runs many cohorts in one session: a finished or cancelled run must not keep its output pipe open
    until the garbage collector runs."""
    gc.collect()
    gc.disable()
    try:
        before = len(open_files())
        done = cohort.SubprocessRunner([sys.executable, "-c", "print('1/1 cases')"]).start()
        assert done.wait(timeout=60).status == "finished"
        slow = cohort.SubprocessRunner([sys.executable, "-c", "import time; print('0/1', flush=True); time.sleep(60)"])
        slow.start().cancel()
        assert slow.wait(timeout=60).status == "cancelled"
        assert len(open_files()) == before
    finally:
        gc.enable()


def test_runner_reports_failure_with_the_command_output(tmp_path):
    manifest = tmp_path / "cases.csv"
    pd.DataFrame([{"patient_id": "P1", "image": str(tmp_path / "missing.nrrd"), "mask": str(tmp_path / "m.nrrd"),
                   "label": 1}]).to_csv(manifest, index=False)
    command = cohort.extract_command(manifest, tmp_path / "f.csv", python=sys.executable)
    runner = cohort.SubprocessRunner(command, env=cohort.child_env()).start()
    state = runner.wait(timeout=120)
    assert state.status == "failed" and state.returncode != 0
    assert "0/1 cases extracted" in runner.error_text(50)
    report = cohort.failure_report(tmp_path / "f.csv")
    assert report.startswith("P1: ") and "missing.nrrd" in report and "image not found" in report


@pytest.mark.parametrize("line, expected", [
    ("radiomics:  40%|####      | 2/5 [00:03<00:04,  1.5item/s]", 0.4),
    ("3/4 cases extracted (0 from cache), 0 failed", 0.75),
    ("progress 55%", 0.55),
    ("wrote /data/2024/features.parquet", None),
])
def test_progress_parser(line, expected):
    got = cohort.ProgressParser().feed(line)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_progress_never_goes_backwards():
    p = cohort.ProgressParser()
    assert p.feed("3/4") == 0.75 and p.feed("1/4") == 0.75


def test_manifest_refuses_duplicates_and_empty_tables(tmp_path):
    with pytest.raises(InputError, match="cases table is empty"):
        cohort.write_manifest([], tmp_path / "m.csv")
    cases = [cohort.CohortCase("P1", "a.nrrd", "b.nrrd"), cohort.CohortCase("P1", "c.nrrd", "d.nrrd")]
    with pytest.raises(InputError, match="patient P1: duplicate patient_id"):
        cohort.write_manifest(cases, tmp_path / "m.csv")
    with pytest.raises(InputError, match="lacks column"):
        cohort.cases_from_table(pd.DataFrame({"patient_id": ["P1"], "image": ["a"]}))


def test_cohort_command_needs_cases_and_output(logic):
    with pytest.raises(InputError, match="no cases table"):
        logic.cohortCommand(None, "out.parquet")
