"""The cohort report: one self-contained HTML file with every table and figure of the study."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd

from gistrisk.atomic import write_text
from gistrisk.clinical.nih import nih_categories, nih_rank
from gistrisk.errors import InputError
from gistrisk.provenance import package_versions
from gistrisk.report import plots
from gistrisk.report.decision_curve import DEFAULT_THRESHOLDS, decision_curve
from gistrisk.report.methods import deviations, methods_paragraphs
from gistrisk.report.nomogram import SCORE_NAMES, axis_scores, draw, from_fusion
from gistrisk.report.render import Figures, fmt, fmt_p, label, ordered, render
from gistrisk.report.table_one import CohortInput, first_rows, table_one
from gistrisk.report.tripod import REFERENCE as TRIPOD_REFERENCE
from gistrisk.report.tripod import checklist_rows
from gistrisk.survival.evaluation import c_index_summary

ID = "patient_id"
SECTIONS = {
    "table1": "Cohort summary (Table 1)",
    "features": "Selected features and hazard ratios (post-selection, descriptive)",
    "cindex": "Discrimination: C-index by model",
    "km": "Kaplan-Meier curves by risk group",
    "tdauc": "Time-dependent AUC",
    "calibration": "Calibration at 3 and 5 years",
    "dca": "Decision-curve analysis: adjuvant TKI",
    "nomogram": "Nomogram of the fused model",
    "formula": "Fusion formula and subset models",
    "methods": "Methods",
    "tripod": "TRIPOD+AI checklist",
}
DCA_HORIZONS = (36, 60)
NOT_ESTIMABLE = "not estimable (no patient of this group followed to {h:g} months)"


@overload
def _by_id(df: None) -> None: ...
@overload
def _by_id(df: pd.DataFrame) -> pd.DataFrame: ...
def _by_id(df: pd.DataFrame | None) -> pd.DataFrame | None:
    """A copy indexed by text ``patient_id`` (taken from the column when there is one)."""
    if df is None:
        return None
    df = df.set_index(df[ID].astype(str)).drop(columns=ID) if ID in df.columns else df.copy()
    df.index = df.index.astype(str)
    df.index.name = ID
    return df


def _check_predictions(pred: pd.DataFrame, outcomes: pd.DataFrame, model) -> None:
    need = ["risk", "risk_group", *[f"score_{m}" for m in model.modalities_]]
    missing = [c for c in need if c not in pred.columns]
    if missing:
        raise InputError(f"predictions lack column(s) {missing} (expected `gistrisk validate`'s predictions.csv)",
                         column=missing[0])
    if not len(pred.index.intersection(outcomes.index)):
        raise InputError(f"no predicted patient has an outcome (predictions: {', '.join(pred.index[:3])}...; "
                         f"outcomes: {', '.join(outcomes.index[:3])}...)")


def _check_outcomes(y: pd.DataFrame, what: str) -> None:
    missing = [c for c in ("time", "event") if c not in y.columns]
    if missing:
        raise InputError(f"{what} outcomes lack column(s) {missing} (need {ID}, time, event)", column=missing[0])


def is_model_entry(r: Any) -> bool:
    """A per-model metrics entry (C-index, or why it was not evaluated), not a summary such as
    ``same_patients_as_fusion`` or ``proportional_hazards``."""
    return isinstance(r, dict) and ("c_index" in r or "not_evaluated" in r)


def development_checks(cv: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    """The development checks beside the C-index table: every model on the fusion's patients, the
    paper's selection chain against the cross-validated Coxnet in the same folds, proportional
    hazards (Schoenfeld), and modalities left out for carrying no signal."""
    same = [{"label": label(m), "c": fmt(r.get("c_index")), "n": r.get("n"), "events": r.get("events")}
            for m, r in (cv.get("same_patients_as_fusion") or {}).items() if isinstance(r, dict)]
    sel = []
    for m, r in (cv.get("selection_comparison") or {}).items():
        row = {"label": label(m), "used": r.get("configured")}
        for k in ("paper", "coxnet"):
            v = r.get(k) or {}
            row[k] = f"{fmt(v.get('c_index'))} ({fmt((v.get('c_index_ci') or [None])[0])}–" \
                     f"{fmt((v.get('c_index_ci') or [None, None])[1])})" if v else "—"
        sel.append(row)
    ph = []
    for m, r in (cv.get("proportional_hazards") or {}).items():
        if "p" in r:
            terms = [f"{k}: {fmt_p(v)}" for k, v in r["p"].items()]
            terms += [f"{k}: constant, not tested" for k in r.get("constant") or []]
            ph.append({"label": label(m), "terms": "; ".join(terms),
                       "violated": ", ".join(r.get("violated_at_0.05") or []) or "none"})
        else:
            ph.append({"label": label(m), "terms": f"not computed ({r.get('error')})", "violated": "—"})
    return {"same": same, "selection": sel, "ph": ph, "no_signal": dict(info.get("no_signal") or {})}


def cindex_rows(dev: dict[str, Any], val: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per model: development (cross-validated) and validation C-index with CI, n, events, p."""
    rows = []
    for m in ordered(k for k in set(dev) | set(val) if is_model_entry(dev.get(k)) or is_model_entry(val.get(k))):
        row: dict[str, Any] = {"model": m, "label": label(m), "dev_note": None, "val_note": None}
        for tag, src in (("dev", dev), ("val", val)):
            r = src.get(m) if isinstance(src.get(m), dict) else None
            if r and "c_index" in r:
                lo, hi = r.get("c_index_ci", [np.nan, np.nan])
                row[tag] = {"c": fmt(r["c_index"]), "ci": f"{fmt(lo)}–{fmt(hi)}", "n": r.get("n"),
                            "events": r.get("events"), "p": fmt_p(r.get("logrank_p")),
                            "uno": fmt(r.get("uno_c_index")), "auc": fmt((r.get("td_auc") or {}).get("mean_auc"))}
            else:
                row[tag] = None
            if r and r.get("not_evaluated"):
                row[f"{tag}_note"] = f"not evaluated: {r['not_evaluated']}"
        rows.append(row)
    return rows


