"""The extension's install tree, built from ``install_manifest.txt``, the list its CMake reads too.

Slicer installs a scripted module's scripts and resources into ``qt-scripted-modules``
keeping their relative paths; the extension copies the packages it ships (``gistrisk``,
``qupath_bridge``) into the same folder. :func:`assemble` does the same in a folder of
one's choice, so a test can import the module from what would be installed.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "install_manifest.txt"
KINDS = ("script", "resource", "package")
EXCLUDED = ("__pycache__", "*.pyc")  # as InstallManifest.cmake's PATTERN ... EXCLUDE


class ManifestError(ValueError):
    """The manifest cannot be read, or names a file that is not there."""


@dataclass
class Manifest:
    """Paths relative to the module folder, per kind of entry."""

    scripts: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)


def read_manifest(path: str | Path) -> Manifest:
    """Parse the manifest (``<kind> <path>`` lines, ``#`` comments) as InstallManifest.cmake does."""
    out = Manifest()
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in KINDS:
            raise ManifestError(f"{path}, line {n}: cannot read {line!r} (expected: script|resource|package <path>)")
        getattr(out, parts[0] + "s").append(parts[1])
    return out


def assemble(module_dir: str | Path, dest: str | Path, manifest: Manifest | None = None) -> Path:
    """Copy what the manifest lists into ``dest`` laid out as Slicer's ``qt-scripted-modules``.

    Raises
    ------
    ManifestError naming an entry whose file or folder does not exist.
    """
    module_dir, dest = Path(module_dir), Path(dest)
    manifest = read_manifest(module_dir / MANIFEST) if manifest is None else manifest
    for rel in manifest.scripts + manifest.resources:
        src = module_dir / rel
        if not src.is_file():
            raise ManifestError(f"{MANIFEST} lists {rel}, which is not a file in {module_dir}")
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for rel in manifest.packages:
        src = (module_dir / rel).resolve()
        if not (src / "__init__.py").is_file():
            raise ManifestError(f"{MANIFEST} lists package {rel}, which is not a package folder")
        shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns(*EXCLUDED), dirs_exist_ok=True)
    return dest


def unlisted(module_dir: str | Path, manifest: Manifest | None = None) -> list[str]:
    """Module files the manifest forgets: the module's Python files and everything under Resources/."""
    module_dir = Path(module_dir)
    manifest = read_manifest(module_dir / MANIFEST) if manifest is None else manifest
    listed = set(manifest.scripts) | set(manifest.resources)
    here = [p for p in module_dir.glob("*.py")] + [p for p in module_dir.glob("*Lib/*.py")] + \
        [p for p in (module_dir / "Resources").rglob("*") if p.is_file()]
    return sorted(r for r in (p.relative_to(module_dir).as_posix() for p in here)
                  if r not in listed and "__pycache__" not in r)
