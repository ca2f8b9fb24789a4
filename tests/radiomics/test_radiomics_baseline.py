"""Acceptance: lung2 and brain1 with the baseline setting match PyRadiomics' own baseline CSVs."""

from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from gistrisk.radiomics import extract_files, param_file
from gistrisk.radiomics.params import load_params

CLASSES = ["firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape"]


def _baseline(ct_dir: Path, case: str) -> tuple[dict[str, float], dict]:
    values, settings = {}, None
    for cls in CLASSES:
        df = pd.read_csv(ct_dir / "baseline" / f"baseline_{cls}.csv", index_col=0)
        col = df[case]
        s = ast.literal_eval(col["diagnostics_Configuration_Settings"])
        assert settings is None or s == settings  # one setting for all classes of a case
        settings = s
        values |= {k: float(v) for k, v in col.items() if k.startswith("original_")}
    return values, settings


@pytest.mark.slow
@pytest.mark.parametrize("case,modality", [("lung2", "CT"), ("brain1", "MR")])
def test_baseline_setting_reproduces_pyradiomics_baseline(ct_dir: Path, case: str, modality: str) -> None:
    expected, settings = _baseline(ct_dir, case)
    # the shipped file carries the settings of the diagnostics_Configuration_Settings row
    ours = load_params(param_file("pyradiomics_baseline"))["setting"]
    for key, val in ours.items():
        assert settings[key] == val, key
    for key in ("resampledPixelSpacing", "resegmentRange", "removeOutliers", "minimumROISize"):
        assert settings[key] is None and key not in ours

    res = extract_files(ct_dir / f"{case}_image.nrrd", ct_dir / f"{case}_label.nrrd", params="pyradiomics_baseline",
                        patient_id=case, modality=modality)
    assert len(expected) == 107
    assert set(expected) == {k for k in res.features if k.startswith("original_")}
    bad = {k: (res.features[k], v) for k, v in expected.items() if res.features[k] != pytest.approx(v, rel=1e-3)}
    assert not bad, bad
