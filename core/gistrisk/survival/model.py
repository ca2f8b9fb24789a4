"""The multimodal risk model: unimodal pipelines + fusion Cox models, saved as a JSON bundle."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.atomic import atomic_path, write_json
from gistrisk.clinical.dictionary import ClinicalDictionary, default_dictionary
from gistrisk.errors import BundleError, InputError
from gistrisk.survival.cox import step_at
from gistrisk.survival.fusion import FusionCox
from gistrisk.survival.pipeline import ModalityPipeline

SCHEMA_VERSION = 1
BUNDLE_FILE = "model.json"
#: inputs named per modality in a patient's out-of-distribution flag (then "N more")
OOD_INPUTS_LISTED = 3
ID = "patient_id"
log = logging.getLogger(__name__)

def subset_key(mods) -> str:
    return "+".join(sorted(mods))


class MultimodalRiskModel:
    """A frozen multimodal model: per-modality pipelines and one fusion Cox per modality subset.

    Attributes
    ----------
    modalities_ : list of str
    pipelines_ : dict[str, ModalityPipeline]
    fusion_ : dict[str, FusionCox]       keyed by "+"-joined sorted modality names; the full set is the main model
    early_fusion_ : dict or None         coefficients of the early-fusion Cox (comparison only)
    input_columns_ : dict[str, list[str]]
    clinical_schema_ : list of dict
    group_curves_ : dict                 training Kaplan-Meier curves of the low/high risk groups
    cv_metrics_ : dict                   cross-validated development metrics
    info_ : dict                         provenance, config, cohort summary
    oof_scores_ : DataFrame or None      out-of-fold unimodal scores of the development cohort (index
                                         patient_id, one column per fitted modality, NaN = no table); the
                                         fusion Cox was fitted on them and the nomogram's axes follow them.
                                         None for a bundle written before they travelled in it
    """

    #: the bundle file a loaded model was read from (set by ``load`` only)
    source_: str

    def __init__(self, pipelines: dict[str, ModalityPipeline], fusion: dict[str, FusionCox],
                 early_fusion: dict[str, Any] | None = None, clinical_schema: list[dict] | None = None,
                 group_curves: dict | None = None, cv_metrics: dict | None = None, info: dict | None = None,
                 oof_scores: pd.DataFrame | None = None):
        self.pipelines_ = pipelines
        self.modalities_ = sorted(pipelines)
        self.fusion_ = fusion
        self.early_fusion_ = early_fusion
        self.clinical_schema_ = clinical_schema or []
        self.group_curves_ = group_curves or {}
        self.cv_metrics_ = cv_metrics or {}
        self.info_ = info or {}
        self.oof_scores_ = oof_scores
        self.input_columns_ = {m: p.input_columns() for m, p in pipelines.items()}

    # ---- prediction -------------------------------------------------------------------------------------
    def scores(self, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """Unimodal scores, one column per modality (NaN where the modality is missing)."""
        silent = set(self.info_.get("no_signal") or {})
        for m in sorted(set(tables) & silent):
            log.warning("modality %r carried no signal on the development cohort and is not part of this model; "
                        "its table is ignored", m)
        unknown = sorted(set(tables) - set(self.modalities_) - silent)
        if unknown:
            raise InputError(f"model has no modality {unknown}; it knows {self.modalities_}")
        frames = {}
        for m, df in tables.items():
            if m in silent:
                continue
            df = _indexed(df, m)
            missing = [c for c in self.input_columns_[m] if c not in df.columns]
            if missing:
                raise InputError(f"modality {m!r} table lacks column(s) {missing[:10]} the model needs",
                                 file=df.attrs.get("source"), column=missing[0])
            self.pipelines_[m].preprocessor_.check_inputs(df, df.attrs.get("source"))
            frames[m] = pd.Series(self.pipelines_[m].score(df), index=df.index)
        ids = pd.Index(sorted(set().union(*[f.index for f in frames.values()]))) if frames else pd.Index([])
        out = pd.DataFrame(index=ids)
        out.index.name = ID
        for m in self.modalities_:
            out[f"score_{m}"] = frames[m].reindex(ids) if m in frames else np.nan
        return out

    def out_of_distribution(self, tables: dict[str, pd.DataFrame], scores: pd.DataFrame) -> pd.Series:
        """Per patient, each unimodal score and each numeric model input outside the development cohort's
        range (model card), with how far outside in development SDs, e.g.
        ``"radiomics score=-11.8 (development -2.9 to 3.8; 5.2 SD below)"``, joined by ``; `` ("" when none).
        At most :data:`OOD_INPUTS_LISTED` inputs per modality are named, then how many more.

        scores : DataFrame indexed by patient_id with ``score_<modality>`` columns (:meth:`scores`).
        """
        card = self.info_.get("model_card") or {}
        out: dict[str, list[str]] = {}
        for m, r in (card.get("score_ranges") or {}).items():
            if f"score_{m}" in scores.columns:
                for pid, x in scores[f"score_{m}"].dropna().items():
                    if (flag := _beyond(x, r)) is not None:
                        out.setdefault(str(pid), []).append(f"{m} score={x:.3g} ({flag})")
        for m, df in tables.items():
            df = _indexed(df, m)
            per_patient: dict[str, list[str]] = {}
            for c, r in ((card.get("input_ranges") or {}).get(m) or {}).items():
                if "min" not in r or c not in df.columns:
                    continue
                for pid, x in pd.to_numeric(df[c], errors="coerce").dropna().items():
                    if (flag := _beyond(x, r)) is not None:
                        per_patient.setdefault(str(pid), []).append(f"{m}:{c}={x:.4g} ({flag})")
            for pid, flags in per_patient.items():
                more = len(flags) - OOD_INPUTS_LISTED
                out.setdefault(pid, []).extend(flags[:OOD_INPUTS_LISTED] + ([f"{m}: {more} more input(s)"]
                                                                            if more > 0 else []))
        s = pd.Series({pid: "; ".join(v) for pid, v in out.items()}, dtype=object, name="out_of_distribution")
        s.index.name = ID
        return s

    def imputed_inputs(self, tables: dict[str, pd.DataFrame]) -> pd.Series:
        """Per patient, the model inputs that are empty and will be imputed with the training
        median/mode, as ``"modality:column;..."`` ("" when none)."""
        out: dict[str, list[str]] = {}
        for m, df in tables.items():
            df = _indexed(df, m)
            cols = [c for c in self.input_columns_.get(m, []) if c in df.columns]
            if not cols:  # e.g. attention pooling reads the embeddings, no column of the table
                continue
            gaps = df[cols].isna()
            for pid, row in gaps.iterrows():
                out.setdefault(str(pid), []).extend(f"{m}:{c}" for c in row.index[row.to_numpy()])
        s = pd.Series({pid: ";".join(v) for pid, v in out.items()}, dtype=object, name="imputed")
        s.index.name = ID
        return s

    def _fuse(self, S: pd.DataFrame) -> pd.DataFrame:
        rows = []
        for pid, row in S.iterrows():
            present = [m for m in self.modalities_ if np.isfinite(row[f"score_{m}"])]
            key = subset_key(present)
            if not present or key not in self.fusion_:
                rows.append({ID: pid, "risk": np.nan, "risk_group": "", "fusion_model": "",
                             "modalities_used": ";".join(present), "partial": True})
                continue
            f = self.fusion_[key]
            r = float(f.risk(np.array([[row[f"score_{m}"] for m in f.modalities]]))[0])
            rows.append({ID: pid, "risk": r, "risk_group": "high" if r > f.cutoff else "low", "fusion_model": key,
                         "modalities_used": ";".join(present), "partial": key != subset_key(self.modalities_)})
        return pd.DataFrame(rows).set_index(ID) if rows else pd.DataFrame(
            columns=["risk", "risk_group", "fusion_model", "modalities_used", "partial"])

    def predict(self, tables: dict[str, pd.DataFrame], horizons=(12, 36, 60)) -> pd.DataFrame:
        """Scores, fused risk, risk group and predicted RFS at ``horizons`` (months) per patient.

        A patient missing a modality is predicted by the fusion model of the modalities present and
        flagged ``partial``; with no usable modality the risk is NaN.
        """
        return self.predict_from_scores(self.scores(tables), horizons, tables=tables)

    def predict_from_scores(self, S: pd.DataFrame, horizons=(12, 36, 60),
                            tables: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
        """As :meth:`predict`, from unimodal scores (columns ``score_<modality>``, NaN = missing),
        e.g. a patscore exported by the pathology arm instead of its slide features.

        ``out_of_distribution`` flags scores (and, given ``tables``, model inputs) outside the development
        cohort's 1st-99th percentiles (:meth:`out_of_distribution`); "" when none.
        """
        out = self._fused(S)
        surv = self._survival(out, np.asarray(horizons, float))
        for j, h in enumerate(horizons):
            out[f"rfs_{int(h)}"] = surv[:, j]
        out["out_of_distribution"] = self.out_of_distribution(tables or {}, S).reindex(out.index).fillna("")
        cols = [f"score_{m}" for m in self.modalities_] + ["risk", "risk_group"] + \
               [f"rfs_{int(h)}" for h in horizons] + ["modalities_used", "partial", "fusion_model",
                                                     "out_of_distribution"]
        return out[cols].rename_axis(ID).reset_index()

    def _survival(self, out: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        res = np.full((len(out), len(times)), np.nan)
        for i, (risk, key) in enumerate(zip(out["risk"], out["fusion_model"])):
            if key and np.isfinite(risk):
                c = self.fusion_[key].cox
                res[i] = np.exp(-step_at(c.baseline_time, c.baseline_cumhaz, times) * np.exp(risk))
        return res

    def predict_survival(self, tables: dict[str, pd.DataFrame], times) -> pd.DataFrame:
        """Predicted RFS curves, shape (n_patients, len(times)); columns are times in months."""
        return self.predict_survival_from_scores(self.scores(tables), times)

    def predict_survival_from_scores(self, S: pd.DataFrame, times) -> pd.DataFrame:
        """As :meth:`predict_survival`, from unimodal scores (columns ``score_<modality>``)."""
        times = np.asarray(times, float)
        out = self._fused(S)
        return pd.DataFrame(self._survival(out, times), index=out.index, columns=times)

    def _fused(self, S: pd.DataFrame) -> pd.DataFrame:
        """Scores (one column per modality of the model) joined with the fused risk of each row."""
        S = S.reindex(columns=[f"score_{m}" for m in self.modalities_])
        return S.join(self._fuse(S))

    def early_fusion_risk(self, tables: dict[str, pd.DataFrame]) -> pd.Series:
        """Early-fusion risk for patients with every modality (comparison model), shape (n,)."""
        if not self.early_fusion_:
            raise ValueError("this model has no early-fusion component")
        frames = [_indexed(tables[m], m) for m in self.modalities_]
        ids = sorted(set.intersection(*[set(f.index) for f in frames]))
        Z = np.hstack([self.pipelines_[m].preprocessor_.transform(self.pipelines_[m].prepare(f.loc[ids])).to_numpy(float)
                       for m, f in zip(self.modalities_, frames)])
        return pd.Series(Z @ np.asarray(self.early_fusion_["coef"], float), index=pd.Index(ids, name=ID))

    # ---- bundle I/O ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION, "kind": "gistrisk.MultimodalRiskModel",
            "modalities": self.modalities_,
            "input_columns": self.input_columns_,
            "pipelines": {m: p.to_dict() for m, p in self.pipelines_.items()},
            "fusion": {k: f.to_dict() for k, f in self.fusion_.items()},
            "main_fusion": subset_key(self.modalities_),
            "early_fusion": self.early_fusion_, "clinical_schema": self.clinical_schema_,
            "group_curves": self.group_curves_, "cv_metrics": self.cv_metrics_, "info": self.info_,
            "oof_scores": oof_to_dict(self.oof_scores_),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], directory: str | Path | None = None) -> MultimodalRiskModel:
        """The model of a bundle dictionary (:meth:`to_dict`), its structure checked (ValueError, KeyError);
        ``directory``: the bundle folder, where attention weights files lie (BundleError when one is missing)."""
        check_bundle(d)
        return cls({m: ModalityPipeline.from_dict(p, directory) for m, p in d["pipelines"].items()},
                   {k: FusionCox.from_dict(f) for k, f in d["fusion"].items()},
                   d.get("early_fusion"), d.get("clinical_schema"), d.get("group_curves"), d.get("cv_metrics"),
                   d.get("info"), oof_from_dict(d.get("oof_scores")))

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` (and each attention-pooling modality's safetensors weights beside it, first);
        a model holding NaN or infinity is refused, never written."""
        directory = Path(directory)
        d = self.to_dict()
        problem = first_non_finite(d) or next((f"pipelines.{m}.abmil weights ({p.weights_file()})"
                                               for m, p in self.pipelines_.items() if not p.weights_finite()), None)
        if problem:
            raise BundleError(f"the fitted model has a number that is not finite at {problem}; no bundle written "
                              f"to {directory} (check the input tables for extreme values)")
        d = nan_to_null(d)
        directory.mkdir(parents=True, exist_ok=True)
        for p in self.pipelines_.values():
            if (data := p.weights_bytes()) is not None:
                with atomic_path(directory / p.weights_file()) as tmp:
                    tmp.write_bytes(data)
        write_json(directory / BUNDLE_FILE, d, allow_nan=False)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> MultimodalRiskModel:
        """Load a bundle; refuse missing, corrupt, non-finite, inconsistent or newer-schema bundles
        with a clear ``BundleError``."""
        path = Path(directory)
        path = path / BUNDLE_FILE if path.is_dir() else path
        if not path.is_file():
            raise BundleError(f"{path}: no model bundle here (expected {BUNDLE_FILE} from `gistrisk fit`)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BundleError(f"{path}: corrupt model bundle ({e})") from e
        except ValueError as e:
            raise BundleError(f"{path}: {e}; a bundle must hold finite numbers only") from e
        if not isinstance(d, dict) or d.get("kind") != "gistrisk.MultimodalRiskModel":
            raise BundleError(f"{path}: not a gistrisk model bundle")
        v = d.get("schema_version")
        if not isinstance(v, int) or v > SCHEMA_VERSION:
            raise BundleError(f"{path}: model schema version {v!r} is newer than this gistrisk reads "
                              f"({SCHEMA_VERSION}); upgrade gistrisk")
        try:
            model = cls.from_dict(d, path.parent)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise BundleError(f"{path}: model bundle is incomplete or corrupt ({type(e).__name__}: {e})") from e
        model.source_ = str(path)
        return model

    @property
    def main_fusion(self) -> FusionCox:
        return self.fusion_[subset_key(self.modalities_)]


def oof_to_dict(oof: pd.DataFrame | None) -> dict[str, Any] | None:
    """Out-of-fold scores as JSON: ``{"patient_id": [...], "scores": {modality: [score or None]}}``."""
    if oof is None:
        return None
    return {"patient_id": [str(i) for i in oof.index],
            "scores": {str(m): [None if not np.isfinite(v) else float(v) for v in oof[m].to_numpy(float)]
                       for m in oof.columns}}


def oof_from_dict(d: dict[str, Any] | None) -> pd.DataFrame | None:
    """Inverse of :func:`oof_to_dict` (None stays None); ValueError when the columns' lengths differ."""
    if d is None:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("scores"), dict) or not isinstance(d.get("patient_id"), list):
        raise ValueError("oof_scores must hold a patient_id list and a scores mapping")
    ids = [str(i) for i in d["patient_id"]]
    bad = [m for m, v in d["scores"].items() if len(v) != len(ids)]
    if bad:
        raise ValueError(f"oof_scores of {bad} do not have one value per patient ({len(ids)})")
    return pd.DataFrame({m: np.array([np.nan if v is None else v for v in vals], float)
                         for m, vals in d["scores"].items()}, index=pd.Index(ids, name=ID))


