"""The module run from its install tree, in a fresh interpreter started with ``python -I``.

Run by test_slicer_install_layout.py. Nothing but the install tree, the Slicer
application stand-in (a copy of slicer_app_shim.py) and the interpreter's own
site-packages is on the path; an editable install of the project is switched off.
A top-level package from site-packages imports only when its distribution is one
the declared requirements bring (``--allowed``), as in a Slicer whose Python holds
just those: an optional import of anything else fails as it would there. The Logic
then does what a user does (Apply with a bundle, result nodes, Export report, a
cohort run) and the script writes a JSON report: where every module it imported came
from, and the distribution owning each one taken from site-packages.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.metadata as md
import importlib.util
import json
import re
import runpy
import sys
import sysconfig
import traceback
from pathlib import Path

CLINICAL = {"tumour_size_cm": "7.0", "mitoses_per_5mm2": "4", "site": "stomach", "rupture": "no"}
PARAMS = "pyradiomics_baseline"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def site_dirs() -> list[Path]:
    return [Path(p).resolve() for p in sys.path if p.endswith(("site-packages", "dist-packages"))]


def site_top(path: Path, sites: list[Path]) -> str | None:
    """Top-level import name of a file under a site-packages folder (None elsewhere)."""
    for site in sites:
        if path.is_relative_to(site):
            return path.relative_to(site).parts[0].split(".")[0]
    return None


class DeclaredOnly(importlib.abc.MetaPathFinder):
    """Refuses top-level packages of site-packages whose distribution no declared requirement brings."""

    def __init__(self, allowed: set[str]):
        self.allowed, self.sites, self.owners = allowed, site_dirs(), md.packages_distributions()
        self.refused: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if path is not None or "." in fullname:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname)
        if spec is None:
            return None
        where = spec.origin if spec.origin not in (None, "namespace") else next(iter(spec.submodule_search_locations
                                                                                     or []), None)
        if where is None or site_top(Path(where).resolve(), self.sites) is None:
            return None
        dists = {canonical(d) for d in self.owners.get(fullname, [])}
        if dists and not dists & self.allowed:
            self.refused.add(fullname)
            raise ModuleNotFoundError(f"No module named {fullname!r} (its distribution {sorted(dists)} is not "
                                      f"declared)", name=fullname)
        return None


def isolate(install: Path, app: Path, allowed: set[str]) -> DeclaredOnly:
    """Only the install tree and the application stand-in ahead of site-packages; no editable finder;
    undeclared distributions refused."""
    def editable(obj) -> bool:
        return str(getattr(obj, "__module__", "")).startswith("__editable__")

    sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
    sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
    sys.path_importer_cache.clear()
    sys.path[:0] = [str(install), str(app)]
    guard = DeclaredOnly(allowed)
    sys.meta_path.insert(0, guard)
    return guard


def scenario(args: argparse.Namespace, steps: dict) -> None:
    """What a user does with the module, through the Logic."""
    import slicer_app_shim

    slicer_app_shim.install(module_dir=args.install)
    import SlicerGISTRisk
    from SlicerGISTRiskLib import dependencies
    from SlicerGISTRiskLib import mrml_convert as mc
    from SlicerGISTRiskLib.workflow import CaseInputs

    steps["module_file"] = SlicerGISTRisk.__file__
    steps["missing_requirements"] = [str(r) for r in dependencies.plan_install().requirements]
    logic = SlicerGISTRisk.SlicerGISTRiskLogic()
    scene = slicer_app_shim.new_scene()
    volume = mc.load_volume_file(scene, args.ct / "lung2_image.nrrd", name="lung2")
    seg = mc.labelmap_file_to_segmentation(scene, args.ct / "lung2_label.nrrd", volume)
    sid = mc.segment_ids(seg)[0]
    result = logic.process(CaseInputs(volume, seg, sid, bundle_dir=str(args.bundle), clinical_values=CLINICAL,
                                      pathology_file=str(args.slide), params=PARAMS, patient_id="LUNG2"))
    steps["risk"] = float(result.prediction.prediction["risk"])
    steps["warnings"] = list(result.prediction.warnings)
    table, chart = logic.writeResults(result)
    steps["result_rows"] = table.GetNumberOfRows()
    steps["report"] = str(logic.exportReport(result, str(args.work / "report.html")))

    cases = logic.addSceneCase(None, volume, seg, sid, "LUNG2", exportFolder=str(args.work / "export"))
    out = args.work / "cohort" / "features.csv"
    command, env = logic.cohortCommand(cases, str(out), jobs=1, params=PARAMS, python=sys.executable)
    steps["child_pythonpath"] = env["PYTHONPATH"].split(":")[0]
    sys.argv = ["gistrisk", *command[3:]]  # `PythonSlicer -m gistrisk ...`, run here so its imports are seen
    try:
        runpy.run_module("gistrisk", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        steps["cohort_exit"] = e.code
    steps["cohort_rows"] = logic.loadCohortFeatures(str(out), scene=scene).GetNumberOfRows()
    spec = importlib.util.find_spec("qupath_bridge")  # `gistrisk pathology` imports it (gistrisk.cli)
    steps["qupath_bridge"] = spec.origin if spec else None


def origins(before: set[str], install: Path, app: Path, owners: dict[str, list[str]]) -> dict:
    """Where each module imported after start-up came from: install tree, app stand-in, or a distribution
    (``owners``: top-level import name -> distributions, as importlib.metadata.packages_distributions)."""
    stdlib = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib")]
    sites = site_dirs()
    out: dict = {"install": set(), "app": set(), "dists": {}, "elsewhere": {}}
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if name in before or not file:
            continue
        path = Path(file).resolve()
        if path == Path(__file__).resolve():  # this script (also seen as __mp_main__)
            continue
        top = site_top(path, sites)
        if path.is_relative_to(install):
            out["install"].add(path.relative_to(install).parts[0].split(".")[0])
        elif path.is_relative_to(app):
            out["app"].add(name)
        elif top is not None:
            for dist in owners.get(top, ["<no distribution>"]):
                out["dists"].setdefault(dist, set()).add(top)
        elif not any(path.is_relative_to(s) for s in stdlib):
            out["elsewhere"][name] = str(path)
    return {"install": sorted(out["install"]), "app": sorted(out["app"]), "elsewhere": out["elsewhere"],
            "dists": {k: sorted(v) for k, v in sorted(out["dists"].items())}}


def main() -> None:
    before = set(sys.modules)
    ap = argparse.ArgumentParser()
    for name in ("install", "app", "ct", "bundle", "slide", "work", "allowed", "out"):
        ap.add_argument(f"--{name}", type=Path, required=True)
    args = ap.parse_args()
    args.install, args.app = args.install.resolve(), args.app.resolve()
    guard = isolate(args.install, args.app, set(json.loads(args.allowed.read_text())))
    steps: dict = {}
    error = None
    try:
        scenario(args, steps)
    except BaseException:  # noqa: BLE001  (reported to the test, which shows it)
        error = traceback.format_exc()
    report = {"steps": steps, "error": error, "modules": origins(before, args.install, args.app, guard.owners),
              "refused": sorted(guard.refused)}
    args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
