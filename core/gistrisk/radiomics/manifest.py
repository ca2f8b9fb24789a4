"""Which cases a radiomics run reads: the ``patient_id,image,mask[,label|segment][,modality]`` manifest."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from gistrisk.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED = ("patient_id", "image", "mask")
OPTIONAL = ("label", "segment", "modality")


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Read ``patient_id,image,mask[,label|segment][,modality]``; relative paths are taken from the manifest's folder.

    Returns
    -------
    one dict per case with keys patient_id, image, mask, label, segment, modality (strings, "" when absent).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in (reader.fieldnames or [])]
            raw = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except FileNotFoundError:
        raise InputError("manifest not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read manifest CSV: {e}", file=str(path)) from None
    _check_columns(header, str(path))
    rows = [r for r in raw if any(r.values())]  # blank lines
    if not rows:
        raise InputError("manifest has no rows", file=str(path))
    for c in REQUIRED:
        empty = [i + 2 for i, r in enumerate(rows) if not r.get(c)]
        if empty:
            raise InputError(f"empty value in row(s) {empty}", file=str(path), column=c)
    _check_unique([r["patient_id"] for r in rows], str(path))
    out = []
    for r in rows:
        case = {c: r.get(c, "") for c in REQUIRED + OPTIONAL}
        for c in ("image", "mask"):
            case[c] = str(Path(case[c]) if Path(case[c]).is_absolute() else path.parent / case[c])
        if case["label"] and not case["label"].isdigit():
            raise InputError(f"label must be a whole number, got {case['label']!r}", file=str(path),
                             patient=case["patient_id"], column="label")
        out.append(case)
    return out


def manifest_cases(cases: pd.DataFrame | str | Path | Sequence[dict]) -> tuple[list[dict], str | None]:
    """Normalise a manifest (DataFrame, CSV path or list of dicts) to typed rows; check columns and files.

    Returns
    -------
    (rows, manifest file or None). Each row has patient_id, image, mask, label (int or None),
    segment (str or None), modality (str or None).

    Raises
    ------
    InputError for missing columns, empty/duplicate patient ids, a non-integer label, and missing
    image or mask files (naming the file and patient).
    """
    src: str | None = None
    raw: list[dict[str, Any]]
    if isinstance(cases, (str, Path)):
        src = str(cases)
        raw = read_manifest(cases)
    else:
        if hasattr(cases, "to_dict"):  # of the accepted types, only a DataFrame has it
            df = cast("pd.DataFrame", cases)
            _check_columns(list(df.columns), None)
            raw = df.to_dict("records")
        else:
            raw = [dict(r) for r in cases]
        if not raw:
            raise InputError("manifest has no rows")
        for i, r in enumerate(raw):
            missing = [c for c in REQUIRED if _blank(r.get(c))]
            if missing:
                raise InputError(f"row {i}: empty or missing value", column=missing[0])
    rows = []
    for r in raw:
        row: dict[str, Any] = {c: (None if _blank(r.get(c)) else r.get(c)) for c in REQUIRED + OPTIONAL}
        row["patient_id"], row["image"], row["mask"] = str(row["patient_id"]), str(row["image"]), str(row["mask"])
        if row["label"] is not None:
            try:
                f = float(row["label"])
                if not f.is_integer():
                    raise ValueError
                row["label"] = int(f)
            except (TypeError, ValueError):
                raise InputError(f"label must be a whole number, got {row['label']!r}", file=src,
                                 patient=row["patient_id"], column="label") from None
        for c in ("segment", "modality"):
            row[c] = None if row[c] is None else str(row[c])
        rows.append(row)
    _check_unique([r["patient_id"] for r in rows], src)
    for r in rows:
        for c in ("image", "mask"):
            if not Path(r[c]).exists():
                raise InputError(f"{c} not found", file=r[c], patient=r["patient_id"])
    return rows, src


def _check_columns(header: list[str], file: str | None) -> None:
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"manifest lacks column(s) {', '.join(missing)}; expected patient_id,image,mask"
                         f"[,label|segment]", file=file, column=missing[0])


def _check_unique(ids: list[str], file: str | None) -> None:
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate patient_id(s): {', '.join(dup)}", file=file, column="patient_id")


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()
