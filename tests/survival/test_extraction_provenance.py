"""The bundle carries how its feature tables were extracted; a table extracted otherwise is refused."""

import json
import shutil

import pandas as pd
import pytest
import yaml

from gistrisk.extraction import provenance_file, read_extraction
from gistrisk.radiomics.phantom import phantom_differences, phantom_features
from gistrisk.survival.synthetic import make_tables


@pytest.fixture(scope="module")
def extracted(shared_data, tmp_path_factory, gistrisk):
    """The IBSI phantom extracted for real with two parameter files: their provenance files."""
    d = tmp_path_factory.mktemp("phantom")
    img, mask = shared_data / "ibsi" / "digital_phantom_image.nrrd", shared_data / "ibsi" / "digital_phantom_mask.nrrd"
    for params in ("ibsi_phantom", "pyradiomics_baseline"):
        r = gistrisk("radiomics", "extract", "--image", img, "--mask", mask, "--params", params,
                     "--modality", "MR", "--out", d / f"{params}.csv")
        assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def cohort(extracted, tmp_path_factory, fast, gistrisk):
    d = tmp_path_factory.mktemp("cohort")
    tables, out, _ = make_tables(120, p={"clinical": 5, "radiomics": 20}, seed=4)
    for m, df in tables.items():
        df.reset_index().to_csv(d / f"{m}.csv", index=False)
    out.reset_index().to_csv(d / "outcomes.csv", index=False)
    # the development radiomics table was extracted with the IBSI parameter file
    shutil.copy(provenance_file(extracted / "ibsi_phantom.csv"), provenance_file(d / "radiomics.csv"))
    (d / "fit.yaml").write_text(yaml.safe_dump({**fast, "bootstrap": 20}))
    r = gistrisk("fit", "--outcomes", d / "outcomes.csv", "-m", f"clinical={d / 'clinical.csv'}",
                 "-m", f"radiomics={d / 'radiomics.csv'}", "--config", d / "fit.yaml", "--out", d / "model")
    assert r.returncode == 0, r.stderr
    return d


def test_the_bundle_records_the_extraction_of_its_tables(cohort, extracted):
    info = json.loads((cohort / "model/model.json").read_text())["info"]
    rec = info["extraction"]["radiomics"]
    phantom = rec.pop("phantom")
    assert rec == {**read_extraction(extracted / "ibsi_phantom.csv"), "source": rec["source"]}
    # the phantom extracted with the training parameter file travels with the bundle (Slicer checks it)
    assert phantom_differences(phantom, phantom_features("ibsi_phantom")) == []
    assert phantom_differences(phantom, phantom_features("pyradiomics_baseline"))
    assert rec["params_file"] == "ibsi_phantom.yaml" and len(rec["params_sha256"]) == 64 and rec["pyradiomics"]
    assert info["extraction"]["clinical"] is None


def test_a_table_extracted_with_another_parameter_file_is_refused(cohort, extracted, gistrisk, tmp_path):
    new = tmp_path / "radiomics.csv"
    pd.read_csv(cohort / "radiomics.csv").iloc[:5].to_csv(new, index=False)
    shutil.copy(provenance_file(extracted / "pyradiomics_baseline.csv"), provenance_file(new))
    r = gistrisk("predict", "--model", cohort / "model", "-m", f"radiomics={new}", "--out", tmp_path / "p.csv")
    assert r.returncode == 2 and "radiomics features extracted differently" in r.stderr
    assert "params_sha256" in r.stderr and not (tmp_path / "p.csv").exists()
    r = gistrisk("predict", "--model", cohort / "model", "-m", f"radiomics={new}", "--out", tmp_path / "p.csv",
                 "--allow-extraction-mismatch")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(tmp_path / "p.csv")
    assert pred["warnings"].str.contains("params_sha256").all()


def test_the_same_extraction_passes_and_a_missing_provenance_is_said(cohort, extracted, gistrisk, tmp_path):
    new = tmp_path / "radiomics.csv"
    pd.read_csv(cohort / "radiomics.csv").iloc[:5].to_csv(new, index=False)
    r = gistrisk("predict", "--model", cohort / "model", "-m", f"radiomics={new}", "--out", tmp_path / "p.csv")
    assert r.returncode == 0 and "cannot be checked" in r.stderr
    shutil.copy(provenance_file(extracted / "ibsi_phantom.csv"), provenance_file(new))
    r = gistrisk("predict", "--model", cohort / "model", "-m", f"radiomics={new}", "--out", tmp_path / "p.csv")
    assert r.returncode == 0 and "extracted differently" not in r.stderr and "cannot be checked" not in r.stderr
