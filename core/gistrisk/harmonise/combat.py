"""Reference-site ComBat: map a new site's features onto a frozen reference cohort.

Johnson, Li and Rabinovic (Biostatistics 2007) model a feature ``g`` of case ``j`` at site ``i`` as
``y_ijg = alpha_g + x_j beta_g + gamma_ig + delta_ig * sigma_g * e_ijg``: a site shifts each feature's
location (``gamma``) and scales its spread (``delta``), with empirical Bayes shrinkage of both towards
the site's average over features. With a reference site (as ``ref.batch`` in sva and ``ref_batch`` in
neuroCombat) the reference's own values are never changed: ``alpha``, ``beta`` and ``sigma`` are the
reference's, and each other site is mapped onto them.

Here the reference is the development cohort of a frozen model. ``alpha``, ``beta`` (covariates to keep,
such as tumour size) and ``sigma`` are estimated from the reference alone, once, at fit time and stored
in the bundle; a new site's ``gamma`` and ``delta`` are estimated from that site's features (and
covariates) alone, never its outcomes. Without covariates this is neuroCombat's reference-batch
parametric ComBat to the iteration tolerance; with covariates neuroCombat estimates ``beta`` from all
sites pooled, which would change the frozen reference, so here it comes from the reference only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.errors import InputError

#: fewer cases than this at a site: its location and scale per feature are not estimated (refused)
MIN_SITE_CASES = 20
#: relative change of the empirical Bayes estimates at which the iteration stops (neuroCombat's default)
EB_TOLERANCE = 1e-4
EB_MAX_ITERATIONS = 1000
#: fraction of features at each end of the site's raw location and scale left out when the empirical Bayes
#: priors are estimated (then applied to every feature). Johnson et al. use every feature; radiomics has
#: features almost constant in the reference that vary at another site, whose raw scale (up to 1e10 times
#: the median on the demo's external scanner) makes the inverse-gamma prior degenerate: with every feature
#: the radiomics score's SD fell from 5.5 to 0.02 (seed 0), with 1% trimmed from 2.2 to 0.94 (seed 2);
#: with 5% each seed's score SD is within 0.1 of plain location/scale ComBat's (benchmarks/results/
#: harmonisation.md). 0 reproduces neuroCombat.
PRIOR_TRIM = 0.05
METHOD = ("reference-site ComBat (Johnson et al. 2007): parametric empirical Bayes location and scale per "
          "feature; the development cohort is the reference and is never changed")


@dataclass
class Reference:
    """A reference cohort's feature model: location, covariate effects and spread per feature.

    Attributes
    ----------
    features : list of str, length p         features that can be harmonised
    mean : array, shape (p,)                 ``alpha``: mean at the covariates' reference means
    scale : array, shape (p,)                ``sigma``: residual SD (1/n, as ComBat's pooled variance)
    covariates : list of str, length q       covariates kept (their effect is not removed)
    covariate_mean : array, shape (q,)
    beta : array, shape (q, p)               covariate effects
    n : int                                  reference cases
    skipped : dict                           feature -> why it is not harmonised (constant, too few values)
    """

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    covariates: list[str] = field(default_factory=list)
    covariate_mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    n: int = 0
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "covariates": list(self.covariates), "covariate_mean": self.covariate_mean.tolist(),
                "beta": self.beta.tolist(), "n": int(self.n), "skipped": dict(self.skipped)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reference:
        p, q = len(d["features"]), len(d["covariates"])
        ref = cls(list(d["features"]), np.asarray(d["mean"], float), np.asarray(d["scale"], float),
                  list(d["covariates"]), np.asarray(d["covariate_mean"], float).reshape(q),
                  np.asarray(d["beta"], float).reshape(q, p), int(d["n"]), dict(d.get("skipped") or {}))
        if ref.mean.shape != (p,) or ref.scale.shape != (p,) or not np.all(ref.scale > 0):
            raise ValueError("harmonisation reference: mean and scale need one positive value per feature")
        return ref

    def expected(self, covariates: np.ndarray) -> np.ndarray:
        """Reference mean of each feature for cases with these covariates, shape (n, p)."""
        return self.mean + (covariates - self.covariate_mean) @ self.beta

    def standardise(self, X: np.ndarray, covariates: np.ndarray) -> np.ndarray:
        """``(y - alpha - x beta) / sigma``, shape (n, p)."""
        return (X - self.expected(covariates)) / self.scale


@dataclass
class SiteAdjustment:
    """A site's location and scale per reference feature (after empirical Bayes shrinkage).

    gamma, delta : arrays, shape (p,)  applied as ``z* = (z - gamma) / sqrt(delta)``
    gamma_hat, delta_hat : arrays, shape (p,)  the site's raw estimates, before shrinkage
    """

    site: str
    features: list[str]
    gamma: np.ndarray
    delta: np.ndarray
    gamma_hat: np.ndarray
    delta_hat: np.ndarray
    n_cases: int
    empirical_bayes: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "features": list(self.features), "gamma": self.gamma.tolist(),
                "delta": self.delta.tolist(), "gamma_hat": self.gamma_hat.tolist(),
                "delta_hat": self.delta_hat.tolist(), "n_cases": int(self.n_cases),
                "empirical_bayes": bool(self.empirical_bayes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiteAdjustment:
        gamma, delta, gamma_hat, delta_hat = (np.asarray(d[k], float) for k in ("gamma", "delta", "gamma_hat",
                                                                                "delta_hat"))
        adj = cls(str(d["site"]), list(d["features"]), gamma, delta, gamma_hat, delta_hat, int(d["n_cases"]),
                  bool(d.get("empirical_bayes", True)))
        p = len(adj.features)
        if any(a.shape != (p,) for a in (adj.gamma, adj.delta, adj.gamma_hat, adj.delta_hat)) or \
                not np.all(adj.delta > 0):
            raise ValueError("site adjustment: gamma and delta need one value per feature, delta positive")
        return adj


def fit_reference(X: pd.DataFrame, covariates: pd.DataFrame | None = None) -> Reference:
    """The reference model of a development cohort's features.

    Parameters
    ----------
    X : DataFrame, shape (n, p)          numeric features (NaN allowed: a feature uses its complete cases)
    covariates : DataFrame, shape (n, q) numeric covariates to keep, complete, same index as ``X``

    Features with fewer than 3 values or no residual spread are listed in ``skipped`` and left as they are.
    """
    C = _covariate_matrix(covariates, X.index, "reference")
    names = list(covariates.columns) if covariates is not None else []
    cmean = C.mean(axis=0) if C.shape[1] else np.zeros(0)
    design = np.column_stack([np.ones(len(X)), C - cmean])
    keep, means, scales, betas, skipped = [], [], [], [], {}
    values = X.apply(pd.to_numeric, errors="coerce").to_numpy(float)
    for j, name in enumerate(X.columns):
        y = values[:, j]
        ok = np.isfinite(y)
        if ok.sum() < max(3, design.shape[1] + 1):
            skipped[str(name)] = f"{int(ok.sum())} value(s) in the reference"
            continue
        coef = np.linalg.lstsq(design[ok], y[ok], rcond=None)[0]
        resid = y[ok] - design[ok] @ coef
        var = float(np.mean(resid ** 2))
        if not var > 1e-12 * max(1.0, float(np.mean(y[ok] ** 2))):
            skipped[str(name)] = "no spread in the reference"
            continue
        keep.append(str(name))
        means.append(coef[0])
        betas.append(coef[1:])
        scales.append(np.sqrt(var))
    beta = np.array(betas, float).T.reshape(len(names), len(keep))
    return Reference(keep, np.array(means, float), np.array(scales, float), names, cmean, beta, len(X), skipped)


def estimate_site(reference: Reference, X: pd.DataFrame, covariates: pd.DataFrame | None = None, *,
                  site: str = "site", min_cases: int = MIN_SITE_CASES, empirical_bayes: bool = True,
                  tolerance: float = EB_TOLERANCE, prior_trim: float = PRIOR_TRIM) -> SiteAdjustment:
    """A site's ComBat location and scale from its own features (and covariates), never its outcomes.

    Parameters
    ----------
    X : DataFrame, shape (n, >= p)          the site's features; the reference's features are used
    covariates : DataFrame, shape (n, q)    the reference's covariates for these cases
    min_cases : a site with fewer cases is refused (InputError naming the minimum)
    empirical_bayes : shrink each feature's location and scale towards the site's average (else plain
        location/scale per feature)
    prior_trim : fraction of features at each end left out of the prior estimates (:data:`PRIOR_TRIM`)
    """
    if len(X) < min_cases:
        raise InputError(f"site {site!r}: {len(X)} case(s); estimating a site's feature location and scale "
                         f"needs at least {min_cases} cases of that site (ComBat, reference-site)",
                         file=X.attrs.get("source"))
    Z = reference.standardise(_feature_matrix(reference, X, site), _site_covariates(reference, covariates, X, site))
    n = np.isfinite(Z).sum(axis=0)
    few = [f for f, k in zip(reference.features, n) if k < min_cases]
    if few:
        raise InputError(f"site {site!r}: feature {few[0]!r} has values for {int(n[reference.features.index(few[0])])}"
                         f" case(s); at least {min_cases} needed", file=X.attrs.get("source"), column=few[0])
    gamma_hat = np.nanmean(Z, axis=0)
    delta_hat = np.nanvar(Z, axis=0, ddof=1)
    delta_hat[delta_hat == 0] = 1.0
    gamma, delta = gamma_hat.copy(), delta_hat.copy()
    if empirical_bayes and len(gamma_hat) >= 3 and np.var(_central(delta_hat, prior_trim), ddof=1) > 0 and \
            np.var(_central(gamma_hat, prior_trim), ddof=1) > 0:
        gamma, delta = _posterior(Z, gamma_hat, delta_hat, n, tolerance, prior_trim)
    return SiteAdjustment(site, list(reference.features), gamma, delta, gamma_hat, delta_hat, len(X),
                          empirical_bayes)


def apply_site(reference: Reference, adjustment: SiteAdjustment, X: pd.DataFrame,
               covariates: pd.DataFrame | None = None) -> pd.DataFrame:
    """``X`` with the reference's features mapped onto the reference; other columns unchanged.

    Each case is mapped on its own (a single patient gives the same values as in its site's batch).
    """
    if list(adjustment.features) != list(reference.features):
        raise InputError(f"site {adjustment.site!r}: the site adjustment is for other features than this model's "
                         "harmonisation reference (estimated for another model?)")
    site = adjustment.site
    Z = reference.standardise(_feature_matrix(reference, X, site), _site_covariates(reference, covariates, X, site))
    adjusted = (Z - adjustment.gamma) / np.sqrt(adjustment.delta)
    values = adjusted * reference.scale + reference.expected(_site_covariates(reference, covariates, X, site))
    out = X.copy()
    out[reference.features] = pd.DataFrame(values, index=X.index, columns=reference.features)
    return out


def _posterior(Z: np.ndarray, gamma_hat: np.ndarray, delta_hat: np.ndarray, n: np.ndarray,
               tolerance: float, trim: float) -> tuple[np.ndarray, np.ndarray]:
    """Parametric empirical Bayes: normal prior on gamma, inverse gamma on delta, by method of moments
    over the central features (``trim``), then every feature's joint posterior means by fixed-point
    iteration (Johnson 2007, eqs. 3.1-3.2)."""
    g_central, d_central = _central(gamma_hat, trim), _central(delta_hat, trim)
    gamma_bar, tau2 = g_central.mean(), np.var(g_central, ddof=1)
    m, s2 = d_central.mean(), np.var(d_central, ddof=1)
    a, b = (2 * s2 + m ** 2) / s2, (m * s2 + m ** 3) / s2
    g_old, d_old = gamma_hat.copy(), delta_hat.copy()
    filled = np.where(np.isfinite(Z), Z, 0.0)
    for _ in range(EB_MAX_ITERATIONS):
        g_new = (tau2 * n * gamma_hat + d_old * gamma_bar) / (tau2 * n + d_old)
        sum2 = (np.where(np.isfinite(Z), (filled - g_new) ** 2, 0.0)).sum(axis=0)
        d_new = (0.5 * sum2 + b) / (n / 2.0 + a - 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = max(np.nanmax(np.abs(g_new - g_old) / np.abs(g_old)),
                         np.nanmax(np.abs(d_new - d_old) / d_old))
        g_old, d_old = g_new, d_new
        if change <= tolerance:
            break
    return g_old, d_old


def _central(values: np.ndarray, trim: float) -> np.ndarray:
    """``values`` between their ``trim`` and ``1 - trim`` quantiles (all of them for trim 0)."""
    if trim <= 0:
        return values
    lo, hi = np.quantile(values, [trim, 1 - trim])
    central = values[(values >= lo) & (values <= hi)]
    return central if len(central) >= 3 else values


def _feature_matrix(reference: Reference, X: pd.DataFrame, site: str) -> np.ndarray:
    missing = [f for f in reference.features if f not in X.columns]
    if missing:
        raise InputError(f"site {site!r}: feature table lacks {len(missing)} feature(s) of the harmonisation "
                         f"reference, e.g. {missing[:3]} (extracted with another parameter file?)",
                         file=X.attrs.get("source"), column=missing[0])
    return X[reference.features].apply(pd.to_numeric, errors="coerce").to_numpy(float)


def _site_covariates(reference: Reference, covariates: pd.DataFrame | None, X: pd.DataFrame, site: str) -> np.ndarray:
    if not reference.covariates:
        return np.zeros((len(X), 0))
    if covariates is None:
        raise InputError(f"site {site!r}: the harmonisation keeps covariate(s) {reference.covariates}; give them "
                         "(a table with these columns for the same patients)")
    missing = [c for c in reference.covariates if c not in covariates.columns]
    if missing:
        raise InputError(f"site {site!r}: covariate {missing[0]!r} not found", file=covariates.attrs.get("source"),
                         column=missing[0])
    return _covariate_matrix(covariates[reference.covariates], X.index, site)


def _covariate_matrix(covariates: pd.DataFrame | None, index: pd.Index, site: str) -> np.ndarray:
    if covariates is None or covariates.shape[1] == 0:
        return np.zeros((len(index), 0))
    absent = [i for i in index if i not in covariates.index]
    if absent:
        raise InputError(f"{site}: patient has features but no covariate row", patient=str(absent[0]),
                         file=covariates.attrs.get("source"))
    C = covariates.loc[index].apply(pd.to_numeric, errors="coerce")
    bad = C.isna() | ~np.isfinite(C.to_numpy(float))
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        raise InputError(f"{site}: covariate missing or not a number ({covariates.loc[index].iat[row, col]!r}); "
                         "harmonisation needs every covariate", file=covariates.attrs.get("source"),
                         patient=str(C.index[row]), column=str(C.columns[col]))
    return C.to_numpy(float)
