"""Apply shares one case's image types over the available cores, as `gistrisk radiomics extract` does, with
the features of the sequential run; where Slicer cannot start worker processes it runs in one and says why."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import yaml

from gistrisk.radiomics import parallel
from gistrisk.radiomics.extract import extract_case
from SlicerGISTRiskLib.radiomics_step import NO_FORK, compute_radiomics
from SlicerGISTRiskLib.workflow import result_table

# several image types (so that there is something to share), few feature classes (seconds on lung2)
SHARED = {"imageType": {"Original": {}, "Square": {}, "Gradient": {}, "LoG": {"sigma": [2.0, 4.0]}},
          "featureClass": {"shape": [], "firstorder": [], "glcm": ["Contrast", "JointEntropy"]},
          "setting": {"binWidth": 25, "label": 1, "resampledPixelSpacing": [2.0, 2.0, 2.0],
                      "interpolator": "sitkBSpline", "additionalInfo": True}}


@pytest.fixture(scope="module")
def case(lung2_files, tmp_path_factory):
    params = tmp_path_factory.mktemp("params") / "shared.yaml"
    params.write_text(yaml.safe_dump(SHARED))
    image, mask = (sitk.ReadImage(str(p)) for p in lung2_files)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    i, j, k, si, sj, sk = stats.GetBoundingBox(1)
    box = (slice(i - 6, i + si + 6), slice(j - 6, j + sj + 6), slice(k - 1, k + sk + 1))  # the tumour and a margin
    return image[box], mask[box], params


@pytest.mark.skipif(parallel.available_cores() < 2 or parallel.default_start_method() != "fork",
                    reason="needs two cores and fork (Linux)")
def test_apply_shares_the_image_types_over_the_cores(case):
    image, mask, params = case
    res = compute_radiomics(image, mask, params)
    run = res.diagnostics["gistrisk_parallel"]
    assert run["requested"] == parallel.resolve_workers(None) >= 2 and run["start_method"] == "fork"
    assert res.provenance["workers"] == run
    seq = extract_case(image, mask, params, label=1, workers=1)
    assert list(res.features) == list(seq.features)
    assert np.array(list(res.features.values())).tobytes() == np.array(list(seq.features.values())).tobytes()


def test_without_fork_apply_runs_in_one_process_and_says_why(case, monkeypatch):
    """Windows and macOS: Slicer's Python is started through a launcher that spawned children cannot use
    (Slicer issue #7445); they would hang until a time limit, so Apply does not start any."""
    image, mask, params = case
    monkeypatch.setattr(parallel, "default_start_method", lambda: "spawn")
    res = compute_radiomics(image, mask, params)
    assert "gistrisk_parallel" not in res.diagnostics
    assert res.provenance["workers"] == {"workers": 1, "why": "worker processes need fork (Linux) in Slicer: "
                                         "Slicer's Python launcher cannot start spawned ones (Slicer issue #7445)"}


def test_the_results_table_says_how_many_processes_computed_the_radiomics_and_why(lung2_result):
    """The baseline parameter file has one image type: nothing to share, one process, and the table says so."""
    table = result_table(lung2_result)
    rows = table[table["section"] == "provenance"].set_index("name")
    assert rows.loc["radiomics_processes", "value"] == 1
    notes = table.loc[table["name"] == "radiomics_processes_note", "text"].tolist()
    assert notes == (["sequential: a single image type"] if parallel.default_start_method() == "fork" else [NO_FORK])
