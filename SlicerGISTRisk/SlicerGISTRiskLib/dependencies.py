"""Python dependencies inside Slicer: what is missing, install on consent, which PyRadiomics ran.

Nothing is installed at import time or without the user's agreement: the
module calls :func:`ensure_packages` with a ``confirm`` callback (a dialog in
Slicer) the first time a computation needs a package.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# pip requirement -> importable module name: what gistrisk needs beyond Slicer's own Python
# (numpy, scipy, SimpleITK, vtk ship with Slicer). Pins follow requirements/lock.txt.
REQUIRED = {
    "pandas>=2.2,<3": "pandas",
    "scikit-survival==0.28.0": "sksurv",
    "lifelines==0.30.3": "lifelines",
    "pyyaml": "yaml",
    "jinja2": "jinja2",
    "pyarrow": "pyarrow",
    "typer": "typer",
}
# PyRadiomics is only installed from pip when the SlicerRadiomics extension does not provide it.
RADIOMICS_PIP = "pyradiomics-bhklab==3.1.4"


@dataclass
class InstallPlan:
    """Packages to install and why; empty ``requirements`` means nothing to do."""

    requirements: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def message(self) -> str:
        lines = ["SlicerGISTRisk needs these Python packages, which are not installed yet:"]
        lines += [f"  - {r} ({why})" for r, why in zip(self.requirements, self.reasons)]
        lines.append("Install them now into Slicer's Python? (This downloads from PyPI and may take minutes.)")
        return "\n".join(lines)


def add_gistrisk_source(module_dir: str | Path) -> Path | None:
    """Make ``import gistrisk`` work from a source checkout or the extension's install tree.

    Looks for ``gistrisk`` beside the module (installed extension) and in the
    checkout's ``core/`` folder (module added by path); puts the first found on
    ``sys.path``. Returns that folder, or None when gistrisk is already
    importable or not found.
    """
    if is_importable("gistrisk"):
        return None
    here = Path(module_dir).resolve()
    for candidate in (here, here.parent / "core", here.parent.parent / "core"):
        if (candidate / "gistrisk" / "__init__.py").is_file():
            sys.path.insert(0, str(candidate))
            importlib.invalidate_caches()
            return candidate
    return None


def is_importable(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def plan_install(required: dict[str, str] | None = None,
                 importable: Callable[[str], bool] = is_importable) -> InstallPlan:
    """What must be installed for the module to run: missing packages, PyRadiomics last."""
    plan = InstallPlan()
    for req, module in (required or REQUIRED).items():
        if not importable(module):
            plan.requirements.append(req)
            plan.reasons.append(f"module {module!r} not found")
    if not importable("radiomics"):
        plan.requirements.append(RADIOMICS_PIP)
        plan.reasons.append("PyRadiomics not found (install the SlicerRadiomics extension, or allow pip)")
    return plan


def ensure_packages(confirm: Callable[[str], bool], slicer_module: Any | None = None,
                    plan: InstallPlan | None = None, progress: Callable[[str], None] | None = None) -> bool:
    """Install what :func:`plan_install` finds missing, only if ``confirm(message)`` says yes.

    Uses ``slicer.pydeps.pip_ensure`` (Slicer 5.11+, or ``slicer.packaging.pip_ensure``) when
    present, else ``slicer.util.pip_install``. Returns True when everything is available.
    """
    plan = plan if plan is not None else plan_install()
    if not plan.requirements:
        return True
    if not confirm(plan.message()):
        return False
    installer = pip_installer(slicer_module)
    for req in plan.requirements:
        if progress:
            progress(f"Installing {req} ...")
        installer([req])
    importlib.invalidate_caches()
    return not plan_install().requirements


def pip_installer(slicer_module: Any | None = None) -> Callable[[list[str]], Any]:
    """The best installer the running Slicer offers, as ``f(requirements)``."""
    if slicer_module is None:
        import slicer as slicer_module  # type: ignore[no-redef]
    for holder in ("pydeps", "packaging"):
        ensure = getattr(getattr(slicer_module, holder, None), "pip_ensure", None)
        if ensure is not None:
            def _ensure(reqs: list[str], _f: Callable = ensure) -> Any:
                try:
                    from packaging.requirements import Requirement

                    return _f([Requirement(r) for r in reqs], requester="SlicerGISTRisk")
                except ImportError:
                    return _f(reqs, requester="SlicerGISTRisk")
            return _ensure
    return lambda reqs: slicer_module.util.pip_install(" ".join(reqs))


def ensure_torch(confirm: Callable[[str], bool]) -> Any | None:
    """Torch through the PyTorch extension's installer (right CUDA build), else None.

    Only slide-level feature extraction needs torch; predicting from an
    exported slide-feature row does not.
    """
    if is_importable("torch"):
        import torch

        return torch
    if not is_importable("PyTorchUtils"):
        return None
    if not confirm("Slide feature extraction needs PyTorch. Install it with the PyTorch extension now?"):
        return None
    import PyTorchUtils  # provided by the PyTorch Slicer extension

    return PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False)


def radiomics_source() -> dict[str, str]:
    """Which PyRadiomics will run: provider, version and location, recorded with every result.

    ``provider`` is ``"SlicerRadiomics"`` when the package lives inside that
    extension's folder, else the pip distribution that owns it
    (``"pip:pyradiomics-bhklab"`` or ``"pip:pyradiomics"``), else ``"unknown"``.
    """
    import radiomics

    path = Path(radiomics.__file__).resolve().parent
    version = str(getattr(radiomics, "__version__", "unknown"))
    provider = "unknown"
    if any(part.lower().startswith("slicerradiomics") for part in path.parts):
        provider = "SlicerRadiomics"
    else:
        for dist in ("pyradiomics-bhklab", "pyradiomics"):
            try:
                files = md.files(dist) or []
                if any(str(f).startswith("radiomics/") for f in files):
                    provider = f"pip:{dist}"
                    version = md.version(dist)
                    break
            except md.PackageNotFoundError:
                continue
    return {"provider": provider, "version": version, "path": str(path), "python": sys.version.split()[0]}
