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

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from lifelines import CoxPHFitter
from lifelines.statistics import proportional_hazard_test

from gistrisk.clinical.dictionary import ClinicalDictionary, default_dictionary
from gistrisk.errors import InputError
from gistrisk.harmonise.development import MIN_CASES_ATTR, SITE, reference_site
from gistrisk.harmonise.site import covariate_frame, fit_references
from gistrisk.provenance import provenance
from gistrisk.survival.config import FitConfig
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.evaluation import c_index_summary, km_logrank
from gistrisk.survival.fusion import fit_fusion
from gistrisk.survival.km import reverse_km_median_follow_up
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
                   progress=None, dictionary: ClinicalDictionary | None = None) -> MultimodalRiskModel:
    """Fit pipelines, out-of-fold scores and fusion models.

    Parameters
    ----------
    tables : modality -> DataFrame indexed by patient_id (raw features)
    outcomes : DataFrame indexed by patient_id with ``time`` and ``event``
    config : FitConfig
    progress : optional callable(str) told about each finished task
    dictionary : the clinical data dictionary (treatment variables, units); the packaged one by default
    """
    if not tables:
        raise InputError("no modality given (use --modality NAME=TABLE)")
    dictionary = dictionary or default_dictionary()
    tables, treatment = _treatment_columns(tables, config, dictionary)
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
    development_sites = _attach_sites(data, tables, config)
    K = config.fusion.oof_folds
    tasks: list[tuple[tuple[str, int | str], tuple[Any, ...]]] = []  # ((modality, fold or "final"), _fit_one args)
    for m, (X, t, e, f) in data.items():
        for k in range(K):
            tr = f != k
            if (f == k).any() and e[tr].sum() >= 2:
                Xtr = X[tr]
                Xtr.attrs.update(X.attrs)
                tasks.append(((m, k), (m, config.for_modality(m), config.seed + k, Xtr, t[tr], e[tr])))
        tasks.append(((m, "final"), (m, config.for_modality(m), config.seed, X, t, e)))
    fitted = Parallel(n_jobs=config.n_jobs)(delayed(_fit_one)(*args) for _, args in tasks)
    pipes = dict(zip([key for key, _ in tasks], fitted))
    if progress:
        progress(f"fitted {len(tasks)} pipelines")

    oof = pd.DataFrame(index=outcomes.index, columns=sorted(data), dtype=float)
    for m, (X, _t, _e, f) in data.items():
        for k in range(K):
            if (m, k) in pipes and (f == k).any():
                Xte = X[f == k]
                oof.loc[Xte.index, m] = pipes[(m, k)].score(Xte)
    final = {m: pipes[(m, "final")] for m in data}
    no_signal = {m: p.warnings_[-1] if p.warnings_ else "no feature selected"
                 for m, p in final.items() if getattr(p, "no_signal_", False)}
    for m, why in no_signal.items():
        log.warning("modality %r carries no signal on the development cohort and leaves the fusion: %s", m, why)
    mods = sorted(m for m in data if m not in no_signal)
    if not mods:
        raise InputError(f"no modality carries signal: cross-validated selection kept no feature in "
                         f"{', '.join(sorted(no_signal))}; no model is fitted")
    for m in no_signal:
        del final[m]

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

    cv, cv_groups = cv_metrics(oof, outcomes, folds, mods, config, data, pipes)
    cv["selection_comparison"] = selection_comparison(data, oof, config, pipes)
    early = fit_early_fusion(final, data, outcomes, config) if config.fusion.early_fusion and len(mods) > 1 else None
    S = oof[mods].dropna()  # the patients with every modality: the fusion Cox's training rows
    cv["proportional_hazards"] = {
        **{m: ph_test(final[m].preprocessor_.transform(final[m].fitted_frame(data[m][0])).to_numpy(float), data[m][1],
                      data[m][2],
                      final[m].selected_, config.for_modality(m).cox.penalizer) for m in mods},
        "fusion": ph_test(S.to_numpy(float), outcomes.loc[S.index, "time"], outcomes.loc[S.index, "event"], mods,
                          config.fusion.penalizer)}

    # risk groups of the training cohort for context curves: cross-validated (fusion weights and
    # cut-off from the other folds), so their log-rank p is an honest development figure
    km = km_logrank(outcomes.loc[cv_groups.index, "time"], outcomes.loc[cv_groups.index, "event"], cv_groups.to_numpy())
    schema = clinical_schema(tables["clinical"], final["clinical"], dictionary) if "clinical" in final else []
    info = provenance(config.to_dict(), cohort={
        "n_outcomes": int(len(outcomes)), "events": int(outcomes["event"].sum()),
        "median_follow_up_months": float(outcomes["time"].median()),
        "per_modality": {m: {"n": int(len(d[0])), "events": int(d[2].sum()), "n_features_in": int(d[0].shape[1])}
                         for m, d in data.items()},
        "n_all_modalities": int(len(S)), "id_mismatches": id_report,
    })
    info["no_signal"] = no_signal
    info["treatment"] = treatment
    info["model_card"] = model_card(final, data, outcomes, mods, oof)
    h = config.harmonisation
    info["harmonisation"] = fit_references(_reference_rows(data) | _covariate_tables(tables, data),
                                           h.modalities, h.covariates, h.min_site_cases)
    if info["harmonisation"] and development_sites:
        info["harmonisation"]["development_sites"] = development_sites
    return MultimodalRiskModel(final, fusion, early, schema, {**km["curves"], "logrank_p": km["logrank_p"],
                                                              "cross_validated": True}, cv, info, oof_scores=oof)


