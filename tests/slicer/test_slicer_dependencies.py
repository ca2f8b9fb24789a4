"""First-use installation only after consent, and the record of which PyRadiomics ran."""

from __future__ import annotations

import sys
import types

from SlicerGISTRiskLib import dependencies as deps


def _fake_slicer(calls: list, with_pip_ensure: bool) -> types.SimpleNamespace:
    """Stand-in for the Slicer application's installers (cannot run here: they pip-install into Slicer)."""
    util = types.SimpleNamespace(pip_install=lambda text: calls.append(("pip_install", text)))
    ns = types.SimpleNamespace(util=util)
    if with_pip_ensure:
        ns.pydeps = types.SimpleNamespace(
            pip_ensure=lambda reqs, requester: calls.append(("pip_ensure", [str(r) for r in reqs], requester)))
    return ns


def test_plan_lists_missing_packages_and_pyradiomics_last():
    present = {"pandas", "yaml", "jinja2", "pyarrow", "typer"}
    plan = deps.plan_install(importable=lambda m: m in present)
    assert plan.requirements == ["scikit-survival==0.28.0", "lifelines==0.30.3", deps.RADIOMICS_PIP]
    assert "SlicerRadiomics" in plan.message()


def test_nothing_is_installed_without_consent():
    calls: list = []
    plan = deps.InstallPlan(["lifelines==0.30.3"], ["missing"])
    assert deps.ensure_packages(lambda msg: False, _fake_slicer(calls, True), plan) is False
    assert calls == []


def test_consent_installs_with_pip_ensure_when_slicer_has_it():
    calls: list = []
    plan = deps.InstallPlan(["lifelines==0.30.3"], ["missing"])
    asked: list[str] = []
    deps.ensure_packages(lambda msg: asked.append(msg) or True, _fake_slicer(calls, True), plan)
    assert asked and "lifelines==0.30.3" in asked[0]
    assert calls == [("pip_ensure", ["lifelines==0.30.3"], "SlicerGISTRisk")]


def test_older_slicer_falls_back_to_pip_install():
    calls: list = []
    deps.ensure_packages(lambda msg: True, _fake_slicer(calls, False), deps.InstallPlan(["typer"], ["missing"]))
    assert calls == [("pip_install", "typer")]


def test_nothing_missing_asks_nothing():
    assert deps.ensure_packages(lambda msg: 1 / 0, _fake_slicer([], True), deps.InstallPlan()) is True


def test_radiomics_source_names_the_pip_fork_and_version():
    src = deps.radiomics_source()
    assert src["provider"] == "pip:pyradiomics-bhklab" and src["version"] == "3.1.4"


def test_gistrisk_source_checkout_is_found(tmp_path, monkeypatch):
    pkg = tmp_path / "core" / "gistrisk"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    monkeypatch.setattr(deps, "is_importable", lambda m: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    found = deps.add_gistrisk_source(tmp_path / "SlicerGISTRisk")
    assert found == tmp_path / "core" and sys.path[0] == str(tmp_path / "core")


def test_torch_goes_through_the_pytorch_extension_only_with_consent(monkeypatch):
    calls: list = []

    class _Logic:  # stand-in for the PyTorch Slicer extension's PyTorchUtilsLogic
        def installTorch(self, askConfirmation):
            calls.append(askConfirmation)
            return "torch-module"

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=_Logic))
    monkeypatch.setattr(deps, "is_importable", lambda m: m == "PyTorchUtils")
    assert deps.ensure_torch(lambda msg: False) is None and calls == []
    assert deps.ensure_torch(lambda msg: "PyTorch" in msg) == "torch-module" and calls == [False]
    monkeypatch.setattr(deps, "is_importable", lambda m: False)
    assert deps.ensure_torch(lambda msg: 1 / 0) is None  # no extension: nothing to ask
