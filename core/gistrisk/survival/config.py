"""Fit configuration: dataclasses with validated fields, loaded from YAML (defaults follow the paper).

The dataclass defaults below (with :data:`MODALITY_DEFAULTS`) are THE defaults: ``FitConfig()`` and
``gistrisk fit`` without ``--config`` fit the same model. ``configs/fit_default.yaml`` is their
commented copy for users to start from; a test keeps it equal to them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gistrisk.errors import InputError
from gistrisk.harmonise.combat import MIN_SITE_CASES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
#: the commented copy of the defaults (kept equal to the dataclasses by a test)
DEFAULT_CONFIG = CONFIGS / "fit_default.yaml"
#: small, quick settings (fewer folds, trees, penalties and resamples) for tests and replicate studies
FAST_CONFIG = CONFIGS / "fit_fast.yaml"


@dataclass
class PreprocessConfig:
    corr_threshold: float | None = 0.95
    drop_constant: bool = True
    log_skewed: float | None = None
    pca_components: int | None = None
    #: a file (JSON with a "kept" list, as `gistrisk radiomics robustness` writes, or one name per
    #: line) or a list of feature names; only these columns are used. Read when the config loads.
    keep_features: str | list[str] | None = None


@dataclass
class LassoConfig:
    enabled: bool = True
    l1_ratio: float = 1.0
    n_alphas: int = 40
    alpha_min_ratio: float = 0.05
    cv_folds: int = 5
    max_features: int = 30
    criterion: str = "deviance"  # deviance (cross-validated partial likelihood, as cv.glmnet) | cindex
    one_se: bool = False         # largest penalty within one standard error of the best CV value


@dataclass
class RSFConfig:
    enabled: bool = True
    n_estimators: int = 100
    min_samples_leaf: int = 5
    cv_folds: int = 10
    n_repeats: int = 2
    top_k: int = 10


@dataclass
class StepwiseConfig:
    enabled: bool = True
    direction: str = "both"      # forward | backward | both
    criterion: str = "aic"       # aic | p
    p_enter: float = 0.05
    p_remove: float = 0.10
    max_features: int = 5


@dataclass
class CoxConfig:
    #: ridge penalty 0.5 * penalizer * |beta|^2 on the z-scored features (see fit_default.yaml)
    penalizer: float = 0.1


@dataclass
class ClusterConfig:
    enabled: bool = False
    n_clusters: int = 2


@dataclass
class ABMILConfig:
    """Gated attention pooling of tumour-tile embeddings (Ilse et al. 2018) trained with a Cox loss; used
    when a modality's ``aggregation`` is ``abmil`` (see fit_default.yaml)."""

    hidden: int = 64             # size of the tile embedding after the first layer, and of the attention
    dropout: float = 0.5         # after the first layer, while training
    epochs: int = 200            # full-batch steps over the training patients
    lr: float = 0.001            # AdamW learning rate
    weight_decay: float = 0.1    # AdamW weight decay
    max_tiles: int = 512         # tumour tiles per patient used in training (a seeded sample when more)
    inner_folds: int = 5         # the unimodal Cox is fitted on attention risks out of these inner folds