def _treatment_columns(tables, config: FitConfig, dictionary: ClinicalDictionary):
    """Drop treatment variables decided after the risk assessment from the clinical table unless the
    config includes them (they are confounded by indication: given because the risk was high)."""
    clin = tables.get("clinical")
    cols = [c for c in (clin.columns if clin is not None else [])
            if (v := dictionary.variable_for_column(c)) is not None and v.treatment]
    setting = getattr(config, "treatment", "exclude")
    record = {"setting": setting, "included": cols if setting == "include" else [],
              "excluded": cols if setting != "include" else []}
    if cols and setting != "include":
        log.warning("clinical: treatment variable(s) %s left out of the risk model (decided after the risk "
                    "assessment, confounded by indication); set `treatment: include` in the fit config to use them",
                    ", ".join(cols))
        kept = clin.drop(columns=cols)
        kept.attrs = dict(clin.attrs)
        tables = {**tables, "clinical": kept}
    elif cols:
        log.warning("clinical: treatment variable(s) %s are in the risk model (config `treatment: include`): "
                    "they are confounded by indication", ", ".join(cols))
    return tables, record


def _attach_sites(data, tables, config: FitConfig) -> dict[str, Any]:
    """With ``harmonisation.site_column``: each harmonised modality's table gets the patient's site in
    :data:`SITE`, so that every pipeline maps the development sites onto the largest one on its own training
    rows. Returns per modality the reference site and the number of patients per site ({} without)."""
    h = config.harmonisation
    if not h.site_column:
        return {}
    out = {}
    for m in [m for m in h.modalities if m in data]:
        X, t, e, f = data[m]
        frame = covariate_frame(tables, m, [h.site_column], X.index)
        assert frame is not None  # one name asked for
        site = frame[h.site_column]
        empty = site.isna() | (site.astype(str).str.strip() == "")
        if empty.any():
            raise InputError(f"harmonisation site column {h.site_column!r} is empty", patient=str(site.index[empty][0]),
                             column=h.site_column)
        X = X.drop(columns=[h.site_column], errors="ignore").assign(**{SITE: site.astype(str).str.strip()})
        X.attrs.update(data[m][0].attrs)
        X.attrs[MIN_CASES_ATTR] = h.min_site_cases
        data[m] = (X, t, e, f)
        counts = X[SITE].value_counts()
        out[m] = {"site_column": h.site_column, "reference_site": reference_site(X[SITE]),
                  "patients": {str(k): int(v) for k, v in sorted(counts.items())}}
        log.info("%s: development sites %s; the largest, %s, is the reference", m, dict(counts),
                 out[m]["reference_site"])
    if "clinical" in data and h.site_column in data["clinical"][0].columns:
        X, t, e, f = data["clinical"]
        kept = X.drop(columns=[h.site_column])
        kept.attrs.update(X.attrs)
        data["clinical"] = (kept, t, e, f)  # the hospital names where a patient was treated, not a risk factor
    return out


