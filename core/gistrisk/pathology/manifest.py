"""Which slides a pathology run reads: a manifest CSV, a folder of slides, or entries given in Python."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from gistrisk.errors import InputError

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide",
                  ".dcm")


@dataclass
class SlideEntry:
    """One slide of a cohort. Paths are absolute; mpp: used only if the slide records none;
    mpp_override: replaces what the slide records."""

    patient_id: str
    slide: str
    slide_id: str
    annotations: str | None = None
    mpp: float | None = None
    mpp_override: float | None = None


def read_manifest(path: str | Path) -> list[SlideEntry]:
    """CSV with ``patient_id,slide[,slide_id,annotations,mpp,mpp_override]``; relative paths are
    relative to the CSV. ``mpp`` fills a slide without mpp metadata; ``mpp_override`` replaces it.

    Raises InputError naming the file, row and column for missing columns/values, bad mpp,
    duplicate slide ids.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:
        raise InputError(f"cannot read manifest ({type(e).__name__}: {e})", file=str(path)) from e
    df.columns = [c.strip() for c in df.columns]
    for col in ("patient_id", "slide"):
        if col not in df.columns:
            raise InputError(f"manifest needs columns patient_id,slide[,slide_id,annotations,mpp]; found "
                             f"{list(df.columns)}", file=str(path), column=col)
    base = path.parent
    out = []
    for i, row in df.iterrows():
        pid, slide = row["patient_id"].strip(), row["slide"].strip()
        if not pid:
            raise InputError(f"row {i + 2}: empty patient_id", file=str(path), column="patient_id")
        if not slide:
            raise InputError(f"row {i + 2}: empty slide path", file=str(path), patient=pid, column="slide")
        sp = _resolve(base, slide)
        ann = row.get("annotations", "").strip() or None
        mpp, override = (_mpp_cell(row.get(col, ""), i, col, str(path), pid) for col in ("mpp", "mpp_override"))
        out.append(SlideEntry(pid, str(sp), row.get("slide_id", "").strip() or sp.stem,
                              str(_resolve(base, ann)) if ann else None, mpp, override))
    if not out:
        raise InputError("manifest has no rows", file=str(path))
    _check_unique(out, str(path))
    return out


def folder_entries(folder: str | Path, mpp: float | None = None,
                   mpp_override: float | None = None) -> list[SlideEntry]:
    """Every slide file in ``folder`` (by suffix); patient_id = slide_id = file stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("slide folder not found", file=str(folder))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES)
    if not files:
        raise InputError(f"no slide files ({', '.join(SLIDE_SUFFIXES)}) in folder", file=str(folder))
    out = [SlideEntry(p.stem, str(p.resolve()), p.stem, None, mpp, mpp_override) for p in files]
    _check_unique(out, str(folder))
    return out


def slide_entries(slides: str | Path | Sequence[SlideEntry], mpp: float | None = None,
                  mpp_override: float | None = None) -> list[SlideEntry]:
    """A manifest CSV, a folder of slides or entries -> entries (copies); ``mpp`` / ``mpp_override`` apply
    where an entry gives none (as ``--mpp`` / ``--mpp-override`` do for a manifest)."""
    if isinstance(slides, (str, Path)):
        entries = folder_entries(slides) if Path(slides).is_dir() else read_manifest(slides)
    else:
        entries = list(slides)
        if not entries:
            raise InputError("no slides given")
        _check_unique(entries, "")
    return [replace(e, mpp=e.mpp if e.mpp is not None else mpp,
                    mpp_override=e.mpp_override if e.mpp_override is not None else mpp_override) for e in entries]


def _mpp_cell(text: str, i: int, column: str, file: str, patient: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        mpp = float(text)
    except ValueError:
        mpp = math.nan
    if not (mpp > 0 and math.isfinite(mpp)):
        raise InputError(f"row {i + 2}: {column} {text!r} is not a positive number", file=file, patient=patient,
                         column=column)
    return mpp


def _resolve(base: Path, p: str) -> Path:
    q = Path(p).expanduser()
    return (q if q.is_absolute() else base / q).resolve()


def _check_unique(entries: list[SlideEntry], file: str) -> None:
    seen: dict[str, str] = {}
    for e in entries:
        if e.slide_id in seen:
            raise InputError(f"slide_id {e.slide_id!r} appears twice ({seen[e.slide_id]} and {e.slide}); "
                             "add a unique slide_id column", file=file, patient=e.patient_id)
        seen[e.slide_id] = e.slide
