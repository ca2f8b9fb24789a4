"""Stain (colour) normalisation of H&E tiles: Reinhard in CIELAB, or Macenko in optical density.

Reinhard (default): each slide's tissue pixels are mapped so their per-channel LAB mean and standard
deviation match a fixed target (Reinhard et al., 2001, "Color transfer between images", here in
CIELAB, D65). Macenko (Macenko et al., 2009, "A method for normalizing histology slides for
quantitative analysis"): the slide's haematoxylin and eosin optical-density vectors are estimated
from the plane of its two main optical-density directions (the angular 1st and 99th percentiles),
each pixel is unmixed into H and E amounts, these are scaled so their 99th percentiles match the
target's and re-mixed with the target's stain vectors.

Either way the slide's statistics are fitted once per slide on a deterministic sample of its tiles,
so every tile of a slide gets the same transform and a slide stained more strongly (e.g. another
hospital) is brought back to the colours the classifier was trained on. Glass stays as scanned.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from gistrisk.errors import InputError

METHODS = ("reinhard", "macenko", "none")

#: Default target: LAB mean/std of the tissue pixels of the real H&E tumour image
#: ``../shared/data/he/he_tumour_tile_1000px.png`` (TIAToolbox sample), computed once with
#: ``target_from_image(img)`` (92.5% of its pixels are tissue).
DEFAULT_TARGET_MEAN: tuple[float, float, float] = (49.1809, 32.0428, -14.0803)
DEFAULT_TARGET_STD: tuple[float, float, float] = (14.2575, 5.6809, 6.2784)

#: Default Macenko target: haematoxylin and eosin optical-density vectors (rows, R G B, unit length)
#: and the 99th percentiles of their amounts in the tissue of the same reference image, computed once
#: with ``stain_target_from_image(img)``.
DEFAULT_STAIN_MATRIX: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (0.5290, 0.7505, 0.3962), (0.1480, 0.8320, 0.5346))
DEFAULT_MAX_CONC: tuple[float, float] = (1.2621, 0.4744)

#: Macenko: percentile of the angles in the optical-density plane taken as the pure stains
MACENKO_ALPHA = 1.0
#: a slide with fewer stained (tissue) pixels in its fitted tiles is left as scanned (and says so)
MIN_STAIN_PIXELS = 500

#: mean RGB optical density at and above which a pixel is tissue; background (glass) is below half of it
TISSUE_OD = 0.08

# sRGB (D65) <-> CIE XYZ (already divided by the D65 white point); float32 keeps a tile at a few ms
_WHITE = np.array([0.950456, 1.0, 1.088754], np.float64)
_RGB2XYZ = np.array([[0.412453, 0.357580, 0.180423],
                     [0.212671, 0.715160, 0.072169],
                     [0.019334, 0.119193, 0.950227]], np.float64)
_RGB2XYZN_T = (_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)
_XYZN2RGB_T = np.linalg.inv(_RGB2XYZ / _WHITE[:, None]).T.astype(np.float32)
_EPS, _KAPPA = 216 / 24389, 24389 / 27
_LAB_M = np.array([[0, 500, 0], [116, -500, 200], [0, 0, -200]], np.float32)  # f(x, y, z) -> L + 16, a, b

_LEVELS = np.arange(256) / 255
_SRGB_LINEAR_LUT = np.where(_LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4
                            ).astype(np.float32)
# linear -> sRGB uint8 through 2**16 steps: the curve's steepest slope (12.92 * 255 levels per unit)
# moves less than 0.05 levels per step, so rounding matches the exact formula
_LIN = np.arange(65536) / 65535
_LINEAR_SRGB_LUT = np.rint(255 * np.where(_LIN <= 0.0031308, 12.92 * _LIN, 1.055 * _LIN ** (1 / 2.4) - 0.055)
                           ).clip(0, 255).astype(np.uint8)
_OD_LUT = (-np.log10((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> CIELAB float32 (..., 3): L in [0, 100], a/b roughly [-128, 127]."""
    xyz = _SRGB_LINEAR_LUT[np.asarray(rgb, np.uint8)] @ _RGB2XYZN_T
    small = xyz <= _EPS
    f = np.cbrt(xyz)
    f[small] = (_KAPPA * xyz[small] + 16) / 116
    lab = f @ _LAB_M
    lab[..., 0] -= 16
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (..., 3) -> sRGB uint8 (..., 3), out-of-gamut values clipped."""
    lab = np.asarray(lab, np.float32)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], -1)
    xyz = f * f * f
    small = xyz <= _EPS
    xyz[small] = (116 * f[small] - 16) / _KAPPA
    lin = xyz @ _XYZN2RGB_T
    idx = np.rint(np.clip(lin, 0.0, 1.0) * 65535).astype(np.int32)
    return _LINEAR_SRGB_LUT[idx]


def tissue_weight(rgb: np.ndarray, tissue_od: float = TISSUE_OD) -> np.ndarray:
    """Per-pixel weight (..., 3) -> (...) in [0, 1]: 1 for tissue (mean optical density >= tissue_od),
    0 for glass (below tissue_od / 2), linear in between so the background stays white without a seam."""
    rgb = np.asarray(rgb, np.uint8)
    od = (_OD_LUT[rgb[..., 0]] + _OD_LUT[rgb[..., 1]] + _OD_LUT[rgb[..., 2]]) / 3
    return np.clip((od - np.float32(tissue_od / 2)) / np.float32(tissue_od / 2), 0.0, 1.0)


def lab_stats(rgb: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """LAB mean and std (each (3,)) of the pixels of ``rgb`` (..., 3) selected by ``mask`` (...) bool."""
    lab = rgb_to_lab(rgb).reshape(-1, 3).astype(np.float64)
    if mask is not None:
        lab = lab[np.asarray(mask, bool).reshape(-1)]
    if len(lab) == 0:
        raise ValueError("no tissue pixels to compute stain statistics from")
    return lab.mean(0), lab.std(0)


Lab3 = tuple[float, float, float]


def _lab3(values: Iterable[float]) -> Lab3:
    """The three LAB channels of a vector (tuple, list from JSON, or array) as floats."""
    lum, a, b = (float(v) for v in values)
    return lum, a, b


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 (..., 3) -> optical density float32 (..., 3), ``-log10((I + 1) / 256)``: 0 for white."""
    return _OD_LUT[np.asarray(rgb, np.uint8)]