def _reference_rows(data) -> dict[str, pd.DataFrame]:
    """Each modality's development rows the harmonisation reference describes: all of them, or with
    several development sites the reference site's (without the site column)."""
    out = {}
    for m, (X, *_rest) in data.items():
        if SITE in X.columns:
            rows = X[X[SITE] == reference_site(X[SITE])].drop(columns=SITE)
            rows.attrs.update(X.attrs)
            out[m] = rows
        else:
            out[m] = X
    return out


def _covariate_tables(tables, data) -> dict[str, pd.DataFrame]:
    """The clinical table as given (harmonisation covariates may be columns the model does not use)."""
    return {"clinical": tables["clinical"]} if "clinical" in tables and "clinical" not in data else {}


def model_card(final: dict[str, ModalityPipeline], data, outcomes: pd.DataFrame, mods,
               oof: pd.DataFrame | None = None) -> dict[str, Any]:
    """What a reader of the bundle needs to judge whether a new patient resembles the training
    cohort: size, events, follow-up, the range of every input the model reads and of each unimodal
    score (the final model's scores of the development patients; SD also out of fold)."""
    t, e = outcomes["time"].to_numpy(float), outcomes["event"].to_numpy(int)
    ranges: dict[str, dict[str, Any]] = {}
    for m in mods:
        X, pre = final[m].fitted_frame(data[m][0]), final[m].preprocessor_
        r: dict[str, Any] = {}
        for c in pre.numeric_:
            v = pd.to_numeric(X[c], errors="coerce").dropna().to_numpy(float)
            if len(v):
                r[c] = {"min": float(v.min()), "max": float(v.max()), "p01": float(np.quantile(v, 0.01)),
                        "p99": float(np.quantile(v, 0.99)), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                        "n": int(len(v))}
        for c in pre.categorical_:
            r[c] = {"levels": list(pre.levels_[c])}
        ranges[m] = r
    follow_up = reverse_km_median_follow_up(t, e)
    return {"n": int(len(outcomes)), "events": int(e.sum()),
            "follow_up_months": {"median": float(np.median(t)), "min": float(t.min()), "max": float(t.max()),
                                 "median_reverse_km": follow_up if np.isfinite(follow_up) else None},
            "modalities": list(mods), "per_modality": {m: {"n": int(len(data[m][0])), "events": int(data[m][2].sum())}
                                                       for m in mods},
            "input_ranges": ranges, "score_ranges": {m: score_range(final[m].score(data[m][0], training=True),
                                                                   None if oof is None else oof[m]) for m in mods}}


