"""Fixtures for the Slicer module: real slicer-core scenes with the real lung2 CT, and a demo bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from gistrisk.radiomics.params import param_file, params_sha256
from gistrisk.radiomics.phantom import phantom_features

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SlicerGISTRisk"
PHANTOM_PARAMS = "pyradiomics_baseline"
for _p in (MODULE_DIR, Path(__file__).resolve().parent):  # the module's Lib, and the app shim
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))


@pytest.fixture(scope="session")
def module():
    """SlicerGISTRisk.py imported with the application stand-ins (slicer.app, qt, base classes)."""
    import slicer_app_shim

    slicer_app_shim.install()
    import SlicerGISTRisk

    return SlicerGISTRisk


@pytest.fixture
def scene():
    """A fresh real MRML scene (segmentation converters registered as in the application)."""
    from slicer_app_shim import new_scene

    return new_scene()


@pytest.fixture(scope="session")
def lung2_files(shared_data) -> tuple[Path, Path]:
    ct = shared_data / "ct"
    return ct / "lung2_image.nrrd", ct / "lung2_label.nrrd"


@pytest.fixture(scope="session")
def lung2_loaded(lung2_files):
    """The lung2 CT and tumour read once by the module's loaders (0.3-0.4 s: the label import), in a scene
    of their own that tests only copy from."""
    from slicer_app_shim import new_scene

    from SlicerGISTRiskLib import mrml_convert as mc

    scene = new_scene()
    volume = mc.load_volume_file(scene, lung2_files[0], name="lung2")
    return volume, mc.labelmap_file_to_segmentation(scene, lung2_files[1], volume, name="lung2 tumour")


@pytest.fixture
def lung2(scene, lung2_files, lung2_loaded):
    """(scene, CT volume node, segmentation node, segment id): the real lung2 files as the loaders read
    them (deep copies of :func:`lung2_loaded`, with the CT's storage node naming its file)."""
    from SlicerGISTRiskLib import mrml_convert as mc

    loaded_volume, loaded_seg = lung2_loaded
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", loaded_volume.GetName())
    volume.CopyContent(loaded_volume, True)
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(lung2_files[0]))
    volume.SetAndObserveStorageNodeID(storage.GetID())
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", loaded_seg.GetName())
    seg.CopyContent(loaded_seg, True)
    seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    return scene, volume, seg, mc.segment_ids(seg)[0]


@pytest.fixture(scope="session")
def logic(module):
    """One Logic for the session: its radiomics cache makes re-applying on lung2 cost no extraction."""
    return module.SlicerGISTRiskLogic()


@pytest.fixture(scope="session")
def lung2_result(logic, shared_data):
    """Radiomics of lung2 through the module's Logic (PyRadiomics baseline settings, original image)."""
    from slicer_app_shim import new_scene

    from SlicerGISTRiskLib import mrml_convert as mc
    from SlicerGISTRiskLib.workflow import CaseInputs

    scene = new_scene()
    volume = mc.load_volume_file(scene, shared_data / "ct" / "lung2_image.nrrd", name="lung2")
    seg = mc.labelmap_file_to_segmentation(scene, shared_data / "ct" / "lung2_label.nrrd", volume)
    return logic.process(CaseInputs(volume, seg, mc.segment_ids(seg)[0], params="pyradiomics_baseline"))


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory, lung2_result, gistrisk_cli) -> Path:
    """A three-modality bundle fitted by `gistrisk fit` on the demo cohort (fast settings; the command
    run in this process)."""
    from demo_cohort import fit_command, write_demo_cohort, write_fit_config

    folder = tmp_path_factory.mktemp("demo_cohort")
    files = write_demo_cohort(folder, lung2_result.radiomics.features)
    bundle = folder / "model"
    config = write_fit_config(folder / "fit.yaml")
    run = gistrisk_cli(*fit_command("gistrisk", files, bundle, config)[1:])
    assert run.returncode == 0, run.stderr[-2000:]
    return bundle


@pytest.fixture(scope="session")
def extension_build(tmp_path_factory) -> tuple[Path, Path]:
    """(build folder, install prefix) of the extension configured and installed by CMake against the
    Slicer stand-in (slicer_cmake_stand_in/); skipped without cmake and a C/C++ compiler."""
    if not all(shutil.which(t) for t in ("cmake", "cc", "c++")):
        pytest.skip("cmake and a C/C++ compiler are needed to configure the extension")
    root = tmp_path_factory.mktemp("cmake")
    build, prefix = root / "build", root / "install"
    stand_in = Path(__file__).resolve().parent / "slicer_cmake_stand_in"
    for cmd in (["cmake", "-S", str(REPO), "-B", str(build), f"-DSlicer_DIR={stand_in}", "-DBUILD_TESTING=ON"],
                ["cmake", "--install", str(build), "--prefix", str(prefix)]):
        run = subprocess.run(cmd, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return build, prefix


@pytest.fixture(scope="session")
def phantom_bundle(tmp_path_factory, demo_bundle) -> Path:
    """The demo bundle with the radiomics extraction record `gistrisk fit` writes: the phantom's
    features with the parameter file the Logic tests use (pyradiomics_baseline)."""
    bundle = tmp_path_factory.mktemp("phantom") / "model"
    shutil.copytree(demo_bundle, bundle)
    d = json.loads((bundle / "model.json").read_text())
    path = param_file(PHANTOM_PARAMS)
    d["info"].setdefault("extraction", {})["radiomics"] = {
        "kind": "radiomics", "pyradiomics": "3.1.4", "params_sha256": params_sha256(path), "params_file": path.name,
        "phantom": phantom_features(path)}
    (bundle / "model.json").write_text(json.dumps(d))
    return bundle


@pytest.fixture(scope="session")
def slide_row(tmp_path_factory, demo_bundle) -> Path:
    """A one-row slide-feature table as the pathology arm exports it (all 6 demo slide features)."""
    p = tmp_path_factory.mktemp("slide") / "slide_features.csv"
    pd.DataFrame([{"patient_id": "S-77", **{f"path_{j:04d}": 0.5 for j in range(6)}}]).to_csv(p, index=False)
    return p


def pytest_collection_modifyitems(config, items):
    """Every test here needs slicer-core: mark them `slicer` (see pyproject's markers)."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slicer)
