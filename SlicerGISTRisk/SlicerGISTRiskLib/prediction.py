"""One patient through a frozen model bundle: inputs per modality, scores, fused risk, curve, NIH.

A modality the user does not provide (no slide features, say) is left out:
the bundle's fusion model for the modalities present predicts, and the result
is flagged ``partial``. When the bundle has no such model the message says
which modality is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.clinical.nih import modified_nih
from gistrisk.errors import BundleError, InputError
from gistrisk.harmonise.site import harmonise_tables, read_site_file
from gistrisk.survival.model import MultimodalRiskModel

from .clinical_form import ClinicalField, clinical_row, fields_from_schema, form_fields, nih_arguments, parse_values

PATHOLOGY_SCORE_COLUMNS = ("score_pathology", "patscore")
CURVE_TIMES = np.arange(0.0, 121.0, 1.0)  # months


@dataclass
class PatientPrediction:
    """What the panel shows for one patient.

    prediction : the model's row (scores, risk, risk_group, rfs_*, modalities_used, partial).
    curve : predicted RFS, columns ``time`` (months) and ``survival``.
    group_curves : training cohort KM curves {"low"|"high": {"time": [...], "survival": [...]}}.
    nih : modified NIH category, or None with ``nih_missing`` naming what it needs.
    """

    patient_id: str
    prediction: dict[str, Any]
    curve: Any
    group_curves: dict[str, dict[str, list[float]]]
    nih: str | None = None
    nih_missing: list[str] = field(default_factory=list)
    missing_modalities: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    clinical: dict[str, Any] = field(default_factory=dict)
    model: Any = None  # the bundle that answered (the report shows its formula and cut-off)


def load_bundle(path: str | Path | None) -> Any:
    """Load a model bundle folder; BundleError when missing, corrupt or of another schema version."""
    if path is None or not str(path).strip():
        raise BundleError("no model bundle folder chosen: pick the folder written by `gistrisk fit`")
    p = Path(path)
    if not p.exists():
        raise BundleError(f"{p}: model bundle folder not found")
    return MultimodalRiskModel.load(p)


def model_fields(model: Any) -> list[ClinicalField]:
    """The clinical inputs of a model (empty when it has no clinical modality)."""
    return fields_from_schema(getattr(model, "clinical_schema_", []) or [])


def model_form(model: Any) -> list[ClinicalField]:
    """The clinical form: the model's inputs plus the modified NIH inputs it lacks."""
    return form_fields(model_fields(model))


