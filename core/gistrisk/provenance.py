"""What made an output: package versions, parameters and input hashes, recorded with every result."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata as md
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gistrisk

DEFAULT_PACKAGES = (
    "numpy", "pandas", "scipy", "scikit-learn", "scikit-survival", "lifelines", "SimpleITK",
    "pyradiomics-bhklab", "torch", "torchvision", "openslide-python", "tiffslide", "shapely", "timm", "h5py",
)
#: the distributions whose versions decide radiomics feature values (recorded with every extraction)
RADIOMICS_PACKAGES = ("pyradiomics-bhklab", "SimpleITK", "numpy", "PyWavelets")


def package_versions(names: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Installed version of each named distribution (absent ones are left out)."""
    out = {"python": platform.python_version(), "gistrisk": gistrisk.__version__}
    for name in names:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def hash_file(h: hashlib._Hash, path: str | Path, chunk: int = 1 << 20) -> None:
    """Feed the bytes of the file at ``path`` to the hash object ``h``, a chunk at a time."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    hash_file(h, path)
    return h.hexdigest()


def provenance(parameters: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A provenance record: time, versions, parameters and any extra fields."""
    rec = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "parameters": parameters or {},
    }
    rec.update(extra)
    return rec
