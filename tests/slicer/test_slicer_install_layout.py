"""The module as it is installed: the tree its CMake builds, run alone in a fresh interpreter.

The tree is assembled from install_manifest.txt, the list SlicerGISTRisk/CMakeLists.txt reads;
installed_module_run.py then imports the module from it under ``python -I`` and runs the Logic.
Every module it imports must come from the tree, the standard library, or a distribution that
Resources/requirements.txt or Resources/slicer-provided.txt (or slicer-core, standing in for
Slicer) brings.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from SlicerGISTRiskLib import dependencies, install_layout

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "SlicerGISTRisk"
DRIVER = HERE / "installed_module_run.py"
SLICER_STAND_IN = [Requirement("slicer-core")]  # the MRML library Slicer itself provides


def requirement_closure(requirements: list[Requirement]) -> set[str]:
    """Canonical names of the distributions the requirements bring, following installed metadata."""
    todo, seen = list(requirements), set()
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            deps = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue
        for line in deps:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(dep)
    return {name for name, _ in seen}


def declared_closure() -> set[str]:
    return requirement_closure(dependencies.load_requirements(dependencies.REQUIREMENTS_FILE)
                               + dependencies.load_requirements(dependencies.SLICER_PROVIDED_FILE) + SLICER_STAND_IN)


def build_tree(root: Path, manifest: install_layout.Manifest | None = None) -> tuple[Path, Path]:
    """(qt-scripted-modules folder as Slicer's extension install has it, application stand-in folder)."""
    install = install_layout.assemble(MODULE_DIR, root / "lib" / "Slicer-5.10" / "qt-scripted-modules", manifest)
    app = root / "app"
    app.mkdir()
    shutil.copy2(HERE / "slicer_app_shim.py", app)
    return install, app


def run_installed(root: Path, install: Path, app: Path, ct: Path, bundle: Path, slide: Path) -> dict:
    out, work, allowed = root / "report.json", root / "work", root / "allowed.json"
    work.mkdir()
    allowed.write_text(json.dumps(sorted(declared_closure())))
    run = subprocess.run([sys.executable, "-I", str(DRIVER), "--install", str(install), "--app", str(app),
                          "--ct", str(ct), "--bundle", str(bundle), "--slide", str(slide), "--work", str(work),
                          "--allowed", str(allowed), "--out", str(out)], capture_output=True, text=True,
                         timeout=900, cwd=root)
    assert out.is_file(), run.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_module_runs_from_its_install_tree_with_only_the_declared_requirements(tmp_path, lung2_crop_files,
                                                                             phantom_bundle, slide_row):
    install, app = build_tree(tmp_path)
    report = run_installed(tmp_path, install, app, lung2_crop_files[0].parent, phantom_bundle, slide_row)
    assert report["error"] is None, report["error"]
    steps, mods = report["steps"], report["modules"]
    assert Path(steps["module_file"]).parent == install
    assert Path(steps["qupath_bridge"]).is_relative_to(install)  # shipped for `gistrisk pathology` (gistrisk.cli)
    assert steps["missing_requirements"] == []
    # the only note: no site file was given, so the radiomics features are used as extracted
    assert [w.split(" (")[0] for w in steps["warnings"]] == [
        "radiomics features not harmonised to the development cohort"]
    assert steps["result_rows"] > 100 and Path(steps["report"]).is_file()
    assert steps["cohort_exit"] in (0, None) and steps["cohort_rows"] == 1
    assert Path(steps["child_pythonpath"]) == install  # the background command imports the same gistrisk
    assert {"SlicerGISTRisk", "SlicerGISTRiskLib", "gistrisk"} <= set(mods["install"])
    assert mods["app"] == ["slicer_app_shim"] and mods["elsewhere"] == {}
    allowed = declared_closure()
    undeclared = {d: tops for d, tops in mods["dists"].items() if canonicalize_name(d) not in allowed}
    assert not undeclared, f"imported from distributions no declared requirement brings: {undeclared}"
    used = {canonicalize_name(d) for d in mods["dists"]}
    for dist in ("pandas", "scikit-survival", "matplotlib", "jinja2", "tqdm", "pyradiomics-bhklab"):
        assert dist in used, dist  # the scenario reached the code that needs them


def test_a_file_left_out_of_the_manifest_is_caught(tmp_path, lung2_crop_files, slide_row):
    manifest = install_layout.read_manifest(MODULE_DIR / install_layout.MANIFEST)
    manifest.scripts.remove("SlicerGISTRiskLib/dependencies.py")
    install, app = build_tree(tmp_path, manifest)
    report = run_installed(tmp_path, install, app, lung2_crop_files[0].parent, tmp_path / "no-bundle", slide_row)
    assert re.search(r"cannot import name 'dependencies' from 'SlicerGISTRiskLib'|"
                     r"No module named 'SlicerGISTRiskLib.dependencies'", report["error"]), report["error"]


def test_manifest_lists_every_module_file_and_resource():
    manifest = install_layout.read_manifest(MODULE_DIR / install_layout.MANIFEST)
    assert install_layout.unlisted(MODULE_DIR, manifest) == []
    assert sorted(manifest.packages) == ["../core/gistrisk", "../qupath_bridge"]


def test_manifest_names_only_existing_files(tmp_path):
    manifest = install_layout.read_manifest(MODULE_DIR / install_layout.MANIFEST)
    manifest.resources.append("Resources/Icons/missing.png")
    with pytest.raises(install_layout.ManifestError, match="missing.png"):
        install_layout.assemble(MODULE_DIR, tmp_path, manifest)
    (tmp_path / "bad.txt").write_text("script\n")
    with pytest.raises(install_layout.ManifestError, match="line 1"):
        install_layout.read_manifest(tmp_path / "bad.txt")


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_cmake_installs_the_tree_the_test_assembles(tmp_path, extension_build):
    build, prefix = extension_build
    installed = prefix / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    assembled = install_layout.assemble(MODULE_DIR, tmp_path / "assembled")
    assert _files(installed) == _files(assembled) and len(_files(assembled)) > 100
    # the build tree holds the packages too, so the module runs from a build without installing
    packages = install_layout.read_manifest(MODULE_DIR / install_layout.MANIFEST).packages
    built = build / "lib" / "Slicer-5.10" / "qt-scripted-modules"
    assert sorted(p.name for p in built.iterdir()) == sorted(Path(p).name for p in packages)


def test_cmake_refuses_a_line_it_cannot_read(tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    (tmp_path / "m.txt").write_text("scirpt SlicerGISTRisk.py\n")
    driver = tmp_path / "driver.cmake"
    driver.write_text(f'include("{MODULE_DIR}/InstallManifest.cmake")\n'
                      f'slicergistrisk_read_install_manifest("{tmp_path / "m.txt"}")\n')
    run = subprocess.run(["cmake", "-P", str(driver)], capture_output=True, text=True)
    assert run.returncode != 0 and "cannot read line" in " ".join(run.stderr.split())
