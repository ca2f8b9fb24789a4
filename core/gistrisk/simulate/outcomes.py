"""Recurrence-free survival drawn from a known Cox model with a Weibull baseline, and its oracle."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gistrisk.simulate.config import Censoring, HazardModel, SimulationConfig
from gistrisk.simulate.patients import draw_patients
from gistrisk.survival.evaluation import harrell_c  # noqa: F401  (re-exported: the oracle C-index)


def linear_predictor(patients: pd.DataFrame, hz: HazardModel) -> pd.DataFrame:
    """True log-hazard and its parts, one row per patient.

    Columns: ``lp_size`` (seen by the clinical table and the CT), ``lp_clinical`` (mitoses,
    Ki67, site, rupture: clinical table only), ``lp_radiomics`` (CT heterogeneity: CT only),
    ``lp_pathology`` (tumour-tissue appearance: slide only) and ``lp``, their sum.
    """
    size = patients["size_cm"].to_numpy(float)
    lp_size = hz.log_size * np.log(size / 5.0)
    lp_clin = (hz.log1p_mitoses * (np.log1p(patients["mitoses"].to_numpy(float)) - np.log1p(5.0))
               + hz.log_ki67 * np.log(patients["ki67"].to_numpy(float) / 5.0)
               + hz.rupture * patients["rupture"].to_numpy(float)
               + patients["site"].map(hz.site).to_numpy(float))
    lp_rad = hz.ct_texture * patients["ct_texture"].to_numpy(float)
    lp_path = hz.tissue_appearance * patients["tissue_appearance"].to_numpy(float)
    out = pd.DataFrame({"patient_id": patients["patient_id"], "lp_size": lp_size,
                        "lp_clinical": lp_clin, "lp_radiomics": lp_rad, "lp_pathology": lp_path})
    out["lp"] = lp_size + lp_clin + lp_rad + lp_path
    return out


def _expected_censored(log_scale: float, lp: np.ndarray, shape: float, cens: Censoring) -> float:
    """E[fraction censored] for Weibull scale exp(log_scale), by quadrature over the censoring time."""
    lo, hi = cens.followup_months
    c = np.linspace(0.0, hi, 300)[1:]
    dc = c[1] - c[0]
    # Censoring time C = min(U(lo, hi), Exp(rate)): density of C on the grid.
    s_adm = np.clip((hi - c) / (hi - lo), 0.0, 1.0)
    f_adm = np.where((c >= lo) & (c <= hi), 1.0 / (hi - lo), 0.0)
    s_loss = np.exp(-cens.loss_rate_per_month * c)
    f_c = f_adm * s_loss + cens.loss_rate_per_month * s_loss * s_adm
    s_t = np.exp(-np.exp(lp)[:, None] * (c[None, :] / np.exp(log_scale)) ** shape)  # (n, grid)
    return float(np.mean(s_t @ f_c) * dc)


def calibrate_scale(lp: np.ndarray, shape: float, cens: Censoring) -> float:
    """Weibull scale (months) giving an expected censored fraction of ``cens.target``."""
    lo, hi = np.log(1.0), np.log(1e5)
    for _ in range(40):  # bisection: censoring rises monotonically with the scale
        mid = 0.5 * (lo + hi)
        if _expected_censored(mid, lp, shape, cens) < cens.target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def reference_scale(rng: np.random.Generator, cfg: SimulationConfig, n: int = 1000) -> float:
    """Weibull scale calibrated on a reference population of ``n`` patients drawn from ``rng``, so
    the development and external cohorts share one baseline hazard."""
    ref = draw_patients(rng, n, "REF", cfg, all_modalities=True)
    return calibrate_scale(linear_predictor(ref, cfg.hazard)["lp"].to_numpy(), cfg.hazard.weibull_shape,
                           cfg.censoring)


def draw_outcomes(rng: np.random.Generator, patient_id: pd.Series, lp: np.ndarray, scale: float,
                  shape: float, cens: Censoring) -> pd.DataFrame:
    """Event times T = scale * (-log U / exp(lp))^(1/shape), censored; months rounded to 0.1.

    Returns
    -------
    DataFrame ``patient_id, time, event`` (event 1 = recurrence or death).
    """
    n = lp.shape[0]
    t_event = scale * (-np.log(rng.random(n)) / np.exp(lp)) ** (1.0 / shape)
    lo, hi = cens.followup_months
    t_cens = np.minimum(rng.uniform(lo, hi, n), rng.exponential(1.0 / cens.loss_rate_per_month, n))
    event = (t_event <= t_cens).astype(int)
    time = np.maximum(np.round(np.minimum(t_event, t_cens), 1), 0.1)
    return pd.DataFrame({"patient_id": patient_id.to_numpy(), "time": time, "event": event})
