"""The shipped parameter files: schema-valid, resolvable by name, and the paper file's feature count."""

from __future__ import annotations

from pathlib import Path

import pytest

from gistrisk.errors import InputError
from gistrisk.radiomics import extract_case, param_file
from gistrisk.radiomics.params import load_params, shipped_param_files

SHIPPED = ["gist_ct_paper", "ibsi_phantom", "pyradiomics_baseline"]


def test_all_three_are_shipped() -> None:
    assert sorted(shipped_param_files()) == SHIPPED
    assert param_file("gist_ct_paper").name == "gist_ct_paper.yaml"
    assert param_file("gist_ct_paper.yaml") == param_file("gist_ct_paper")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_passes_pyradiomics_schema(name: str) -> None:
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    cfg = load_params(param_file(name))
    assert set(cfg) == {"imageType", "featureClass", "setting"}
    ext = RadiomicsFeatureExtractor(str(param_file(name)))  # PyRadiomics validates again on load
    assert "Original" in ext.enabledImagetypes


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(InputError, match="gist_ct_paper"):
        param_file("no_such_setting")


def test_unknown_key_is_rejected_naming_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("imageType:\n  Original: {}\nsetting:\n  binWidht: 25\n")
    with pytest.raises(InputError) as e:
        load_params(bad)
    assert "binWidht" in str(e.value) and str(bad) in str(e.value)


def test_unknown_key_fails_extraction_too(tmp_path: Path, lung2_crop) -> None:
    bad = tmp_path / "typo.yaml"
    bad.write_text("imageType:\n  Original: {}\nsetting:\n  resampledPixelSpacing: [2, 2, 2]\n  bogus: 1\n")
    img, msk = lung2_crop
    with pytest.raises(InputError, match="bogus"):
        extract_case(img, msk, bad)


@pytest.mark.slow
def test_paper_setting_gives_the_documented_2246_features(lung2_crop) -> None:
    img, msk = lung2_crop
    res = extract_case(img, msk)  # default = gist_ct_paper
    names = list(res.features)
    assert len(names) == 2246  # 107 + 23 x 93, as documented in gist_ct_paper.yaml
    image_types = {n.split("_")[0] for n in names}
    assert len(image_types) == 24 and {"original", "wavelet-HHH", "log-sigma-5-0-mm-3D", "lbp-3D-k"} <= image_types
    assert sum(n.startswith("original_") for n in names) == 107
    assert res.diagnostics["diagnostics_Image-interpolated_Spacing"] == [2.0, 2.0, 2.0]
    assert res.diagnostics["gistrisk_params_sha256"] == __import__("gistrisk.provenance").provenance.file_sha256(
        param_file("gist_ct_paper"))
    text = param_file("gist_ct_paper").read_text()
    assert "2,246" in text and "2,266" in text