def _dev_nih(model, dev_outcomes, dev_clinical) -> dict[str, Any] | None:
    if dev_outcomes is None or dev_clinical is None:
        return None
    nih = nih_categories(dev_clinical)
    if nih is None or nih.empty:
        return None
    ids = nih.index.intersection(dev_outcomes.index)
    p = model.info_.get("parameters", {})
    y = dev_outcomes.loc[ids]
    return c_index_summary(y["time"], y["event"], nih.loc[ids].map(nih_rank).to_numpy(float),
                           n_boot=int(p.get("bootstrap", 500)), seed=int(p.get("seed", 0)))


def _nih_series(predictions: pd.DataFrame, clinical: pd.DataFrame | None) -> pd.Series | None:
    if "modified_nih" in predictions.columns and predictions["modified_nih"].notna().any():
        return predictions["modified_nih"].dropna().astype(str)
    if clinical is not None:
        return nih_categories(clinical)
    return None


def dca_tables(predictions: pd.DataFrame, outcomes: pd.DataFrame, nih: pd.Series | None,
               horizons=DCA_HORIZONS, thresholds=DEFAULT_THRESHOLDS) -> tuple[dict[str, pd.DataFrame], int]:
    """Net-benefit tables per horizon (text key in months) and the number of patients they use."""
    ids = predictions.index.intersection(outcomes.index)
    cols = [f"rfs_{h}" for h in horizons if f"rfs_{h}" in predictions.columns]
    ids = ids[predictions.loc[ids, cols].notna().all(axis=1).to_numpy()] if cols else ids[:0]
    if nih is not None:
        ids = ids.intersection(nih.index)
    y = outcomes.loc[ids]
    out = {}
    for h in horizons:
        col = f"rfs_{h}"
        if col not in predictions.columns or len(ids) < 10:
            continue
        rules = {}
        if nih is not None:
            cat = nih.loc[ids]
            rules = {"Modified NIH: treat intermediate + high": cat.isin(["intermediate", "high"]).to_numpy(),
                     "Modified NIH: treat high only": (cat == "high").to_numpy()}
        out[str(h)] = decision_curve(y["time"], y["event"], float(h), thresholds,
                                     risks={"Late fusion model": 1 - predictions.loc[ids, col].to_numpy(float)},
                                     rules=rules)
    return out, len(ids)


