"""First-use installation: Resources/requirements.txt, one consent, one pip call, SimpleITK held,
PyRadiomics only when none is there; and the record of which PyRadiomics ran."""

from __future__ import annotations

import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from SlicerGISTRiskLib import dependencies as deps

INSTALLED = {"pandas": "2.3.3", "simpleitk": "2.5.7", "numpy": "2.4.6"}


def _version_of(table: dict[str, str]):
    return lambda name: table.get(name.lower())


class _FakeSlicer:
    """Stand-in for the Slicer application's installers (they pip-install into Slicer's own Python)."""

    def __init__(self, pip_ensure: bool, fail: bool = False):
        self.calls: list[tuple] = []
        self.constraints: list[str] = []
        self.util = types.SimpleNamespace(pip_install=self._pip_install)
        if pip_ensure:
            self.pydeps = types.SimpleNamespace(pip_ensure=self._pip_ensure)
        self.fail = fail

    def _pip_ensure(self, reqs, constraints=None, prompt_install=True, requester=None, **kw):
        self.calls.append(("pip_ensure", [str(r) for r in reqs], prompt_install, requester))
        self.constraints.append(Path(constraints).read_text())
        if self.fail:
            raise subprocess.CalledProcessError(1, ["PythonSlicer", "-m", "pip", "install"])

    def _pip_install(self, text):
        self.calls.append(("pip_install", text))
        args = text.split()
        self.constraints.append(Path(args[args.index("-c") + 1]).read_text())


def test_requirements_file_is_ranges_slicer_can_read():
    reqs = deps.load_requirements(deps.REQUIREMENTS_FILE)
    assert len(reqs) >= 15
    for r in reqs:
        assert not any(s.operator in ("==", "===") for s in r.specifier), f"exact pin pushed into Slicer: {r}"
    names = {r.name.lower() for r in reqs}
    assert "simpleitk" not in names and "numpy" not in names  # Slicer ships them
    assert {"tqdm", "slicerio", "pynrrd", "scikit-image", "highdicom", "pyradiomics-bhklab"} <= names
    for line in deps.REQUIREMENTS_FILE.read_text().splitlines():  # as slicer.pydeps.load_requirements reads it
        if line.strip() and not line.startswith(("#", "-")):
            Requirement(line.strip())


def test_plan_lists_what_is_missing_or_outside_its_range():
    reqs = [Requirement("pandas>=2.2,<3"), Requirement("lifelines>=0.30.3,<0.31"), Requirement("numpy>=3")]
    plan = deps.plan_install(reqs, version_of=_version_of(INSTALLED), importable=lambda m: True)
    assert [str(r) for r in plan.requirements] == ["lifelines<0.31,>=0.30.3", "numpy>=3"]
    assert "one pip call" in plan.message() and "lifelines" in plan.message()


def test_pyradiomics_is_left_alone_when_slicerradiomics_provides_it():
    reqs = [Requirement("pyradiomics-bhklab>=3.1.4,<3.2")]
    assert deps.plan_install(reqs, version_of=_version_of({}), importable=lambda m: m == "radiomics").requirements == []
    plan = deps.plan_install(reqs, version_of=_version_of({}), importable=lambda m: False)
    assert plan.builds_radiomics
    msg = plan.message()
    assert "compile its C extensions" in msg and "no ready-built wheel" in msg and "SlicerRadiomics extension" in msg


def test_the_consent_message_warns_when_no_compiler_is_found(monkeypatch):
    plan = deps.InstallPlan([Requirement("pyradiomics-bhklab>=3.1.4")])
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CC", raising=False)
    assert "No C compiler" in plan.message()


def test_slicer_packages_outside_the_tested_range_are_named():
    notes = deps.slicer_provided_notes(version_of=_version_of({"numpy": "1.26.4", "simpleitk": "2.5.7"}))
    assert any("numpy 1.26.4 is outside numpy<3,>=2" in n for n in notes)
    assert any("no scipy" in n for n in notes)


def test_nothing_is_installed_without_consent():
    slicer = _FakeSlicer(pip_ensure=True)
    plan = deps.InstallPlan([Requirement("pandas>=2.2,<3")])
    assert deps.ensure_packages(lambda msg: False, slicer, plan) is False
    assert slicer.calls == []


def test_one_consent_one_pip_ensure_call_without_its_own_prompt_and_simpleitk_held():
    slicer = _FakeSlicer(pip_ensure=True)
    plan = deps.InstallPlan([Requirement("pandas>=2.2,<3"), Requirement("tqdm>=4.66")])
    asked: list[str] = []
    assert deps.ensure_packages(lambda msg: asked.append(msg) or True, slicer, plan) is True
    assert len(asked) == 1 and "pandas" in asked[0] and "tqdm" in asked[0]
    assert slicer.calls == [("pip_ensure", ["pandas<3,>=2.2", "tqdm>=4.66"], False, "SlicerGISTRisk")]
    assert slicer.constraints == [f"SimpleITK=={deps.installed_version('SimpleITK')}\n"]


def test_older_slicer_gets_one_pip_install_with_the_whole_list():
    slicer = _FakeSlicer(pip_ensure=False)
    deps.ensure_packages(lambda msg: True, slicer, deps.InstallPlan([Requirement("pandas>=2.2,<3"),
                                                                    Requirement("tqdm>=4.66")]))
    assert len(slicer.calls) == 1
    args = shlex.split(slicer.calls[0][1])  # as slicer.util.pip_install splits a string
    assert args[:3] == ["pandas<3,>=2.2", "tqdm>=4.66", "-c"] and len(args) == 4
    assert slicer.constraints[0].startswith("SimpleITK==")


def test_pip_failure_is_a_plain_message():
    slicer = _FakeSlicer(pip_ensure=True, fail=True)
    with pytest.raises(deps.DependencyError, match="pip could not install.*C compiler"):
        deps.ensure_packages(lambda msg: True, slicer, deps.InstallPlan([Requirement("pyradiomics-bhklab>=3.1.4")]))


def test_still_missing_after_the_install_is_said():
    slicer = _FakeSlicer(pip_ensure=True)  # installs nothing
    with pytest.raises(deps.DependencyError, match="still missing after the install: no-such-package-x"):
        deps.ensure_packages(lambda msg: True, slicer, deps.InstallPlan([Requirement("no-such-package-x>=1")]))


def test_nothing_missing_asks_nothing():
    assert deps.ensure_packages(lambda msg: 1 / 0, _FakeSlicer(True), deps.InstallPlan()) is True


def test_everything_declared_is_installed_here():
    assert deps.plan_install().requirements == []


def test_radiomics_source_names_the_pip_fork_and_version():
    src = deps.radiomics_source()
    assert src["provider"] == "pip:pyradiomics-bhklab" and src["version"] == "3.1.4"


def test_gistrisk_source_checkout_is_found(tmp_path, monkeypatch):
    for pkg in (tmp_path / "core" / "gistrisk", tmp_path / "qupath_bridge"):
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(deps, "is_importable", lambda m: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    found = deps.add_gistrisk_source(tmp_path / "SlicerGISTRisk")
    assert found == tmp_path / "core" and sys.path[:2] == [str(tmp_path / "core"), str(tmp_path)]


def test_gistrisk_beside_the_module_is_found(tmp_path, monkeypatch):
    (tmp_path / "gistrisk").mkdir()
    (tmp_path / "gistrisk" / "__init__.py").write_text("")
    monkeypatch.setattr(deps, "is_importable", lambda m: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert deps.add_gistrisk_source(tmp_path) == tmp_path and sys.path[0] == str(tmp_path)
