"""Cohort summary ("Table 1"): outcomes, follow-up and the clinical variables of each cohort.

Numeric variables: median [IQR]; categorical (and 0/1) variables: n (%) of patients with a value;
missing counts on their own row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gistrisk.survival.km import reverse_km_median_follow_up

ID = "patient_id"
#: the paper's variables first, in this order; anything else follows in table order
PREFERRED_ORDER = (
    "sex", "age", "bmi", "site", "tumour_size_cm", "tumor_size_cm", "size_cm", "mitoses_per_5mm2",
    "mitoses_per_50hpf", "ki67_percent", "rupture", "adjuvant_tki", "surgery_type",
)
LABELS = {
    "sex": "Sex", "age": "Age, years", "bmi": "BMI, kg/m2", "site": "Tumour site",
    "tumour_size_cm": "Tumour size, cm", "tumor_size_cm": "Tumour size, cm", "size_cm": "Tumour size, cm",
    "mitoses_per_5mm2": "Mitoses per 5 mm2", "mitoses_per_50hpf": "Mitoses per 50 HPF",
    "ki67_percent": "Ki67, %", "rupture": "Tumour rupture", "adjuvant_tki": "Adjuvant TKI",
    "surgery_type": "Surgery", "hemoglobin_g_l": "Haemoglobin, g/L", "albumin_g_l": "Albumin, g/L",
    "neutrophils_1e9_l": "Neutrophils, 10^9/L", "lymphocytes_1e9_l": "Lymphocytes, 10^9/L",
    "platelets_1e9_l": "Platelets, 10^9/L",
}


MEDIAN_IQR = "median [IQR]"


@dataclass
class CohortInput:
    """One column of Table 1: outcomes (indexed by patient_id, ``time``/``event``) and optional clinical."""

    outcomes: pd.DataFrame | None
    clinical: pd.DataFrame | None = None
    #: used when ``outcomes`` is None (e.g. the model bundle's development summary)
    summary: dict | None = None


def _indexed(df: pd.DataFrame | None) -> pd.DataFrame | None:
    if df is None:
        return None
    return df.set_index(ID) if ID in df.columns else df


def is_categorical(s: pd.Series) -> bool:
    """Text, boolean, or a numeric column holding only 0 and 1."""
    if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return True
    vals = set(pd.unique(s.dropna()))
    return bool(vals) and vals <= {0, 1}


def fmt_median_iqr(s: pd.Series) -> str:
    v = pd.to_numeric(s, errors="coerce").dropna().to_numpy(float)
    if len(v) == 0:
        return "—"
    q1, med, q3 = np.quantile(v, [0.25, 0.5, 0.75])
    return f"{med:.1f} [{q1:.1f}–{q3:.1f}]"


def fmt_n_pct(k: int, n: int) -> str:
    return f"{k} ({100.0 * k / n:.1f}%)" if n else "0"


def outcome_rows(c: CohortInput) -> list[tuple[str, str, str]]:
    """(variable, level, value) rows for n, events, censoring and median follow-up."""
    y = _indexed(c.outcomes)
    if y is not None:
        n, ev = len(y), int(y["event"].sum())
        fu = reverse_km_median_follow_up(y["time"].to_numpy(float), y["event"].to_numpy(int))
        fu_txt = f"{fu:.1f}" if np.isfinite(fu) else "not reached"
    else:
        s = c.summary or {}
        n, ev = int(s.get("n_outcomes", 0)), int(s.get("events", 0))
        fu_s = s.get("median_follow_up_months")
        fu_txt = f"{fu_s:.1f}†" if fu_s is not None else "—"
    return [("Patients, n", "", str(n)), ("Recurrence or death, n (%)", "", fmt_n_pct(ev, n)),
            ("Censored, %", "", f"{100.0 * (n - ev) / n:.1f}" if n else "—"),
            ("Median follow-up (reverse KM), months", "", fu_txt)]


def variable_rows(name: str, s: pd.Series | None) -> list[tuple[str, str, str]]:
    """Rows of one clinical variable in one cohort (``s`` None: the cohort lacks the variable)."""
    label = LABELS.get(name, name)
    if s is None:
        return [(label, "", "—")]
    rows = []
    present = s.dropna()
    if is_categorical(s):
        levels = sorted(present.astype(str).unique(), key=str)
        rows.append((label, "", ""))
        for lv in levels:
            rows.append((label, lv, fmt_n_pct(int((present.astype(str) == lv).sum()), len(present))))
    else:
        rows.append((label, MEDIAN_IQR, fmt_median_iqr(present)))
    miss = int(s.isna().sum())
    if miss:
        rows.append((label, "missing, n", str(miss)))
    return rows


def _order(columns) -> list[str]:
    cols = [c for c in columns if c != ID]
    first = [c for c in PREFERRED_ORDER if c in cols]
    return first + [c for c in cols if c not in first]


def table_one(cohorts: dict[str, CohortInput]) -> pd.DataFrame:
    """Table 1 with one column per cohort.

    Returns
    -------
    DataFrame with columns ``variable``, ``level`` and one text column per cohort name; a variable's
    categorical levels are the union over cohorts (a level absent from a cohort reads "0 (0.0%)").
    """
    names = list(cohorts)
    table: dict[tuple[str, str], dict[str, str]] = {}
    order: list[tuple[str, str]] = []

    def add(rows, cohort):
        for var, level, val in rows:
            key = (var, level)
            if key not in table:
                table[key] = {}
                order.append(key)
            table[key][cohort] = val

    for name, c in cohorts.items():
        add(outcome_rows(c), name)
    clinicals = {n: _indexed(c.clinical) for n, c in cohorts.items()}
    all_cols: list[str] = []
    for df in clinicals.values():
        if df is not None:
            all_cols += [c for c in df.columns if c not in all_cols]
    for col in _order(all_cols):
        var_rows = {n: variable_rows(col, df[col] if df is not None and col in df.columns else None)
                    for n, df in clinicals.items()}
        # put every cohort's levels in one sorted block under the variable's header
        keys = []
        for rows in var_rows.values():
            keys += [(v, lv) for v, lv, _ in rows if (v, lv) not in keys]
        if any(lv == MEDIAN_IQR for _, lv in keys):  # numeric: one row, no empty header row
            keys = [k for k in keys if k[1] != ""]
        keys.sort(key=lambda k: (k[1] == "missing, n", k[1] not in ("", MEDIAN_IQR), k[1]))
        for k in keys:
            table.setdefault(k, {})
            order.append(k)
        for n, rows in var_rows.items():
            got = {(v, lv): val for v, lv, val in rows}
            df_n = clinicals[n]
            for k in keys:
                if k in got:
                    table[k][n] = got[k]
                elif k[1] == "missing, n":
                    table[k][n] = "0" if df_n is not None and col in df_n.columns else "—"
                elif k[1] and df_n is not None and col in df_n.columns:
                    table[k][n] = fmt_n_pct(0, int(df_n[col].notna().sum()))
                else:
                    table[k][n] = table[k].get(n, "" if k[1] == "" else "—")
    out = [{"variable": v, "level": lv, **{n: table[(v, lv)].get(n, "—") for n in names}} for v, lv in order]
    return pd.DataFrame(out, columns=["variable", "level", *names])


def first_rows(t1: pd.DataFrame) -> list[bool]:
    """True on the first row of each variable (where its name is printed)."""
    return (t1["variable"] != t1["variable"].shift()).tolist()