def dca_treatment_caveat(info: dict[str, Any]) -> str | None:
    """What to say over the decision curves when the model includes treatment given because of risk."""
    included = list(((info or {}).get("treatment") or {}).get("included") or [])
    if not included:
        return None
    return (f"This model includes treatment given because of the assessed risk ({', '.join(included)}; fit config "
            "treatment: include). That treatment is confounded by indication, so the model's net benefit for "
            "deciding on it is not interpretable: its predicted risk already reflects the decision it would inform.")


def calibration_rows(cal: dict[str, Any]) -> tuple[list[dict[str, str]], list[str]]:
    """Table rows (one per horizon and group of prediction) and a note per horizon with groups whose
    observed RFS is not estimable, with the numbers at risk at the horizon of every group."""
    rows, notes = [], []
    for k in sorted(cal, key=float):
        h = float(k)
        groups = cal[k].get("groups") or []
        for i, g in enumerate(groups, 1):
            if plots.estimable(g):
                lo, hi = (list(g.get("observed_ci") or []) + [None, None])[:2]
                obs = f"{fmt(g['observed'])} ({fmt(lo)}–{fmt(hi)})"
            else:
                obs = NOT_ESTIMABLE.format(h=h)
            rows.append({"horizon": f"{h:g} months", "group": str(i), "n": str(g.get("n", "—")),
                         "n_at_risk": str(g["n_at_risk"]) if g.get("n_at_risk") is not None else "—",
                         "predicted": fmt(g.get("predicted")), "observed": obs})
        bad = [g for g in groups if not plots.estimable(g)]
        if bad:
            at = ", ".join(str(g["n_at_risk"]) if g.get("n_at_risk") is not None else "—" for g in groups)
            notes.append(f"{h:g} months: {len(bad)} of {len(groups)} groups {NOT_ESTIMABLE.format(h=h)}; "
                         f"numbers at risk at {h:g} months by group: {at}")
    return rows, notes


def subset_rows(model) -> list[dict[str, Any]]:
    main = model.main_fusion
    rows = []
    for key, f in sorted(model.fusion_.items(), key=lambda kv: (-len(kv[1].modalities), kv[0])):
        coefs = ", ".join(f"{SCORE_NAMES.get(m, m)} {b:.4f} (SE {s:.4f})"
                          for m, b, s in zip(f.modalities, f.cox.coef, f.cox.se))
        rows.append({"key": key, "main": f is main, "modalities": ", ".join(label(m) for m in f.modalities),
                     "formula": f.formula(), "coefs": coefs, "n": f.n, "events": f.events,
                     "cutoff": fmt(f.cutoff, 4)})
    return rows


