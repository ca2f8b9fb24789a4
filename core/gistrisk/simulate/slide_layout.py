"""Where each tissue class lies on a simulated H&E section: shapely polygons in level-0 pixels.

A section of bowel/stomach wall: mucosa on top, the muscularis (smooth muscle) beneath it, a GIST
mass with a necrotic focus in the wall, stroma filling the rest of the tissue, glass around it.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from gistrisk.pathology.classes import CLASSES

#: Painting order: a later class covers an earlier one.
PRIORITY = ("background", "stroma", "smooth muscle", "mucosa", "tumour", "necrosis")


def _blob(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 120) -> Polygon:
    """An irregular closed outline: an ellipse with random low-order harmonics on its radius."""
    th = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 6):
        r += rng.uniform(0.0, 0.07) * np.cos(k * th + rng.uniform(0, 2 * np.pi))
    return Polygon(np.c_[cx + rx * r * np.cos(th), cy + ry * r * np.sin(th)]).buffer(0)


def _below(rng: np.random.Generator, y0: float, size: int, amp: float) -> Polygon:
    """Everything above a wavy line y = y0 + amp * sin(...) (y grows downwards)."""
    x = np.linspace(-size * 0.1, size * 1.1, 80)
    y = y0 + amp * np.sin(2 * np.pi * x / rng.uniform(0.6, 1.2) / size + rng.uniform(0, 2 * np.pi))
    pts = np.r_[np.c_[x, y], [[x[-1], -size], [x[0], -size]]]
    return Polygon(pts).buffer(0)


def layout(rng: np.random.Generator, size: int, necrosis_scale: float = 1.0) -> dict[str, BaseGeometry]:
    """Final (non-overlapping) region of each class, keyed by the names in ``CLASSES``.

    Parameters
    ----------
    size : level-0 width = height in pixels.
    necrosis_scale : multiplies the radius of the necrotic focus (0 = none).
    """
    s = float(size)
    frame = box(0, 0, s, s)
    tissue = _blob(rng, s * rng.uniform(0.47, 0.53), s * rng.uniform(0.47, 0.53),
                   s * rng.uniform(0.40, 0.45), s * rng.uniform(0.38, 0.44)).intersection(frame)
    top = tissue.bounds[1]
    y_muc = top + s * rng.uniform(0.14, 0.2)
    y_mus = y_muc + s * rng.uniform(0.1, 0.14)
    shapes = {
        "stroma": tissue,
        "mucosa": _below(rng, y_muc, size, s * 0.02),
        "smooth muscle": _below(rng, y_mus, size, s * 0.025),
        "tumour": _blob(rng, s * rng.uniform(0.45, 0.55), s * rng.uniform(0.62, 0.68),
                        s * rng.uniform(0.26, 0.32), s * rng.uniform(0.22, 0.27)),
    }
    tum_c = shapes["tumour"].centroid
    r_nec = s * 0.07 * necrosis_scale
    shapes["necrosis"] = (_blob(rng, tum_c.x + rng.uniform(-0.05, 0.05) * s, tum_c.y, r_nec, r_nec * 0.8)
                          if r_nec > 4 else Polygon())
    regions: dict[str, BaseGeometry] = {}
    taken = Polygon()
    for name in PRIORITY[::-1]:  # highest priority first, each takes what is left
        if name == "background":
            continue
        geom = shapes[name].intersection(tissue).difference(taken)
        regions[name] = geom
        taken = taken.union(geom)
    regions["background"] = frame.difference(tissue)
    return {c: regions[c] for c in CLASSES}


def rasterise(regions: dict[str, BaseGeometry], size: int, step: int = 4) -> np.ndarray:
    """Class index (position in ``CLASSES``) per level-0 pixel; uint8 (size, size).

    Evaluated on a grid of ``step`` pixels (pixel centres) and repeated, so edges are ``step`` px blocky.
    """
    n = size // step
    c = (np.arange(n) + 0.5) * step
    xx, yy = np.meshgrid(c, c)
    lab = np.full((n, n), CLASSES.index("background"), np.uint8)
    for name in PRIORITY[1:]:
        geom = regions[name]
        if geom.is_empty:
            continue
        shapely.prepare(geom)
        lab[shapely.contains_xy(geom, xx, yy)] = CLASSES.index(name)
    return np.repeat(np.repeat(lab, step, 0), step, 1)
