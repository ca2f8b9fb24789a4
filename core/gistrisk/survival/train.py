"""Fitting the multimodal model with the paper's statistics, leak-free.

1. One patient->fold assignment (stratified by event) shared by every modality.
2. Per modality and fold, the whole pipeline (scaling, selection, Cox) is fitted on the training
   folds only and scores the held-out fold: out-of-fold (OOF) scores.
3. The final per-modality pipelines are fitted on every patient who has that modality.
4. Late fusion: a Cox on the OOF scores (one per subset of modalities, for patients missing one).
   Its development C-index is estimated by a second cross-validation over the OOF scores.
5. Early fusion (comparison): a Cox on the concatenated selected features, also cross-validated.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from gistrisk.errors import InputError
from gistrisk.provenance import provenance
from gistrisk.survival.config import FitConfig
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.evaluation import c_index_summary, km_logrank
from gistrisk.survival.fusion import fit_fusion
from gistrisk.survival.model import MultimodalRiskModel, all_subsets, clinical_schema, subset_key
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.selection import event_folds
from gistrisk.tables import match_ids

log = logging.getLogger(__name__)


def _fit_one(name, cfg, seed, X, time, event):
    return ModalityPipeline(name, cfg, seed=seed).fit(X, time, event)


def assign_folds(outcomes: pd.DataFrame, n_folds: int, seed: int) -> pd.Series:
    """Fold number per patient (stratified by event), shared by all modalities."""
    fold = pd.Series(-1, index=outcomes.index)
    for k, (_, te) in enumerate(event_folds(outcomes["event"].to_numpy(), n_folds, seed)):
        fold.iloc[te] = k
    return fold


def fit_multimodal(tables: dict[str, pd.DataFrame], outcomes: pd.DataFrame, config: FitConfig,
                   progress=None) -> MultimodalRiskModel:
    """Fit pipelines, out-of-fold scores and fusion models.

    Parameters
    ----------
    tables : modality -> DataFrame indexed by patient_id (raw features)
    outcomes : DataFrame indexed by patient_id with ``time`` and ``event``
    config : FitConfig
    progress : optional callable(str) told about each finished task
    """
    if not tables:
        raise InputError("no modality given (use --modality NAME=TABLE)")
    id_report = {m: match_ids(df, outcomes, m) for m, df in tables.items()}
    folds = assign_folds(outcomes, config.fusion.oof_folds, config.seed)
    data = {}
    for m, df in tables.items():
        ids = [i for i in df.index if i in outcomes.index]
        if not ids:
            raise InputError(f"modality {m!r}: no patient has both features and an outcome",
                             file=df.attrs.get("source"))
        X = df.loc[ids]
        X.attrs["source"] = df.attrs.get("source")
        data[m] = (X, outcomes.loc[ids, "time"].to_numpy(float), outcomes.loc[ids, "event"].to_numpy(int),
                   folds.loc[ids].to_numpy())
    K = config.fusion.oof_folds
    tasks = []
    for m, (X, t, e, f) in data.items():
        for k in range(K):
            tr = f != k
            if (f == k).any() and e[tr].sum() >= 2:
                Xtr = X[tr]
                Xtr.attrs["source"] = X.attrs.get("source")
                tasks.append(((m, k), (m, config.for_modality(m), config.seed + k, Xtr, t[tr], e[tr])))
        tasks.append(((m, "final"), (m, config.for_modality(m), config.seed, X, t, e)))
    fitted = Parallel(n_jobs=config.n_jobs)(delayed(_fit_one)(*args) for _, args in tasks)
    pipes = dict(zip([key for key, _ in tasks], fitted))
    if progress:
        progress(f"fitted {len(tasks)} pipelines")

    oof = pd.DataFrame(index=outcomes.index, columns=sorted(data), dtype=float)
    for m, (X, t, e, f) in data.items():
        for k in range(K):
            if (m, k) in pipes and (f == k).any():
                Xte = X[f == k]
                oof.loc[Xte.index, m] = pipes[(m, k)].score(Xte)
    final = {m: pipes[(m, "final")] for m in data}
    mods = sorted(data)

    fusion = {}
    for sub in all_subsets(mods):
        S = oof[list(sub)].dropna()
        ev = outcomes.loc[S.index, "event"].to_numpy()
        if len(S) < 10 or ev.sum() < 2 * len(sub):
            log.warning("fusion of %s: only %d patients / %d events with all these scores; not fitted",
                        subset_key(sub), len(S), ev.sum())
            continue
        fusion[subset_key(sub)] = fit_fusion(list(sub), S.to_numpy(float), outcomes.loc[S.index, "time"].to_numpy(),
                                             ev, penalizer=config.fusion.penalizer, cutoff=config.fusion.cutoff)
    main = subset_key(mods)
    if main not in fusion:
        raise InputError(f"too few patients with all modalities {mods} to fit the late-fusion Cox")

    cv = cv_metrics(oof, outcomes, folds, mods, config, data, pipes)
    early = fit_early_fusion(final, data, outcomes, config) if config.fusion.early_fusion and len(mods) > 1 else None

    # risk groups of the training cohort (fusion applied to OOF scores) for context curves
    S = oof[mods].dropna()
    risk = fusion[main].risk(S.to_numpy(float))
    groups = np.where(risk > fusion[main].cutoff, "high", "low")
    km = km_logrank(outcomes.loc[S.index, "time"], outcomes.loc[S.index, "event"], groups)
    schema = clinical_schema(tables["clinical"], final["clinical"]) if "clinical" in final else []
    info = provenance(config.to_dict(), cohort={
        "n_outcomes": int(len(outcomes)), "events": int(outcomes["event"].sum()),
        "median_follow_up_months": float(outcomes["time"].median()),
        "per_modality": {m: {"n": int(len(d[0])), "events": int(d[2].sum()), "n_features_in": int(d[0].shape[1])}
                         for m, d in data.items()},
        "n_all_modalities": int(len(S)), "id_mismatches": id_report,
    })
    model = MultimodalRiskModel(final, fusion, early, schema, {**km["curves"], "logrank_p": km["logrank_p"]}, cv, info)
    model.oof_scores_ = oof
    return model


def cv_metrics(oof, outcomes, folds, mods, config: FitConfig, data, pipes) -> dict[str, Any]:
    """Cross-validated development C-indices: unimodal OOF scores, late fusion and early fusion."""
    out: dict[str, Any] = {}
    seed, B = config.seed, config.bootstrap
    for m in mods:
        s = oof[m].dropna()
        y = outcomes.loc[s.index]
        out[m] = c_index_summary(y["time"], y["event"], s.to_numpy(), n_boot=B, seed=seed)
    # late fusion: fusion weights from the other folds, applied to this fold's OOF scores
    S = oof[mods].dropna()
    y = outcomes.loc[S.index]
    fused = pd.Series(np.nan, index=S.index)
    f = folds.loc[S.index].to_numpy()
    for k in np.unique(f):
        tr, te = f != k, f == k
        if y["event"].to_numpy()[tr].sum() < 2:
            continue
        r = fit_cox(S.to_numpy(float)[tr], y["time"].to_numpy()[tr], y["event"].to_numpy()[tr],
                    penalizer=config.fusion.penalizer)
        fused[te] = r.linear_predictor(S.to_numpy(float)[te])
    ok = fused.notna()
    out["fusion"] = c_index_summary(y["time"][ok], y["event"][ok], fused[ok].to_numpy(), n_boot=B, seed=seed)
    if config.fusion.early_fusion and len(mods) > 1:
        early = pd.Series(np.nan, index=S.index)
        for k in np.unique(f):
            if not all((m, k) in pipes for m in mods):
                continue
            tr_ids = S.index[f != k]
            te_ids = S.index[f == k]
            Ztr = _early_matrix({m: pipes[(m, k)] for m in mods}, data, tr_ids)
            Zte = _early_matrix({m: pipes[(m, k)] for m in mods}, data, te_ids)
            r = fit_cox(Ztr, y.loc[tr_ids, "time"], y.loc[tr_ids, "event"], penalizer=max(config.fusion.penalizer, 0.01))
            early[te_ids] = r.linear_predictor(Zte)
        ok = early.notna()
        if ok.sum() > 5:
            out["early_fusion"] = c_index_summary(y["time"][ok], y["event"][ok], early[ok].to_numpy(), n_boot=B,
                                                  seed=seed)
    out["_note"] = ("unimodal: out-of-fold scores of pipelines fitted without the scored patients; fusion: "
                    "fusion Cox fitted on other folds' OOF scores; CIs: percentile bootstrap")
    return out


def _early_matrix(pipes: dict[str, ModalityPipeline], data, ids) -> np.ndarray:
    cols = []
    for m, p in pipes.items():
        X = data[m][0].loc[ids]
        cols.append(p.preprocessor_.transform(X).to_numpy(float))
    return np.hstack(cols)


def fit_early_fusion(final: dict[str, ModalityPipeline], data, outcomes, config: FitConfig) -> dict[str, Any]:
    """Early fusion: one Cox on all selected (standardised) features of all modalities (comparison only)."""
    mods = sorted(final)
    ids = sorted(set.intersection(*[set(data[m][0].index) for m in mods]))
    Z = _early_matrix({m: final[m] for m in mods}, data, ids)
    y = outcomes.loc[ids]
    r = fit_cox(Z, y["time"], y["event"], penalizer=max(config.fusion.penalizer, 0.01))
    names = [f"{m}:{c}" for m in mods for c in final[m].selected_]
    return {"features": names, "coef": r.coef.tolist(), "se": r.se.tolist(), "n": len(ids),
            "events": int(y["event"].sum()), "converged": r.converged, "penalizer": max(config.fusion.penalizer, 0.01),
            "note": "comparison only; the paper found early fusion unstable at n = 163"}
