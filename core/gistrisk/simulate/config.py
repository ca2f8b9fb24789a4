"""Parameters of a simulated cohort: the hazard model, the scanners/stains and the image sizes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Acquisition:
    """How one hospital images its patients (the external cohort's shift lives here).

    Attributes
    ----------
    ct_spacing_mm : (x, y, z) voxel spacing of the CT volumes.
    ct_noise_hu : standard deviation of the CT noise (HU).
    stain_h, stain_e : multipliers of the haematoxylin and eosin optical densities.
    """

    ct_spacing_mm: tuple[float, float, float] = (2.5, 2.5, 3.0)
    ct_noise_hu: float = 12.0
    stain_h: float = 1.0
    stain_e: float = 1.0


DEVELOPMENT = Acquisition()
EXTERNAL = Acquisition(ct_spacing_mm=(3.0, 3.0, 4.0), ct_noise_hu=22.0, stain_h=1.25, stain_e=0.8)


@dataclass(frozen=True)
class HazardModel:
    """The true Cox model: log-hazard = sum of the terms below; Weibull baseline in months.

    Continuous latents (``ct_texture``, ``tissue_appearance``) are standard normal; size and
    mitoses enter on a log scale centred at 5 cm and at log1p(5 mitoses).
    """

    log_size: float = 1.0            # per log(cm / 5)
    log1p_mitoses: float = 0.55      # per log1p(mitoses / 5 mm2), centred at log1p(5)
    log_ki67: float = 0.3            # per log(Ki67 % / 5)
    rupture: float = 1.0
    site: dict[str, float] = field(default_factory=lambda: {
        "stomach": 0.0, "small intestine": 0.35, "colorectum": 0.5, "other": 0.4})
    ct_texture: float = 0.6          # per SD of the CT heterogeneity latent
    tissue_appearance: float = 0.6   # per SD of the tumour-tissue (nuclear density) latent
    weibull_shape: float = 1.3
    #: correlation of each latent (mitoses, Ki67, CT texture, tissue) with the shared aggressiveness
    aggressiveness_loading: float = 0.5


@dataclass(frozen=True)
class Censoring:
    """Administrative censoring (uniform follow-up window) plus random loss to follow-up.

    The Weibull baseline scale is solved so the expected censored fraction equals ``target``.
    """

    target: float = 0.65
    followup_months: tuple[float, float] = (24.0, 72.0)
    loss_rate_per_month: float = 0.004


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that shapes a simulated cohort except the seed and the cohort sizes.

    Attributes
    ----------
    ct_fraction, wsi_fraction : share of development patients with CT / with a slide
        (the paper: 218/254 and 186/254); the external cohort has every modality.
    annotated_fraction, min_annotated : share (and minimum number) of development slides with
        QuPath annotations (the paper annotated 30 of 186).
    ct_min_grid : smallest CT grid (x, y, z) in voxels; larger tumours get a larger grid.
    wsi_size : level-0 width = height of each slide in pixels; wsi_mpp : microns per pixel.
    wsi_levels : number of pyramid levels (downsample 4 between levels).
    missing : fraction of NaN per clinical column.
    """

    hazard: HazardModel = field(default_factory=HazardModel)
    censoring: Censoring = field(default_factory=Censoring)
    development: Acquisition = DEVELOPMENT
    external: Acquisition = EXTERNAL
    ct_fraction: float = 0.86
    wsi_fraction: float = 0.73
    annotated_fraction: float = 0.16
    min_annotated: int = 4
    ct_min_grid: tuple[int, int, int] = (64, 64, 32)
    wsi_size: int = 2048
    wsi_mpp: float = 0.5
    wsi_levels: int = 3
    wsi_tile: int = 256
    jpeg_quality: int = 90
    missing: dict[str, float] = field(default_factory=lambda: {
        "bmi": 0.04, "ki67_percent": 0.10, "hemoglobin_g_l": 0.05, "albumin_g_l": 0.06,
        "neutrophils_1e9_l": 0.05, "lymphocytes_1e9_l": 0.05, "platelets_1e9_l": 0.05})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every parameter (recorded in cohort.json)."""
        return asdict(self)
