"""Methods text generated from the settings a model was fitted and validated with, and the list of
this project's deviations from the paper's method (NPJ Precision Oncology 2024), shown only where the
model's recorded settings depart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the unimodal Cox ridge penalty as survival/cox.py defines it (fit_cox)
RIDGE_CONVENTION = ("0.5 × penalizer × Σβ² subtracted from the partial log-likelihood (a sum over events) of the "
                    "z-scored features, i.e. lifelines CoxPHFitter(penalizer=penalizer/n, l1_ratio=0) on unit-SD "
                    "columns")


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


def _criterion(la: dict[str, Any]) -> str:
    """How the LASSO penalty was chosen; bundles from before ``lasso.criterion`` used the C-index."""
    crit = str(la.get("criterion", "cindex")).lower()
    text = "partial-likelihood deviance" if crit.startswith("dev") else "C-index"
    return text + (" (largest penalty within one standard error of the best)" if la.get("one_se") else "")


def _chain(cfg: dict[str, Any]) -> str:
    steps = []
    pre = cfg.get("preprocess", {})
    if pre.get("corr_threshold") is not None:
        steps.append(f"removal of constant features and of one of each pair with |r| > {pre['corr_threshold']}")
    la = cfg.get("lasso", {})
    coxnet = cfg.get("selection") == "coxnet"
    if la.get("enabled") or coxnet:
        kind = "LASSO" if la.get("l1_ratio", 1.0) == 1.0 else f"elastic-net (l1 ratio {la['l1_ratio']})"
        steps.append(f"{kind}-Cox with the penalty chosen by {la.get('cv_folds')}-fold cross-validated "
                     f"{_criterion(la)} over {la.get('n_alphas')} values"
                     + ("; its non-zero coefficients are the model (no refit)" if coxnet
                        else f" (at most {la.get('max_features')} features kept)"))
    if coxnet:
        return "; ".join(steps)
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


def _penalty(cfg: dict[str, Any]) -> str:
    pen = float((cfg.get("cox") or {}).get("penalizer", 0.0) or 0.0)
    return f"ridge penalty {RIDGE_CONVENTION}, penalizer {pen:g}" if pen > 0 else "no penalty"


# --- deviations from the paper ------------------------------------------------------------------------

@dataclass(frozen=True)
class Deviation:
    """One way this project's method differs from the paper's.

    ``ours(parameters, info, cv_metrics)`` says what this model does, or None where its settings
    follow the paper (then nothing is rendered)."""

    key: str
    topic: str
    paper: str
    why: str
    ours: Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], str | None]


def _modality_settings(p: dict[str, Any], info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings per fitted modality (per-modality overrides, else the shared ``modality`` block)."""
    base = p.get("modality") or {}
    own = p.get("modalities") or {}
    fitted = list((info.get("cohort") or {}).get("per_modality") or {})
    names = sorted(set(fitted) | set(own)) if fitted or own else []
    out = {m: own.get(m, base) for m in names}
    if not names and base:
        out["every modality"] = base
    return out


def _by_value(values: dict[str, Any], fmt: Callable[[Any], str]) -> str:
    """"clinical, pathology: <fmt(v)>; radiomics: <fmt(w)>" grouping modalities with the same value."""
    groups: dict[str, list[str]] = {}
    for m, v in values.items():
        groups.setdefault(fmt(v), []).append(m)
    return "; ".join(f"{', '.join(ms)}: {text}" for text, ms in groups.items())


def _setting(p, info, section: str, key: str, keep: Callable[[Any, dict], bool]) -> dict[str, Any]:
    out = {}
    for m, cfg in _modality_settings(p, info).items():
        v = (cfg.get(section) or {}).get(key)
        if keep(v, cfg):
            out[m] = v
    return out


def _pca(p, info, cv) -> str | None:
    vals = _setting(p, info, "preprocess", "pca_components", lambda v, c: v is not None)
    return _by_value(vals, lambda k: f"the z-scored features are replaced by their {k} principal components "
                                     "(fitted on the training rows of each fold), and selection works on "
                                     "these") if vals else None


def _log1p(p, info, cv) -> str | None:
    vals = _setting(p, info, "preprocess", "log_skewed", lambda v, c: v is not None)
    return _by_value(vals, lambda s: f"non-negative columns with training skewness above {float(s):g} enter as "
                                     "log1p(x) (decided on the training rows of each fold)") if vals else None


def _ridge(p, info, cv) -> str | None:
    vals = _setting(p, info, "cox", "penalizer",
                    lambda v, c: v is not None and float(v) > 0 and c.get("selection") != "coxnet")
    if not vals:
        return None
    per = _by_value(vals, lambda v: f"penalizer {float(v):g}")
    return f"ridge-penalised unimodal Cox and stepwise fits ({per}); the penalty is {RIDGE_CONVENTION}"


