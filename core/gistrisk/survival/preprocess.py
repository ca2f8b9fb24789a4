"""Per-modality preprocessing fitted on training rows only: encode, impute, filter, scale."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from gistrisk.errors import InputError

#: a text column is numeric-with-junk (an error) rather than categorical when this share parses
NUMERIC_SHARE = 0.8
#: a number, a space and more text ("-0.325 HU", "5 cm", "12 %"): a number with its unit, not a category
NUMBER_WITH_UNIT = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s+\S")


def split_column_kinds(df: pd.DataFrame, source: str | None = None) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns; numeric columns holding non-numeric junk raise ``InputError``."""
    numeric, categorical = [], []
    for col, dtype in df.dtypes.items():  # by dtype: a Series per column costs more than the check on wide tables
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric.append(col)
            continue
        present = df[col].dropna()
        parsed = pd.to_numeric(present, errors="coerce")
        if len(present) and parsed.notna().all():  # numbers held as text
            numeric.append(col)
        elif len(present) and parsed.notna().mean() >= NUMERIC_SHARE:
            junk = present[parsed.isna()]
            raise InputError(f"non-numeric value {junk.iloc[0]!r} in a numeric column", file=source,
                             patient=str(junk.index[0]), column=str(col))
        elif len(present) and (united := present.astype(str).str.match(NUMBER_WITH_UNIT)).mean() >= NUMERIC_SHARE:
            raise InputError(f"value {present[united].iloc[0]!r} is a number with a unit; give the number alone "
                             "(in the unit the column's name or the data dictionary says)", file=source,
                             patient=str(present[united].index[0]), column=str(col))
        else:
            categorical.append(col)
    return numeric, categorical


