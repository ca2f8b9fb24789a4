"""Scoring a frozen model on a cohort with outcomes: every model's C-index with CI, log-rank, td-AUC."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.clinical.nih import nih_categories, nih_rank
from gistrisk.errors import InputError
from gistrisk.survival.evaluation import (
    c_index_summary,
    calibration,
    integrated_brier,
    km_logrank,
    numbers_at_risk,
    td_auc,
)
from gistrisk.survival.model import ID, MultimodalRiskModel
from gistrisk.tables import id_hint

log = logging.getLogger(__name__)

AUC_TIMES = np.arange(6.0, 121.0, 6.0)
#: fewer patients than this with a model's risk and an outcome: that model is not scored
MIN_EVALUABLE = 5


def not_evaluated(name: str, reason: str, n: int = 0, events: int = 0) -> dict[str, Any]:
    """A model that could not be scored on this cohort, with the reason (shown in the report)."""
    log.warning("%s: not evaluated: %s", name, reason)
    return {"model": name, "not_evaluated": reason, "n": int(n), "events": int(events)}


def _summary(name, risk: pd.Series, groups: pd.Series, outcomes: pd.DataFrame, B: int, seed: int) -> dict[str, Any]:
    ids = risk.dropna().index.intersection(outcomes.index)
    y = outcomes.loc[ids]
    if len(ids) < MIN_EVALUABLE or y["event"].sum() < 1:
        return not_evaluated(name, f"only {len(ids)} patient(s) with {int(y['event'].sum())} event(s) have this "
                                   f"model's risk and an outcome (at least {MIN_EVALUABLE} and one event needed)",
                             n=len(ids), events=int(y["event"].sum()))
    r = risk.loc[ids].to_numpy(float)
    res = c_index_summary(y["time"], y["event"], r, n_boot=B, seed=seed)
    km = km_logrank(y["time"], y["event"], groups.loc[ids].to_numpy())
    res["logrank_p"] = km["logrank_p"]
    res["km"] = km["curves"]
    res["at_risk"] = {"times": [0, 12, 24, 36, 48, 60], **numbers_at_risk(y["time"], groups.loc[ids], np.array([0, 12, 24, 36, 48, 60]))}
    res["td_auc"] = td_auc(y["time"], y["event"], r, AUC_TIMES)
    res["model"] = name
    return res


def validate(model: MultimodalRiskModel, tables: dict[str, pd.DataFrame], outcomes: pd.DataFrame, *,
             bootstrap: int = 500, seed: int = 0) -> tuple[dict[str, Any], pd.DataFrame]:
    """Metrics per model (each modality, ``fusion``, ``early_fusion``, ``modified_nih``) and predictions."""
    pred = model.predict(tables).set_index(ID)
    unknown = sorted(set(pred.index) - set(outcomes.index))
    if not pred.index.intersection(outcomes.index).size:
        raise InputError(f"no patient of the outcomes table has a row in the feature tables ({len(pred)} feature "
                         f"row(s), {len(outcomes)} outcome(s)){id_hint(list(pred.index), list(outcomes.index))}",
                         file=outcomes.attrs.get("source"), column=ID)
    if unknown:
        log.warning("%d predicted patient(s) have no outcome and are not evaluated: %s", len(unknown),
                    ", ".join(unknown[:10]))
    no_features = sorted(set(outcomes.index) - set(pred.index))
    if no_features:
        log.warning("%d patient(s) with an outcome have no feature row in any table and are not evaluated: %s%s",
                    len(no_features), ", ".join(no_features[:10]), id_hint(unknown, no_features))
    metrics: dict[str, Any] = {}
    for m in model.modalities_:
        if m not in tables:
            metrics[m] = not_evaluated(m, "modality not given for this cohort (its patients are predicted from "
                                          "the other modalities and flagged partial)")
            continue
        s = pred[f"score_{m}"].dropna()
        g = pd.Series(np.where(s > model.pipelines_[m].cutoff_, "high", "low"), index=s.index)
        metrics[m] = _summary(m, s, g, outcomes, bootstrap, seed)
        pipe = model.pipelines_[m]
        if pipe.clusters_ is not None and "not_evaluated" not in metrics[m]:
            # the paper's grouping of slide features into clusters, frozen at fit time, tested by log-rank
            X = tables[m].set_index(ID) if ID in tables[m].columns else tables[m]
            ids = X.index.intersection(outcomes.index)
            lab = pipe.cluster(X.loc[ids])
            km = km_logrank(outcomes.loc[ids, "time"], outcomes.loc[ids, "event"], lab)
            metrics[m]["clusters"] = {"logrank_p": km["logrank_p"], "km": km["curves"]}
    full = pred[~pred["partial"] & pred["risk"].notna()]
    if full.empty:
        metrics["fusion"] = not_evaluated("fusion", "no patient of this cohort has every modality of the model; "
                                                    "see fusion_including_partial (subset fusion models)")
    else:
        metrics["fusion"] = _summary("fusion", full["risk"], full["risk_group"], outcomes, bootstrap, seed)
    partial = pred[pred["partial"] & pred["risk"].notna()]
    if len(partial):
        metrics["fusion_including_partial"] = _summary("fusion_including_partial", pred["risk"].dropna(),
                                                       pred["risk_group"], outcomes, bootstrap, seed)
    if model.early_fusion_ and set(model.modalities_) <= set(tables):
        er = model.early_fusion_risk(tables)
        cut = model.early_fusion_.get("cutoff")
        if cut is None:  # bundles written before the training cut-off was stored
            log.warning("early fusion: the bundle has no training cut-off; risk groups cut at this cohort's median")
            cut = float(er.median())
        g = pd.Series(np.where(er > cut, "high", "low"), index=er.index)
        metrics["early_fusion"] = _summary("early_fusion", er, g, outcomes, bootstrap, seed)
    if "clinical" in tables:
        clin = tables["clinical"].set_index(ID) if ID in tables["clinical"].columns else tables["clinical"]
        nih = nih_categories(clin)
        if nih is not None and len(nih):
            rank = nih.map(nih_rank).astype(float)
            metrics["modified_nih"] = _summary("modified_nih", rank, nih, outcomes, bootstrap, seed)
            pred["modified_nih"] = nih.reindex(pred.index)
    # calibration and Brier score of the fused model's predicted RFS
    ids = full.index.intersection(outcomes.index)
    if len(ids) >= 20 and "not_evaluated" not in metrics["fusion"]:
        y = outcomes.loc[ids]
        # predicted RFS from the scores already computed above (no second pass over the tables)
        scores = full.loc[ids, [f"score_{m}" for m in model.modalities_]]
        horizons = [h for h in (36.0, 60.0) if (y["time"] >= h).sum() >= 5]
        grid = np.linspace(max(1.0, y["time"].min()), y["time"].quantile(0.9), 30)
        surv = model.predict_survival_from_scores(scores, np.concatenate([horizons, grid]))
        metrics["fusion"]["calibration"] = {
            f"{int(h)}": calibration(surv.iloc[:, j].to_numpy(), y["time"], y["event"], h)
            for j, h in enumerate(horizons)}
        S = surv.iloc[:, len(horizons):].to_numpy()
        metrics["fusion"]["integrated_brier"] = integrated_brier(y["time"], y["event"], S, grid)
    return metrics, pred.reset_index()


def score_distribution(model: MultimodalRiskModel, pred: pd.DataFrame) -> dict[str, Any]:
    """Per modality, this cohort's unimodal score against the development cohort's: SD (and the development
    SD, apparent and out of fold) and how many patients fall outside the development 1st-99th percentiles
    and outside its range."""
    ranges = (model.info_.get("model_card") or {}).get("score_ranges") or {}
    out: dict[str, Any] = {}
    for m, r in ranges.items():
        col = f"score_{m}"
        if col not in pred.columns:
            continue
        v = pd.to_numeric(pred[col], errors="coerce").dropna().to_numpy(float)
        if not len(v):
            continue
        out[m] = {"n": int(len(v)), "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
                  "development_sd": r.get("sd"), "development_sd_out_of_fold": r.get("sd_out_of_fold"),
                  "outside_development_p01_p99": int(((v < r["p01"]) | (v > r["p99"])).sum()),
                  "outside_development_range": int(((v < r["min"]) | (v > r["max"])).sum()),
                  "development_p01_p99": [r["p01"], r["p99"]]}
    return out
