"""Python packages inside Slicer: what is missing, one consent, one pip call, which PyRadiomics ran.

What the module installs is ``Resources/requirements.txt``; what Slicer's own Python
ships is ``Resources/slicer-provided.txt``. Nothing is installed at import time or
without the user's agreement: the module calls :func:`ensure_packages` with a
``confirm`` callback (a dialog in Slicer) the first time a computation needs a package.
Only the standard library and ``packaging`` (shipped with Slicer) are imported here,
because this runs before anything is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

# radiomics is imported inside radiomics_source only: this module runs before PyRadiomics is installed.

RESOURCES = Path(__file__).resolve().parent.parent / "Resources"
REQUIREMENTS_FILE = RESOURCES / "requirements.txt"
SLICER_PROVIDED_FILE = RESOURCES / "slicer-provided.txt"
#: Distributions that provide ``import radiomics``; not installed when one is importable.
RADIOMICS_DISTS = ("pyradiomics-bhklab", "pyradiomics")
#: Held at the version Slicer installed during the pip call (Slicer builds its own SimpleITK).
NEVER_REINSTALL = ("SimpleITK",)
REQUESTER = "SlicerGISTRisk"

RADIOMICS_BUILD_NOTE = (
    "PyRadiomics is not available: neither the SlicerRadiomics extension nor a PyRadiomics package was found. "
    "PyPI has only the source of pyradiomics-bhklab (no ready-built wheel, on Linux or elsewhere), so pip will "
    "compile its C extensions: this needs a C compiler (Linux: gcc and the Python headers; macOS: the Xcode "
    "command-line tools; Windows: Microsoft C++ Build Tools) and takes a few minutes. Without a compiler, press "
    "Cancel, install the SlicerRadiomics extension from the Extensions Manager, restart Slicer and Apply again.")


class DependencyError(RuntimeError):
    """The packages could not be installed; the message says what to do."""


@dataclass
class InstallPlan:
    """Requirements to install (empty: nothing to do) and notes for the consent dialog."""

    requirements: list[Requirement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def builds_radiomics(self) -> bool:
        return any(canonicalize_name(r.name) in _RADIOMICS for r in self.requirements)

    def message(self) -> str:
        lines = [f"SlicerGISTRisk needs {len(self.requirements)} Python package(s) that Slicer's Python lacks "
                 "or has at an unsuitable version:"]
        lines += [f"  - {r}" for r in self.requirements]
        lines.append("They are installed from PyPI in one pip call, which may take minutes.")
        if self.builds_radiomics:
            lines += ["", RADIOMICS_BUILD_NOTE]
            if not compiler_found():
                lines.append("No C compiler (cc, gcc, clang or cl) was found on the PATH: the build will probably fail.")
        lines += [""] + self.notes if self.notes else []
        lines.append("Install them now into Slicer's Python?")
        return "\n".join(lines)


_RADIOMICS = {canonicalize_name(d) for d in RADIOMICS_DISTS}


def load_requirements(path: str | Path) -> list[Requirement]:
    """Requirements of a requirements file, read as ``slicer.pydeps.load_requirements`` reads it."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            out.append(Requirement(line))
        except InvalidRequirement as e:
            raise DependencyError(f"{path}, line {n}: {e}") from None
    return out


def installed_version(name: str) -> str | None:
    """Version of an installed distribution, or None."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def is_satisfied(req: Requirement, version_of: Callable[[str], str | None] = installed_version) -> bool:
    """True when the distribution is installed at a version the requirement allows (markers honoured)."""
    if req.marker is not None and not req.marker.evaluate():
        return True
    version = version_of(req.name)
    return version is not None and req.specifier.contains(version, prereleases=True)


def is_importable(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def compiler_found() -> bool:
    """A C compiler on the PATH (what building pyradiomics-bhklab needs)."""
    return any(shutil.which(c) for c in (os.environ.get("CC", ""), "cc", "gcc", "clang", "cl") if c)


def plan_install(requirements: list[Requirement] | None = None,
                 version_of: Callable[[str], str | None] = installed_version,
                 importable: Callable[[str], bool] = is_importable) -> InstallPlan:
    """What must be installed: the requirements not satisfied, PyRadiomics only when none is importable."""
    reqs = load_requirements(REQUIREMENTS_FILE) if requirements is None else requirements
    radiomics_here = importable("radiomics")
    plan = InstallPlan()
    for req in reqs:
        if canonicalize_name(req.name) in _RADIOMICS and radiomics_here:
            continue  # SlicerRadiomics (or another PyRadiomics) is used as it is
        if not is_satisfied(req, version_of):
            plan.requirements.append(req)
    if plan.requirements:
        plan.notes = slicer_provided_notes(version_of=version_of)
    return plan


def slicer_provided_notes(provided: list[Requirement] | None = None,
                          version_of: Callable[[str], str | None] = installed_version) -> list[str]:
    """Slicer-shipped packages missing or outside the range the module is tested with, one line each."""
    out = []
    for req in load_requirements(SLICER_PROVIDED_FILE) if provided is None else provided:
        v = version_of(req.name)
        if v is None:
            out.append(f"Slicer's Python has no {req.name} ({req} expected); pip may install it.")
        elif not req.specifier.contains(v, prereleases=True):
            held = " and it is held at this version" if req.name in NEVER_REINSTALL else ""
            out.append(f"Slicer's {req.name} {v} is outside {req}, the range the module is tested with{held}.")
    return out


def constraints_text(version_of: Callable[[str], str | None] = installed_version) -> str:
    """A pip constraints file holding Slicer's own builds (``NEVER_REINSTALL``) at their installed version."""
    return "".join(f"{name}=={v}\n" for name in NEVER_REINSTALL if (v := version_of(name)))