def macenko_stain_matrix(od: np.ndarray, alpha: float = MACENKO_ALPHA) -> np.ndarray:
    """Stain vectors of tissue pixels' optical densities (n, 3) -> (2, 3): haematoxylin then eosin,
    unit length (Macenko 2009: the extreme angles, at percentiles alpha and 100 - alpha, in the plane
    of the two largest principal directions)."""
    od = np.asarray(od, np.float64)
    _, vecs = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = vecs[:, [2, 1]]  # largest first; eigh sorts ascending
    if plane[:, 0].sum() < 0:  # the main direction points into positive optical density
        plane[:, 0] *= -1
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100 - alpha])
    v_lo = plane @ np.array([np.cos(lo), np.sin(lo)])
    v_hi = plane @ np.array([np.cos(hi), np.sin(hi)])
    he = np.stack([v_lo, v_hi] if v_lo[0] > v_hi[0] else [v_hi, v_lo])  # haematoxylin absorbs more red
    return he / np.linalg.norm(he, axis=1, keepdims=True)


def _tissue_od(tiles: Iterable[np.ndarray]) -> np.ndarray:
    """Optical densities (n, 3) float32 of the tissue pixels (mean OD >= TISSUE_OD) of ``tiles``."""
    parts = [optical_density(t)[tissue_weight(t) >= 1.0] for t in tiles]
    return np.concatenate(parts) if parts else np.zeros((0, 3), np.float32)


