"""The per-patient report: risk, group, predicted RFS curve, modality contributions, NIH beside it."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.atomic import write_text
from gistrisk.report.patient_plots import contribution_plot, rfs_curve_plot
from gistrisk.report.render import Figures, fmt, label, render

NIH_AGREES = {"high": {"high"}, "low": {"very low", "low"}}


def contributions(model, prediction: Mapping[str, Any]) -> dict[str, float]:
    """``coef_m * (score_m - mean_m)`` for each modality of the fusion model that scored the patient.

    Their sum is the patient's fused risk (the centred Cox linear predictor).
    """
    key = str(prediction.get("fusion_model") or "")
    if not key or key == "nan" or key not in model.fusion_:
        return {}
    f = model.fusion_[key]
    return {m: float(b * (float(prediction[f"score_{m}"]) - mu))
            for m, b, mu in zip(f.modalities, f.cox.coef, f.cox.mean)}


def _is_true(v: Any) -> bool:
    return str(v).strip().lower() in ("true", "1", "1.0", "yes")


def _pct(x: Any) -> str:
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(xf) else f"{100 * xf:.0f}%"


def plain_language(patient_id: str, group: str, rfs36: Any, rfs60: Any, used: list[str], missing: list[str],
                   contrib: dict[str, float], modified_nih: str | None) -> str:
    """One or two sentences a clinician can read aloud."""
    if not used or not group:
        return (f"No risk could be computed for patient {patient_id}: none of the modalities the model needs "
                f"({', '.join(label(m).lower() for m in missing)}) was available.")
    mods = ", ".join(label(m).lower() for m in used)
    s = (f"Based on {mods} data, the model places patient {patient_id} in the {group.upper()}-risk group: the "
         f"predicted chance of remaining free of recurrence is {_pct(rfs36)} at 3 years and {_pct(rfs60)} at 5 years.")
    if contrib:
        m, v = max(contrib.items(), key=lambda kv: abs(kv[1]))
        s += (f" The {label(m).lower()} score {'raises' if v > 0 else 'lowers'} the risk most compared with an "
              "average patient of the development cohort.")
    if missing:
        s += (f" This is a PARTIAL prediction: {', '.join(label(m).lower() for m in missing)} data were not "
              "available, so it rests on fewer modalities than the full model.")
    if modified_nih:
        agree = modified_nih in NIH_AGREES.get(group, set())
        s += (f" The modified NIH classification is {modified_nih} risk, which "
              f"{'agrees with' if agree else 'differs from'} the model's group.")
    return s


def _text(value: Any) -> str:
    """A free-text cell of a prediction row ("" for empty, None or NaN)."""
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def write_patient_report(out_html: str | Path, *, model, prediction: Mapping[str, Any] | pd.Series,
                         survival_curve: tuple[Any, Any], modified_nih: str | None = None,
                         patient_id: str | None = None, features: Mapping[str, Any] | None = None,
                         figures_dir: str | Path | None = None) -> Path:
    """Write one patient's report as a self-contained HTML file.

    Parameters
    ----------
    out_html : file to write (atomically)
    model : MultimodalRiskModel
    prediction : one row of ``model.predict`` output (Series or dict)
    survival_curve : (times, survival), shapes (k,) and (k,), from ``model.predict_survival``
    modified_nih : the patient's modified NIH category, if known
    patient_id : defaults to ``prediction["patient_id"]``
    features : input values to list (e.g. the clinical variables and a few radiomics)
    figures_dir : also save the figures there as PNG
    """
    pred = dict(prediction.items()) if hasattr(prediction, "items") else dict(prediction)
    pid = str(patient_id if patient_id is not None else pred.get("patient_id", pred.get("name", "?")))
    used = [m for m in model.modalities_ if np.isfinite(float(pred.get(f"score_{m}", np.nan)))]
    missing = [m for m in model.modalities_ if m not in used]
    group = str(pred.get("risk_group") or "")
    group = "" if group == "nan" else group
    partial = _is_true(pred.get("partial")) or bool(missing)
    contrib = contributions(model, pred)
    times, surv = (np.asarray(a, float) for a in survival_curve)
    figs = Figures(figures_dir)
    if len(times) and np.isfinite(surv).any():
        figs.add("rfs", rfs_curve_plot(times, surv, model.group_curves_, pid, group))
    if contrib:
        figs.add("contributions", contribution_plot(contrib))
    key = str(pred.get("fusion_model") or "")
    fusion = model.fusion_.get(key)
    nih = None if modified_nih is None or (isinstance(modified_nih, float) and math.isnan(modified_nih)) else str(modified_nih)
    context = {
        "title": f"GIST recurrence risk: patient {pid}", "pid": pid, "group": group, "partial": partial,
        "risk": fmt(pred.get("risk"), 3), "used": [label(m) for m in used], "missing": [label(m) for m in missing],
        "rfs": [(f"{h // 12} year{'s' if h > 12 else ''}", _pct(pred.get(f"rfs_{h}"))) for h in (12, 36, 60)
                if f"rfs_{h}" in pred],
        "nih": nih, "figs": figs.uris, "ood": _text(pred.get("out_of_distribution")),
        "harmonisation": _text(pred.get("harmonisation")),
        "contrib": [{"modality": label(m), "score": fmt(pred[f"score_{m}"], 3), "value": f"{v:+.3f}"}
                    for m, v in contrib.items()],
        "formula": fusion.formula() if fusion else None,
        "cutoff": fmt(fusion.cutoff, 4) if fusion else "—",
        "sentence": plain_language(pid, group, pred.get("rfs_36"), pred.get("rfs_60"), used, missing, contrib, nih),
        "features": [(k, f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)) for k, v in (features or {}).items()],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "model_version": model.info_.get("versions", {}).get("gistrisk", "?"),
    }
    write_text(out_html, render("patient.html.j2", context))
    return Path(out_html)
