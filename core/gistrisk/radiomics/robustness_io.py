"""The robustness result on disk: ``robust.json`` (threshold, kept features, ICCs, provenance) and the
per-feature table ``robust.csv`` beside it; the kept list is what ``fit`` reads."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import gistrisk
from gistrisk.atomic import write_json, write_table
from gistrisk.errors import InputError
from gistrisk.provenance import RADIOMICS_PACKAGES, package_versions, provenance

if TYPE_CHECKING:
    import pandas as pd

SCHEMA = "gistrisk.radiomics.robustness/1"


def kept_features(table: pd.DataFrame, threshold: float) -> list[str]:
    """Features with ICC >= ``threshold`` (NaN never kept), in table order."""
    icc = table["icc"].to_numpy(dtype=float)
    return [f for f, v in zip(table["feature"], icc) if np.isfinite(v) and v >= threshold]


def table_path(json_path: str | Path) -> Path:
    """``robust.json`` -> ``robust.csv`` beside it (the per-feature table)."""
    return Path(json_path).with_suffix(".csv")


def write_robustness(path: str | Path, table: pd.DataFrame, threshold: float, *,
                     command: str | None = None) -> dict:
    """Write the result JSON (``threshold, kept, icc, parameters, provenance``) and the CSV beside it.

    Both are written atomically; NaN ICCs become JSON null. Returns the JSON object written.
    """
    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a number, got {threshold}")
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise InputError("output must end in .json", file=str(path))
    params = dict(table.attrs.get("parameters", {}))
    kept = kept_features(table, threshold)
    obj: dict[str, Any] = {
        "schema": SCHEMA,
        "threshold": float(threshold),
        "kept": kept,
        "n_features": int(len(table)),
        "icc": {f: (float(v) if np.isfinite(v) else None) for f, v in zip(table["feature"], table["icc"])},
        "cases": list(table.attrs.get("cases", [])),
        "failures": list(table.attrs.get("failures", [])),
        "parameters": {**params, "threshold": float(threshold)},
        "provenance": provenance(
            parameters={**params, "threshold": float(threshold)}, command=command,
            gistrisk_version=gistrisk.__version__,
            radiomics_versions=package_versions(RADIOMICS_PACKAGES),
            outputs={"json": str(path.resolve()), "table": str(table_path(path).resolve())}),
    }
    write_table(table_path(path), table)
    write_json(path, obj)
    return obj


def read_robustness(path: str | Path) -> dict:
    """Read a result JSON written by :func:`write_robustness` (``obj["kept"]`` is the feature list).

    Raises
    ------
    InputError naming the file when it is missing, not JSON, or lacks ``threshold``/``kept``/``icc``.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("robustness file not found", file=str(path)) from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read robustness JSON: {e}", file=str(path)) from None
    if not isinstance(obj, dict) or any(k not in obj for k in ("threshold", "kept", "icc")):
        raise InputError("not a robustness result: expected keys threshold, kept, icc", file=str(path))
    if not isinstance(obj["kept"], list) or not all(isinstance(f, str) for f in obj["kept"]):
        raise InputError("'kept' must be a list of feature names", file=str(path))
    return obj
