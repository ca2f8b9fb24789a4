"""Methods text generated from the settings a model was fitted and validated with."""

from __future__ import annotations

from typing import Any


def find_hashes(obj: Any, path: str = "") -> dict[str, str]:
    """Every ``*sha256*`` entry in a nested provenance record, keyed by its dotted path."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{path}.{k}" if path else str(k)
            if "sha256" in str(k).lower() and isinstance(v, str):
                out[p] = v
            else:
                out.update(find_hashes(v, p))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(find_hashes(v, f"{path}[{i}]"))
    return out


def _settings(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return str(v)


def _chain(cfg: dict[str, Any]) -> str:
    steps = []
    pre = cfg.get("preprocess", {})
    if pre.get("corr_threshold") is not None:
        steps.append(f"removal of constant features and of one of each pair with |r| > {pre['corr_threshold']}")
    la = cfg.get("lasso", {})
    if la.get("enabled"):
        kind = "LASSO" if la.get("l1_ratio", 1.0) == 1.0 else f"elastic-net (l1 ratio {la['l1_ratio']})"
        steps.append(f"{kind}-Cox with the penalty chosen by {la.get('cv_folds')}-fold cross-validated C-index "
                     f"over {la.get('n_alphas')} values (at most {la.get('max_features')} features kept)")
    rsf = cfg.get("rsf", {})
    if rsf.get("enabled"):
        steps.append(f"random survival forest permutation importance ({rsf.get('n_estimators')} trees, "
                     f"{rsf.get('cv_folds')}-fold CV, top {rsf.get('top_k')} with positive importance)")
    sw = cfg.get("stepwise", {})
    if sw.get("enabled"):
        direction = {"both": "bidirectional"}.get(sw.get("direction"), sw.get("direction"))
        steps.append(f"{direction} stepwise Cox by {str(sw.get('criterion')).upper()} "
                     f"(at most {sw.get('max_features')} features)")
    return "; ".join(steps) if steps else "no selection"


def methods_paragraphs(info: dict[str, Any], *, bootstrap: int | None = None, validation_seed: int | None = None,
                       extra_hashes: dict[str, str] | None = None) -> list[str]:
    """Paragraphs describing preprocessing, selection, fusion, evaluation and software.

    Parameters
    ----------
    info : the model's ``info_`` (provenance: ``parameters``, ``versions``, ``cohort``)
    bootstrap, validation_seed : settings of the validation run, when known
    extra_hashes : name -> sha256 of files used (e.g. the radiomics parameter file)
    """
    p = info.get("parameters") or {}
    fus = p.get("fusion", {})
    base = p.get("modality", {})
    paras = [
        "Each modality's features were z-scored and missing values imputed with training medians "
        "(categorical variables one-hot encoded) inside every training fold; features were then selected by "
        f"{_chain(base)}, and a Cox proportional-hazards model on the selected features "
        f"(ridge penalty {base.get('cox', {}).get('penalizer', 0.0)}) gave the unimodal score. The final model "
        f"kept at most one feature per {base.get('min_events_per_feature', 5)} events."
    ]
    for m, cfg in (p.get("modalities") or {}).items():
        if cfg != base:
            diffs = [k for k in cfg if cfg.get(k) != base.get(k)]
            paras.append(f"For the {m} modality the settings differed in: {', '.join(diffs)} "
                         f"({'; '.join(f'{k}: {_settings(cfg[k])}' for k in diffs)}).")
    paras.append(
        f"Unimodal scores for the fusion were computed out of fold ({fus.get('oof_folds')} folds shared by all "
        "modalities, stratified by event), so that no patient's score came from a model that saw that patient. A "
        f"multivariable Cox model on the out-of-fold scores (late fusion, penalty {fus.get('penalizer', 0.0)}) "
        "gave the fused risk; one fusion model was fitted for every subset of modalities so that patients "
        f"missing a modality could still be scored (flagged as partial). Risk groups were split at the "
        f"{fus.get('cutoff', 'median')} of the training fused risk. "
        + ("An early-fusion Cox on all selected features was fitted for comparison." if fus.get("early_fusion") else ""))
    boot = f"{bootstrap} bootstrap resamples" if bootstrap else "bootstrap resamples"
    paras.append(
        "Development performance was cross-validated (the fusion weights re-estimated without each held-out fold). "
        f"The external cohort was scored by the frozen model. Harrell's C-index is reported with a percentile 95% "
        f"confidence interval from {boot}"
        + (f" (seed {validation_seed})" if validation_seed is not None else "")
        + "; Kaplan-Meier curves by risk group were compared by the log-rank test; time-dependent (cumulative/dynamic) "
        "AUC, calibration at 3 and 5 years (predicted against Kaplan-Meier RFS in quantile groups) and "
        "decision-curve analysis (censoring-aware net benefit with the outcome at the horizon estimated by "
        "Kaplan-Meier) complete the evaluation. The modified NIH classification (Joensuu 2008) is the clinical "
        "comparator.")
    seeds = f"All random steps (fold assignment, forests, bootstrap) derive from seed {p.get('seed', 'n/a')}."
    versions = info.get("versions") or {}
    soft = ", ".join(f"{k} {v}" for k, v in versions.items())
    paras.append(f"{seeds} Software: {soft}." if soft else seeds)
    hashes = {**find_hashes({k: v for k, v in info.items() if k != "versions"}), **(extra_hashes or {})}
    if hashes:
        paras.append("File hashes (SHA-256): " + "; ".join(f"{k}: {v}" for k, v in hashes.items()) + ".")
    else:
        paras.append("No radiomics parameter-file hash was recorded with this model.")
    return paras