def _macenko_fit(od: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tissue optical densities (n, 3) -> (stain matrix (2, 3), 99th percentile of each stain's amount (2,))."""
    stains = macenko_stain_matrix(od)
    conc = od.astype(np.float64) @ np.linalg.pinv(stains)
    return stains, np.percentile(conc, 99, axis=0)


def stain_target_from_image(rgb: np.ndarray) -> tuple[tuple[tuple[float, float, float], tuple[float, float, float]],
                                                      tuple[float, float]]:
    """A reference H&E image (h, w, 3) uint8 -> Macenko target (stain matrix rows H, E; max amounts)."""
    od = _tissue_od([rgb])
    if len(od) < MIN_STAIN_PIXELS:
        raise ValueError(f"{len(od)} tissue pixels, fewer than {MIN_STAIN_PIXELS}")
    stains, max_conc = _macenko_fit(od)
    h, e = (tuple(float(v) for v in row) for row in stains)
    return ((h[0], h[1], h[2]), (e[0], e[1], e[2])), (float(max_conc[0]), float(max_conc[1]))


def target_from_image(rgb: np.ndarray) -> tuple[Lab3, Lab3]:
    """A reference H&E image (h, w, 3) uint8 -> (target_mean, target_std) of its tissue pixels."""
    mean, std = lab_stats(rgb, tissue_weight(rgb) >= 1.0)
    return _lab3(mean), _lab3(std)


@dataclass
class StainConfig:
    """method: 'reinhard', 'macenko' or 'none'; target_mean/target_std: LAB statistics tissue is mapped
    to (Reinhard); target_stains (2, 3) / target_max_conc (2,): H and E optical-density vectors and
    amounts tissue is mapped to (Macenko); n_fit_tiles: tiles per slide (evenly spread over its tile
    grid) the slide's statistics come from. ``to_dict`` records the fields of the chosen method."""

    method: str = "reinhard"
    target_mean: tuple[float, float, float] = DEFAULT_TARGET_MEAN
    target_std: tuple[float, float, float] = DEFAULT_TARGET_STD
    n_fit_tiles: int = 32
    target_stains: tuple[tuple[float, float, float], tuple[float, float, float]] = DEFAULT_STAIN_MATRIX
    target_max_conc: tuple[float, float] = DEFAULT_MAX_CONC

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown stain normalisation {self.method!r} (choose {', '.join(METHODS)})")
        self.target_mean = _lab3(self.target_mean)
        self.target_std = _lab3(self.target_std)
        stains = np.asarray(self.target_stains, np.float64)
        conc = np.asarray(self.target_max_conc, np.float64)
        if stains.shape != (2, 3) or conc.shape != (2,) or not np.isfinite(stains).all() \
                or not (conc > 0).all() or np.linalg.matrix_rank(stains) < 2:
            raise InputError(f"Macenko target: target_stains must be 2 independent rows (H, E) of 3 optical "
                             f"densities and target_max_conc 2 positive numbers, got {self.target_stains!r} and "
                             f"{self.target_max_conc!r}")
        h, e = (tuple(float(v) for v in row) for row in stains)
        self.target_stains = (h[0], h[1], h[2]), (e[0], e[1], e[2])
        self.target_max_conc = float(conc[0]), float(conc[1])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_mean"], d["target_std"] = list(self.target_mean), list(self.target_std)
        d["target_stains"], d["target_max_conc"] = [list(r) for r in self.target_stains], list(self.target_max_conc)
        drop = ("target_mean", "target_std") if self.method == "macenko" else ("target_stains", "target_max_conc")
        return {k: v for k, v in d.items() if k not in drop}

    @classmethod
    def from_dict(cls, d: dict | None) -> StainConfig:
        """A config from a header/provenance dict; a missing entry (older classifiers) means 'none'."""
        return cls(method="none") if not d else cls(**d)


@dataclass
class StainNormaliser:
    """Stain normaliser of one slide.

    Fit on RGB uint8 tiles (h, w, 3) of the slide. Reinhard: ``transform`` maps a tile's LAB values
    ``(x - mean_) / std_ * target_std + target_mean``; Macenko: its optical densities are unmixed
    with ``stains_`` (2, 3), the amounts scaled by ``target_max_conc / max_conc_`` and re-mixed with
    ``target_stains``. Only tissue pixels move (background kept). ``fallback_`` says why a slide was
    left as scanned (Macenko: too few stained pixels), else None.
    """

    config: StainConfig = field(default_factory=StainConfig)
    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None
    stains_: np.ndarray | None = None
    max_conc_: np.ndarray | None = None
    fallback_: str | None = None

    def fit(self, tiles: Iterable[np.ndarray]) -> StainNormaliser:
        """Reinhard: pooled LAB mean/std (3,) over the tissue pixels of ``tiles``; no tissue -> identity.
        Macenko: stain matrix and max amounts of those pixels; fewer than MIN_STAIN_PIXELS -> identity."""
        if self.config.method == "macenko":
            od = _tissue_od(tiles)
            if len(od) < MIN_STAIN_PIXELS:
                self.fallback_ = (f"{len(od)} stained pixels in the fitted tiles (fewer than {MIN_STAIN_PIXELS}): "
                                  "Macenko normalisation not applied, slide left as scanned")
            else:
                self.stains_, self.max_conc_ = _macenko_fit(od)
            return self
        n, s1, s2 = 0, np.zeros(3), np.zeros(3)
        for t in tiles:
            lab = rgb_to_lab(t)[tissue_weight(t) >= 1.0].astype(np.float64)
            n, s1, s2 = n + len(lab), s1 + lab.sum(0), s2 + (lab ** 2).sum(0)
        if n == 0:  # nothing to learn from: leave the slide as it is
            self.mean_, self.std_ = np.asarray(self.config.target_mean), np.asarray(self.config.target_std)
        else:
            self.mean_ = s1 / n
            self.std_ = np.sqrt(np.maximum(s2 / n - self.mean_ ** 2, 0.0))
        return self

    def transform(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (h, w, 3) -> normalised RGB uint8 (h, w, 3); 'none' returns the input unchanged."""
        if self.config.method == "none" or self.fallback_ is not None:
            return rgb
        if self.config.method == "macenko":
            return self._macenko(rgb)
        if self.mean_ is None or self.std_ is None:  # fit sets both
            raise RuntimeError("StainNormaliser.transform before fit")
        lab = rgb_to_lab(rgb)
        scale = (np.asarray(self.config.target_std) / np.maximum(self.std_, 1e-6)).astype(np.float32)
        shift = (np.asarray(self.config.target_mean) - self.mean_ * scale).astype(np.float32)
        # tissue (w = 1) moves fully, glass (w = 0) stays: lab + w * (lab * scale + shift - lab)
        w = tissue_weight(rgb)[..., None]
        lab += w * (lab * (scale - 1) + shift)
        return lab_to_rgb(lab)

    def _macenko(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (h, w, 3) -> Macenko-normalised RGB uint8 (h, w, 3)."""
        if self.stains_ is None or self.max_conc_ is None:
            raise RuntimeError("StainNormaliser.transform before fit")
        scale = np.asarray(self.config.target_max_conc) / np.maximum(self.max_conc_, 1e-6)
        # unmix with the slide's stains, scale the amounts, re-mix with the target's: one (3, 3) map
        remix = (np.linalg.pinv(self.stains_) * scale) @ np.asarray(self.config.target_stains)
        od = optical_density(rgb)
        w = tissue_weight(rgb)[..., None]
        od = od + w * (od @ remix.astype(np.float32) - od)
        return np.clip(np.rint(256.0 * np.power(np.float32(10.0), -od) - 1.0), 0, 255).astype(np.uint8)

    def fitted(self) -> dict:
        """What was fitted on the slide, for provenance: Reinhard mean/std, or Macenko stains/max amounts."""
        if self.config.method == "macenko":
            return {"stains": None if self.stains_ is None else self.stains_.tolist(),
                    "max_conc": None if self.max_conc_ is None else self.max_conc_.tolist(),
                    "fallback": self.fallback_}
        return {"mean": None if self.mean_ is None else self.mean_.tolist(),
                "std": None if self.std_ is None else self.std_.tolist()}


def fit_tile_indices(n_tiles: int, k: int) -> np.ndarray:
    """Indices of up to ``k`` rows spread evenly over ``n_tiles`` rows (deterministic)."""
    if n_tiles <= k:
        return np.arange(n_tiles)
    return np.unique(np.linspace(0, n_tiles - 1, k).round().astype(np.int64))


def resolve_stain(trained: dict | None, requested: str | None) -> tuple[StainConfig, str | None]:
    """The stain setting for feature extraction -> (config, warning or None).

    trained: the classifier header's ``stain`` entry (None for older classifiers: 'none');
    requested: an explicit --stain-normalise value, or None to use the training setting.
    """
    base = StainConfig.from_dict(trained)
    if requested is None or requested == base.method:
        return base, None
    cfg = StainConfig(method=requested) if base.method == "none" else StainConfig(**{**base.to_dict(),
                                                                                      "method": requested})
    return cfg, (f"--stain-normalise {requested} differs from the classifier's training setting "
                 f"({base.method}); features may not match what the classifier learned")


def read_reference_rgb(path) -> np.ndarray:
    """A reference H&E image file (PNG/JPEG/TIFF) as RGB, shape (H, W, 3) uint8; InputError if unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except Exception as e:
        raise InputError(f"cannot read the stain reference image ({type(e).__name__}: {e})", file=str(path)) from e


def read_reference(path) -> tuple[Lab3, Lab3]:
    """A reference H&E image file (PNG/JPEG/TIFF) -> (target_mean, target_std); clear error if unusable."""
    rgb = read_reference_rgb(path)
    try:
        return target_from_image(rgb)
    except ValueError as e:
        raise InputError("the stain reference image has no tissue pixels (it looks blank)", file=str(path)) from e


def stain_config_from_reference(method: str, path) -> StainConfig:
    """A stain setting whose target is a reference H&E image (PNG/JPEG/TIFF) instead of the built-in one."""
    if method == "macenko":
        rgb = read_reference_rgb(path)
        try:
            stains, max_conc = stain_target_from_image(rgb)
        except ValueError as e:
            raise InputError(f"the stain reference image has too little tissue ({e})", file=str(path)) from e
        return StainConfig(method=method, target_stains=stains, target_max_conc=max_conc)
    mean, std = read_reference(path)
    return StainConfig(method=method, target_mean=mean, target_std=std)