def write_cohort_report(out_html: str | Path, *, model, metrics: dict[str, Any], predictions: pd.DataFrame,
                        outcomes: pd.DataFrame, clinical: pd.DataFrame | None = None,
                        dev_outcomes: pd.DataFrame | None = None, dev_clinical: pd.DataFrame | None = None,
                        title: str = "GIST recurrence-free survival: multimodal model report",
                        bootstrap: int | None = None, validation_seed: int | None = None,
                        extra_hashes: dict[str, str] | None = None,
                        harmonised: dict[str, Any] | None = None,
                        figures_dir: str | Path | None = None) -> Path:
    """Write the cohort report as one self-contained HTML file.

    Parameters
    ----------
    out_html : file to write (atomically)
    model : MultimodalRiskModel, the frozen model that was validated
    metrics : ``validate``'s metrics (``metrics.json["metrics"]``)
    predictions : ``validate``'s predictions (one row per patient, ``patient_id`` column or index)
    outcomes : validation outcomes indexed by (or with a column) ``patient_id``: ``time``, ``event``
    clinical : raw clinical table of the validation cohort (Table 1, modified NIH)
    dev_outcomes, dev_clinical : the development cohort's tables, for a full Table 1 column
    bootstrap, validation_seed : the validation run's settings (methods text)
    extra_hashes : name -> sha256 of inputs (e.g. the radiomics parameter file)
    harmonised : the cohort scored again with harmonised features (``validate --harmonise``): ``method``,
        ``source``, ``site``, ``metrics``, ``score_distribution`` and ``frozen_distribution``; shown beside
        the frozen results and named in the methods
    figures_dir : also save every figure there as PNG

    Returns
    -------
    Path of the written HTML file.
    """
    out_html = Path(out_html)
    pred = _by_id(predictions)
    y = _by_id(outcomes)
    _check_outcomes(y, "validation")
    _check_predictions(pred, y, model)
    clin = _by_id(clinical)
    dev_y = _by_id(dev_outcomes)
    if dev_y is not None:
        _check_outcomes(dev_y, "development")
    dev_clin = _by_id(dev_clinical)
    figs = Figures(figures_dir)
    notes: dict[str, str] = {}

    # 1 Table 1
    val_ids = pred.index.intersection(y.index)
    t1 = table_one({
        "Development": CohortInput(dev_y, dev_clin, summary=model.info_.get("cohort")),
        "Validation": CohortInput(y.loc[val_ids], clin.loc[clin.index.intersection(val_ids)] if clin is not None else None),
    })
    dev_from_bundle = dev_y is None

    # 2 hazard ratios
    hrs = {m: p.hazard_ratios() for m, p in model.pipelines_.items()}
    if any(len(h) for h in hrs.values()):
        figs.add("forest", plots.forest_plot(hrs))
    else:
        notes["forest"] = "no modality kept a feature"
    hr_rows = [{"modality": label(m), "feature": r.label, "hr": fmt(r.hr, 2), "p": fmt_p(r.p),
                "ci": f"{fmt(r.hr_low, 2)}–{fmt(r.hr_high, 2)}" if np.isfinite([r.hr_low, r.hr_high]).all() else "—"}
               for m in ordered(hrs) for r in hrs[m].itertuples()]

    # 3 C-index
    dev_metrics = dict(model.cv_metrics_)
    nih_dev = _dev_nih(model, dev_y, dev_clin)
    if nih_dev:
        dev_metrics["modified_nih"] = nih_dev
    c_rows = cindex_rows(dev_metrics, metrics)
    figs.add("cindex", plots.cindex_plot(dev_metrics, metrics, "validation (frozen model)"))

    # 4 KM, 5 td-AUC
    km_models = ["fusion"] + [m for m in ordered(metrics) if m != "fusion"]
    figs.add("km", plots.km_figure(metrics, km_models))
    auc_models = [m for m in ordered(metrics) if isinstance(metrics[m], dict) and (metrics[m].get("td_auc") or {}).get("times")]
    if auc_models:
        figs.add("tdauc", plots.td_auc_plot(metrics, auc_models))
    else:
        notes["tdauc"] = "no time point had both cases and controls in this cohort"

    # 6 calibration
    cal = (metrics.get("fusion") or {}).get("calibration") or {}
    if cal:
        figs.add("calibration", plots.calibration_plot(cal))
    cal_rows, cal_notes = calibration_rows(cal)
    absent = [f"{int(h) // 12} years" for h in (36, 60) if str(h) not in cal]
    if absent:
        notes["calibration"] = (f"calibration at {' and '.join(absent)} (validate computes it only with at least 20 "
                                "patients scored by the full model and 5 of them followed past the horizon)")

    # 7 decision curves
    nih = _nih_series(pred, clin)
    dca, dca_n = dca_tables(pred, y, nih)
    if dca:
        figs.add("dca", plots.dca_plot(dca))
        nb_rows = _dca_rows(dca)
    else:
        nb_rows = []
        notes["dca"] = "no predicted RFS at 3/5 years for at least 10 patients with outcomes"

    # 8 nomogram
    S, nomo_src = axis_scores(model, pred)
    nomo = from_fusion(model.main_fusion, S)
    figs.add("nomogram", draw(nomo))

    context = {
        "title": title, "sections": SECTIONS, "figs": figs.uris, "notes": notes,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "table1": [{**r, "first": f} for r, f in zip(t1.to_dict(orient="records"), first_rows(t1))], "table1_cohorts": list(t1.columns[2:]),
        "dev_from_bundle": dev_from_bundle, "hr_rows": hr_rows, "cindex_rows": c_rows,
        "checks": development_checks(model.cv_metrics_, model.info_),
        "cv_note": model.cv_metrics_.get("_note", ""), "metrics": metrics,
        "km_logrank_dev": model.group_curves_.get("logrank_p"),
        "dca_n": dca_n, "dca_rows": nb_rows, "dca_has_nih": nih is not None,
        "dca_caveat": dca_treatment_caveat(model.info_), "cal_rows": cal_rows, "cal_notes": cal_notes,
        "nomo_src": nomo_src, "formula": model.main_fusion.formula(), "subsets": subset_rows(model),
        "methods": methods_paragraphs(model.info_, bootstrap=bootstrap, validation_seed=validation_seed,
                                      extra_hashes=extra_hashes, cv_metrics=model.cv_metrics_),
        "deviations": deviations(model.info_, model.cv_metrics_),
        "tripod": checklist_rows(SECTIONS), "tripod_reference": TRIPOD_REFERENCE,
        "versions": package_versions(("numpy", "pandas", "scikit-survival", "lifelines", "matplotlib", "jinja2")),
        "model_versions": model.info_.get("versions", {}),
        "n_val": len(val_ids), "partial_n": int(pred["partial"].astype(str).str.lower().eq("true").sum())
        if "partial" in pred.columns else 0,
    }
    context["harmonised"] = harmonised_rows(harmonised, metrics) if harmonised else None
    if harmonised:
        context["methods"].append(
            f"Harmonisation (shown beside the frozen results, never instead of them): {harmonised['method']}. "
            f"Site {harmonised['site']!r}, {harmonised['source']}; modalities {', '.join(harmonised['modalities'])} "
            f"({', '.join(f'{k}: {v} cases' for k, v in harmonised['n_cases'].items())}). The model itself is "
            "unchanged; only this cohort's features are mapped onto the development cohort's distribution.")
    write_text(out_html, render("cohort.html.j2", context))
    return out_html


