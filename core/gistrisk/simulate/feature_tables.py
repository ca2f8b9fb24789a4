"""A table-level twin of the simulated cohort: the same patients, clinical tables and outcomes as
``gistrisk simulate``, with the radiomics and slide feature tables emulated from the latents
instead of extracted from images.

It lets the survival core's signal recovery be tested in seconds (the image pipeline takes minutes
per hundred patients). The measurement model mirrors what the image pipeline was seen to produce on
the simulated images (``benchmarks/results/signal_recovery.md``): shape features that track tumour
size, texture features that track the CT heterogeneity latent with noise, hundreds of features
without signal, and wide, correlated deep slide features with the tissue latent on one direction
among nuisance factors; the external cohort gets a scanner/stain shift on every feature.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from gistrisk.pathology.columns import feature_columns
from gistrisk.simulate.config import SimulationConfig
from gistrisk.simulate.outcomes import draw_outcomes, linear_predictor, reference_scale
from gistrisk.simulate.patients import clinical_table, draw_patients


@dataclass(frozen=True)
class FeatureEmulation:
    """How the emulated feature tables measure the latents (SD units of each feature).

    Attributes
    ----------
    n_shape : shape features, each ``log(size)`` plus noise ``shape_noise``.
    n_texture : texture features, loading ``U(0.5, 1)`` on the CT heterogeneity latent, ``U(-0.3, 0.3)``
        on log size, noise ``texture_noise``.
    n_radiomics_noise : radiomics features without signal.
    n_deep, n_nuisance : deep slide features and the nuisance factors (tissue layout, staining)
        they share; the tissue latent loads ``deep_signal`` on every feature along one random direction.
    external_shift, external_noise : per-feature location shift and extra noise in the external cohort.
    """

    n_shape: int = 6
    shape_noise: float = 0.05
    n_texture: int = 40
    texture_noise: float = 0.5
    n_radiomics_noise: int = 150
    n_deep: int = 256
    n_nuisance: int = 8
    deep_signal: float = 0.8
    deep_noise: float = 0.8
    external_shift: float = 0.25
    external_noise: float = 0.15

    def to_dict(self) -> dict:
        return asdict(self)


def _radiomics(pts: pd.DataFrame, rng: np.random.Generator, load: dict, em: FeatureEmulation,
               external: bool) -> pd.DataFrame:
    n = len(pts)
    log_size = np.log(pts["size_cm"].to_numpy(float))
    tex = pts["ct_texture"].to_numpy(float)
    shape = log_size[:, None] + em.shape_noise * rng.standard_normal((n, em.n_shape))
    texture = (tex[:, None] * load["tex"] + log_size[:, None] * load["tex_size"]
               + em.texture_noise * rng.standard_normal((n, em.n_texture)))
    noise = rng.standard_normal((n, em.n_radiomics_noise))
    X = np.hstack([shape, texture, noise])
    if external:
        X = X + load["rad_shift"] + em.external_noise * rng.standard_normal(X.shape)
    cols = ([f"shape_{j:02d}" for j in range(em.n_shape)] + [f"texture_{j:02d}" for j in range(em.n_texture)]
            + [f"noise_{j:03d}" for j in range(em.n_radiomics_noise)])
    return pd.DataFrame(X, index=pts["patient_id"].to_numpy(), columns=cols).rename_axis("patient_id")


def _deep(pts: pd.DataFrame, rng: np.random.Generator, load: dict, em: FeatureEmulation,
          external: bool) -> pd.DataFrame:
    n = len(pts)
    tissue = pts["tissue_appearance"].to_numpy(float)
    nuisance = rng.standard_normal((n, em.n_nuisance))
    X = (em.deep_signal * tissue[:, None] * load["deep_dir"] + nuisance @ load["deep_nuisance"]
         + em.deep_noise * rng.standard_normal((n, em.n_deep)))
    if external:
        X = X + load["deep_shift"] + em.external_noise * rng.standard_normal(X.shape)
    X = np.exp(0.3 * X)  # non-negative like pooled ReLU activations
    cols = feature_columns(em.n_deep)
    return pd.DataFrame(X, index=pts["patient_id"].to_numpy(), columns=cols).rename_axis("patient_id")


def simulate_tables(n_patients: int, n_external: int, seed: int, config: SimulationConfig | None = None,
                    emulation: FeatureEmulation | None = None) -> dict[str, dict[str, pd.DataFrame]]:
    """Development and external cohorts as tables.

    Patients, clinical tables and outcomes come from the same functions and hazard model as
    ``gistrisk simulate`` (so the oracle is the same kind); radiomics and pathology tables are
    emulated (see :class:`FeatureEmulation`). Development patients lack CT / slides in the
    simulation's proportions; the external cohort has every modality.

    Returns
    -------
    ``{"development": {...}, "external": {...}}``, each with ``clinical``, ``radiomics``,
    ``pathology`` (indexed by patient_id), ``outcomes`` (indexed, ``time``, ``event``) and
    ``truth`` (latents and the true linear predictor ``lp``).
    """
    cfg = config or SimulationConfig()
    em = emulation or FeatureEmulation()
    load_rng = np.random.default_rng([seed, 99])
    direction = load_rng.standard_normal(em.n_deep)
    p_rad = em.n_shape + em.n_texture + em.n_radiomics_noise
    load = {"tex": load_rng.uniform(0.5, 1.0, em.n_texture) * load_rng.choice([-1, 1], em.n_texture),
            "tex_size": load_rng.uniform(-0.3, 0.3, em.n_texture),
            "rad_shift": em.external_shift * load_rng.standard_normal(p_rad),
            "deep_dir": direction / np.linalg.norm(direction) * np.sqrt(em.n_deep) * 0.5,
            "deep_nuisance": load_rng.standard_normal((em.n_nuisance, em.n_deep)),
            "deep_shift": em.external_shift * load_rng.standard_normal(em.n_deep)}
    scale = reference_scale(np.random.default_rng([seed, 98]), cfg)
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for index, (name, n, prefix) in enumerate((("development", n_patients, "DEV"), ("external", n_external, "EXT"))):
        external = name == "external"
        rng = np.random.default_rng([seed, index, 7])
        pts = draw_patients(rng, n, prefix, cfg, all_modalities=external)
        clinical = clinical_table(pts, rng, cfg).set_index("patient_id")
        lp = linear_predictor(pts, cfg.hazard)
        outcomes = draw_outcomes(rng, pts["patient_id"], lp["lp"].to_numpy(), scale, cfg.hazard.weibull_shape,
                                 cfg.censoring).set_index("patient_id")
        rad = _radiomics(pts, rng, load, em, external)
        path = _deep(pts, rng, load, em, external)
        out[name] = {"clinical": clinical, "radiomics": rad[pts["has_ct"].to_numpy()],
                     "pathology": path[pts["has_wsi"].to_numpy()], "outcomes": outcomes,
                     "truth": pts.merge(lp, on="patient_id").set_index("patient_id")}
    return out
