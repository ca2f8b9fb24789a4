"""Resources/requirements.txt covers every import the module can make.

Starting from the module's files and ``gistrisk.__main__`` (the cohort runner, ``PythonSlicer -m
gistrisk``), follow every import of the project's own packages, module-level and inside
functions; only the arms the module never runs (``gistrisk.pathology``, ``gistrisk.simulate``)
are followed at module level alone, because the command line imports their sub-commands. Each
third-party name met must come from a distribution listed in requirements.txt or
slicer-provided.txt, or be one of Slicer's own (``slicer``, ``vtk``, ``qt``), or be optional.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

from gistrisk.cli import COMMANDS
from SlicerGISTRiskLib import dependencies

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"gistrisk": REPO / "core" / "gistrisk", "qupath_bridge": REPO / "qupath_bridge",
         "SlicerGISTRiskLib": REPO / "SlicerGISTRisk" / "SlicerGISTRiskLib"}
NOT_RUN_BY_THE_MODULE = ("gistrisk.pathology", "gistrisk.simulate")
SLICER_ITSELF = {"slicer", "vtk", "qt", "ctk"}
#: third-party imports the module's paths never reach, with why
OPTIONAL = {"dask": "only `gistrisk radiomics extract --scheduler` (a Dask cluster); Slicer runs local processes",
            **dict.fromkeys(("torch", "safetensors", "h5py"),
                            "only a bundle whose pathology modality pools tile embeddings by attention (fit setting "
                            "aggregation: abmil); without the pathology extra loading one is a clear BundleError")}
#: declared although no project file imports them, with why
IMPORTED_BY_DEPENDENCIES = {"trimesh": "PyRadiomics' LBP3D filter imports it without declaring it"}


def _file(module: str) -> Path | None:
    if module == "SlicerGISTRisk":
        return REPO / "SlicerGISTRisk" / "SlicerGISTRisk.py"
    parts = module.split(".")
    base = ROOTS.get(parts[0])
    if base is None:
        return None
    p = base.joinpath(*parts[1:])
    return p / "__init__.py" if (p / "__init__.py").is_file() else p.with_suffix(".py") if p.with_suffix(
        ".py").is_file() else None


def _imports(path: Path, module: str, module_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        nodes.append(node)
        if module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                head = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(head + ([node.module] if node.module else []))
            out += [base] + [f"{base}.{a.name}" for a in node.names]
    return out


def third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party name -> the project modules importing it, over the module's reach."""
    start = ["SlicerGISTRisk", "gistrisk.__main__"] + [
        f"SlicerGISTRiskLib.{p.stem}" for p in ROOTS["SlicerGISTRiskLib"].glob("*.py")]
    seen: set[str] = set()
    found: dict[str, set[str]] = {}
    while start:
        module = start.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _file(module)
        if path is None:
            continue
        names = _imports(path, module, module.startswith(NOT_RUN_BY_THE_MODULE))
        if module == "gistrisk.cli":  # sub-commands are imported by name, on first use
            names += [target for target, _, _ in COMMANDS.values()]
        for name in names:
            top = name.split(".")[0]
            if top in ROOTS or top == "SlicerGISTRisk":
                parts = name.split(".")
                start += [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                found.setdefault(top, set()).add(module)
    return found


def test_requirements_cover_every_import_the_module_can_make():
    declared = {canonicalize_name(r.name) for f in (dependencies.REQUIREMENTS_FILE, dependencies.SLICER_PROVIDED_FILE)
                for r in dependencies.load_requirements(f)}
    owners = md.packages_distributions()
    found = third_party_imports()
    assert {"tqdm", "slicerio", "nrrd", "skimage", "highdicom", "radiomics", "pykwalify"} <= set(found)
    uncovered = {}
    for name, where in sorted(found.items()):
        if name in SLICER_ITSELF or name in OPTIONAL:
            continue
        dists = {canonicalize_name(d) for d in owners.get(name, [])}
        if not dists & declared:
            uncovered[name] = (sorted(dists), sorted(where)[:3])
    assert not uncovered, f"imports no requirement covers (name: (distributions, imported by)): {uncovered}"


def test_nothing_declared_goes_unused():
    found = set(third_party_imports())
    owners = md.packages_distributions()
    provides: dict[str, set[str]] = {}
    for top, dists in owners.items():
        for d in dists:
            provides.setdefault(canonicalize_name(d), set()).add(top)
    unused = [str(r) for r in dependencies.load_requirements(dependencies.REQUIREMENTS_FILE)
              if not provides.get(canonicalize_name(r.name), set()) & found and r.name not in IMPORTED_BY_DEPENDENCIES]
    assert unused == []
