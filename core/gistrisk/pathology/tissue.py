"""Tissue detection on a slide thumbnail: Otsu on saturation, optical-density floor, small-object removal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from gistrisk.errors import InputError


class NoTissueError(InputError):
    """A slide on which tissue detection finds nothing."""


@dataclass
class TissueConfig:
    """Thresholds for :func:`tissue_mask`.

    min_saturation: absolute floor under the Otsu threshold (glass and white background are ~0);
    min_optical_density: mean RGB optical density floor (removes faint dust/glare);
    min_object_tiles: connected components smaller than this many tile areas go (dust, specks);
    max_hole_tiles: holes smaller than this many tile areas are filled (lumens and glass gaps stay).
    """

    min_saturation: float = 0.05
    min_optical_density: float = 0.05
    min_object_tiles: float = 0.25
    max_hole_tiles: float = 1.0


#: optical density of each uint8 intensity, -log10((I + 1) / 256)
_OD_LUT = (-np.log10((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1-D array of values in [0, 1]."""
    idx = np.clip((np.asarray(values, np.float64) * bins).astype(np.int64), 0, bins - 1)
    hist = np.bincount(idx, minlength=bins).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 / w0[-1] - m0) ** 2 / (w0 * w1)
    between[~np.isfinite(between)] = -1
    return float(edges[int(np.argmax(between)) + 1])


def tissue_mask(rgb: np.ndarray, config: TissueConfig | None = None, px_per_tile: float = 16.0) -> np.ndarray:
    """Boolean tissue mask of an RGB uint8 thumbnail, shape (h, w, 3) -> (h, w).

    px_per_tile: side of one tile in thumbnail px (sets the size limits of specks and holes).
    """
    cfg = config or TissueConfig()
    rgb = np.asarray(rgb, np.uint8)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]  # (reductions over a length-3 axis are slow)
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    sat = (mx - mn).astype(np.float32) / np.maximum(mx, 1).astype(np.float32)  # HSV saturation
    od = (_OD_LUT[r] + _OD_LUT[g] + _OD_LUT[b]) / 3
    thr = max(otsu_threshold(sat.ravel()), cfg.min_saturation)
    mask = (sat > thr) & (od > cfg.min_optical_density)
    # pad before closing: scipy erodes from a zero border, which would eat tissue touching the edge
    mask = ndimage.binary_closing(np.pad(mask, 2, mode="edge"), structure=np.ones((3, 3)), iterations=2)[2:-2, 2:-2]
    tile_area = px_per_tile ** 2
    mask = _drop_small(mask, cfg.min_object_tiles * tile_area, keep_small=False)
    holes = ndimage.binary_fill_holes(mask) & ~mask
    mask |= _drop_small(holes, cfg.max_hole_tiles * tile_area, keep_small=True)
    return mask


def _drop_small(mask: np.ndarray, min_size: float, *, keep_small: bool) -> np.ndarray:
    """Components of ``mask`` at least ``min_size`` px (or, with keep_small, those under it)."""
    lab, n = ndimage.label(mask)
    if not n:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = (sizes < min_size) if keep_small else (sizes >= max(1.0, min_size))
    return keep[lab]


def box_fractions(mask: np.ndarray, boxes: np.ndarray, scale: float) -> np.ndarray:
    """Fraction of each box covered by ``mask``.

    mask: (h, w) bool at 1/scale of level 0; boxes: (N, 4) level-0 [x0, y0, x1, y1] -> (N,) float.
    """
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.float64)
    sat[1:, 1:] = mask.astype(np.float64).cumsum(0).cumsum(1)
    b = np.asarray(boxes, np.float64) / scale
    x0 = np.clip(np.floor(b[:, 0]), 0, mask.shape[1]).astype(int)
    y0 = np.clip(np.floor(b[:, 1]), 0, mask.shape[0]).astype(int)
    x1 = np.clip(np.maximum(np.ceil(b[:, 2]), x0 + 1), 0, mask.shape[1]).astype(int)
    y1 = np.clip(np.maximum(np.ceil(b[:, 3]), y0 + 1), 0, mask.shape[0]).astype(int)
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    total = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    return total / area
