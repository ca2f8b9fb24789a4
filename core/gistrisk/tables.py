"""Reading and checking feature and outcome tables (CSV or Parquet, keyed by ``patient_id``)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from gistrisk.errors import InputError

log = logging.getLogger(__name__)
ID = "patient_id"
#: columns that describe a row rather than measure the patient
META_COLUMNS = ("slide_id", "n_tumour_tiles", "n_tiles", "no_tumour_tiles", "flag", "source_file")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table; ``patient_id`` is read as text."""
    path = Path(path)
    if not path.is_file():
        raise InputError("table not found", file=str(path))
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype={ID: str})
    except Exception as e:  # noqa: BLE001 - any parser failure is the user's file
        raise InputError(f"cannot read table ({type(e).__name__}: {e})", file=str(path)) from e
    if ID not in df.columns:
        raise InputError(f"no '{ID}' column (columns: {', '.join(map(str, df.columns[:8]))}...)", file=str(path))
    df[ID] = df[ID].astype(str).str.strip()
    if df[ID].isin(["", "nan", "None"]).any():
        raise InputError(f"empty {ID} in row(s) {np.flatnonzero(df[ID].isin(['', 'nan', 'None'])).tolist()[:5]}",
                         file=str(path))
    return df


def _duplicates_error(df: pd.DataFrame, path: str) -> None:
    dup = df[ID][df[ID].duplicated()].unique().tolist()
    if dup:
        raise InputError(f"duplicate {ID}: {', '.join(dup[:10])}", file=path, patient=dup[0])


def load_features(path: str | Path, modality: str) -> pd.DataFrame:
    """A modality's feature table indexed by patient_id (meta columns removed).

    A pathology table may hold several slides per patient (a ``slide_id`` column): their feature
    vectors are averaged per patient. Rows whose features are all missing (e.g. a slide with no
    tumour tile) are dropped with a warning: that patient lacks the modality.
    """
    df = read_table(path)
    if "slide_id" in df.columns and df[ID].duplicated().any():
        feats = [c for c in df.columns if c not in (ID, *META_COLUMNS)]
        log.warning("%s: averaging %d slides over %d patients", path, len(df), df[ID].nunique())
        df = df.groupby(ID, sort=False)[feats].mean(numeric_only=False).reset_index()
    _duplicates_error(df, str(path))
    df = df.drop(columns=[c for c in META_COLUMNS if c in df.columns]).set_index(ID)
    if df.shape[1] == 0:
        raise InputError(f"modality {modality!r}: no feature columns besides {ID}", file=str(path))
    empty = df.index[df.isna().all(axis=1)].tolist()
    if empty:
        log.warning("%s: %d patient(s) with no %s features (missing modality): %s", path, len(empty), modality,
                    ", ".join(empty[:10]))
        df = df.drop(index=empty)
    df.attrs["source"] = str(path)
    return df


def load_outcomes(path: str | Path) -> pd.DataFrame:
    """Outcomes indexed by patient_id with float ``time`` (months) and int ``event`` (0/1)."""
    df = read_table(path)
    p = str(path)
    for col in ("time", "event"):
        if col not in df.columns:
            raise InputError(f"missing column '{col}' (need {ID},time,event)", file=p, column=col)
    _duplicates_error(df, p)
    t = pd.to_numeric(df["time"], errors="coerce")
    bad = df[ID][t.isna()].tolist()
    if bad:
        raise InputError("missing or non-numeric time", file=p, patient=bad[0], column="time")
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
    out = pd.DataFrame({"time": t.astype(float).values, "event": e.astype(int).values}, index=df[ID].values)
    out.index.name = ID
    out.attrs["source"] = p
    return out


def match_ids(features: pd.DataFrame, outcomes: pd.DataFrame, modality: str) -> dict[str, list[str]]:
    """Ids present in one table but not the other, reported (never silently dropped)."""
    only_f = sorted(set(features.index) - set(outcomes.index))
    only_o = sorted(set(outcomes.index) - set(features.index))
    if only_f:
        log.warning("%s: %d patient(s) have %s features but no outcome (not used for fitting): %s",
                    features.attrs.get("source", modality), len(only_f), modality, ", ".join(only_f[:10]))
    if only_o:
        log.warning("%s: %d patient(s) with an outcome lack %s features: %s",
                    features.attrs.get("source", modality), len(only_o), modality, ", ".join(only_o[:10]))
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
