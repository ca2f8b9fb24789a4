"""Acceptance: the module's Logic on the real lung2 CT in a real slicer-core scene.

Features through the Logic equal `gistrisk radiomics extract` on the same files; a fused
prediction comes out of a bundle fitted by `gistrisk fit` on a demo cohort, and lands in MRML.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import BundleError, InputError

BASELINE = "pyradiomics_baseline"  # original image only: seconds, not minutes


def _inputs(lung2, **kw):
    from SlicerGISTRiskLib.workflow import CaseInputs

    _, volume, seg, sid = lung2
    return CaseInputs(volume, seg, sid, params=BASELINE, patient_id="LUNG2", **kw)


CLINICAL = {"mitoses_per_5mm2": "4", "site": "stomach", "rupture": "no"}


@pytest.mark.slow
def test_features_through_the_logic_equal_the_command_line(lung2_result, lung2_files, tmp_path, gistrisk_cli):
    """The command in this process (its own process: tests/radiomics/test_radiomics_cli.py)."""
    out = tmp_path / "row.csv"
    run = gistrisk_cli("radiomics", "extract", "--image", lung2_files[0], "--mask", lung2_files[1],
                       "--params", BASELINE, "--out", out)
    assert run.returncode == 0, run.stderr
    row = pd.read_csv(out).iloc[0]
    ours = lung2_result.radiomics.features
    assert len(ours) == 107 and set(ours) == set(row.index) - {"patient_id"}
    for name, value in ours.items():
        assert value == pytest.approx(float(row[name]), rel=1e-9, abs=1e-12), name
    prov = lung2_result.radiomics.provenance["pyradiomics"]
    assert prov["provider"] == "pip:pyradiomics-bhklab" and prov["version"] == "3.1.4"


@pytest.mark.slow
def test_fused_prediction_lands_in_mrml(logic, lung2, demo_bundle, slide_row, lung2_result):
    from gistrisk.survival.model import MultimodalRiskModel

    scene, volume, seg, sid = lung2
    size_field, size = logic.prefillTumourSize(str(demo_bundle), volume, seg, sid)
    assert size_field == "tumour_size_cm" and size == pytest.approx(7.0, abs=0.1)
    progress: list[float] = []
    result = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(slide_row),
                                   clinical_values={**CLINICAL, size_field: str(size)}),
                           progress=lambda f, m: progress.append(f))
    assert progress == sorted(progress) and progress[-1] == 1.0

    p = result.prediction.prediction
    assert p["modalities_used"] == "clinical;pathology;radiomics" and not p["partial"]
    assert p["risk_group"] in ("low", "high") and np.isfinite(p["risk"])
    assert 1 > p["rfs_12"] >= p["rfs_36"] >= p["rfs_60"] > 0
    assert result.prediction.nih == "intermediate"  # gastric, 5-10 cm, <= 5 mitoses (Joensuu 2008)

    # The same numbers as the frozen model on tables built independently of the Logic.
    model = MultimodalRiskModel.load(demo_bundle)
    tables = {
        "radiomics": pd.DataFrame([{"patient_id": "LUNG2", **lung2_result.radiomics.features}]),
        "clinical": pd.DataFrame([{"patient_id": "LUNG2", "tumour_size_cm": size, "mitoses_per_5mm2": 4.0}]),
        "pathology": pd.read_csv(slide_row).assign(patient_id="LUNG2"),
    }
    expected = model.predict(tables).iloc[0]
    assert p["risk"] == pytest.approx(expected["risk"], rel=1e-12)
    assert p["rfs_36"] == pytest.approx(expected["rfs_36"], rel=1e-12)

    table, chart = logic.writeResults(result)
    from SlicerGISTRiskLib.mrml_convert import table_node_to_dataframe

    df = table_node_to_dataframe(table)
    rows = df.set_index(["section", "name"])
    assert rows.loc[("prediction", "risk"), "value"] == pytest.approx(p["risk"])
    assert rows.loc[("prediction", "modified_nih"), "text"] == "intermediate"
    assert rows.loc[("provenance", "pyradiomics_provider"), "text"] == "pip:pyradiomics-bhklab"
    assert (df["section"] == "radiomics").sum() == 107
    assert chart.GetNumberOfPlotSeriesNodes() == 3
    names = [chart.GetNthPlotSeriesNode(i).GetName() for i in range(3)]
    assert names[0] == "Predicted RFS (LUNG2)" and any("high-risk" in n for n in names)
    for i in range(3):
        series = chart.GetNthPlotSeriesNode(i)
        curve = table_node_to_dataframe(series.GetTableNode())
        assert curve["rfs"].between(0, 1).all() and (np.diff(curve["rfs"]) <= 1e-12).all()
    patient = table_node_to_dataframe(chart.GetNthPlotSeriesNode(0).GetTableNode())
    at_12 = patient.loc[patient["time_months"] <= 12, "rfs"].iloc[-1]
    assert at_12 == pytest.approx(p["rfs_12"], rel=1e-9)

    # Apply again reuses the nodes instead of piling up new ones.
    n_nodes = scene.GetNumberOfNodes()
    logic.writeResults(result, table, chart)
    assert scene.GetNumberOfNodes() == n_nodes and chart.GetNumberOfPlotSeriesNodes() == 3


def test_site_file_harmonises_as_the_command_line_and_unharmonised_is_flagged(logic, lung2, demo_bundle, slide_row,
                                                                              tmp_path, gistrisk_cli):
    from gistrisk.harmonise.site import harmonise_tables, read_site_file
    from gistrisk.survival.model import MultimodalRiskModel

    site_rows = pd.read_csv(demo_bundle.parent / "radiomics.csv")
    features = site_rows.columns.drop("patient_id")
    site_rows[features] = site_rows[features] * 1.5 + 0.1  # another scanner
    site_rows.to_csv(tmp_path / "site_radiomics.csv", index=False)
    site = tmp_path / "site.json"
    run = gistrisk_cli("harmonise", "--model", demo_bundle, "-m", f"radiomics={tmp_path / 'site_radiomics.csv'}",
                       "--site", "B", "--out", site)
    assert run.returncode == 0, run.stderr[-2000:]
    clinical = {**CLINICAL, "tumour_size_cm": "7"}
    plain = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(slide_row),
                                  clinical_values=clinical))
    assert any("not harmonised" in w for w in plain.prediction.warnings)
    result = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(slide_row),
                                   clinical_values=clinical, site_file=str(site)))
    assert any("harmonised to the development cohort with site file site.json" in w
               for w in result.prediction.warnings)
    model = MultimodalRiskModel.load(demo_bundle)
    tables = {"radiomics": pd.DataFrame([{"patient_id": "LUNG2", **result.radiomics.features}]),
              "clinical": pd.DataFrame([{"patient_id": "LUNG2", "tumour_size_cm": 7.0, "mitoses_per_5mm2": 4.0}]),
              "pathology": pd.read_csv(slide_row).assign(patient_id="LUNG2")}
    expected = model.predict(harmonise_tables(model.info_, tables, read_site_file(site, model.info_))).iloc[0]
    p = result.prediction.prediction
    assert p["score_radiomics"] == pytest.approx(expected["score_radiomics"], rel=1e-12)
    assert p["score_radiomics"] != pytest.approx(plain.prediction.prediction["score_radiomics"], rel=1e-6)
    assert p["risk"] == pytest.approx(expected["risk"], rel=1e-12)


def test_scores_outside_the_development_range_are_named_in_the_results(logic, lung2, demo_bundle, tmp_path):
    bundle = tmp_path / "narrow"
    shutil.copytree(demo_bundle, bundle)
    d = json.loads((bundle / "model.json").read_text())
    d["info"]["model_card"]["score_ranges"]["clinical"].update({"min": -0.001, "max": 0.001, "sd": 0.5})
    (bundle / "model.json").write_text(json.dumps(d))
    result = logic.process(_inputs(lung2, bundle_dir=str(bundle), clinical_values={**CLINICAL, "tumour_size_cm": "30"}))
    flagged = [w for w in result.prediction.warnings if w.startswith("outside the development cohort")]
    assert len(flagged) == 1 and "clinical score=" in flagged[0] and " SD " in flagged[0]


@pytest.mark.slow
def test_partial_prediction_without_pathology_is_flagged(logic, lung2, demo_bundle):
    result = logic.process(_inputs(
        lung2, bundle_dir=str(demo_bundle), clinical_values={**CLINICAL, "tumour_size_cm": "7"}))
    p = result.prediction.prediction
    assert p["partial"] and p["modalities_used"] == "clinical;radiomics"
    assert result.prediction.missing_modalities == ["pathology"]
    assert any("pathology not available" in w for w in result.prediction.warnings)


@pytest.mark.slow
def test_patscore_file_gives_the_same_risk_as_the_slide_row(logic, lung2, demo_bundle, slide_row, tmp_path):
    from gistrisk.survival.model import MultimodalRiskModel

    model = MultimodalRiskModel.load(demo_bundle)
    score = model.scores({"pathology": pd.read_csv(slide_row)})["score_pathology"].iloc[0]
    patscore = tmp_path / "patscore.csv"
    pd.DataFrame([{"patient_id": "S-77", "patscore": score}]).to_csv(patscore, index=False)
    clinical = {**CLINICAL, "tumour_size_cm": "7"}
    by_row = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(slide_row),
                                   clinical_values=clinical))
    by_score = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(patscore),
                                     clinical_values=clinical))
    assert by_score.prediction.prediction["risk"] == pytest.approx(by_row.prediction.prediction["risk"], rel=1e-12)
    assert by_score.prediction.curve["survival"].to_numpy() == pytest.approx(
        by_row.prediction.curve["survival"].to_numpy(), rel=1e-12)


@pytest.mark.slow
def test_model_without_a_fusion_model_for_what_is_given_says_what_is_missing(logic, lung2, demo_bundle, tmp_path):
    bundle = tmp_path / "needs_pathology"
    shutil.copytree(demo_bundle, bundle)
    d = json.loads((bundle / "model.json").read_text())
    d["fusion"] = {k: v for k, v in d["fusion"].items() if "pathology" in k}
    (bundle / "model.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="patient LUNG2: the model cannot predict without pathology.*provide pathology"):
        logic.process(_inputs(lung2, bundle_dir=str(bundle),
                                                     clinical_values={**CLINICAL, "tumour_size_cm": "7"}))


@pytest.mark.slow
def test_export_report_writes_the_patient_html(logic, lung2_result, tmp_path):
    path = logic.exportReport(lung2_result, str(tmp_path / "r.html"))
    text = path.read_text()
    assert "lung2" in text and "original_glcm_Contrast" in text and "pip:pyradiomics-bhklab" in text
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # atomic: no temporary left behind


@pytest.mark.slow
def test_export_report_with_prediction_shows_risk_nih_and_curve(logic, lung2, demo_bundle, slide_row, tmp_path):
    result = logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(slide_row),
                                   clinical_values={**CLINICAL, "tumour_size_cm": "7"}))
    text = logic.exportReport(result, str(tmp_path / "LUNG2.html")).read_text()
    assert "LUNG2" in text and "intermediate" in text and "pip:pyradiomics-bhklab 3.1.4" in text
    assert "data:image/png;base64," in text and result.prediction.prediction["risk_group"] in text


# ---- bad input: clear messages, raised before any long computation ----

def test_missing_corrupt_and_newer_bundles_are_refused(logic, lung2, demo_bundle, tmp_path):
    with pytest.raises(BundleError, match="not found"):
        logic.process(_inputs(lung2, bundle_dir=str(tmp_path / "no_such_model")))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text("{ not json")
    with pytest.raises(BundleError, match="corrupt"):
        logic.process(_inputs(lung2, bundle_dir=str(corrupt)))
    newer = tmp_path / "newer"
    shutil.copytree(demo_bundle, newer)
    d = json.loads((newer / "model.json").read_text())
    d["schema_version"] = 99
    (newer / "model.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="schema version 99 is newer"):
        logic.process(_inputs(lung2, bundle_dir=str(newer)))
    with pytest.raises(BundleError, match="no model bundle here"):
        logic.process(_inputs(lung2, bundle_dir=str(tmp_path)))


def test_clinical_values_out_of_range_are_refused(logic, lung2, demo_bundle):
    with pytest.raises(InputError, match="patient LUNG2, column 'tumour_size_cm': -7 cm is negative"):
        logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), clinical_values={"tumour_size_cm": "-7"}))
    with pytest.raises(InputError, match="column 'mitoses_per_5mm2': 'twelve' is not a number"):
        logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), clinical_values={"mitoses_per_5mm2": "twelve"}))


def test_bad_pathology_file_is_named(logic, lung2, demo_bundle, tmp_path):
    bad = tmp_path / "slide.csv"
    pd.DataFrame([{"patient_id": "X", "other": 1.0}]).to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"slide.csv, patient LUNG2: the slide-feature row lacks"):
        logic.process(_inputs(lung2, bundle_dir=str(demo_bundle), pathology_file=str(bad)))


def test_no_segmentation_empty_segment_and_non_ct_are_refused(logic, lung2, scene, shared_data):
    from SlicerGISTRiskLib import mrml_convert as mc
    from SlicerGISTRiskLib.workflow import CaseInputs

    _, volume, seg, sid = lung2
    with pytest.raises(InputError, match="no segmentation selected"):
        logic.process(CaseInputs(volume, None, ""))
    empty = seg.GetSegmentation().AddEmptySegment("", "nothing yet")
    with pytest.raises(InputError, match="segment 'nothing yet' is empty"):
        logic.process(CaseInputs(volume, seg, empty, params=BASELINE))
    with pytest.raises(InputError, match="segment 'nope' not found"):
        logic.process(CaseInputs(volume, seg, "nope", params=BASELINE))
    brain = mc.load_volume_file(volume.GetScene(), shared_data / "ct" / "brain1_image.nrrd", name="brain1")
    with pytest.raises(InputError, match="brain1.*do not look like a CT"):
        logic.process(CaseInputs(brain, seg, sid, params=BASELINE))


@pytest.mark.slow
def test_cancel_stops_radiomics_and_writes_nothing(module, lung2):
    from SlicerGISTRiskLib.radiomics_step import Cancelled

    scene = lung2[0]
    logic = module.SlicerGISTRiskLogic()
    kinds = ("vtkMRMLTableNode", "vtkMRMLPlotChartNode", "vtkMRMLPlotSeriesNode", "vtkMRMLVolumeNode",
             "vtkMRMLSegmentationNode")
    before = {k: scene.GetNumberOfNodesByClass(k) for k in kinds}

    def progress(fraction, message):
        if message.startswith("Computing "):
            logic.cancelRequested = True  # the user clicks Cancel while PyRadiomics runs

    with pytest.raises(Cancelled):
        logic.process(_inputs(lung2), progress=progress)
    assert {k: scene.GetNumberOfNodesByClass(k) for k in kinds} == before
    assert not logic._radiomicsCache  # a cancelled run leaves no features behind
