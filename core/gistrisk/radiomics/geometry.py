"""Put the mask on the image grid: check size/spacing/origin/direction, resample if needed."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from gistrisk.errors import InputError

TOL_MM = 1e-3  # origin/spacing tolerance (mm), as PyRadiomics' default geometryTolerance
TOL_DIR = 1e-4


def grid_differences(image: sitk.Image, mask: sitk.Image) -> list[str]:
    """Human-readable differences between the two grids; empty when the mask is on the image grid."""
    out = []
    if image.GetSize() != mask.GetSize():
        out.append(f"size {mask.GetSize()} vs image {image.GetSize()}")
    if not np.allclose(image.GetSpacing(), mask.GetSpacing(), atol=TOL_MM, rtol=0):
        out.append(f"spacing {_r(mask.GetSpacing())} vs image {_r(image.GetSpacing())}")
    if not np.allclose(image.GetOrigin(), mask.GetOrigin(), atol=TOL_MM, rtol=0):
        out.append(f"origin {_r(mask.GetOrigin())} vs image {_r(image.GetOrigin())}")
    if not np.allclose(image.GetDirection(), mask.GetDirection(), atol=TOL_DIR, rtol=0):
        out.append(f"direction {_r(mask.GetDirection())} vs image {_r(image.GetDirection())}")
    return out


def align_mask(image: sitk.Image, mask: sitk.Image, *, label: int, policy: str = "resample",
               file: str | None = None, patient: str | None = None) -> tuple[sitk.Image, list[str]]:
    """Return the mask on the image grid, and warnings.

    Parameters
    ----------
    policy : "resample" (nearest neighbour onto the image grid, with a warning) or "strict"
        (any difference is an error).

    Raises
    ------
    InputError when the grids differ under "strict", or when the ROI (voxels == label) does not lie
    wholly inside the image after resampling.
    """
    diffs = grid_differences(image, mask)
    if not diffs:
        if _same_header(image, mask):
            return mask, []
        out = sitk.Image(mask)
        out.CopyInformation(image)  # remove sub-tolerance float noise so PyRadiomics agrees
        return out, []
    if policy == "strict":
        raise InputError("mask is not on the image grid: " + "; ".join(diffs), file=file, patient=patient)
    if policy != "resample":
        raise ValueError(f"unknown geometry policy {policy!r}")
    roi = sitk.Cast(mask == label, sitk.sitkUInt8)
    before = _physical_volume(roi)
    res = sitk.Resample(roi, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    after = _physical_volume(res)
    if before > 0 and after < 0.5 * before:
        raise InputError(f"mask does not lie on the image: after resampling onto the image grid only "
                         f"{after:.0f} of {before:.0f} mm^3 of the ROI remain ({'; '.join(diffs)})",
                         file=file, patient=patient)
    res = sitk.Cast(res, sitk.sitkUInt32) * label
    return res, [f"mask resampled (nearest neighbour) onto the image grid: {'; '.join(diffs)}; "
                 f"ROI volume {before:.1f} -> {after:.1f} mm^3"]


def _same_header(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and a.GetSpacing() == b.GetSpacing() and a.GetOrigin() == b.GetOrigin()
            and a.GetDirection() == b.GetDirection())


def _physical_volume(binary: sitk.Image) -> float:
    arr = sitk.GetArrayViewFromImage(binary)
    return float(np.count_nonzero(arr)) * float(np.prod(binary.GetSpacing()))


def _r(v) -> tuple:
    return tuple(round(float(x), 4) for x in v)
