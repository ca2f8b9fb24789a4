"""H&E-like pixels for a class map: nuclei, fibres, glands and necrotic debris per tissue class,
coloured by Beer-Lambert mixing of haematoxylin and eosin optical densities (Ruifrok vectors).

The tumour's nuclear density and hyperchromasia follow ``tissue_appearance``, the latent that
carries hazard; the acquisition's stain multipliers shift the colours of a whole cohort.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from gistrisk.pathology.classes import CLASSES
from gistrisk.simulate.config import Acquisition

_H = np.array([0.650, 0.704, 0.286], np.float32)  # haematoxylin OD per unit stain (R, G, B)
_E = np.array([0.072, 0.990, 0.105], np.float32)  # eosin

# Per class (in CLASSES order): background H and E, nuclei per pixel, nucleus H, spindle nuclei?,
# fibre amplitude. Chosen by eye against real H&E; the tumour row is modulated per patient.
_P = {
    "tumour":        dict(h=0.12, e=0.30, dens=1 / 260, nuc=0.95, spindle=True, fib=0.10),
    "stroma":        dict(h=0.04, e=0.50, dens=1 / 1800, nuc=0.90, spindle=True, fib=0.35),
    "mucosa":        dict(h=0.10, e=0.28, dens=1 / 700, nuc=1.00, spindle=False, fib=0.05),
    "smooth muscle": dict(h=0.06, e=0.85, dens=1 / 900, nuc=0.80, spindle=True, fib=0.15),
    "necrosis":      dict(h=0.07, e=0.42, dens=1 / 500, nuc=0.55, spindle=False, fib=0.0),
    "background":    dict(h=0.00, e=0.02, dens=0.0, nuc=0.0, spindle=False, fib=0.0),
}


def _field(rng: np.random.Generator, n: int, cell: int, sigma: float, ys=None, xs=None) -> np.ndarray:
    """Smooth unit-SD noise on an (n, n) grid with features about ``cell * sigma`` px.

    With ``ys, xs`` (pixel indices), only those pixels are returned (bilinear lookup), shape (k,).
    """
    m = max(n // cell, 4)
    f = ndimage.gaussian_filter(rng.standard_normal((m, m)).astype(np.float32), sigma, mode="wrap")
    f = (f - f.mean()) / (f.std() + 1e-6)
    if ys is None:
        return ndimage.zoom(f, n / m, order=1, mode="grid-wrap", grid_mode=True)
    coords = np.stack([(np.asarray(ys) + 0.5) * m / n - 0.5, (np.asarray(xs) + 0.5) * m / n - 0.5])
    return ndimage.map_coordinates(f, coords, order=1, mode="grid-wrap")


def _kernel(sy: float, sx: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets (dy, dx) and weights (peak 1) of an axis-aligned Gaussian nucleus."""
    ry, rx = int(np.ceil(2.5 * sy)), int(np.ceil(2.5 * sx))
    dy, dx = np.meshgrid(np.arange(-ry, ry + 1), np.arange(-rx, rx + 1), indexing="ij")
    w = np.exp(-0.5 * ((dy / sy) ** 2 + (dx / sx) ** 2))
    return dy.ravel(), dx.ravel(), w.ravel()


#: Nucleus shapes: spindle along x, spindle along y, round.
_KERNELS = (_kernel(1.5, 4.5), _kernel(4.5, 1.5), _kernel(2.0, 2.0))


def _stamp(size: int, ys: np.ndarray, xs: np.ndarray, amp: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Sum of nuclei (kernel ``_KERNELS[kind]`` scaled by ``amp``) centred at (ys, xs); (size, size)."""
    pad = 16
    width = size + 2 * pad
    out = np.zeros(width * width, np.float64)
    for k, (dy, dx, w) in enumerate(_KERNELS):
        sel = kind == k
        if not sel.any():
            continue
        flat = ((ys[sel, None] + pad + dy) * width + (xs[sel, None] + pad + dx)).ravel()
        out += np.bincount(flat, (amp[sel, None] * w).ravel(), minlength=width * width)
    return out.reshape(width, width)[pad:-pad, pad:-pad].astype(np.float32)


def render(labels: np.ndarray, rng: np.random.Generator, tissue_appearance: float,
           acq: Acquisition) -> np.ndarray:
    """RGB uint8 image (h, w, 3) for a class-index map ``labels`` (h, w), h = w even.

    Stain backgrounds and fibres are computed at half resolution (the class map is blocky at
    4 px anyway); nuclei and pixel noise at full resolution.
    """
    size = labels.shape[0]
    half = size // 2
    lab = labels[::2, ::2]
    p = {c: dict(_P[c]) for c in CLASSES}
    t = float(np.clip(tissue_appearance, -3, 3))
    p["tumour"].update(dens=p["tumour"]["dens"] * np.exp(0.45 * t), nuc=0.95 * (1 + 0.15 * t),
                       h=0.12 * np.exp(0.25 * t))
    table = {k: np.array([p[c][k] for c in CLASSES], np.float32) for k in ("h", "e", "dens", "nuc", "fib")}
    spindle_cls = np.array([p[c]["spindle"] for c in CLASSES])

    glands = _field(rng, half, 4, 2.0)
    mucosa = lab == CLASSES.index("mucosa")
    lumen = mucosa & (glands > 0.9)
    epithelium = mucosa & (glands > 0.3) & ~lumen
    dens = table["dens"][lab] * 4.0  # per half-resolution pixel
    dens[epithelium] *= 6.0
    dens[lumen] = 0.0
    ys, xs = np.nonzero(rng.random(lab.shape, dtype=np.float32) < dens)
    cls = lab[ys, xs]
    fascicle = _field(rng, half, 8, 1.5, ys, xs) > 0  # spindle cells run in two directions
    kind = np.where(spindle_cls[cls], np.where(fascicle, 0, 1), 2)
    amp = table["nuc"][cls] * rng.uniform(0.8, 1.2, len(ys)).astype(np.float32)
    ys = 2 * ys + rng.integers(0, 2, len(ys))
    xs = 2 * xs + rng.integers(0, 2, len(xs))
    nuc = np.minimum(_stamp(size, ys, xs, amp, kind), 1.3)

    fib = ndimage.gaussian_filter(rng.standard_normal(lab.shape).astype(np.float32), (0.4, 2.5))
    fib /= fib.std() + 1e-6
    h = table["h"][lab]
    e = table["e"][lab] * (1 + table["fib"][lab] * fib)
    necrosis = lab == CLASSES.index("necrosis")
    ny, nx = np.nonzero(necrosis)
    e[ny, nx] *= 1 + 0.3 * _field(rng, half, 2, 2.0, ny, nx)
    h[epithelium] += 0.15  # basophilic glandular epithelium around the lumens
    h[lumen] *= 0.1
    e[lumen] *= 0.1
    h_vec, e_vec = _H * acq.stain_h, _E * acq.stain_e
    noise = rng.random((size, size), dtype=np.float32)
    noise -= 0.5
    noise *= np.float32(0.05)
    rgb = np.empty((size, size, 3), np.uint8)
    od = np.empty((size, size), np.float32)
    for c in range(3):  # channel by channel, in place: 4 M-pixel temporaries instead of 12 M
        base = h * h_vec[c] + np.clip(e, 0, None) * e_vec[c] + np.float32(0.04)
        od.reshape(half, 2, half, 2)[:] = base[:, None, :, None]
        od += nuc * h_vec[c]
        od += noise
        np.negative(od, out=od)
        np.exp(od, out=od)
        od *= np.float32(255.0)
        rgb[..., c] = od
    return rgb
