"""Reinhard stain (colour) normalisation of H&E tiles in CIELAB.

Each slide's tissue pixels are mapped so their per-channel LAB mean and standard deviation match a
fixed target (Reinhard et al., 2001, "Color transfer between images", here in CIELAB, D65). The
source statistics are fitted once per slide on a deterministic sample of its tiles, so every tile
of a slide gets the same transform and a slide stained more strongly (e.g. another hospital) is
brought back to the colours the classifier was trained on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

METHODS = ("reinhard", "none")

#: Default target: LAB mean/std of the tissue pixels of the real H&E tumour image
#: ``../shared/data/he/he_tumour_tile_1000px.png`` (TIAToolbox sample), computed once with
#: ``target_from_image(img)`` (92.5% of its pixels are tissue).
DEFAULT_TARGET_MEAN: tuple[float, float, float] = (49.1809, 32.0428, -14.0803)
DEFAULT_TARGET_STD: tuple[float, float, float] = (14.2575, 5.6809, 6.2784)

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


def target_from_image(rgb: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A reference H&E image (h, w, 3) uint8 -> (target_mean, target_std) of its tissue pixels."""
    mean, std = lab_stats(rgb, tissue_weight(rgb) >= 1.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


@dataclass
class StainConfig:
    """method: 'reinhard' or 'none'; target_mean/target_std: LAB statistics tissue is mapped to;
    n_fit_tiles: tiles per slide (evenly spread over its tile grid) the slide's statistics come from."""

    method: str = "reinhard"
    target_mean: tuple[float, float, float] = DEFAULT_TARGET_MEAN
    target_std: tuple[float, float, float] = DEFAULT_TARGET_STD
    n_fit_tiles: int = 32

    def __post_init__(self) -> None:
        from gistrisk.errors import InputError

        if self.method not in METHODS:
            raise InputError(f"unknown stain normalisation {self.method!r} (choose {' or '.join(METHODS)})")
        self.target_mean = tuple(float(v) for v in self.target_mean)
        self.target_std = tuple(float(v) for v in self.target_std)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["target_mean"], d["target_std"] = list(self.target_mean), list(self.target_std)
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> StainConfig:
        """A config from a header/provenance dict; a missing entry (older classifiers) means 'none'."""
        return cls(method="none") if not d else cls(**d)


@dataclass
class StainNormaliser:
    """Reinhard normaliser of one slide.

    Fit on RGB uint8 tiles (h, w, 3) of the slide; ``transform`` maps a tile's LAB values
    ``(x - mean_) / std_ * target_std + target_mean`` on tissue pixels (background kept).
    """

    config: StainConfig = field(default_factory=StainConfig)
    mean_: np.ndarray | None = None
    std_: np.ndarray | None = None

    def fit(self, tiles: Iterable[np.ndarray]) -> StainNormaliser:
        """Pooled LAB mean/std (3,) over the tissue pixels of ``tiles``; no tissue -> identity."""
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
        if self.config.method == "none":
            return rgb
        if self.mean_ is None:
            raise RuntimeError("StainNormaliser.transform before fit")
        lab = rgb_to_lab(rgb)
        scale = (np.asarray(self.config.target_std) / np.maximum(self.std_, 1e-6)).astype(np.float32)
        shift = (np.asarray(self.config.target_mean) - self.mean_ * scale).astype(np.float32)
        # tissue (w = 1) moves fully, glass (w = 0) stays: lab + w * (lab * scale + shift - lab)
        w = tissue_weight(rgb)[..., None]
        lab += w * (lab * (scale - 1) + shift)
        return lab_to_rgb(lab)


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


def read_reference(path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """A reference H&E image file (PNG/JPEG/TIFF) -> (target_mean, target_std); clear error if unusable."""
    from PIL import Image

    from gistrisk.errors import InputError

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except Exception as e:
        raise InputError(f"cannot read the stain reference image ({type(e).__name__}: {e})", file=str(path)) from e
    try:
        return target_from_image(rgb)
    except ValueError as e:
        raise InputError("the stain reference image has no tissue pixels (it looks blank)", file=str(path)) from e
