"""The phantom: the same numbers everywhere, and the module refusing a PyRadiomics or parameter file
that computes other numbers than the model's record (or, when the user goes on, warning on every result)."""

from __future__ import annotations

import hashlib
import math

import pytest
import yaml

from gistrisk.radiomics.params import param_file
from gistrisk.radiomics.phantom import RTOL, phantom_arrays, phantom_differences, phantom_features
from gistrisk.survival.model import MultimodalRiskModel
from SlicerGISTRiskLib import radiomics_check
from SlicerGISTRiskLib.mrml_convert import table_node_to_dataframe
from SlicerGISTRiskLib.workflow import CaseInputs

BASELINE = "pyradiomics_baseline"
CLINICAL = {"tumour_size_cm": "7.0", "mitoses_per_5mm2": "4", "site": "stomach", "rupture": "no"}
#: The phantom's voxels: bundles record its features, so it must never change unnoticed.
PHANTOM_SHA256 = "17f295e9e3ab0c5a930c601a946bbb0d4462063d5a2c95f1d8809575e3b7f607"


@pytest.fixture(scope="module")
def bin_width_20(tmp_path_factory):
    """The baseline parameter file with another bin width (20 instead of 25 HU)."""
    cfg = yaml.safe_load(param_file(BASELINE).read_text())
    cfg["setting"]["binWidth"] = 20
    path = tmp_path_factory.mktemp("params") / "baseline_bw20.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_phantom_is_fixed_and_ct_like():
    ct, mask = phantom_arrays()
    assert hashlib.sha256(ct.tobytes() + mask.tobytes()).hexdigest() == PHANTOM_SHA256
    assert ct.shape == mask.shape == (24, 24, 24) and ct.min() < 0  # HU, as the CT check asks
    assert 1000 < mask.sum() < 2000 and all(mask.any(axis=a).sum() > 5 for a in range(3))


def test_phantom_features_repeat_exactly():
    a, b = phantom_features(BASELINE), phantom_features(BASELINE)
    assert len(a) == 107 and a == b and phantom_differences(a, b) == []


def test_the_gist_parameter_file_computes_every_image_type_here():
    # 2,246 = 107 original + 23 filtered images x 93 (gist_ct_paper.yaml); without trimesh PyRadiomics
    # skips LBP3D with a warning and 279 features are missing: the phantom check would refuse
    features = phantom_features("gist_ct_paper")
    assert len(features) == 2246 and sum(k.startswith("lbp-3D-") for k in features) == 3 * 93


def test_another_bin_width_is_a_difference(bin_width_20):
    diff = phantom_differences(phantom_features(BASELINE), phantom_features(bin_width_20))
    assert len(diff) > 50 and any(d.startswith("original_glcm_") for d in diff)


def test_differences_tolerance_missing_and_nan():
    rec = {"a": 100.0, "b": 1.0, "c": math.nan, "d": 2.0}
    assert phantom_differences(rec, {"a": 100.0 * (1 + RTOL / 2), "b": 1.0, "c": math.nan, "d": 2.0}) == []
    assert phantom_differences({**rec, "c": None}, rec) == []  # a NaN stored as JSON null
    diff = phantom_differences(rec, {"a": 100.0 * (1 + 10 * RTOL), "b": math.nan, "c": 1.0, "e": 3.0})
    assert [d.split(":")[0] for d in diff] == ["a", "b", "c", "d", "e"]
    assert "not computed here" in diff[3] and "not recorded" in diff[4]


def _inputs(lung2, bundle, params=BASELINE):
    _, volume, seg, sid = lung2
    return CaseInputs(volume, seg, sid, bundle_dir=str(bundle), clinical_values=CLINICAL, params=params,
                      patient_id="LUNG2")


@pytest.mark.slow
def test_same_pyradiomics_and_parameter_file_pass_without_warning(logic, lung2, phantom_bundle):
    result = logic.process(_inputs(lung2, phantom_bundle))
    assert not any("phantom" in w for w in result.prediction.warnings)


@pytest.mark.slow
def test_another_bin_width_is_refused_before_any_extraction(logic, lung2, phantom_bundle, bin_width_20):
    progress: list[float] = []
    with pytest.raises(radiomics_check.RadiomicsMismatch, match=r"phantom features disagree.*baseline_bw20.yaml"):
        logic.process(_inputs(lung2, phantom_bundle, bin_width_20), progress=lambda f, m: progress.append(f))
    assert progress == []  # refused up front: no radiomics run on the patient


@pytest.mark.slow
def test_going_on_anyway_warns_in_every_result(logic, lung2, phantom_bundle, bin_width_20):
    result = logic.process(_inputs(lung2, phantom_bundle, bin_width_20), allowRadiomicsMismatch=True)
    warning = result.prediction.warnings[0]
    assert "radiomics computed here differ from the model's" in warning and "pyradiomics_baseline.yaml" in warning
    assert warning in result.summary()["warnings"]
    table, _ = logic.writeResults(result)
    rows = table_node_to_dataframe(table)
    assert warning in rows.loc[rows["section"] == "warning", "text"].tolist()


def test_a_bundle_without_a_phantom_record_cannot_be_checked(demo_bundle):
    model = MultimodalRiskModel.load(demo_bundle)
    model.info_.pop("extraction", None)
    expected = [radiomics_check.NO_RECORD] if "radiomics" in model.modalities_ else []
    assert radiomics_check.phantom_check(model, BASELINE) == expected


def test_the_check_runs_once_per_parameter_file(phantom_bundle, monkeypatch):
    model = MultimodalRiskModel.load(phantom_bundle)
    calls: list = []
    monkeypatch.setattr(radiomics_check, "phantom_features", lambda p: calls.append(p) or phantom_features(p))
    cache: dict = {}
    for _ in range(2):
        assert radiomics_check.phantom_check(model, BASELINE, cache=cache) == []
    assert len(calls) == 1 and len(cache) == 1
