"""Perturbed copies of a CT for the robustness run: Gaussian noise, coarser voxels, both (Zwanenburg et al. 2019)."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

PERTURBATIONS = ("noise", "resample", "noise_resample")


def add_noise(image: sitk.Image, sd: float, rng: np.random.Generator) -> sitk.Image:
    """``image`` + Gaussian noise of SD ``sd`` (HU), as float32 on the same grid."""
    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr += rng.normal(0.0, sd, arr.shape).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out


def resample_coarser(image: sitk.Image, factor: float) -> sitk.Image:
    """Resample to ``factor`` x the spacing (linear interpolation) over the same field of view.

    The new grid starts at the same corner as the old one (first voxel edge, not centre), so the
    volume covered is the same up to less than one new voxel at the far end.
    """
    spacing = np.asarray(image.GetSpacing(), float)
    size = np.asarray(image.GetSize(), int)
    new_spacing = spacing * factor
    new_size = np.maximum(1, np.floor(size * spacing / new_spacing + 1e-6)).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), float) + direction @ ((new_spacing - spacing) / 2)
    arr = sitk.GetArrayViewFromImage(image)
    return sitk.Resample(image, [int(s) for s in new_size], sitk.Transform(), sitk.sitkLinear,
                         [float(o) for o in origin], [float(s) for s in new_spacing], image.GetDirection(),
                         float(arr.min()), sitk.sitkFloat32)


def perturb(image: sitk.Image, kind: str, *, noise_hu: float, spacing_factor: float,
            rng: np.random.Generator) -> sitk.Image:
    """One perturbed copy: ``kind`` is "noise", "resample" or "noise_resample" (resample, then noise)."""
    if kind == "noise":
        return add_noise(image, noise_hu, rng)
    if kind == "resample":
        return resample_coarser(image, spacing_factor)
    if kind == "noise_resample":
        return add_noise(resample_coarser(image, spacing_factor), noise_hu, rng)
    raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}")


def case_rng(seed: int, case_index: int, repeat: int, kind: str) -> np.random.Generator:
    """The generator of one perturbed copy; depends only on (seed, case, repeat, kind), not on run order."""
    return np.random.default_rng([int(seed), int(case_index), int(repeat), PERTURBATIONS.index(kind)])