def read_pathology(path: str | Path, model: Any, patient_id: str) -> tuple[Any | None, float | None]:
    """Read the slide-feature row (or patscore) file exported by the pathology arm.

    Returns
    -------
    (table, score): a one-row table with the model's pathology columns, or a
    pathology score when the file holds only ``score_pathology``/``patscore``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("pathology file not found", file=str(p), patient=patient_id)
    try:
        df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
    except Exception as e:  # noqa: BLE001  (any unreadable table)
        raise InputError(f"cannot read the slide-feature table: {e}", file=str(p), patient=patient_id) from None
    if df.empty:
        raise InputError("the slide-feature table has no rows", file=str(p), patient=patient_id)
    if len(df) > 1:
        if "patient_id" not in df.columns:
            raise InputError(f"{len(df)} rows and no patient_id column: export one slide row", file=str(p),
                             patient=patient_id)
        df = df[df["patient_id"].astype(str) == str(patient_id)]
        if len(df) != 1:
            raise InputError(f"expected one row for this patient, found {len(df)}", file=str(p),
                             patient=patient_id, column="patient_id")
    row = df.iloc[[0]].copy()
    row["patient_id"] = patient_id  # the slide's own id may differ from the CT's
    needed = list(getattr(model, "input_columns_", {}).get("pathology", []))
    if needed and all(c in row.columns for c in needed):
        return row[["patient_id", *needed]].reset_index(drop=True), None
    for col in PATHOLOGY_SCORE_COLUMNS:
        if col in row.columns:
            value = pd.to_numeric(row[col], errors="coerce").iloc[0]
            if not np.isfinite(value):
                raise InputError(f"{row[col].iloc[0]!r} is not a number", file=str(p), patient=patient_id, column=col)
            return None, float(value)
    missing = [c for c in needed if c not in row.columns]
    raise InputError(f"the slide-feature row lacks {len(missing)} column(s) the model needs "
                     f"(e.g. {missing[:3]}) and has no {' or '.join(PATHOLOGY_SCORE_COLUMNS)} column",
                     file=str(p), patient=patient_id)


def radiomics_row(model: Any, features: dict[str, float], patient_id: str, params_file: str = "") -> Any:
    """The one-row radiomics table (the model's inputs and the features its harmonisation reference maps);
    refuses features the bundle needs but the parameter file did not make."""
    needed = list(getattr(model, "input_columns_", {}).get("radiomics", []))
    missing = [c for c in needed if c not in features]
    if missing:
        raise InputError(f"the model needs {len(missing)} radiomics feature(s) this extraction did not produce "
                         f"(e.g. {missing[:3]}); use the parameter file the model was trained with",
                         file=params_file or None, patient=patient_id)
    reference = ((getattr(model, "info_", {}).get("harmonisation") or {}).get("references") or {}).get("radiomics")
    mapped = [c for c in (reference["features"] if reference else []) if c in features]
    cols = list(dict.fromkeys(needed + mapped)) or sorted(features)
    return pd.DataFrame([{"patient_id": patient_id, **{c: features[c] for c in cols}}])


def predict_patient(model: Any, patient_id: str, radiomics: dict[str, float] | None,
                    clinical_values: dict[str, Any] | None, pathology: tuple[Any | None, float | None] | None,
                    params_file: str = "", times: np.ndarray = CURVE_TIMES,
                    site_file: str | None = None) -> PatientPrediction:
    """Scores, fused risk, group, RFS curve and modified NIH category for one patient.

    ``site_file`` (from ``gistrisk harmonise``) maps the features onto the development cohort's first;
    without it a model with a harmonisation reference says the features are not harmonised. A score or
    input outside the development range is named in ``warnings``.

    Raises
    ------
    InputError when no modality the model knows is given, or the bundle has no
    fusion model for the modalities given (naming the missing ones).
    """
    mods = list(model.modalities_)
    tables: dict[str, pd.DataFrame] = {}
    warnings: list[str] = []
    fields = model_fields(model)
    form = form_fields(fields)
    parsed: dict[str, Any] = {}
    if clinical_values is not None:
        parsed = parse_values(form, clinical_values, patient_id, warnings)
        if "clinical" in mods and fields and any(parsed[f.name] is not None for f in fields):
            tables["clinical"] = clinical_row(fields, parsed, patient_id)
    if radiomics is not None and "radiomics" in mods:
        tables["radiomics"] = radiomics_row(model, radiomics, patient_id, params_file)
    extra_scores: dict[str, float] = {}
    if pathology is not None and "pathology" in mods:
        table, score = pathology
        if table is not None:
            tables["pathology"] = table
        elif score is not None:
            extra_scores["pathology"] = score
    given = set(tables) | set(extra_scores)
    missing = [m for m in mods if m not in given]
    if not given:
        raise InputError(f"no input for any modality of the model ({', '.join(mods)})", patient=patient_id)

    tables, harmonisation = _harmonise(model, tables, site_file)
    if harmonisation:
        warnings.append(harmonisation)
    row, curve = _predict(model, tables, extra_scores, times)
    if row.get("out_of_distribution"):
        warnings.append(f"outside the development cohort (the model extrapolates): {row['out_of_distribution']}")
    if not np.isfinite(row.get("risk", np.nan)):
        raise InputError(f"the model cannot predict without {', '.join(missing)} (it has no fusion model for "
                         f"{', '.join(sorted(given))} alone): provide {', '.join(missing)}", patient=patient_id)
    if missing:
        warnings.append(f"partial prediction: {', '.join(missing)} not available; fused from "
                        f"{row.get('modalities_used', '')}")
    nih, nih_missing = _nih(form, parsed)
    return PatientPrediction(patient_id, row, curve, dict(getattr(model, "group_curves_", {}) or {}), nih,
                             nih_missing, missing, warnings, parsed, model)


def _harmonise(model: Any, tables: dict[str, Any], site_file: str | None) -> tuple[dict[str, Any], str]:
    """The tables mapped with the site file, and the note for the results ("" when nothing to say)."""
    refs = (getattr(model, "info_", {}).get("harmonisation") or {}).get("references") or {}
    if site_file is None:
        unharmonised = sorted(set(refs) & set(tables))
        return tables, (f"{', '.join(unharmonised)} features not harmonised to the development cohort (no site "
                        "file for this scanner; `gistrisk harmonise` makes one from 20+ local cases)"
                        if unharmonised else "")
    adjustments = read_site_file(site_file, model.info_)
    site = next(iter(adjustments.values())).site
    return harmonise_tables(model.info_, tables, adjustments), f"{', '.join(adjustments)} features harmonised " \
        f"to the development cohort with site file {Path(site_file).name} (site {site})"


def _predict(model: Any, tables: dict[str, Any], extra_scores: dict[str, float],
             times: np.ndarray) -> tuple[dict[str, Any], Any]:
    if not extra_scores:
        pred = model.predict(tables)
        surv = model.predict_survival(tables, times)
        row = pred.iloc[0].to_dict()
        curve_values = surv.iloc[0].to_numpy(float)
    else:
        # A patscore instead of slide features: fuse the given score with the computed ones.
        # The model's public score-level entry points, so the numbers match `predict`.
        S = model.scores(tables) if tables else pd.DataFrame(index=pd.Index([], name="patient_id"))
        pid = next(iter(tables.values()))["patient_id"].iloc[0] if tables else "patient"
        if pid not in S.index:
            S.loc[pid] = np.nan
        for m, v in extra_scores.items():
            S.loc[pid, f"score_{m}"] = v
        row = model.predict_from_scores(S).iloc[0].to_dict()
        curve_values = model.predict_survival_from_scores(S, times).iloc[0].to_numpy(float)
    curve = pd.DataFrame({"time": np.asarray(times, float), "survival": curve_values})
    return row, curve


def _nih(fields: list[ClinicalField], parsed: dict[str, Any]) -> tuple[str | None, list[str]]:
    args, missing = nih_arguments(fields, parsed)
    if missing:
        return None, missing
    try:
        return modified_nih(**args), []
    except (InputError, ValueError) as e:
        return None, [str(e)]
