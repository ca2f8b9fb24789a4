"""The dependency graph the architecture asks for, read from every import statement (including
those inside functions): the core never imports a host or a command module, the arms never import
each other, and the QuPath bridge is a leaf."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "core" / "gistrisk"
HOSTS = ("slicer", "qt", "ctk", "vtk", "paquo", "SlicerGISTRisk", "SlicerGISTRiskLib")
ARMS = ("radiomics", "pathology")


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return out


def module_name(path: Path) -> str:
    return ".".join(("gistrisk", *path.relative_to(CORE).with_suffix("").parts))


def is_command(name: str) -> bool:
    """Command modules: the typer entry points (``gistrisk.cli``, ``*.cli``, ``gistrisk.model_cli``)."""
    return name in ("gistrisk.cli", "gistrisk.__main__", "gistrisk.model_cli") or name.endswith(".cli")


CORE_MODULES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_never_imports_a_host(path):
    bad = [m for m in imports(path) if m.split(".")[0] in HOSTS]
    assert not bad, f"{path.relative_to(REPO)} imports host module(s) {bad}"


@pytest.mark.parametrize("path", [p for p in CORE_MODULES if not is_command(module_name(p))],
                         ids=lambda p: str(p.relative_to(CORE)))
def test_only_commands_import_commands(path):
    bad = [m for m in imports(path) if m.startswith("gistrisk") and is_command(m)]
    assert not bad, f"{path.relative_to(REPO)} (not a command) imports command module(s) {bad}"


@pytest.mark.parametrize("arm", ARMS)
def test_the_arms_never_import_each_other(arm):
    others = [a for a in ARMS if a != arm]
    for path in (CORE / arm).rglob("*.py"):
        bad = [m for m in imports(path) if any(m == f"gistrisk.{o}" or m.startswith(f"gistrisk.{o}.") for o in others)]
        assert not bad, f"{path.relative_to(REPO)} imports another arm: {bad}"


def test_the_qupath_bridge_imports_nothing_of_gistrisk():
    for path in (REPO / "qupath_bridge").rglob("*.py"):
        bad = [m for m in imports(path) if m.split(".")[0] == "gistrisk"]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
