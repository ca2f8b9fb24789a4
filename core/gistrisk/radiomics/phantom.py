"""A small deterministic CT phantom: the numbers a PyRadiomics and a parameter file compute.

A model bundle records the phantom's features at fit time; a host about to extract
features for that model (the Slicer module) extracts the phantom again with its own
PyRadiomics and compares numbers, not version strings: another parameter file, another
PyRadiomics release or a build that computes differently all show up as differences.

The voxels come from an integer hash, not from numpy's random generators, whose streams
are not promised to stay the same across numpy versions: the phantom is identical on
every machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gistrisk.radiomics.extract import extract_case

SIZE = 24  # voxels per side, 1 mm isotropic
SEED = 20240726
#: Agreement asked of every phantom feature: |new - recorded| <= ATOL + RTOL * |recorded|.
#: Far above float64 round-off and summation order (~1e-12 relative), far below what a change of
#: setting does (another binWidth moves texture features by percents).
RTOL = 1e-6
ATOL = 1e-9


def _uniform(i: np.ndarray, j: np.ndarray, k: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic uniform [0, 1) per voxel (splitmix64 finaliser of the voxel's index)."""
    h = (i.astype(np.uint64) * np.uint64(73856093)) ^ (j.astype(np.uint64) * np.uint64(19349663)) \
        ^ (k.astype(np.uint64) * np.uint64(83492791)) ^ np.uint64(seed)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return (h >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def phantom_arrays(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(CT in HU as int16, tumour mask as uint8), both (k, j, i) = (SIZE, SIZE, SIZE).

    Fat around soft tissue, and a textured ellipsoid tumour (semi-axes 9, 7 and 5.5 mm)
    with a darker necrotic core.
    """
    k, j, i = np.indices((SIZE, SIZE, SIZE))
    noise = _uniform(i, j, k, seed)
    c = (SIZE - 1) / 2.0
    r2 = ((i - c) / 9.0) ** 2 + ((j - c) / 7.0) ** 2 + ((k - c) / 5.5) ** 2
    body = ((i - c) / 11.0) ** 2 + ((j - c) / 10.0) ** 2 <= 1.0
    ct = np.where(body, 35.0 + 20.0 * (noise - 0.5), -100.0 + 30.0 * (noise - 0.5))
    tumour = r2 <= 1.0
    texture = 45.0 + 30.0 * np.sin(0.9 * i) * np.cos(0.7 * j) + 20.0 * np.sin(1.3 * k) + 40.0 * (noise - 0.5)
    ct = np.where(tumour, texture, ct)
    ct = np.where(r2 <= 0.2, 12.0 + 10.0 * (noise - 0.5), ct)
    return np.rint(ct).astype(np.int16), tumour.astype(np.uint8)


def phantom_images(seed: int = SEED) -> tuple[sitk.Image, sitk.Image]:
    """The phantom as SimpleITK images at 1 mm, origin 0, identity direction."""
    ct, mask = phantom_arrays(seed)
    image, label = sitk.GetImageFromArray(ct), sitk.GetImageFromArray(mask)
    for img in (image, label):
        img.SetSpacing((1.0, 1.0, 1.0))
    return image, label


def phantom_features(params: str | Path | None = None) -> dict[str, float]:
    """Features of the phantom with a parameter file (shipped name, path, or None = the GIST setting)."""
    image, mask = phantom_images()
    return dict(extract_case(image, mask, params, label=1, patient_id="phantom").features)


def phantom_differences(recorded: dict[str, float], new: dict[str, float], rtol: float = RTOL,
                        atol: float = ATOL) -> list[str]:
    """One line per feature that is missing on either side or differs beyond the tolerance.

    Both NaN counts as agreement; NaN against a number does not. None (a NaN a bundle stored as
    JSON null) counts as NaN.
    """
    out = []
    for name in sorted(set(recorded) | set(new)):
        if name not in new:
            out.append(f"{name}: {recorded[name]!r} (recorded), not computed here")
            continue
        if name not in recorded:
            out.append(f"{name}: not recorded, {new[name]!r} here")
            continue
        a, b = (math.nan if v is None else float(v) for v in (recorded[name], new[name]))
        if math.isnan(a) and math.isnan(b):
            continue
        if math.isnan(a) or math.isnan(b) or abs(b - a) > atol + rtol * abs(a):
            out.append(f"{name}: {a!r} (recorded) vs {b!r} (here)")
    return out
