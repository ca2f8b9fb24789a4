"""Reading and checking feature and outcome tables (CSV or Parquet, keyed by ``patient_id``)."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gistrisk.clinical.dictionary import ClinicalDictionary, default_dictionary
from gistrisk.errors import InputError

log = logging.getLogger(__name__)
ID = "patient_id"
CLINICAL = "clinical"
#: columns that describe a row rather than measure the patient
META_COLUMNS = ("slide_id", "n_tumour_tiles", "n_tiles", "no_tumour_tiles", "flag", "source_file")


_EXCEL_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
_ZEROS = re.compile(r"(?<!\d)0+(?=\d)")
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
#: follow-up above this many "months" at the median is taken for days unless a unit is given
DAYS_LIKE_MEDIAN = 120.0
TIME_UNITS = {"months": 1.0, "days": 12.0 / 365.25, "weeks": 12.0 * 7 / 365.25, "years": 12.0}


def _text(path: Path) -> tuple[str, str]:
    """The file's text and the encoding it was read with (UTF-8, else GB18030 as Chinese exports use)."""
    raw = path.read_bytes()
    if raw.startswith(_EXCEL_MAGIC):
        raise InputError("this is an Excel workbook, not a CSV: save the sheet as CSV (UTF-8) and pass that file",
                         file=str(path))
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise InputError("the file is neither UTF-8 nor GB18030 text; save it as CSV (UTF-8)", file=str(path))


def _csv_dialect(text: str) -> tuple[str, str]:
    """Separator and decimal mark from the header line and the cells: ``,`` / ``.`` unless the file
    is clearly separated by ``;``, tab or ``|`` (then decimal commas are recognised)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ",", "."
    header = lines[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    sep = max(counts, key=lambda s: counts[s]) if max(counts.values()) > 0 else ","
    if counts[","] >= counts[sep]:
        sep = ","
    decimal = "."
    if sep != ",":
        cells = [c for ln in lines[1:50] for c in ln.split(sep)]
        if any(_DECIMAL_COMMA.match(c) for c in cells):
            decimal = ","
    return sep, decimal


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (any of , ; tab | separators, decimal commas with ;) or Parquet table;
    ``patient_id`` is read as text."""
    path = Path(path)
    if not path.is_file():
        raise InputError("table not found" if not path.exists() else "not a file", file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm", ".xls", ".ods"):
        raise InputError("Excel/OpenDocument workbooks are not read: save the sheet as CSV (UTF-8) and pass that",
                         file=str(path))
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            text, enc = _text(path)
            if not text.strip():
                raise InputError("the file is empty", file=str(path))
            sep, decimal = _csv_dialect(text)
            if (sep, decimal, enc) != (",", ".", "utf-8-sig"):
                names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "|"}
                log.info("%s: read as %s-separated%s%s", path, names[sep],
                         " with decimal commas" if decimal == "," else "",
                         f" ({enc.upper()} text)" if enc != "utf-8-sig" else "")
            df = pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, dtype={ID: str})
    except InputError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise InputError(f"cannot read table ({type(e).__name__}: {e})", file=str(path)) from e
    df.columns = [str(c).strip() for c in df.columns]
    if ID not in df.columns:
        cols = ", ".join(map(str, df.columns[:8]))
        hint = ""
        if len(df.columns) == 1 and any(ch in str(df.columns[0]) for ch in ";\t|"):
            hint = " (the header looks like one column: is the separator unusual?)"
        near = [c for c in df.columns if c.lower().replace(" ", "_") in ("patient_id", "patientid", "id", "patient")]
        if near:
            hint = f" (did you mean {near[0]!r}? rename it to {ID!r})"
        raise InputError(f"no '{ID}' column (columns: {cols}{'...' if len(df.columns) > 8 else ''}){hint}",
                         file=str(path))
    df[ID] = df[ID].astype(str).str.strip()
    if df[ID].isin(["", "nan", "None", "<NA>"]).any():
        raise InputError(f"empty {ID} in row(s) {np.flatnonzero(df[ID].isin(['', 'nan', 'None', '<NA>'])).tolist()[:5]}",
                         file=str(path))
    df.attrs["source"] = str(path)
    return df


def _duplicates_error(df: pd.DataFrame, path: str) -> None:
    dup = df[ID][df[ID].duplicated()].unique().tolist()
    if dup:
        raise InputError(f"duplicate {ID}: {', '.join(dup[:10])}", file=path, patient=dup[0])