@dataclass
class ModalityConfig:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    lasso: LassoConfig = field(default_factory=LassoConfig)
    rsf: RSFConfig = field(default_factory=RSFConfig)
    stepwise: StepwiseConfig = field(default_factory=StepwiseConfig)
    cox: CoxConfig = field(default_factory=CoxConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    min_events_per_feature: int = 5
    #: paper: LASSO-Cox -> RSF -> stepwise -> refitted Cox; coxnet: the cross-validated Coxnet is the model
    selection: str = "paper"
    #: mean: the table's features (the paper's mean of tumour tiles for pathology); abmil: attention pooling of
    #: the tumour-tile embeddings stored beside a pathology table, trained inside each training fold
    aggregation: str = "mean"
    abmil: ABMILConfig = field(default_factory=ABMILConfig)


#: where a modality's defaults depart from ``FitConfig.modality`` (applied on top of it)
MODALITY_DEFAULTS: dict[str, dict[str, Any]] = {
    "clinical": {"preprocess": {"log_skewed": 1.0}},
    "pathology": {"preprocess": {"pca_components": 32}, "cluster": {"enabled": True}},
}


@dataclass
class FusionConfig:
    oof_folds: int = 5
    early_fusion: bool = True
    cutoff: str = "median"       # median | maxstat
    penalizer: float = 0.0


@dataclass
class HarmonisationConfig:
    """What the bundle keeps so that another site's features can be mapped onto the development cohort's
    (reference-site ComBat, ``gistrisk harmonise``)."""

    #: modalities whose development features are stored as the harmonisation reference
    modalities: list[str] = field(default_factory=lambda: ["radiomics"])
    #: columns (of the modality's table or the clinical table) whose effect on the features is kept
    covariates: list[str] = field(default_factory=list)
    #: a site's parameters are estimated from at least this many of its cases
    min_site_cases: int = MIN_SITE_CASES
    #: a column (of the modality's or the clinical table) naming each development patient's hospital or
    #: scanner: the sites are mapped onto the largest inside every cross-validation fold before fitting
    site_column: str | None = None


@dataclass
class FitConfig:
    seed: int = 0
    n_jobs: int = 1
    bootstrap: int = 500
    modality: ModalityConfig = field(default_factory=ModalityConfig)
    #: per-modality configs; None: :data:`MODALITY_DEFAULTS` applied on top of ``modality``
    modalities: dict[str, ModalityConfig] | None = None
    fusion: FusionConfig = field(default_factory=FusionConfig)
    horizons: list[float] = field(default_factory=lambda: [12.0, 36.0, 60.0])
    #: treatment variables of the clinical dictionary (adjuvant TKI): exclude | include
    treatment: str = "exclude"
    harmonisation: HarmonisationConfig = field(default_factory=HarmonisationConfig)

    def __post_init__(self) -> None:
        if self.modalities is None:
            self.modalities = per_modality(self.modality, MODALITY_DEFAULTS)

    def for_modality(self, name: str) -> ModalityConfig:
        return (self.modalities or {}).get(name, self.modality)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls, data: Any, where: str):
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise InputError(f"config section {where!r} must be a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"unknown key(s) {unknown} in config section {where!r}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        sub = _SECTIONS.get((cls, name))
        kwargs[name] = _build(sub, value, f"{where}.{name}") if sub else value
    return cls(**kwargs)


_SECTIONS = {
    (ModalityConfig, "preprocess"): PreprocessConfig, (ModalityConfig, "lasso"): LassoConfig,
    (ModalityConfig, "rsf"): RSFConfig, (ModalityConfig, "stepwise"): StepwiseConfig,
    (ModalityConfig, "cox"): CoxConfig, (ModalityConfig, "cluster"): ClusterConfig,
    (ModalityConfig, "abmil"): ABMILConfig,
    (FitConfig, "modality"): ModalityConfig, (FitConfig, "fusion"): FusionConfig,
    (FitConfig, "harmonisation"): HarmonisationConfig,
}


def merge_settings(base: dict, over: dict) -> dict:
    """``base`` updated by ``over``, nested mappings merged key by key (a copy)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge_settings(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def fast_overrides() -> dict[str, Any]:
    """The settings of :data:`FAST_CONFIG`, as ``overrides`` for :func:`load_config` (a fresh copy)."""
    return yaml.safe_load(FAST_CONFIG.read_text(encoding="utf-8"))


def per_modality(base: ModalityConfig, changes: dict[str, Any]) -> dict[str, ModalityConfig]:
    """One config per modality: ``base`` updated by that modality's changes (None: none)."""
    return {m: _build(ModalityConfig, merge_settings(dataclasses.asdict(base), c or {}), f"modalities.{m}")
            for m, c in changes.items()}


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> FitConfig:
    """The defaults (the dataclasses), updated by the user's YAML and ``overrides``; validated."""
    data: dict[str, Any] = {"modalities": copy.deepcopy(MODALITY_DEFAULTS)}
    if path is not None:
        try:
            user = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise InputError(f"cannot read config: {e}", file=str(path)) from e
        data = merge_settings(data, user)
    if overrides:
        data = merge_settings(data, overrides)
    per_mod = data.pop("modalities", {}) or {}
    cfg = _build(FitConfig, data, "fit")
    cfg.modalities = mods = per_modality(cfg.modality, per_mod)
    where = Path(path).resolve().parent if path is not None else Path.cwd()
    for m in [cfg.modality, *mods.values()]:
        if isinstance(m.preprocess.keep_features, str):
            m.preprocess.keep_features = read_feature_list(where / m.preprocess.keep_features)
    _validate(cfg)
    return cfg


def read_feature_list(path: str | Path) -> list[str]:
    """Feature names from a JSON file with a ``kept`` list (``gistrisk radiomics robustness``) or a
    text file with one name per line (``#`` comments allowed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read the feature list: {e}", file=str(path)) from e
    if path.suffix.lower() == ".json":
        try:
            names = json.loads(text)["kept"]
        except (ValueError, KeyError, TypeError) as e:
            raise InputError("feature list JSON must hold a \"kept\" list of names", file=str(path)) from e
    else:
        names = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    names = [str(n) for n in names if str(n).strip()]
    if not names:
        raise InputError("the feature list is empty", file=str(path))
    return names


#: fewer bootstrap resamples cannot give a percentile 95% interval worth reporting
MIN_BOOTSTRAP = 20

#: (section attribute, field) -> (kind, low, high, low inclusive); None bounds are open
_RANGES = {
    ("lasso", "n_alphas"): ("int", 2, None), ("lasso", "alpha_min_ratio"): ("float", 0.0, 1.0),
    ("lasso", "max_features"): ("int", 1, None), ("lasso", "cv_folds"): ("int", 2, None),
    ("rsf", "n_estimators"): ("int", 1, None), ("rsf", "min_samples_leaf"): ("int", 1, None),
    ("rsf", "cv_folds"): ("int", 2, None), ("rsf", "n_repeats"): ("int", 1, None), ("rsf", "top_k"): ("int", 1, None),
    ("stepwise", "p_enter"): ("float", 0.0, 1.0), ("stepwise", "p_remove"): ("float", 0.0, 1.0),
    ("stepwise", "max_features"): ("int", 1, None), ("cox", "penalizer"): ("float", 0.0, None),
    ("cluster", "n_clusters"): ("int", 2, None),
    ("abmil", "hidden"): ("int", 1, None), ("abmil", "dropout"): ("float", 0.0, 0.95),
    ("abmil", "epochs"): ("int", 1, None), ("abmil", "lr"): ("float", 1e-8, 10.0),
    ("abmil", "weight_decay"): ("float", 0.0, None), ("abmil", "max_tiles"): ("int", 1, None),
    ("abmil", "inner_folds"): ("int", 2, None),
}


def _number(value: Any, kind: str, lo, hi, where: str) -> None:
    ok_type = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or (kind == "float" and not math.isfinite(value)):
        raise InputError(f"config {where} must be {'an integer' if kind == 'int' else 'a finite number'}, "
                         f"got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        rng = f"at least {lo}" if hi is None else f"between {lo} and {hi}"
        raise InputError(f"config {where} must be {rng}, got {value!r}")


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise InputError(f"config {where} must be {' or '.join(allowed)}, got {value!r}")


def _validate(cfg: FitConfig) -> None:
    for name, m in [("modality", cfg.modality), *(cfg.modalities or {}).items()]:
        if m.stepwise.direction not in ("forward", "backward", "both"):
            raise InputError(f"{name}.stepwise.direction must be forward, backward or both")
        if m.stepwise.criterion not in ("aic", "p"):
            raise InputError(f"{name}.stepwise.criterion must be aic or p")
        if not isinstance(m.lasso.l1_ratio, (int, float)) or not 0 < m.lasso.l1_ratio <= 1:
            raise InputError(f"{name}.lasso.l1_ratio must be in (0, 1]")
        key = name if name == "modality" else f"modalities.{name}"  # the path in the YAML file
        _choice(m.lasso.criterion, ("deviance", "cindex"), f"{key}.lasso.criterion")
        if not isinstance(m.lasso.one_se, bool):
            raise InputError(f"config {key}.lasso.one_se must be true or false, got {m.lasso.one_se!r}")
        _choice(m.selection, ("paper", "coxnet"), f"{key}.selection")
        _choice(m.aggregation, ("mean", "abmil"), f"{key}.aggregation")
        if m.aggregation == "abmil" and name == "modality":
            raise InputError("config modality.aggregation: abmil would apply to every modality; set it for the "
                             "pathology modality only, under modalities.pathology.aggregation")
        if m.aggregation == "abmil" and name in cfg.harmonisation.modalities:
            raise InputError(f"config {key}.aggregation: abmil reads tile embeddings, which the harmonisation of "
                             f"feature tables does not map; remove {name!r} from harmonisation.modalities")
        if m.selection == "coxnet" and m.lasso.enabled is False:
            raise InputError(f"config {key}.selection: coxnet is the cross-validated LASSO-Cox itself; "
                             f"it needs {key}.lasso.enabled: true")
        pre = m.preprocess
        if pre.corr_threshold is not None and (not isinstance(pre.corr_threshold, (int, float))
                                               or not 0 < pre.corr_threshold <= 1):
            raise InputError(f"{name}.preprocess.corr_threshold must be in (0, 1]")
        if pre.log_skewed is not None:
            _number(pre.log_skewed, "float", None, None, f"{name}.preprocess.log_skewed")
        if pre.pca_components is not None:
            _number(pre.pca_components, "int", 1, None, f"{name}.preprocess.pca_components")
        _number(m.min_events_per_feature, "int", 1, None, f"{name}.min_events_per_feature")
        for (section, fld), (kind, lo, hi) in _RANGES.items():
            _number(getattr(getattr(m, section), fld), kind, lo, hi, f"{key}.{section}.{fld}")
        for section in ("lasso", "rsf", "stepwise", "cluster"):
            if not isinstance(getattr(m, section).enabled, bool):
                raise InputError(f"config {name}.{section}.enabled must be true or false")
    if cfg.treatment not in ("exclude", "include"):
        raise InputError(f"config treatment must be exclude or include, got {cfg.treatment!r}")
    if cfg.fusion.cutoff not in ("median", "maxstat"):
        raise InputError("fusion.cutoff must be median or maxstat")
    _number(cfg.fusion.oof_folds, "int", 2, None, "fusion.oof_folds")
    _number(cfg.fusion.penalizer, "float", 0.0, None, "fusion.penalizer")
    _number(cfg.bootstrap, "int", MIN_BOOTSTRAP, None, "bootstrap")
    _number(cfg.seed, "int", 0, None, "seed")
    _number(cfg.n_jobs, "int", -1, None, "n_jobs")
    if cfg.n_jobs == 0:
        raise InputError("config n_jobs must be a positive number of processes (or -1 for all cores), got 0")
    if not isinstance(cfg.horizons, list) or not cfg.horizons:
        raise InputError(f"config horizons must be a list of months, got {cfg.horizons!r}")
    for h in cfg.horizons:
        _number(h, "float", 0.0, None, "horizons")
    for key in ("modalities", "covariates"):
        names = getattr(cfg.harmonisation, key)
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise InputError(f"config harmonisation.{key} must be a list of names, got {names!r}")
    _number(cfg.harmonisation.min_site_cases, "int", 3, None, "harmonisation.min_site_cases")
    site_column = cfg.harmonisation.site_column
    if site_column is not None and (not isinstance(site_column, str) or not site_column.strip()):
        raise InputError(f"config harmonisation.site_column must be a column name or null, got {site_column!r}")