def ensure_packages(confirm: Callable[[str], bool], slicer_module: Any, plan: InstallPlan | None = None) -> bool:
    """Install what :func:`plan_install` finds missing, in one pip call, only if ``confirm(message)`` agrees.

    Returns False when the user declines; raises :class:`DependencyError` when pip fails or
    something is still missing afterwards.
    """
    plan = plan_install() if plan is None else plan
    if not plan.requirements:
        return True
    if not confirm(plan.message()):
        return False
    install(plan.requirements, slicer_module)
    importlib.invalidate_caches()
    left = plan_install(plan.requirements).requirements
    if left:
        raise DependencyError("still missing after the install: " + ", ".join(map(str, left)) +
                              ". Restart Slicer and try again; the Python console shows pip's output.")
    return True


def install(requirements: list[Requirement], slicer_module: Any) -> None:
    """One pip call for all ``requirements``, with Slicer's own builds held (constraints file).

    ``slicer.pydeps.pip_ensure`` (Slicer 5.11+) is told not to ask again (the module already
    asked); older Slicer gets ``slicer.util.pip_install`` with the whole list.
    """
    with tempfile.TemporaryDirectory(prefix="gistrisk-pip-") as tmp:
        constraints = Path(tmp) / "constraints.txt"
        constraints.write_text(constraints_text(), encoding="utf-8")
        ensure = getattr(getattr(slicer_module, "pydeps", None), "pip_ensure", None)
        try:
            if ensure is not None:
                ensure(list(requirements), constraints=str(constraints), prompt_install=False, requester=REQUESTER)
            else:
                args = [str(r) for r in requirements] + ["-c", str(constraints)]
                slicer_module.util.pip_install(" ".join(shlex.quote(a) for a in args))
        except subprocess.CalledProcessError as e:
            hint = (" Building pyradiomics-bhklab needs a C compiler; the SlicerRadiomics extension avoids the build."
                    if any(canonicalize_name(r.name) in _RADIOMICS for r in requirements) else "")
            raise DependencyError(f"pip could not install the packages (exit status {e.returncode}); the Python "
                                  f"console shows pip's output.{hint}") from None


def add_gistrisk_source(module_dir: str | Path) -> Path | None:
    """Make ``import gistrisk`` work in the install tree and from a source checkout.

    Looks beside the module (installed extension: ``gistrisk`` and ``qupath_bridge`` are
    copied there) and in the checkout's ``core/`` folder (module added by path; the
    checkout itself then holds ``qupath_bridge``); puts the first found on ``sys.path``.
    Returns that folder, or None when gistrisk is importable already or not found.
    """
    if is_importable("gistrisk"):
        return None
    here = Path(module_dir).resolve()
    for folder, bridge in ((here, here), (here.parent / "core", here.parent), (here.parent.parent / "core",
                                                                               here.parent.parent)):
        if (folder / "gistrisk" / "__init__.py").is_file():
            sys.path.insert(0, str(folder))
            if bridge != folder and (bridge / "qupath_bridge" / "__init__.py").is_file() \
                    and str(bridge) not in sys.path:
                sys.path.insert(1, str(bridge))
            importlib.invalidate_caches()
            return folder
    return None


def radiomics_source() -> dict[str, str]:
    """Which PyRadiomics will run: provider, version and location, recorded with every result.

    ``provider`` is ``"SlicerRadiomics"`` when the package lives inside that
    extension's folder, else the pip distribution that owns it
    (``"pip:pyradiomics-bhklab"`` or ``"pip:pyradiomics"``), else ``"unknown"``.
    """
    import radiomics  # noqa: PLC0415 - asked only once it is installed (see ensure_dependencies)

    path = Path(radiomics.__file__).resolve().parent
    version = str(getattr(radiomics, "__version__", "unknown"))
    provider = "unknown"
    if any(part.lower().startswith("slicerradiomics") for part in path.parts):
        provider = "SlicerRadiomics"
    else:
        for dist in RADIOMICS_DISTS:
            try:
                files = md.files(dist) or []
            except md.PackageNotFoundError:
                continue
            if any(str(f).startswith("radiomics/") for f in files):
                provider = f"pip:{dist}"
                version = md.version(dist)
                break
    return {"provider": provider, "version": version, "path": str(path), "python": sys.version.split()[0]}