def _average_slides(df: pd.DataFrame, path: str) -> pd.DataFrame:
    """One row per patient: numeric columns averaged over the patient's slides, text columns
    carried when every slide agrees (refused when they differ)."""
    feats = [c for c in df.columns if c not in (ID, *META_COLUMNS)]
    numeric = [c for c in feats if pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])]
    text = [c for c in feats if c not in numeric]
    g = df.groupby(ID, sort=False)
    out = g[numeric].mean() if numeric else pd.DataFrame(index=g.size().index)
    for c in text:
        n = g[c].nunique(dropna=True)
        if (n > 1).any():
            pid = n.index[n > 1][0]
            vals = df.loc[df[ID] == pid, c].dropna().astype(str).unique().tolist()
            raise InputError(f"the patient's slides disagree ({', '.join(map(repr, vals[:4]))}); a text column "
                             "cannot be averaged over slides", file=path, patient=pid, column=str(c))
        out[c] = g[c].first()
    log.warning("%s: averaging %d slides over %d patients (numeric columns averaged%s)", path, len(df),
                df[ID].nunique(), f"; {', '.join(map(str, text[:5]))} carried" if text else "")
    return out[[c for c in feats]].reset_index()


def check_finite(df: pd.DataFrame, path: str | None) -> None:
    """Refuse infinite numbers (inf/-inf, 1e999) in any column, naming the patient and column."""
    for c in df.columns:
        v = pd.to_numeric(df[c], errors="coerce") if not pd.api.types.is_bool_dtype(df[c]) else None
        if v is None or not pd.api.types.is_numeric_dtype(v):
            continue
        bad = np.isinf(v.to_numpy(float))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            pid = df.index[i] if df.index.name == ID else df[ID].iloc[i] if ID in df.columns else i
            raise InputError(f"infinite value {str(df[c].iloc[i])!r} ({int(bad.sum())} in this column); only finite "
                             "numbers are accepted", file=path, patient=str(pid), column=str(c))


def load_features(path: str | Path, modality: str, dictionary: ClinicalDictionary | None = None) -> pd.DataFrame:
    """A modality's feature table indexed by patient_id (meta columns removed).

    A pathology table may hold several slides per patient (a ``slide_id`` column): their numeric
    columns are averaged per patient (text columns carried when the slides agree). Rows whose
    features are all missing (e.g. a slide with no tumour tile) are dropped with a warning: that
    patient lacks the modality. The ``clinical`` modality is read through the clinical data
    dictionary (synonyms, ICD-O codes, units); the values it mapped are logged and kept in
    ``attrs["dictionary_report"]``. Infinite numbers are refused everywhere.
    """
    df = read_table(path)
    p = str(path)
    if "slide_id" in df.columns and df[ID].duplicated().any():
        df = _average_slides(df, p)
    _duplicates_error(df, p)
    df = df.drop(columns=[c for c in META_COLUMNS if c in df.columns]).set_index(ID)
    if df.shape[1] == 0:
        raise InputError(f"modality {modality!r}: no feature columns besides {ID}", file=p)
    if df.shape[0] == 0:
        raise InputError(f"modality {modality!r}: the table has a header but no rows", file=p)
    check_finite(df, p)
    report = None
    if modality == CLINICAL:
        d = dictionary or default_dictionary()
        df, report = d.normalise_table(df, p)
        _log_dictionary_report(report, p)
    empty = df.index[df.isna().all(axis=1)].tolist()
    if empty:
        log.warning("%s: %d patient(s) with no %s features (missing modality): %s", path, len(empty), modality,
                    ", ".join(empty[:10]))
        df = df.drop(index=empty)
    df.attrs["source"] = p
    if report is not None:
        df.attrs["dictionary_report"] = report
    return df


def _log_dictionary_report(report: dict, path: str) -> None:
    for col, mapped in report["mapped"].items():
        shown = "; ".join(f"{k} ({n})" for k, n in list(mapped.items())[:6])
        log.info("%s: column %r read through the clinical dictionary: %s%s", path, col, shown,
                 " ..." if len(mapped) > 6 else "")
    for col, n in report["converted_units"].items():
        log.info("%s: column %r: %d value(s) written with a unit, converted to the dictionary's unit", path, col, n)
    for col, ids in report["unknown"].items():
        log.warning("%s: column %r: %d value(s) not in the clinical dictionary kept as 'unknown' (patients %s)",
                    path, col, len(ids), ", ".join(ids[:10]))
    if report["not_in_dictionary"]:
        log.info("%s: column(s) not described by the clinical dictionary, used as written: %s", path,
                 ", ".join(report["not_in_dictionary"][:10]))


def time_factor(unit: str | None) -> float:
    if unit is None:
        return 1.0
    if unit not in TIME_UNITS:
        raise InputError(f"time unit must be one of {', '.join(TIME_UNITS)}, got {unit!r}")
    return TIME_UNITS[unit]