def _lasso(p, info, cv) -> str | None:
    vals = _setting(p, info, "lasso", "criterion",
                    lambda v, c: str(v).lower().startswith("dev") and bool((c.get("lasso") or {}).get("enabled")
                                                                           or c.get("selection") == "coxnet"))
    if not vals:
        return None
    one_se = [m for m, cfg in _modality_settings(p, info).items()
              if m in vals and (cfg.get("lasso") or {}).get("one_se")]
    return (f"the penalty is chosen by the cross-validated partial-likelihood deviance of the held-out folds "
            f"(lasso.criterion: deviance; {', '.join(vals)})"
            + (f", the largest penalty within one standard error of the best for {', '.join(one_se)}"
               if one_se else ""))


def _coxnet(p, info, cv) -> str | None:
    ms = [m for m, cfg in _modality_settings(p, info).items() if cfg.get("selection") == "coxnet"]
    return (f"{', '.join(ms)}: the cross-validated LASSO-Cox is the model itself (its non-zero, shrunken "
            "coefficients; no forest, stepwise step or refit)") if ms else None


def _abmil(p, info, cv) -> str | None:
    ms = [m for m, cfg in _modality_settings(p, info).items() if cfg.get("aggregation") == "abmil"]
    return (f"{', '.join(ms)}: the tumour tiles' embeddings are pooled by gated attention (ABMIL, Ilse et al. "
            "2018) trained with a Cox loss on the training rows of each fold; its risk, scored out of inner "
            "folds, is the modality's one feature") if ms else None


def _no_signal(p, info, cv) -> str | None:
    ns = info.get("no_signal") or {}
    return ("; ".join(f"{m} left the fusion ({why})" for m, why in ns.items())
            + ": cross-validated selection kept no feature, so the modality gives no score") if ns else None


def _treatment(p, info, cv) -> str | None:
    tr = info.get("treatment") or {}
    out = list(tr.get("excluded") or [])
    if not out or tr.get("setting", p.get("treatment", "exclude")) == "include":
        return None
    return (f"treatment decided after the risk assessment is left out of the risk model: {', '.join(out)} "
            "(fit config treatment: exclude, the default)")


def _cutoff(p, info, cv) -> str | None:
    return ("risk groups split at the median of the training fused risk, fixed in advance"
            if (p.get("fusion") or {}).get("cutoff") == "median" else None)


def _cv_fusion(p, info, cv) -> str | None:
    how = str(((cv or {}).get("fusion") or {}).get("risk_groups", ""))
    return ("the development C-index and log-rank p of the late-fusion model are cross-validated: "
            + how.removeprefix("cross-validated: ")) if how.startswith("cross-validated") else None


DEVIATIONS: tuple[Deviation, ...] = (
    Deviation("pca", "Deep pathology features",
              "selection (LASSO-Cox, forest, stepwise) directly among the 2,048 slide-mean deep features",
              "2,048 strongly correlated features against a few dozen events: selection among them is unstable; "
              "a few leading components keep most of the variance, and fitting them per fold keeps it leak-free",
              _pca),
    Deviation("abmil", "Pooling of tile features", "the mean of the tumour tiles' deep features per slide",
              "when a few tiles carry the prognosis the mean dilutes them; attention learns which tiles to weigh, "
              "and training it inside each fold keeps the estimate leak-free (it needs more patients than the "
              "mean: see docs/statistics.md)", _abmil),
    Deviation("log1p", "Skewed clinical variables", "variables entered on their recorded scale (no "
              "transformation stated)", "tumour size, mitotic count, Ki-67 and blood counts are right-skewed; "
              "on the raw scale a few extreme patients dominate a linear Cox term", _log1p),
    Deviation("ridge", "Unimodal Cox penalty", "unpenalised multivariable Cox (no penalty stated)",
              "negligible for ordinary effects, but it keeps a coefficient finite when a category has no events "
              "in a training fold (monotone likelihood)", _ridge),
    Deviation("lasso_criterion", "Choice of the LASSO penalty", "LASSO-Cox with cross-validation; the criterion "
              "for choosing the penalty is not stated (the C-index is the usual choice in radiomics studies)",
              "Harrell's C is a rank statistic, flat over a range of penalties and noisy in small held-out "
              "folds; the partial-likelihood deviance (Verweij & van Houwelingen 1993, as R's cv.glmnet for Cox) "
              "uses the whole likelihood", _lasso),
    Deviation("coxnet", "Final unimodal model", "LASSO-Cox, then random survival forest, then stepwise Cox, then "
              "a Cox model refitted on the kept features", "a chain that selects and then refits on the same "
              "data overstates the kept effects; the cross-validated penalised model keeps its shrinkage "
              "(cv_metrics.selection_comparison compares the two in the same folds)", _coxnet),
    Deviation("no_signal", "Modality without signal", "every modality's score enters the late-fusion Cox",
              "forcing a feature in when cross-validation prefers the empty model fits a chance feature, and "
              "the fusion weight it gets is noise", _no_signal),
    Deviation("treatment", "Treatment variables", "adjuvant TKI and type of surgery among the 30 candidate "
              "clinical variables", "adjuvant TKI is given because the risk was judged high (confounded by "
              "indication); a model meant to guide that treatment must not use it as a predictor", _treatment),
    Deviation("cutoff", "Risk-group cut-off", "high and low risk groups; how the cut-off was chosen is not stated",
              "a cut-off fixed in advance is not tuned on the outcome, so the log-rank test between the groups "
              "is not inflated by a search over cut-points", _cutoff),
    Deviation("cv_fusion", "Development performance of the fused model", "development C-index and log-rank p of "
              "the fused model on the development cohort, not stated to be cross-validated",
              "a model scored on the patients it was fitted on (weights and cut-off included) looks better than it "
              "is; cross-validating every fitted step gives an honest development figure", _cv_fusion),
)