def harmonised_rows(h: dict[str, Any], frozen: dict[str, Any]) -> dict[str, Any]:
    """Side-by-side C-indices and score spread, frozen features vs harmonised features."""
    def cell(d):
        if not isinstance(d, dict) or "c_index" not in d:
            return "—"
        lo, hi = d["c_index_ci"]
        return f"{d['c_index']:.3f} ({lo:.3f}-{hi:.3f})"
    rows = [{"label": label(k), "frozen": cell(frozen.get(k)), "harmonised": cell(v)}
            for k, v in h["metrics"].items() if isinstance(v, dict) and ("c_index" in v or "not_evaluated" in v)]
    spread = []
    for m, d in h["score_distribution"].items():
        f = (h.get("frozen_distribution") or {}).get(m, {})
        spread.append({"label": label(m), "dev_sd": fmt(d.get("development_sd_out_of_fold"), 2),
                       "frozen_sd": fmt(f.get("sd"), 2), "harm_sd": fmt(d.get("sd"), 2),
                       "frozen_out": f"{f.get('outside_development_p01_p99', '—')} / {f.get('n', '—')}",
                       "harm_out": f"{d['outside_development_p01_p99']} / {d['n']}"})
    return {"site": h["site"], "source": h["source"], "method": h["method"], "rows": rows, "spread": spread}


def _dca_rows(dca: dict[str, pd.DataFrame], at=(0.1, 0.2, 0.3, 0.4, 0.5)) -> list[dict[str, Any]]:
    rows = []
    for h, df in dca.items():
        for pt in at:
            i = int(np.argmin(np.abs(df.index.to_numpy(float) - pt)))
            rows.append({"horizon": f"{float(h) / 12:g} y", "threshold": f"{100 * pt:.0f}%",
                         **{c: fmt(v, 3) for c, v in df.iloc[i].items()}})
    return rows