def load_outcomes(path: str | Path, time_unit: str | None = None) -> pd.DataFrame:
    """Outcomes indexed by patient_id with float ``time`` in months and int ``event`` (0/1).

    ``time_unit`` (months, days, weeks, years) says how the file's times are written; they are
    converted to months. Without it the times are taken as months, and follow-up that looks like
    days (median above 120) is refused.
    """
    df = read_table(path)
    p = str(path)
    for col in ("time", "event"):
        if col not in df.columns:
            raise InputError(f"missing column '{col}' (need {ID},time,event)", file=p, column=col)
    if df.empty:
        raise InputError("the outcomes table has a header but no rows", file=p)
    _duplicates_error(df, p)
    t = pd.to_numeric(df["time"], errors="coerce")
    bad = df[ID][t.isna()].tolist()
    if bad:
        val = df.loc[df[ID] == bad[0], "time"].iloc[0]
        raise InputError(f"missing or non-numeric time {val!r}", file=p, patient=bad[0], column="time")
    inf = df[ID][np.isinf(t)].tolist()
    if inf:
        raise InputError(f"infinite time {t[df[ID] == inf[0]].iloc[0]}", file=p, patient=inf[0], column="time")
    neg = df[ID][t < 0].tolist()
    if neg:
        raise InputError(f"negative time {t[df[ID] == neg[0]].iloc[0]}", file=p, patient=neg[0], column="time")
    e = pd.to_numeric(df["event"], errors="coerce")
    bad = df[ID][~e.isin([0, 1])].tolist()
    if bad:
        val = df.loc[df[ID] == bad[0], "event"].iloc[0]
        raise InputError(f"event must be 0 or 1, got {val!r}", file=p, patient=bad[0], column="event")
    if e.sum() == 0:
        raise InputError("no events at all (every patient censored): a survival model cannot be fitted", file=p,
                         column="event")
    factor = time_factor(time_unit)
    if time_unit is None and t.median() > DAYS_LIKE_MEDIAN:
        raise InputError(f"median follow-up is {t.median():.0f}, which looks like days rather than months; say "
                         "which with --time-unit days (or --time-unit months if it really is months)",
                         file=p, column="time")
    out = pd.DataFrame({"time": t.astype(float).values * factor, "event": e.astype(int).values}, index=df[ID].values)
    if time_unit not in (None, "months"):
        log.info("%s: times read in %s and converted to months (median %.1f months)", p, time_unit,
                 float(out["time"].median()))
    out.index.name = ID
    out.attrs["source"] = p
    out.attrs["time_unit"] = time_unit or "months"
    return out


def _strip_zeros(ids) -> dict[str, str]:
    """ID without the leading zeros of each run of digits ("095" -> "95", "P007" -> "P7") -> ID."""
    return {_ZEROS.sub("", i): i for i in ids}


def id_hint(left, right) -> str:
    """A hint when IDs differ only by leading zeros ("095" vs "95") or by case/spaces."""
    a, b = _strip_zeros(left), _strip_zeros(right)
    zeros = sorted(set(a) & set(b))
    if zeros:
        k = zeros[0]
        return (f" ({len(zeros)} ID(s) differ only by leading zeros, e.g. {a[k]!r} vs {b[k]!r}: "
                "write the IDs the same way in every table)")
    la, lb = {i.lower().replace(" ", ""): i for i in left}, {i.lower().replace(" ", ""): i for i in right}
    case = sorted(set(la) & set(lb))
    if case:
        k = case[0]
        return f" ({len(case)} ID(s) differ only by case or spaces, e.g. {la[k]!r} vs {lb[k]!r})"
    return ""


def match_ids(features: pd.DataFrame, outcomes: pd.DataFrame, modality: str) -> dict[str, list[str]]:
    """Ids present in one table but not the other, reported (never silently dropped)."""
    only_f = sorted(set(features.index) - set(outcomes.index))
    only_o = sorted(set(outcomes.index) - set(features.index))
    hint = id_hint(only_f, only_o) if only_f and only_o else ""
    if only_f:
        log.warning("%s: %d patient(s) have %s features but no outcome (not used for fitting): %s%s",
                    features.attrs.get("source", modality), len(only_f), modality, ", ".join(only_f[:10]), hint)
    if only_o:
        log.warning("%s: %d patient(s) with an outcome lack %s features: %s%s",
                    features.attrs.get("source", modality), len(only_o), modality, ", ".join(only_o[:10]), hint)
    return {"features_without_outcome": only_f, "outcome_without_features": only_o}


def parse_modality_args(items: list[str]) -> dict[str, Path]:
    """Parse ``NAME=TABLE`` command-line items."""
    out: dict[str, Path] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"--modality expects NAME=TABLE, got {item!r}")
        name, path = item.split("=", 1)
        name = name.strip()
        if not name or name in out:
            raise InputError(f"modality name {name!r} empty or given twice")
        out[name] = Path(path)
    return out