def deviations(info: dict[str, Any] | None, cv_metrics: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The deviations from the paper that this model's recorded settings make.

    Parameters
    ----------
    info : the model's ``info_`` (``parameters``: the fit config; ``no_signal``; ``treatment``)
    cv_metrics : the model's ``cv_metrics_`` (evidence that the fusion was cross-validated)

    Returns
    -------
    ``[{"key", "topic", "paper", "ours", "why"}]`` in the order of :data:`DEVIATIONS`.
    """
    info = info or {}
    p = info.get("parameters") or {}
    out = []
    for d in DEVIATIONS:
        ours = d.ours(p, info, cv_metrics or {})
        if ours:
            out.append({"key": d.key, "topic": d.topic, "paper": d.paper, "ours": ours, "why": d.why})
    return out


def methods_paragraphs(info: dict[str, Any], *, bootstrap: int | None = None, validation_seed: int | None = None,
                       extra_hashes: dict[str, str] | None = None,
                       cv_metrics: dict[str, Any] | None = None) -> list[str]:
    """Paragraphs describing preprocessing, selection, fusion, evaluation, deviations from the paper and software.

    Parameters
    ----------
    info : the model's ``info_`` (provenance: ``parameters``, ``versions``, ``cohort``, ``treatment``)
    bootstrap, validation_seed : settings of the validation run, when known
    extra_hashes : name -> sha256 of files used (e.g. the radiomics parameter file)
    cv_metrics : the model's ``cv_metrics_``, for the deviations
    """
    p = info.get("parameters") or {}
    fus = p.get("fusion", {})
    base = p.get("modality", {})
    paras = [
        "Each modality's features were z-scored and missing values imputed with training medians "
        "(categorical variables one-hot encoded) inside every training fold; features were then selected by "
        f"{_chain(base)}, and "
        + ("that penalised Cox model" if base.get("selection") == "coxnet" else
           f"a Cox proportional-hazards model on the selected features ({_penalty(base)})")
        + f" gave the unimodal score. The final model kept at most one feature per "
        f"{base.get('min_events_per_feature', 5)} events."
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
        "Development performance was cross-validated (the fusion weights and the risk-group cut-off re-estimated "
        "without each held-out fold, for the C-index and the log-rank test alike; each unimodal C-index is also given "
        "on the patients with every modality, the fusion's patients). Proportional hazards were checked for each "
        "unimodal Cox model and the fusion Cox with Schoenfeld residuals (lifelines' proportional_hazard_test, rank "
        "of time). "
        f"The external cohort was scored by the frozen model. Harrell's C-index is reported with a percentile 95% "
        f"confidence interval from {boot}"
        + (f" (seed {validation_seed})" if validation_seed is not None else "")
        + "; Kaplan-Meier curves by risk group were compared by the log-rank test; time-dependent (cumulative/dynamic) "
        "AUC, calibration at 3 and 5 years (predicted against Kaplan-Meier RFS in quantile groups) and "
        "decision-curve analysis (censoring-aware net benefit with the outcome at the horizon estimated by "
        "Kaplan-Meier) complete the evaluation. The modified NIH classification (Joensuu 2008) is the clinical "
        "comparator.")
    tr = info.get("treatment") or {}
    if tr.get("included"):
        paras.append(f"Treatment decided after the risk assessment was a candidate predictor "
                     f"({', '.join(tr['included'])}; fit config treatment: include); it is confounded by indication "
                     "(given because the risk was judged high).")
    devs = deviations(info, cv_metrics)
    if devs:
        paras.append("Deviations from the paper's method (table below): "
                     + "; ".join(d["topic"] for d in devs) + ".")
    seeds = f"All random steps (fold assignment, forests, bootstrap) derive from seed {p.get('seed', 'n/a')}."
    versions = info.get("versions") or {}
    soft = ", ".join(f"{k} {v}" for k, v in versions.items())
    paras.append(f"{seeds} Software: {soft}." if soft else seeds)
    rad = (info.get("extraction") or {}).get("radiomics")
    if rad:
        paras.append(f"Radiomics features were extracted with PyRadiomics {rad.get('pyradiomics')} and the parameter "
                     f"file {rad.get('params_file')} (SHA-256 {rad.get('params_sha256')}); predictions and "
                     "validations refuse feature tables extracted otherwise.")
    hashes = {**find_hashes({k: v for k, v in info.items() if k != "versions"}), **(extra_hashes or {})}
    if hashes:
        paras.append("File hashes (SHA-256): " + "; ".join(f"{k}: {v}" for k, v in hashes.items()) + ".")
    else:
        paras.append("No radiomics parameter-file hash was recorded with this model.")
    return paras
