"""Parameter files: the shipped YAML settings, their validation (PyRadiomics' schema) and hash."""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from pathlib import Path

import pykwalify.core
import radiomics  # noqa: F401  (registers the schema extension functions)
from pykwalify.errors import PyKwalifyException

from gistrisk.errors import InputError
from gistrisk.provenance import file_sha256

# PyRadiomics and pykwalify are imported inside _load_params, the only code that validates: they add about
# 0.4 s to importing this module, which the model commands and Slicer's phantom check import only for
# parameter-file names, paths and hashes.

PARAMS_DIR = Path(__file__).resolve().parent / "params"
DEFAULT_PARAMS = "gist_ct_paper"


def shipped_param_files() -> dict[str, Path]:
    """Every parameter file shipped with gistrisk, by name (file stem)."""
    return {p.name.removesuffix(".yaml"): p for p in sorted(PARAMS_DIR.glob("*.yaml"))}


def param_file(name: str) -> Path:
    """Path of a shipped parameter file, e.g. ``param_file("gist_ct_paper")``."""
    files = shipped_param_files()
    key = name.removesuffix(".yaml")
    if key not in files:
        raise InputError(f"no shipped parameter file {name!r}; choose one of {', '.join(files)}")
    return files[key]


def resolve_params(params: str | Path | None) -> Path:
    """A shipped name, a path to a YAML/JSON file, or None (the GIST paper setting) -> a path."""
    if params is None:
        return param_file(DEFAULT_PARAMS)
    p = Path(params)
    if p.suffix.lower() in (".yaml", ".yml", ".json") or p.exists():
        if not p.is_file():
            raise InputError("parameter file not found", file=str(p))
        return p
    return param_file(str(params))


def load_params(path: str | Path) -> dict:
    """Read and validate a parameter file (cached by path and content hash); see _load_params."""
    if not Path(path).is_file():
        raise InputError("parameter file not found", file=str(path))
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return copy.deepcopy(_load_params(str(path), digest))


@functools.lru_cache(maxsize=32)
def _load_params(path: str, digest: str) -> dict:
    """Read and validate a parameter file with PyRadiomics' own schema (pykwalify).

    Returns
    -------
    dict with keys ``setting``, ``imageType``, ``featureClass`` (as validated).

    Raises
    ------
    InputError naming the file and the schema problem (e.g. an unknown key).
    """
    schema = Path(radiomics.__file__).parent / "schemas" / "paramSchema.yaml"
    ext = Path(radiomics.__file__).parent / "schemas" / "schemaFuncs.py"
    logging.getLogger("pykwalify").setLevel(logging.CRITICAL)  # we report the error ourselves
    try:
        core = pykwalify.core.Core(source_file=str(path), schema_files=[str(schema)], extensions=[str(ext)])
        return core.validate(raise_exception=True) or {}
    except PyKwalifyException as e:
        msg = getattr(e, "msg", None) or str(e)
        raise InputError(f"invalid PyRadiomics parameter file: {msg.strip()}", file=str(path)) from None
    except Exception as e:  # noqa: BLE001  (YAML syntax errors and unreadable files)
        raise InputError(f"cannot read parameter file: {e}", file=str(path)) from None


def params_sha256(path: str | Path) -> str:
    return file_sha256(path)