def score_range(scores, oof=None) -> dict[str, Any]:
    """Percentiles, range and SD of a unimodal score on the development cohort."""
    v = np.asarray(scores, float)
    v = v[np.isfinite(v)]
    out: dict[str, Any] = {"p01": float(np.quantile(v, 0.01)), "p99": float(np.quantile(v, 0.99)), "min": float(v.min()),
           "max": float(v.max()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}
    if oof is not None:
        o = np.asarray(oof, float)
        o = o[np.isfinite(o)]
        out["sd_out_of_fold"] = float(o.std(ddof=1)) if len(o) > 1 else None
    return out


def ph_test(A: np.ndarray, time, event, names: list[str], penalizer: float) -> dict[str, Any]:
    """Proportional-hazards check of a Cox model's covariates: Schoenfeld-residual test of each
    (lifelines ``proportional_hazard_test``, rank time transform) on the model's training rows. A constant
    covariate (the score of a modality without signal) has no hazard ratio to check: it is left out and
    named under ``constant``."""
    A = np.asarray(A, float)
    varies = [j for j in range(A.shape[1]) if np.ptp(A[:, j]) > 0]
    fixed = [names[j] for j in range(A.shape[1]) if j not in varies]
    constant = {"constant": fixed} if fixed else {}
    p: dict[str, float] = {}
    if varies:
        df = pd.DataFrame(A[:, varies], columns=[f"x{j}" for j in varies])
        df["time"], df["event"] = np.asarray(time, float), np.asarray(event, int)
        try:
            cph = CoxPHFitter(penalizer=penalizer / max(len(df), 1)).fit(df, "time", "event")
            res = proportional_hazard_test(cph, df, time_transform="rank")
        except Exception as e:  # noqa: BLE001 - a failed check is reported, never fatal
            return {"method": PH_METHOD, "error": f"{type(e).__name__}: {e}", **constant}
        p = {names[int(k[1:])]: float(v) for k, v in zip(res.summary.index, res.summary["p"])}
    return {"method": PH_METHOD, "p": p, "min_p": float(min(p.values())) if p else None,
            "violated_at_0.05": sorted(k for k, v in p.items() if v < 0.05), **constant}


PH_METHOD = ("Schoenfeld residuals against rank of time, per covariate (lifelines proportional_hazard_test), "
             "on the training rows")


def cv_metrics(oof, outcomes, folds, mods, config: FitConfig, data, pipes) -> tuple[dict[str, Any], pd.Series]:
    """Cross-validated development C-indices (unimodal OOF scores, late fusion and early fusion) and the
    cross-validated late-fusion risk group ("high"/"low") of each patient with a fused out-of-fold score."""
    out: dict[str, Any] = {}
    seed, B = config.seed, config.bootstrap
    for m in sorted(data):
        s = oof[m].dropna()
        y = outcomes.loc[s.index]
        out[m] = c_index_summary(y["time"], y["event"], s.to_numpy(), n_boot=B, seed=seed)
        if m not in mods:
            out[m]["no_signal"] = "no feature selected on the whole development cohort; left out of the fusion"
    # late fusion: fusion weights and risk cut-off from the other folds, applied to this fold's OOF scores
    S = oof[mods].dropna()
    y = outcomes.loc[S.index]
    fused = pd.Series(np.nan, index=S.index)
    groups = pd.Series("", index=S.index, dtype=object)
    f = folds.loc[S.index].to_numpy()
    for k in np.unique(f):
        tr, te = f != k, f == k
        if y["event"].to_numpy()[tr].sum() < 2:
            continue
        fz = fit_fusion(mods, S.to_numpy(float)[tr], y["time"].to_numpy()[tr], y["event"].to_numpy()[tr],
                        penalizer=config.fusion.penalizer, cutoff=config.fusion.cutoff)
        fused[te] = fz.risk(S.to_numpy(float)[te])
        groups[te] = np.where(fused[te] > fz.cutoff, "high", "low")
    ok = fused.notna()
    out["fusion"] = c_index_summary(y["time"][ok], y["event"][ok], fused[ok].to_numpy(), n_boot=B, seed=seed)
    groups = groups[ok]
    km = km_logrank(y.loc[groups.index, "time"], y.loc[groups.index, "event"], groups.to_numpy())
    out["fusion"]["logrank_p"] = km["logrank_p"]
    out["fusion"]["risk_groups"] = ("cross-validated: fusion weights and the " + config.fusion.cutoff +
                                    " cut-off of each fold fitted on the other folds only")
    # the same patients for every model, so that "fusion beats each modality" compares like with like
    out["same_patients_as_fusion"] = {
        m: c_index_summary(y["time"][ok], y["event"][ok], S.loc[ok, m].to_numpy(), n_boot=B, seed=seed)
        for m in mods}
    out["same_patients_as_fusion"]["fusion"] = out["fusion"]
    if config.fusion.early_fusion and len(mods) > 1:
        early = pd.Series(np.nan, index=S.index)
        for k in np.unique(f):
            if not all((m, k) in pipes for m in mods):
                continue
            tr_ids = S.index[f != k]
            te_ids = S.index[f == k]
            Ztr = _early_matrix({m: pipes[(m, k)] for m in mods}, data, tr_ids, training=True)
            Zte = _early_matrix({m: pipes[(m, k)] for m in mods}, data, te_ids)
            r = fit_cox(Ztr, y.loc[tr_ids, "time"], y.loc[tr_ids, "event"], penalizer=max(config.fusion.penalizer, 0.01))
            early[te_ids] = r.linear_predictor(Zte)
        ok = early.notna()
        if ok.sum() > 5:
            out["early_fusion"] = c_index_summary(y["time"][ok], y["event"][ok], early[ok].to_numpy(), n_boot=B,
                                                  seed=seed)
    out["_note"] = ("unimodal: out-of-fold scores of pipelines fitted without the scored patients; fusion: "
                    "fusion Cox and risk cut-off fitted on other folds' OOF scores; same_patients_as_fusion: every "
                    "model on the patients with all modalities; CIs: percentile bootstrap")
    return out, groups


def selection_comparison(data, oof: pd.DataFrame, config: FitConfig, pipes) -> dict[str, Any]:
    """Out-of-fold C of each modality under the other selection (paper chain vs cross-validated
    Coxnet), in the same folds, beside the configured one (its out-of-fold scores ``oof``): what the
    paper's chain costs or gains."""
    out: dict[str, Any] = {}
    for m, (X, t, e, f) in data.items():
        cfg = config.for_modality(m)
        if cfg.aggregation == "abmil":  # one feature, the attention risk: both selections keep or drop it alike
            sc = oof.loc[X.index, m]
            ok = sc.notna().to_numpy()
            out[m] = {"configured": cfg.selection,
                      cfg.selection: c_index_summary(t[ok], e[ok], sc[ok].to_numpy(), n_boot=config.bootstrap,
                                                     seed=config.seed),
                      "note": "aggregation abmil: one feature (the attention risk); the other selection not refitted"}
            continue
        alt = "coxnet" if cfg.selection == "paper" else "paper"
        alt_cfg = dataclasses.replace(cfg, selection=alt)
        scores = {cfg.selection: oof.loc[X.index, m], alt: pd.Series(np.nan, index=X.index)}
        for k in range(config.fusion.oof_folds):
            tr, te = f != k, f == k
            if (m, k) not in pipes or not te.any():
                continue
            Xtr = X[tr]
            Xtr.attrs.update(X.attrs)
            scores[alt][te] = _fit_one(m, alt_cfg, config.seed + k, Xtr, t[tr], e[tr]).score(X[te])
        res = {}
        for name, sc in scores.items():
            ok = sc.notna().to_numpy()
            res[name] = c_index_summary(t[ok], e[ok], sc[ok].to_numpy(), n_boot=config.bootstrap, seed=config.seed)
        out[m] = {"configured": cfg.selection, **res}
    return out


def _early_matrix(pipes: dict[str, ModalityPipeline], data, ids, training: bool = False) -> np.ndarray:
    """Selected standardised features of ``ids``, modalities side by side; ``training``: the pipelines were
    fitted on these rows (attention-pooled risks then come from the inner folds, see ``fitted_frame``)."""
    cols = []
    for m, p in pipes.items():
        X = data[m][0].loc[ids]
        cols.append(p.preprocessor_.transform(p.fitted_frame(X) if training else p.prepare(X)).to_numpy(float))
    return np.hstack(cols)


def fit_early_fusion(final: dict[str, ModalityPipeline], data, outcomes, config: FitConfig) -> dict[str, Any]:
    """Early fusion: one Cox on all selected (standardised) features of all modalities (comparison only)."""
    mods = sorted(final)
    ids = sorted(set.intersection(*[set(data[m][0].index) for m in mods]))
    Z = _early_matrix({m: final[m] for m in mods}, data, ids, training=True)
    y = outcomes.loc[ids]
    r = fit_cox(Z, y["time"], y["event"], penalizer=max(config.fusion.penalizer, 0.01))
    names = [f"{m}:{c}" for m in mods for c in final[m].selected_]
    return {"features": names, "coef": r.coef.tolist(), "se": r.se.tolist(), "n": len(ids),
            "cutoff": float(np.median(Z @ r.coef)),
            "events": int(y["event"].sum()), "converged": r.converged, "penalizer": max(config.fusion.penalizer, 0.01),
            "note": "comparison only; the paper found early fusion unstable at n = 163"}
