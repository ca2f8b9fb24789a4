"""One modality: preprocessing -> selection chain -> unimodal Cox -> score (radscore, patscore, ...)."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from gistrisk.errors import BundleError, GistRiskError, InputError
from gistrisk.harmonise.development import SITE, SiteHarmoniser
from gistrisk.survival.config import ModalityConfig, PreprocessConfig
from gistrisk.survival.cox import CoxResult, cox_with_coef, fit_cox
from gistrisk.survival.evaluation import harrell_c
from gistrisk.survival.preprocess import Preprocessor
from gistrisk.survival.selection import LassoCoxSelector, RSFSelector, StepwiseCoxSelector, event_folds

log = logging.getLogger(__name__)


class ModalityPipeline(BaseEstimator):
    """Selection and a Cox model for one modality, as an sklearn-style survival estimator.

    ``config.selection`` is ``"paper"`` (LASSO-Cox -> RSF -> stepwise Cox -> Cox refitted on the
    selected features) or ``"coxnet"`` (the cross-validated Coxnet is the model: its non-zero
    coefficients, no refit). When cross-validation prefers the empty LASSO model the modality carries
    no signal: no feature, a score of 0 for everyone.

    Parameters
    ----------
    name : str                      modality name (e.g. ``"radiomics"``)
    config : ModalityConfig
    seed : int

    Attributes
    ----------
    preprocessor_ : Preprocessor     restricted to the selected features (no input column when no signal)
    selected_ : list of str          final features ([] when no signal)
    steps_ : dict                    per step: features kept and details
    cox_ : CoxResult                 Cox on the selected (standardised) features; with coxnet the Coxnet
                                     coefficients (``se`` NaN); empty (null model) when no signal
    no_signal_ : bool                cross-validation preferred the empty model; ``score`` is 0
    selection_ : str                 ``"paper"`` or ``"coxnet"``
    clusters_ : dict or None         frozen cluster centres when clustering is on
    sites_ : SiteHarmoniser or None  development sites mapped onto the largest, fitted on these training rows
                                     (when the table carries the ``SITE`` column)
    aggregation_ : str               ``"mean"`` (the table's features) or ``"abmil"``
    pooling_ : AttentionCox or None  with ``abmil``: attention pooling of the tumour-tile embeddings trained on
                                     these rows (:mod:`gistrisk.pathology.abmil`); ``prepare`` turns a slide
                                     table into its one feature ``abmil_risk``. The Cox is fitted on risks out
                                     of ``abmil.inner_folds`` inner folds (a model's risk of its own training
                                     rows is overfit); scoring uses this model, trained on every row
    inner_ : DataFrame or None       with ``abmil``: those inner-fold risks of the training rows, (n, 1), used
                                     where the training rows are scored again (:meth:`fitted_frame`); not saved
    warnings_ : list of str
    """

    def __init__(self, name: str = "modality", config: ModalityConfig | None = None, seed: int = 0):
        self.name = name
        self.config = config
        self.seed = seed

    def fit(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray) -> ModalityPipeline:
        cfg = self.config or ModalityConfig()
        time, event = np.asarray(time, float), np.asarray(event, int)
        n_events = int(event.sum())
        self.warnings_: list[str] = []
        if n_events < 2:
            raise InputError(f"modality {self.name!r}: only {n_events} event(s) among {len(event)} patients; "
                             "a Cox model needs at least 2", file=X.attrs.get("source"))
        self.aggregation_ = cfg.aggregation
        self.pooling_ = None
        self.inner_: pd.DataFrame | None = None
        pooling_steps = None
        if cfg.aggregation == "abmil":
            self.sites_ = None
            X, pooling_steps = self._fit_pooling(X, time, event, cfg)
            self.inner_ = X
            # one feature: no correlation filter, log or principal components
            cfg = replace(cfg, preprocess=PreprocessConfig(corr_threshold=None))
        else:
            self.sites_ = SiteHarmoniser().fit(X) if SITE in X.columns else None
            X = self.prepare(X)
        max_final = max(1, n_events // max(cfg.min_events_per_feature, 1))
        if cfg.selection == "paper" and max_final < cfg.stepwise.max_features:
            msg = (f"modality {self.name!r}: {n_events} events allow at most {max_final} feature(s) "
                   f"(min_events_per_feature={cfg.min_events_per_feature}); final model shrunk from "
                   f"{cfg.stepwise.max_features}")
            log.warning(msg)
            self.warnings_.append(msg)
        keep = cfg.preprocess.keep_features
        assert not isinstance(keep, str), "load_config reads the keep_features file into a list"
        pre = Preprocessor(corr_threshold=cfg.preprocess.corr_threshold, drop_constant=cfg.preprocess.drop_constant,
                           log_skewed=cfg.preprocess.log_skewed, pca_components=cfg.preprocess.pca_components,
                           keep=keep)
        Z = pre.fit(X).transform(X)
        self.steps_: dict[str, Any] = {"preprocess": {"n_in": X.shape[1], "n_out": Z.shape[1],
                                                      "dropped_constant": len(pre.dropped_["constant"]),
                                                      "dropped_correlated": len(pre.dropped_["correlated"])}}
        if pooling_steps is not None:
            self.steps_["abmil"] = pooling_steps
        if pre.components_ is not None:
            assert pre.explained_variance_ratio_ is not None  # fitted with components_
            self.steps_["preprocess"]["pca"] = {
                "n_components": len(pre.component_names_),
                "explained_variance": float(pre.explained_variance_ratio_.sum())}
        self.no_signal_ = False
        self.selection_ = cfg.selection
        self.clusters_ = None
        self.n_train_, self.events_train_ = len(time), n_events
        if cfg.selection == "coxnet":
            sel = LassoCoxSelector(replace(cfg.lasso, max_features=Z.shape[1]), seed=self.seed).fit(Z, time, event)
            self.steps_["coxnet"] = {**sel.details_, "selected": sel.selected_}
            if sel.empty_:
                return self._no_signal(pre, time, event, "coxnet")
            self.selected_ = list(sel.selected_)
            self.preprocessor_ = pre.restrict(self.selected_)
            A = Z[self.selected_].to_numpy(float)
            coef = sel.coef_[[Z.columns.get_loc(c) for c in self.selected_]]
            self.cox_: CoxResult = cox_with_coef(A, time, event, coef)  # the Coxnet's own coefficients, no refit
        else:
            cols = list(Z.columns)
            # with attention pooling the one feature still passes the cross-validated LASSO gate (no signal?)
            if cfg.lasso.enabled and (len(cols) > 1 or self.pooling_ is not None):
                sel = LassoCoxSelector(cfg.lasso, seed=self.seed).fit(Z[cols], time, event)
                self.steps_["lasso"] = {**sel.details_, "selected": sel.selected_}
                if sel.empty_:
                    return self._no_signal(pre, time, event, "LASSO-Cox")
                cols = sel.selected_
            if cfg.rsf.enabled and len(cols) > 1:
                rsf = RSFSelector(cfg.rsf, seed=self.seed).fit(Z[cols], time, event)
                cols = rsf.selected_
                self.steps_["rsf"] = {**rsf.details_, "selected": cols}
            if cfg.stepwise.enabled and len(cols) > 1:
                stepwise = StepwiseCoxSelector(cfg.stepwise, penalizer=cfg.cox.penalizer, max_features=max_final).fit(
                    Z[cols], time, event)
                cols = stepwise.selected_
                self.steps_["stepwise"] = {**stepwise.details_, "selected": cols}
            if len(cols) > max_final:
                # keep the strongest by univariate Wald z when no step brought the count down far enough
                z = [abs(r.coef[0] / r.se[0]) for r in (fit_cox(Z[[c]].to_numpy(), time, event) for c in cols)]
                cols = [cols[i] for i in sorted(np.argsort(z)[::-1][:max_final])]
            self.selected_ = list(cols)
            self.preprocessor_ = pre.restrict(self.selected_)
            A = Z[self.selected_].to_numpy(float)
            self.cox_ = fit_cox(A, time, event, penalizer=cfg.cox.penalizer)
            if not self.cox_.converged:
                self.warnings_.append(f"modality {self.name!r}: Cox did not converge")
        if self.pooling_ is not None and self.cox_.coef[0] <= 0:
            # non-negative stacking (Breiman 1996): the attention model was trained so that its risk rises with
            # the hazard; a negative weight on its inner-fold risks fits the anti-correlation that held-out
            # predictions of a model fitted to noise show, not a signal
            return self._no_signal(pre, time, event, "attention pooling (its risk out of the inner folds "
                                   "does not rise with the hazard)")
        self.cutoff_ = float(np.median(self.cox_.linear_predictor(A)))
        self.clusters_ = self._fit_clusters(A, cfg) if cfg.cluster.enabled else None
        return self

    def _fit_pooling(self, X: pd.DataFrame, time: np.ndarray, event: np.ndarray,
                     cfg: ModalityConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Attention pooling trained on these rows (``pooling_``) and the frame the Cox is fitted on: each
        row's ``abmil_risk`` from a model trained in inner folds without that row, shape (n, 1)."""
        abmil = _abmil_module(InputError)
        acfg = cfg.abmil
        rule = abmil.tumour_rule(X)
        ids = [str(i) for i in X.index]
        files = abmil.bag_files(X)
        bags = [abmil.read_bag(f, rule, patient=pid, max_tiles=acfg.max_tiles, seed=self.seed)
                for pid, f in zip(ids, files)]
        dims = sorted({b.shape[1] for b in bags})
        if len(dims) > 1:
            raise InputError(f"modality {self.name!r}: tile embeddings of sizes {dims} in one table (several "
                             "encoders?)", file=X.attrs.get("source"))
        inner = np.full(len(X), np.nan)
        folds = event_folds(event, acfg.inner_folds, self.seed)
        for k, (tr, te) in enumerate(folds):
            model = abmil.AttentionCox.fit([bags[i] for i in tr], time[tr], event[tr], acfg, seed=self.seed + 1 + k,
                                           rule=rule)
            inner[te] = model.risk([abmil.read_bag(files[i], rule, patient=ids[i]) for i in te])
        self.pooling_ = pooling = abmil.AttentionCox.fit(bags, time, event, acfg, seed=self.seed, rule=rule)
        steps = {"inner_folds": len(folds), "inner_oof_c_index": float(harrell_c(time, event, inner)),
                 "tumour_rule": asdict(rule), "config": asdict(acfg), **pooling.details}
        frame = pd.DataFrame({abmil.FEATURE: inner}, index=X.index)
        frame.attrs.update(X.attrs)
        return frame, steps

    def _no_signal(self, pre: Preprocessor, time: np.ndarray, event: np.ndarray, by: str) -> ModalityPipeline:
        """No feature: the null Cox (Nelson-Aalen baseline), a score of 0 and a warning (logged)."""
        msg = (f"modality {self.name!r}: cross-validated {by} prefers the empty model; no feature carries "
               "signal, the modality's score is 0 for every patient")
        log.warning(msg)
        self.warnings_.append(msg)
        self.no_signal_ = True
        self.selected_ = []
        # a copy without principal axes: a modality without signal needs no input column
        self.preprocessor_ = Preprocessor.from_dict({**pre.to_dict(), "pca": None}).restrict([])
        self.cox_ = fit_cox(np.zeros((len(time), 0)), time, event)
        self.cutoff_ = 0.0
        self.clusters_ = None
        self.pooling_ = self.inner_ = None  # a score of 0 needs no embeddings
        return self

    def _fit_clusters(self, A: np.ndarray, cfg: ModalityConfig) -> dict[str, Any]:
        from sklearn.cluster import KMeans  # noqa: PLC0415 - only for cluster pooling (0.6 s to import)

        km = KMeans(n_clusters=cfg.cluster.n_clusters, n_init=10, random_state=self.seed).fit(A)
        return {"centers": km.cluster_centers_.tolist()}

    def prepare(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` as the preprocessing sees it: development sites mapped onto the reference site (rows of a
        table without the ``SITE`` column are taken as on the reference already); with attention pooling the
        one-column frame ``abmil_risk`` (n, 1) of the patients' tumour-tile embeddings."""
        pooling = getattr(self, "pooling_", None)
        if pooling is not None:
            return pooling.frame(X.drop(columns=SITE) if SITE in X.columns else X)
        sites = getattr(self, "sites_", None)
        if sites is not None:
            return sites.transform(X)
        return X.drop(columns=SITE) if SITE in X.columns else X

    def fitted_frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` as the Cox saw it in ``fit``: with attention pooling, rows the model was trained on get their
        risk from the inner folds (its risk of its own training rows is overfit); otherwise :meth:`prepare`."""
        inner = getattr(self, "inner_", None)
        if inner is not None and X.index.isin(inner.index).all():
            return inner.loc[X.index]
        return self.prepare(X)

    def score(self, X: pd.DataFrame, time=None, event=None, training: bool = False):
        """Without outcomes: the modality score (Cox linear predictor), shape (n,).
        With ``time`` and ``event``: Harrell's C of that score (sklearn's ``score`` convention).
        ``training``: ``X`` holds rows the pipeline was fitted on (scored from :meth:`fitted_frame`)."""
        if getattr(self, "no_signal_", False):
            lp = np.zeros(len(X))
        else:
            frame = self.fitted_frame(X) if training else self.prepare(X)
            lp = self.cox_.linear_predictor(self.preprocessor_.transform(frame).to_numpy(float))
        if time is None:
            return lp
        return harrell_c(time, event, lp)

    predict = score

    def cluster(self, X: pd.DataFrame) -> np.ndarray:
        """Nearest frozen cluster centre per row, shape (n,)."""
        if self.clusters_ is None:
            raise ValueError(f"modality {self.name!r} has no clusters (clustering off or no signal)")
        A = self.preprocessor_.transform(self.prepare(X)).to_numpy(float)
        C = np.asarray(self.clusters_["centers"], float)
        return np.argmin(((A[:, None, :] - C[None]) ** 2).sum(-1), axis=1)

    def to_dict(self) -> dict[str, Any]:
        r = self.cox_
        return {
            "name": self.name, "selected": self.selected_, "steps": _jsonable(self.steps_),
            "preprocessor": self.preprocessor_.to_dict(),
            "cox": {"coef": r.coef.tolist(), "se": r.se.tolist(), "mean": r.mean.tolist(), "loglik": r.loglik,
                    "baseline_time": r.baseline_time.tolist(), "baseline_cumhaz": r.baseline_cumhaz.tolist(),
                    "converged": r.converged, "n_iter": r.n_iter},
            "cutoff": self.cutoff_, "clusters": self.clusters_, "n_train": self.n_train_, "events_train": self.events_train_,
            "warnings": self.warnings_, "no_signal": bool(getattr(self, "no_signal_", False)),
            "selection": getattr(self, "selection_", "paper"),
            "sites": sites.to_dict() if (sites := getattr(self, "sites_", None)) is not None else None,
            "aggregation": getattr(self, "aggregation_", "mean"),
            "abmil": pooling.record(self.weights_file()) if (pooling := getattr(self, "pooling_", None)) else None,
        }

    def weights_file(self) -> str:
        """Name of the attention weights file the bundle keeps beside model.json."""
        return f"abmil_{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}.safetensors"

    def weights_bytes(self) -> bytes | None:
        """The attention weights as safetensors bytes (None without attention pooling)."""
        pooling = getattr(self, "pooling_", None)
        return pooling.to_bytes() if pooling is not None else None

    def weights_finite(self) -> bool:
        """Whether every attention weight is a finite number (True without attention pooling)."""
        pooling = getattr(self, "pooling_", None)
        return pooling is None or all(np.isfinite(v).all() for v in pooling.state.values())

    def input_columns(self) -> list[str]:
        """The table columns the model reads: none with attention pooling (it reads the embeddings)."""
        if getattr(self, "pooling_", None) is not None:
            return []
        return self.preprocessor_.numeric_ + self.preprocessor_.categorical_

    @classmethod
    def from_dict(cls, d: dict[str, Any], directory: str | Path | None = None) -> ModalityPipeline:
        """The pipeline of a bundle dictionary; ``directory`` (the bundle folder) holds its attention weights."""
        p = cls(name=d["name"])
        p.selected_, p.steps_ = d["selected"], d["steps"]
        p.preprocessor_ = Preprocessor.from_dict(d["preprocessor"])
        c = d["cox"]
        p.cox_ = CoxResult(np.asarray(c["coef"], float), np.asarray(c["se"], float), np.asarray(c["mean"], float),
                           c["loglik"], np.asarray(c["baseline_time"], float), np.asarray(c["baseline_cumhaz"], float),
                           c["converged"], c["n_iter"])
        p.clusters_, p.n_train_, p.events_train_ = d["clusters"], d["n_train"], d["events_train"]
        p.cutoff_ = float(d["cutoff"])
        p.warnings_ = d.get("warnings", [])
        p.no_signal_ = bool(d.get("no_signal", False))
        p.selection_ = d.get("selection", "paper")
        p.sites_ = SiteHarmoniser.from_dict(d["sites"]) if d.get("sites") else None
        p.aggregation_ = d.get("aggregation", "mean")
        p.pooling_, p.inner_ = None, None
        if d.get("abmil"):
            if directory is None:
                raise BundleError(f"modality {p.name!r} pools tile embeddings by attention: load the bundle folder "
                                  "(its weights file lies beside model.json)")
            p.pooling_ = _abmil_module(BundleError).AttentionCox.load(Path(directory), d["abmil"])
        return p

    def feature_labels(self) -> list[str]:
        """Readable names of the selected features: principal components say what they summarise."""
        pre = self.preprocessor_
        if pre.components_ is None:
            return list(self.selected_)
        assert pre.explained_variance_ratio_ is not None  # fitted or loaded with components_
        n_in = len(pre.features_out_)
        return [f"PC {int(name[2:])} of {n_in} features ({100 * v:.1f} % of variance)"
                for name, v in zip(pre.component_names_, pre.explained_variance_ratio_)]

    def hazard_ratios(self) -> pd.DataFrame:
        """Per selected feature (per 1 SD): HR with 95% CI and Wald p; ``label`` is a readable name.

        Empty when the modality has no signal; CI and p are NaN for ``selection: coxnet`` (penalised
        coefficients have no Wald standard error)."""
        r = self.cox_
        return pd.DataFrame({"feature": self.selected_, "label": self.feature_labels(), "coef": r.coef,
                             "hr": np.exp(r.coef),
                             "hr_low": np.exp(r.coef - 1.96 * r.se), "hr_high": np.exp(r.coef + 1.96 * r.se),
                             "p": r.p_values})


def _abmil_module(error: type[GistRiskError]) -> ModuleType:
    """:mod:`gistrisk.pathology.abmil`, imported only when a modality pools by attention: it needs torch (the
    optional pathology extra), which no other model loads. ``error``: what to raise without it."""
    try:
        from gistrisk.pathology import abmil  # noqa: PLC0415 - see the docstring
    except ImportError as e:
        raise error(f"aggregation abmil needs the pathology extra (pip install 'slicergistrisk[pathology]'): "
                    f"{e}") from e
    return abmil


def _jsonable(o: Any) -> Any:
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return o