def _refuse_constant(name: str):
    raise ValueError(f"the bundle contains {name}")


def model_numbers(d: dict[str, Any]):
    """(where, value) of every number a bundle computes predictions with (coefficients, centring,
    scaling, imputation values, components, cut-offs, baseline hazards)."""
    def walk(obj, where):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield from walk(v, f"{where}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                yield from walk(v, f"{where}[{i}]")
        else:
            yield where, obj

    for m, p in d["pipelines"].items():
        w = f"pipelines.{m}"
        for k in ("coef", "mean", "baseline_time", "baseline_cumhaz"):
            yield from walk(p["cox"][k], f"{w}.cox.{k}")
        yield f"{w}.cutoff", p["cutoff"]
        pre = p["preprocessor"]
        for k in ("mean", "scale", "medians"):
            yield from walk(pre[k], f"{w}.preprocessor.{k}")
        if pre.get("pca"):
            for k in ("components", "scale"):
                yield from walk(pre["pca"][k], f"{w}.preprocessor.pca.{k}")
        if p.get("clusters"):
            yield from walk(p["clusters"]["centers"], f"{w}.clusters.centers")
    for key, f in d["fusion"].items():
        for k in ("coef", "mean", "baseline_time", "baseline_cumhaz", "cutoff"):
            yield from walk(f[k], f"fusion.{key}.{k}")
    if d.get("early_fusion"):
        yield from walk(d["early_fusion"]["coef"], "early_fusion.coef")
    for m, r in (((d.get("info") or {}).get("harmonisation") or {}).get("references") or {}).items():
        for k in ("mean", "scale", "covariate_mean", "beta"):
            yield from walk(r[k], f"info.harmonisation.references.{m}.{k}")


def first_non_finite(d: dict[str, Any]) -> str | None:
    """Where the first model number that is not a finite number sits (NaN, inf, null, text), or None."""
    for where, v in model_numbers(d):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            return f"{where} ({v!r})"
    return None


def nan_to_null(obj: Any) -> Any:
    """Descriptive parts (metrics, curves, selection details): a NaN statistic is written as null."""
    if isinstance(obj, dict):
        return {k: nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_null(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return nan_to_null(obj.tolist())
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def check_bundle(d: dict[str, Any]) -> None:
    """The bundle's structure: modalities, pipelines, inputs and fusions agree; numbers are finite.

    Raises ValueError naming the first part that does not fit.
    """
    mods = d["modalities"]
    if not isinstance(mods, list) or not mods or not all(isinstance(m, str) for m in mods):
        raise ValueError("'modalities' must be a non-empty list of names")
    for part in ("pipelines", "input_columns"):
        if not isinstance(d[part], dict) or sorted(d[part]) != sorted(mods):
            raise ValueError(f"'{part}' must have one entry per modality {sorted(mods)}, has {sorted(d[part])}")
    main = subset_key(mods)
    if d.get("main_fusion") != main or main not in d["fusion"]:
        raise ValueError(f"the main fusion model {main!r} (all modalities) is missing")
    for key, f in d["fusion"].items():
        if subset_key(f["modalities"]) != key or not set(f["modalities"]) <= set(mods):
            raise ValueError(f"fusion {key!r} is for modalities {f['modalities']}")
        if len(f["coef"]) != len(f["modalities"]) or len(f["mean"]) != len(f["modalities"]):
            raise ValueError(f"fusion {key!r}: {len(f['coef'])} coefficients for {len(f['modalities'])} scores")
        if len(f["baseline_time"]) != len(f["baseline_cumhaz"]):
            raise ValueError(f"fusion {key!r}: baseline hazard times and values differ in length")
    for m, p in d["pipelines"].items():
        n = len(p["selected"])
        if not n or len(p["cox"]["coef"]) != n or len(p["cox"]["mean"]) != n:
            raise ValueError(f"pipeline {m!r}: {len(p['cox']['coef'])} coefficients for {n} selected features")
        pre = p["preprocessor"]
        names = pre["pca"]["names"] if pre.get("pca") else pre["features_out"]
        if list(names) != list(p["selected"]):
            raise ValueError(f"pipeline {m!r}: preprocessing outputs {names} but the Cox uses {p['selected']}")
        if len(pre["mean"]) != len(pre["features_out"]) or len(pre["scale"]) != len(pre["features_out"]):
            raise ValueError(f"pipeline {m!r}: scaling has the wrong length")
        reads = [] if p.get("abmil") else pre["numeric"] + pre["categorical"]  # attention reads the embeddings
        if sorted(d["input_columns"][m]) != sorted(reads):
            raise ValueError(f"input_columns of {m!r} do not match its preprocessing")
        if p.get("abmil") is not None and not all(isinstance(p["abmil"].get(k), str) for k in ("file", "sha256")):
            raise ValueError(f"pipeline {m!r}: the attention weights record needs a file name and its sha256")
    problem = first_non_finite(d)
    if problem:
        raise ValueError(f"not a finite number at {problem}")


def _beyond(x: float, r: dict[str, Any]) -> str | None:
    """"development a to b; k SD above/below" when ``x`` lies outside ``[min, max]``, else None."""
    lo, hi, sd = r["min"], r["max"], r.get("sd")
    if lo <= x <= hi:
        return None
    side = "above" if x > hi else "below"
    far = f"{(x - hi if x > hi else lo - x) / sd:.1f} SD {side}" if sd else side
    return f"development {lo:.3g} to {hi:.3g}; {far}"


def _indexed(df: pd.DataFrame, modality: str) -> pd.DataFrame:
    if ID in df.columns:
        src = df.attrs.get("source")
        df = df.copy()
        df[ID] = df[ID].astype(str)
        if df[ID].duplicated().any():
            dup = df[ID][df[ID].duplicated()].iloc[0]
            raise InputError(f"duplicate {ID} in {modality} table", file=src, patient=dup)
        df = df.set_index(ID)
        df.attrs["source"] = src
    return df


def all_subsets(mods: list[str]):
    for k in range(1, len(mods) + 1):
        yield from itertools.combinations(sorted(mods), k)


def clinical_schema(table: pd.DataFrame, pipeline: ModalityPipeline,
                    dictionary: ClinicalDictionary | None = None) -> list[dict[str, Any]]:
    """Form fields for the clinical inputs the model uses (kind, levels, unit from the clinical
    dictionary, training range)."""
    pre = pipeline.preprocessor_
    d = dictionary or default_dictionary()
    fields: list[dict[str, Any]] = []
    for c in pre.numeric_:
        v = pd.to_numeric(table[c], errors="coerce") if c in table else pd.Series(dtype=float)
        var = d.variable_for_column(c)
        fields.append({"name": c, "kind": "numeric", "levels": None, "unit": var.unit if var else None,
                       "min": float(v.min()) if v.notna().any() else None,
                       "max": float(v.max()) if v.notna().any() else None})
    for c in pre.categorical_:
        fields.append({"name": c, "kind": "categorical", "levels": pre.levels_[c], "unit": None, "min": None,
                       "max": None})
    return fields
