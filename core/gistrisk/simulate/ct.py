"""A portal-venous CT crop around a GIST: fat and soft-tissue background, a lobulated tumour with
heterogeneous enhancement and a necrotic core, partial-volume blur and scanner noise.

Arrays are (z, y, x) as SimpleITK returns them; spacing is (x, y, z) in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull

from gistrisk.simulate.config import Acquisition


@dataclass
class CTCase:
    """One simulated CT.

    Attributes
    ----------
    hu : int16 array (z, y, x), Hounsfield units.
    mask : bool array (z, y, x), the tumour (necrosis included).
    spacing : (x, y, z) mm; origin : (x, y, z) mm, LPS, identity direction.
    diameter_cm : largest 3D diameter of the mask (voxel centres), cm.
    necrosis_fraction : share of tumour voxels that are necrotic.
    """

    hu: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    diameter_cm: float
    necrosis_fraction: float


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean, unit SD; shape ``shape``."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-6)


def largest_diameter_mm(mask: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """Largest distance between two voxel centres of ``mask`` (z, y, x), in mm."""
    edge = mask & ~ndimage.binary_erosion(mask)
    pts = np.argwhere(edge)[:, ::-1] * np.asarray(spacing, float)  # (n, 3) x, y, z mm
    if len(pts) < 2:
        return 0.0
    try:
        pts = pts[ConvexHull(pts).vertices]
    except Exception:  # flat or degenerate: all points are few anyway
        pass
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return float(d.max())


def _grid(size_mm: float, spacing: tuple[float, float, float], min_grid: tuple[int, int, int]):
    """Grid (z, y, x) large enough for the tumour with a margin; multiples of 16 in-plane, 8 in z."""
    nx = max(min_grid[0], int(np.ceil(1.5 * size_mm / spacing[0] / 16)) * 16)
    nz = max(min_grid[2], int(np.ceil(1.4 * size_mm / spacing[2] / 8)) * 8)
    return (nz, nx, nx)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """A random 3x3 rotation matrix (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _tumour_field(shape, spacing, centre_mm, semi_axes_mm, rot, lobes) -> np.ndarray:
    """Normalised ellipsoidal radius (1 = surface before lobulation) at every voxel; (z, y, x)."""
    z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    p = np.stack([x * spacing[0], y * spacing[1], z * spacing[2]], -1) - np.asarray(centre_mm, np.float32)
    q = p @ rot.astype(np.float32)
    return np.sqrt(((q / np.asarray(semi_axes_mm, np.float32)) ** 2).sum(-1)) - 0.07 * lobes


def simulate_ct(rng: np.random.Generator, size_cm: float, ct_texture: float, acq: Acquisition,
                min_grid: tuple[int, int, int] = (64, 64, 32)) -> CTCase:
    """Simulate one CT crop whose tumour's largest diameter is about ``size_cm``.

    ``ct_texture`` (standard normal) sets the heterogeneity of enhancement and the necrotic core:
    the radiomics signal that carries hazard.
    """
    sx, sy, sz = acq.ct_spacing_mm
    sp = (float(sx), float(sy), float(sz))
    size_mm = 10.0 * size_cm
    shape = _grid(size_mm, sp, min_grid)
    extent = np.array([shape[2] * sp[0], shape[1] * sp[1], shape[0] * sp[2]])
    centre = extent / 2 + rng.uniform(-0.05, 0.05, 3) * extent
    ratios = np.array([1.0, rng.uniform(0.7, 0.95), rng.uniform(0.6, 0.9)])
    rot = _rotation(rng)
    lobes = _smooth_noise(rng, shape, np.array([8.0, 8.0, 8.0]) / np.array([sp[2], sp[1], sp[0]]))

    # The lobulated surface changes the diameter a little: measure and rescale once.
    semi = size_mm / 2 * ratios
    for _ in range(2):
        rho = _tumour_field(shape, sp, centre, semi, rot, lobes)
        d = largest_diameter_mm(rho < 1.0, sp)
        semi = semi * (size_mm / max(d, 1e-3))
    rho = _tumour_field(shape, sp, centre, semi, rot, lobes)
    mask = rho < 1.0
    if not mask.any():  # a 2 cm tumour on a coarse grid still gets its centre voxel
        mask[tuple(int(c) for c in np.round(centre / np.array(sp))[::-1])] = True

    # Background: fat with bowel loops / organs (soft tissue) and a little gas.
    org = _smooth_noise(rng, shape, np.array([3.0, 3.0, 3.0]) * 2.5 / np.array([sp[2], sp[1], sp[0]]))
    hu = np.where(org > 0.2, 35.0, -95.0).astype(np.float32)
    hu[org > 2.3] = -700.0
    hu[(rho >= 1.0) & (rho < 1.2 + 0.1 * lobes)] = -90.0  # the fat plane around an exophytic mass
    # Tumour: enhancement with heterogeneity that grows with ct_texture, a brighter rim, necrosis.
    het = _smooth_noise(rng, shape, np.array([4.0, 4.0, 4.0]) / np.array([sp[2], sp[1], sp[0]]))
    het_sd = 9.0 * np.exp(0.45 * ct_texture)
    enh = rng.normal(68.0, 6.0)
    tum = enh + het_sd * het + 12.0 * np.clip(rho - 0.75, 0, 1) / 0.25
    nec_r = float(np.clip(0.35 + 0.15 * ct_texture + 0.1 * np.log(size_cm / 5.0) + rng.normal(0, 0.05), 0.0, 0.75))
    necrotic = mask & (rho + 0.15 * het / 3.0 < nec_r)
    tum = np.where(necrotic, 22.0 + 4.0 * het, tum)
    hu = np.where(mask, tum, hu)
    hu = ndimage.gaussian_filter(hu, 0.6)  # partial volume
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 0.5)
    hu = hu + acq.ct_noise_hu * noise / noise.std()
    ox, oy, oz = (float(v) for v in -extent / 2)
    origin = (ox, oy, oz)
    return CTCase(hu=np.clip(np.round(hu), -1024, 3071).astype(np.int16), mask=mask, spacing=sp,
                  origin=origin, diameter_cm=largest_diameter_mm(mask, sp) / 10.0,
                  necrosis_fraction=float(necrotic.sum() / mask.sum()))