class Preprocessor(TransformerMixin, BaseEstimator):
    """Encode categoricals, impute, drop constant and near-duplicate features, z-score, and
    optionally project onto the leading principal components.

    Parameters
    ----------
    corr_threshold : float
        Of two features with ``|r|`` above this, the later one is dropped. ``None`` turns it off.
    drop_constant : bool
    scale : bool
    log_skewed : float or None
        Numeric columns that are non-negative with training skewness above this enter as
        ``log1p`` (decided on training rows). ``None`` turns it off.
    pca_components : int or None
        Replace the z-scored features by this many leading principal components of the training
        rows (each scaled to unit variance; named ``pc01``, ``pc02``, ...). For wide, highly
        correlated inputs such as 2048-d deep slide features, where a few dozen events cannot
        support selection among thousands of columns. ``None`` turns it off.
    keep : list of str or None
        Use only these input columns (e.g. features found reproducible under image perturbation by
        ``gistrisk radiomics robustness``); others are ignored. ``None`` uses every column.

    Attributes
    ----------
    numeric_, categorical_ : list of str      input columns by kind
    log_columns_ : list of str                 numeric columns log1p-transformed
    levels_ : dict                             categorical column -> levels seen in training (first = reference)
    medians_ : dict                            numeric imputation values
    features_out_ : list of str                columns after filtering (before any projection)
    mean_, scale_ : ndarray, shape (p_out,)
    components_ : ndarray (k, p_out) or None   principal axes (rows) when ``pca_components`` is set
    component_scale_ : ndarray (k,) or None    training SD of each component's scores
    component_names_ : list of str             ``pc01`` ... for the kept components
    output_names_ : list of str                columns ``transform`` returns
    explained_variance_ratio_ : ndarray (k,) or None
    dropped_ : dict                            reason -> dropped columns
    """

    def __init__(self, corr_threshold: float | None = 0.95, drop_constant: bool = True, scale: bool = True,
                 log_skewed: float | None = None, pca_components: int | None = None,
                 keep: list[str] | None = None):
        self.corr_threshold = corr_threshold
        self.drop_constant = drop_constant
        self.scale = scale
        self.log_skewed = log_skewed
        self.pca_components = pca_components
        self.keep = keep

    def _numeric(self, X: pd.DataFrame) -> pd.DataFrame:
        """The numeric columns as floats (text coerced to NaN), log1p where training chose it; a column absent
        from ``X`` is all NaN. Converted as one block when every column has a numeric dtype: a wide table
        (2,048 slide features) column by column costs seconds per fit."""
        present = X[[c for c in self.numeric_ if c in X]]
        if all(pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t) for t in present.dtypes):
            block = present.astype(float)
        else:
            block = present.apply(lambda s: pd.to_numeric(s, errors="coerce")).astype(float)
        block = block.reindex(columns=self.numeric_)
        if self.log_columns_:
            block[self.log_columns_] = np.log1p(block[self.log_columns_].clip(lower=0))
        return block

    def _imputed(self, X: pd.DataFrame) -> pd.DataFrame:
        """:meth:`_numeric` with each missing value replaced by its column's training median. As one array:
        ``fillna`` with a dict goes column by column (10 ms per call on a 300-column table, thousands of calls
        per fit)."""
        block = self._numeric(X)
        values = block.to_numpy(float, copy=True)
        rows, cols = np.nonzero(np.isnan(values))
        values[rows, cols] = np.array([self.medians_[c] for c in block.columns], float)[cols]
        return pd.DataFrame(values, index=block.index, columns=block.columns)

    def _encode(self, X: pd.DataFrame) -> pd.DataFrame:
        parts = [self._imputed(X)]
        cols: dict[str, Any] = {}
        for c, levels in self.levels_.items():
            v = X[c].astype("string") if c in X else pd.Series(pd.NA, index=X.index, dtype="string")
            v = v.fillna(self.modes_[c])
            for lev in levels[1:]:
                cols[f"{c}={lev}"] = (v == lev).astype(float)
        parts.append(pd.DataFrame(cols, index=X.index))
        return pd.concat(parts, axis=1)

    def fit(self, X: pd.DataFrame, y=None) -> Preprocessor:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("Preprocessor expects a DataFrame")
        source = X.attrs.get("source")
        if self.keep is not None:
            wanted = set(self.keep)
            X = X[[c for c in X.columns if c in wanted]]
            if X.shape[1] == 0:
                raise InputError("none of the features in the keep list is in the table", file=source)
        self.numeric_, self.categorical_ = split_column_kinds(X, source)
        self.log_columns_ = []
        if self.log_skewed is not None:
            # right-skewed non-negative measurements (sizes, counts, percentages) enter as log1p
            for c in self.numeric_:
                v = pd.to_numeric(X[c], errors="coerce").dropna()
                if len(v) > 2 and v.min() >= 0 and v.nunique() > 2 and v.skew() > self.log_skewed:
                    self.log_columns_.append(c)
        medians = self._numeric(X).median()
        self.medians_ = {c: float(m) if np.isfinite(m) else 0.0 for c, m in medians.items()}
        self.levels_, self.modes_ = {}, {}
        for c in self.categorical_:
            s = X[c].dropna().astype(str)
            counts = s.value_counts()
            self.levels_[c] = sorted(counts.index.tolist(), key=lambda v: (-counts[v], v))
            self.modes_[c] = self.levels_[c][0] if len(counts) else "missing"
        E = self._encode(X)
        self.dropped_: dict[str, list[str]] = {"constant": [], "correlated": []}
        keep = list(E.columns)
        if self.drop_constant:
            sd = E.std(axis=0, ddof=0)
            const = sd.index[(sd <= 1e-12) | sd.isna()].tolist()
            self.dropped_["constant"] = const
            keep = [c for c in keep if c not in set(const)]
        if not keep:
            raise InputError("every feature is constant on the training patients", file=source)
        if self.corr_threshold is not None and len(keep) > 1:
            keep = self._decorrelate(E[keep].to_numpy(float), keep)
        self.features_out_ = keep
        M = E[keep].to_numpy(float)
        self.mean_ = M.mean(axis=0) if self.scale else np.zeros(len(keep))
        sd = M.std(axis=0) if self.scale else np.ones(len(keep))
        self.scale_ = np.where(sd > 0, sd, 1.0)
        self.components_: np.ndarray | None = None
        self.component_scale_: np.ndarray | None = None
        self.explained_variance_ratio_: np.ndarray | None = None
        self.component_names_: list[str] = []
        if self.pca_components is not None:
            self._fit_pca((M - self.mean_) / self.scale_, source)
        return self

    def _fit_pca(self, Z: np.ndarray, source: str | None) -> None:
        assert self.pca_components is not None  # fit calls this only with pca_components set
        if int(self.pca_components) < 1:
            raise InputError(f"pca_components must be at least 1, got {self.pca_components}", file=source)
        Zc = Z - Z.mean(axis=0)
        _, s, vt = np.linalg.svd(Zc, full_matrices=False)
        k = min(int(self.pca_components), len(s), max(len(Z) - 1, 1))
        var = s**2
        keep = var[:k] > 1e-12 * var.sum()
        k = int(keep.sum())
        # a fixed sign per axis (largest loading positive) so refits on the same rows agree
        vt = vt[:k] * np.sign(vt[:k][np.arange(k), np.abs(vt[:k]).argmax(axis=1)])[:, None]
        self.components_ = vt
        self.component_scale_ = np.sqrt(var[:k] / len(Z))
        self.explained_variance_ratio_ = var[:k] / var.sum()
        self.component_names_ = [f"pc{i + 1:02d}" for i in range(k)]

    @property
    def output_names_(self) -> list[str]:
        return list(self.component_names_) if self.components_ is not None else list(self.features_out_)

    def _decorrelate(self, M: np.ndarray, names: list[str]) -> list[str]:
        Z = (M - M.mean(0)) / M.std(0)
        R = np.abs(Z.T @ Z) / len(Z)
        np.fill_diagonal(R, 0)
        dropped = np.zeros(len(names), bool)
        for j in range(len(names)):
            if dropped[j]:
                continue
            dropped |= (R[j] > self.corr_threshold) & (np.arange(len(names)) > j)
        self.dropped_["correlated"] = [n for n, d in zip(names, dropped) if d]
        return [n for n, d in zip(names, dropped) if not d]

    def check_inputs(self, X: pd.DataFrame, source: str | None = None) -> None:
        """Refuse what the fitted encoding would otherwise read silently: text in a numeric column
        (it would become the training median), infinite numbers, and categories never seen in
        training (they would become the reference level). Missing cells stay missing (imputed)."""
        for c in self.numeric_:
            if c not in X:
                continue
            present = X[c].dropna()
            v = pd.to_numeric(present, errors="coerce")
            bad = present[v.isna() | np.isinf(v.astype(float))]
            if len(bad):
                raise InputError(f"value {bad.iloc[0]!r} is not a finite number (the model reads {c!r} as a number)",
                                 file=source, patient=str(bad.index[0]), column=str(c))
        for c, levels in self.levels_.items():
            if c not in X:
                continue
            present = X[c].dropna().astype("string")
            bad = present[~present.isin(levels)]
            if len(bad):
                raise InputError(f"category {str(bad.iloc[0])!r} was never seen in training (the model knows "
                                 f"{', '.join(map(repr, levels))}); leave the cell empty to have it imputed",
                                 file=source, patient=str(bad.index[0]), column=str(c))

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        E = self._encode(X)[self.features_out_]
        Z = (E.to_numpy(float) - self.mean_) / self.scale_
        if self.components_ is not None:
            Z = (Z @ self.components_.T) / self.component_scale_
        return pd.DataFrame(Z, index=X.index, columns=self.output_names_)

    def to_dict(self) -> dict[str, Any]:
        pca = None
        if self.components_ is not None:
            assert self.component_scale_ is not None and self.explained_variance_ratio_ is not None  # fitted together
            pca = {"names": self.component_names_, "components": self.components_.tolist(),
                   "scale": self.component_scale_.tolist(),
                   "explained_variance_ratio": self.explained_variance_ratio_.tolist()}
        return {"params": self.get_params(), "log_columns": self.log_columns_, "numeric": self.numeric_, "categorical": self.categorical_,
                "levels": self.levels_, "modes": self.modes_, "medians": self.medians_,
                "features_out": self.features_out_, "mean": self.mean_.tolist(), "scale": self.scale_.tolist(),
                "dropped": self.dropped_, "pca": pca}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        p = cls(**d["params"])
        p.numeric_, p.categorical_ = d["numeric"], d["categorical"]
        p.log_columns_ = d.get("log_columns", [])
        p.levels_, p.modes_, p.medians_ = d["levels"], d["modes"], d["medians"]
        p.features_out_, p.dropped_ = d["features_out"], d["dropped"]
        p.mean_, p.scale_ = np.asarray(d["mean"], float), np.asarray(d["scale"], float)
        pca = d.get("pca")
        p.components_ = None if pca is None else np.asarray(pca["components"], float)
        p.component_scale_ = None if pca is None else np.asarray(pca["scale"], float)
        p.explained_variance_ratio_ = None if pca is None else np.asarray(pca["explained_variance_ratio"], float)
        p.component_names_ = [] if pca is None else list(pca["names"])
        return p

    def restrict(self, features: list[str]) -> Preprocessor:
        """A copy that outputs only ``features`` (after selection), to keep bundles small.

        With principal components, every input column stays (each component needs them all) and
        only the selected components' axes are kept."""
        d = self.to_dict()
        if self.components_ is not None:
            assert self.component_scale_ is not None and self.explained_variance_ratio_ is not None  # fitted together
            idx = [self.component_names_.index(f) for f in features]
            d["params"] = {**d["params"], "keep": None}  # numeric_ already lists the columns used
            d["pca"] = {"names": list(features), "components": self.components_[idx].tolist(),
                        "scale": self.component_scale_[idx].tolist(),
                        "explained_variance_ratio": self.explained_variance_ratio_[idx].tolist()}
            return Preprocessor.from_dict(d)
        idx = [self.features_out_.index(f) for f in features]
        d["params"] = {**d["params"], "keep": None}
        d["features_out"] = list(features)
        d["mean"] = self.mean_[idx].tolist()
        d["scale"] = self.scale_[idx].tolist()
        used = {f.split("=", 1)[0] for f in features}
        d["numeric"] = [c for c in self.numeric_ if c in used]
        d["categorical"] = [c for c in self.categorical_ if c in used]
        d["levels"] = {c: v for c, v in self.levels_.items() if c in used}
        d["modes"] = {c: v for c, v in self.modes_.items() if c in used}
        d["medians"] = {c: v for c, v in self.medians_.items() if c in used}
        d["log_columns"] = [c for c in self.log_columns_ if c in used]
        return Preprocessor.from_dict(d)
