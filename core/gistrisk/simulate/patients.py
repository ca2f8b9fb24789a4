"""Per-patient latent truth and the clinical table a hospital would export.

Distributions follow published surgical GIST series (median size about 5-6 cm, about 60 %
gastric, 30 % small intestine, a third with more than 5 mitoses per 5 mm2, rupture about 5 %).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gistrisk.simulate.config import SimulationConfig

SITES = ("stomach", "small intestine", "colorectum", "other")
SITE_P = (0.60, 0.30, 0.05, 0.05)

#: Columns of clinical.csv, in order.
CLINICAL_COLUMNS = (
    "patient_id", "sex", "age", "bmi", "site", "tumour_size_cm", "mitoses_per_5mm2", "ki67_percent",
    "rupture", "adjuvant_tki", "surgery_type", "hemoglobin_g_l", "albumin_g_l",
    "neutrophils_1e9_l", "lymphocytes_1e9_l", "platelets_1e9_l",
)


def _latent_normal(rng: np.random.Generator, shared: np.ndarray, loading: float) -> np.ndarray:
    """Standard-normal latent with correlation ``loading`` to ``shared``; shape (n,)."""
    return loading * shared + np.sqrt(1.0 - loading**2) * rng.standard_normal(shared.shape[0])


def draw_patients(rng: np.random.Generator, n: int, id_prefix: str, cfg: SimulationConfig,
                  all_modalities: bool) -> pd.DataFrame:
    """Draw the latent truth of ``n`` patients.

    Returns
    -------
    DataFrame, one row per patient: ``patient_id``, ``aggressiveness``, ``size_cm`` (true largest
    diameter), ``site``, ``mitoses``, ``ki67``, ``rupture``, ``ct_texture``, ``tissue_appearance``,
    ``sex``, ``age``, ``has_ct``, ``has_wsi``.
    """
    load = cfg.hazard.aggressiveness_loading
    agg = rng.standard_normal(n)
    # Bigger tumours are a little more aggressive; clipped to the 2-20 cm the study saw.
    size = np.exp(np.log(5.5) + 0.25 * agg + 0.5 * rng.standard_normal(n))
    size = np.clip(size, 2.0, 20.0)
    site = np.asarray(SITES, dtype=object)[rng.choice(len(SITES), size=n, p=SITE_P)]
    z_mit = _latent_normal(rng, agg, load + 0.1)
    mitoses = rng.poisson(np.exp(1.0 + 1.0 * z_mit)).astype(int)
    z_ki = _latent_normal(rng, agg, load + 0.1)
    ki67 = np.clip(np.round(np.exp(np.log(4.0) + 0.7 * z_ki)), 1, 60)
    rupture = (rng.random(n) < 1 / (1 + np.exp(-(-3.4 + 1.2 * np.log(size / 5.0))))).astype(int)
    ct_texture = _latent_normal(rng, agg, load)
    tissue = _latent_normal(rng, agg, load)
    sex = np.where(rng.random(n) < 0.52, "male", "female")
    age = np.clip(np.round(rng.normal(59.0, 11.0, n)), 22, 90).astype(int)
    if all_modalities:
        has_ct = np.ones(n, bool)
        has_wsi = np.ones(n, bool)
    else:
        has_ct = rng.random(n) < cfg.ct_fraction
        has_wsi = rng.random(n) < cfg.wsi_fraction
    ids = [f"{id_prefix}{i + 1:04d}" for i in range(n)]
    return pd.DataFrame({
        "patient_id": ids, "aggressiveness": agg, "size_cm": size, "site": site, "mitoses": mitoses,
        "ki67": ki67, "rupture": rupture, "ct_texture": ct_texture, "tissue_appearance": tissue,
        "sex": sex, "age": age, "has_ct": has_ct, "has_wsi": has_wsi,
    })


def clinical_table(patients: pd.DataFrame, rng: np.random.Generator,
                   cfg: SimulationConfig) -> pd.DataFrame:
    """The clinical table as exported: measured values, treatment, blood tests, some NaN.

    ``tumour_size_cm`` is the true largest diameter with a small measurement error (pathology
    ruler vs. CT), so it agrees with the segmentation's largest diameter within a few percent.
    """
    n = len(patients)
    size = patients["size_cm"].to_numpy()
    male = (patients["sex"] == "male").to_numpy()
    measured = np.round(size * np.exp(rng.normal(0.0, 0.03, n)), 1)
    bmi = np.round(np.clip(rng.normal(23.2, 3.3, n), 15.0, 40.0), 1)
    high_risk = (size > 5) & (patients["mitoses"].to_numpy() > 5) | (size > 10) | (
        patients["mitoses"].to_numpy() > 10) | (patients["rupture"].to_numpy() == 1)
    mid_risk = (size > 5) | (patients["mitoses"].to_numpy() > 5)
    p_tki = np.where(high_risk, 0.8, np.where(mid_risk, 0.35, 0.05))
    tki = (rng.random(n) < p_tki).astype(int)
    u = rng.random(n)
    surgery = np.where(size < 3.5, np.where(u < 0.35, "endoscopic", np.where(u < 0.85, "laparoscopic", "open")),
                       np.where(size < 8.0, np.where(u < 0.6, "laparoscopic", "open"),
                                np.where(u < 0.15, "laparoscopic", "open")))
    # Large tumours bleed: haemoglobin falls a little with size.
    hb = np.round(rng.normal(np.where(male, 135.0, 122.0) - 2.5 * (size - 5.5).clip(0), 15.0), 0)
    alb = np.round(rng.normal(40.5, 4.2, n), 1)
    neut = np.round(np.exp(rng.normal(np.log(3.6), 0.35, n)), 2)
    lymph = np.round(np.exp(rng.normal(np.log(1.7), 0.35, n)), 2)
    plt_ = np.round(np.exp(rng.normal(np.log(235.0), 0.28, n)), 0)
    df = pd.DataFrame({
        "patient_id": patients["patient_id"], "sex": patients["sex"], "age": patients["age"],
        "bmi": bmi, "site": patients["site"], "tumour_size_cm": measured,
        "mitoses_per_5mm2": patients["mitoses"], "ki67_percent": patients["ki67"],
        "rupture": patients["rupture"], "adjuvant_tki": tki, "surgery_type": surgery,
        "hemoglobin_g_l": hb, "albumin_g_l": alb, "neutrophils_1e9_l": neut,
        "lymphocytes_1e9_l": lymph, "platelets_1e9_l": plt_,
    }, columns=list(CLINICAL_COLUMNS))
    for col, frac in cfg.missing.items():
        drop = rng.random(n) < frac
        df[col] = df[col].astype(float).mask(drop)
    return df
