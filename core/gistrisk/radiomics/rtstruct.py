"""DICOM RTSTRUCT: rasterise one ROI's planar contours onto the CT grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from skimage.draw import polygon

from gistrisk.errors import InputError


def roi_names(ds) -> dict[int, str]:
    """ROI number -> ROI name of an RTSTRUCT dataset."""
    return {int(r.ROINumber): str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])}


def physical_to_index(points: np.ndarray, ref: sitk.Image) -> np.ndarray:
    """Map physical points (N, 3) in LPS mm to continuous voxel indices (N, 3) as (i, j, k)."""
    d = np.asarray(ref.GetDirection(), float).reshape(3, 3)
    m = d @ np.diag(ref.GetSpacing())
    return np.linalg.solve(m, (points - np.asarray(ref.GetOrigin())).T).T


def rasterise_rtstruct(path: str | Path, ref: sitk.Image, *, roi: str | None = None,
                       roi_number: int | None = None, patient: str | None = None) -> tuple[sitk.Image, dict]:
    """Rasterise an RTSTRUCT ROI onto ``ref``'s grid.

    A voxel is inside when its centre is inside the contour on its slice; several contours on
    one slice combine by the even-odd rule (holes and islands, as DICOM specifies).

    Returns
    -------
    (mask, info): uint8 image on ``ref``'s grid (1 inside), and details (ROI name, contours used,
    contours skipped outside the image).
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(str(path))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read DICOM RTSTRUCT (corrupt or truncated): {e}", file=str(path),
                         patient=patient) from None
    names = roi_names(ds)
    if roi_number is None:
        if roi is None:
            if len(names) != 1:
                raise InputError(f"RTSTRUCT has {len(names)} ROIs; choose one by name (--segment): "
                                 f"{', '.join(names.values())}", file=str(path), patient=patient)
            roi_number = next(iter(names))
        else:
            hits = [n for n, name in names.items() if name == roi] or \
                   [n for n, name in names.items() if name.strip().lower() == roi.strip().lower()]
            if not hits:
                raise InputError(f"RTSTRUCT has no ROI named {roi!r}; it has: {', '.join(names.values()) or 'none'}",
                                 file=str(path), patient=patient)
            roi_number = hits[0]
    elif roi_number not in names:
        raise InputError(f"RTSTRUCT has no ROI number {roi_number}; it has: "
                         f"{', '.join(f'{k}={v}' for k, v in names.items())}", file=str(path), patient=patient)

    ref_for = ref.GetMetaData("0020|0052") if ref.HasMetaDataKey("0020|0052") else None
    ss_for = {str(r.ReferencedFrameOfReferenceUID) for r in getattr(ds, "StructureSetROISequence", [])
              if int(r.ROINumber) == roi_number and "ReferencedFrameOfReferenceUID" in r}
    if ref_for and ss_for and ref_for not in ss_for:
        raise InputError(f"RTSTRUCT ROI {names[roi_number]!r} belongs to frame of reference {ss_for.pop()}, "
                         f"the CT to {ref_for}: they are not the same patient space", file=str(path), patient=patient)

    contours = []
    for rc in getattr(ds, "ROIContourSequence", []):
        if int(rc.ReferencedROINumber) == roi_number:
            contours = [c for c in getattr(rc, "ContourSequence", [])]
    nx, ny, nz = ref.GetSize()
    arr = np.zeros((nz, ny, nx), dtype=np.uint8)
    used = skipped = 0
    for c in contours:
        if str(getattr(c, "ContourGeometricType", "CLOSED_PLANAR")) not in ("CLOSED_PLANAR", ""):
            continue  # points and open lines enclose no volume
        pts = np.asarray(c.ContourData, float).reshape(-1, 3)
        if len(pts) < 3:
            continue
        idx = physical_to_index(pts, ref)
        k_round = np.round(idx[:, 2])
        if np.ptp(idx[:, 2]) > 0.1 or not np.allclose(idx[:, 2], k_round, atol=0.25):
            raise InputError(f"ROI {names[roi_number]!r}: a contour does not lie on a CT slice "
                             f"(slice index {idx[:, 2].min():.2f}..{idx[:, 2].max():.2f}); the RTSTRUCT was drawn "
                             f"on another grid", file=str(path), patient=patient)
        k = int(k_round[0])
        if not 0 <= k < nz:
            skipped += 1
            continue
        rr, cc = polygon(idx[:, 1], idx[:, 0], shape=(ny, nx))
        sl = np.zeros((ny, nx), dtype=bool)
        sl[rr, cc] = True
        arr[k] ^= sl.astype(np.uint8)  # even-odd: a contour inside another is a hole
        used += 1
    if not contours:
        raise InputError(f"RTSTRUCT ROI {names[roi_number]!r} has no contours", file=str(path), patient=patient)
    mask = sitk.GetImageFromArray(arr)
    mask.CopyInformation(ref)
    return mask, {"roi_name": names[roi_number], "roi_number": roi_number, "contours": used,
                  "contours_outside_image": skipped}
