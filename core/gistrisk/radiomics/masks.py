"""Read the tumour mask: label map, Slicer .seg.nrrd, DICOM RTSTRUCT or DICOM SEG.

Every reader returns the mask as a SimpleITK image plus the label to use and what was chosen,
so the extraction (``extract.py``) checks geometry and ROI the same way for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import nrrd
import numpy as np
import SimpleITK as sitk
import slicerio

from gistrisk.errors import InputError
from gistrisk.radiomics.images import _first_line

# The DICOM readers (pydicom, highdicom, and gistrisk.radiomics.rtstruct which needs pydicom) are imported
# inside the functions that read DICOM: together they add about 0.5 s to every extraction (measured on top
# of this module's imports), which a label map or Slicer segmentation need not pay.


@dataclass
class LoadedMask:
    """A mask as read.

    Attributes
    ----------
    image : label image (uint8/int); a segment/ROI chosen by name is binary with label 1.
    label : the label to extract, or None to decide from the values present.
    info : what was read (kind, segment name, ROI, warnings).
    """

    image: sitk.Image
    label: int | None
    info: dict = field(default_factory=dict)


def read_mask(path: str | Path, reference: sitk.Image, *, label: int | None = None, segment: str | None = None,
              patient: str | None = None) -> LoadedMask:
    """Read any supported mask; ``reference`` is the CT (needed to rasterise RTSTRUCT contours)."""
    path = Path(path)
    if not path.exists():
        raise InputError("mask not found", file=str(path), patient=patient)
    if path.is_dir() or path.suffix.lower() in (".dcm", ".dicom"):
        return _read_dicom_mask(path, reference, label=label, segment=segment, patient=patient)
    if path.name.lower().endswith(".seg.nrrd"):
        return _read_slicer_seg(path, label=label, segment=segment, patient=patient)
    if segment is not None:
        raise InputError(f"segment {segment!r} given, but a plain label map has no segment names; use --label",
                         file=str(path), patient=patient)
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        raise InputError(f"cannot read mask (corrupt, truncated or unsupported format): {_first_line(e)}",
                         file=str(path), patient=patient) from None
    if img.GetNumberOfComponentsPerPixel() != 1 or img.GetDimension() != 3:
        raise InputError("mask must be a 3-D scalar label map", file=str(path), patient=patient)
    _check_label_values(img, str(path), patient)
    return LoadedMask(img, label, {"kind": "labelmap"})


def _check_label_values(img: sitk.Image, file: str, patient: str | None) -> None:
    """A label map holds whole numbers >= 0: an image given as the mask (the two swapped) would otherwise
    turn the voxels that happen to equal the label into a tumour."""
    values = sitk.GetArrayViewFromImage(img)
    low = values.min() if values.size else 0
    why = None
    if low < 0:
        why = f"it has negative values (minimum {low:g})"
    elif values.dtype.kind == "f":
        odd = values[~np.isfinite(values) | (values != np.round(values))]
        if odd.size:
            why = f"it has values that are not whole numbers (e.g. {odd.flat[0]:g})"
    if why:
        raise InputError(f"mask is not a label map: {why}; is it the image (--image and --mask swapped)?",
                         file=file, patient=patient)


# --- Slicer segmentation -------------------------------------------------------------------------

def _read_slicer_seg(path: Path, *, label: int | None, segment: str | None, patient: str | None) -> LoadedMask:
    try:
        seg = slicerio.read_segmentation(str(path))
    except OSError as e:
        if "kinds" in str(e) or "dimension" in str(e):
            return _read_old_slicer_seg(path, label=label, segment=segment, patient=patient)
        raise InputError(f"cannot read Slicer segmentation: {e}", file=str(path), patient=patient) from None
    except Exception as e:  # noqa: BLE001  (truncated gzip, bad header)
        raise InputError(f"cannot read Slicer segmentation (corrupt or truncated?): {e}", file=str(path),
                         patient=patient) from None
    segments = seg["segments"]
    chosen = _choose_segment(segments, label=label, segment=segment, file=str(path), patient=patient)
    voxels = np.asarray(slicerio.segment_mask(seg, chosen), dtype=np.uint8)  # (i, j, k)
    img = _image_from_ijk(voxels, np.asarray(seg["ijkToLPS"], float))
    info = {"kind": "slicer_seg", "segment_name": chosen.get("name"), "segment_id": chosen.get("id"),
            "segment_label_value": chosen.get("labelValue"), "segment_layer": chosen.get("layer")}
    return LoadedMask(img, 1, info)


def _choose_segment(segments: list[dict], *, label: int | None, segment: str | None, file: str,
                    patient: str | None) -> dict:
    names = [s.get("name") for s in segments]
    if segment is not None:
        hits = [s for s in segments if s.get("name") == segment or s.get("id") == segment]
        if not hits:
            raise InputError(f"no segment named {segment!r}; segments: {', '.join(map(str, names))}",
                             file=file, patient=patient)
        return hits[0]
    if label is not None:
        hits = [s for s in segments if s.get("labelValue") == label]
        if not hits:
            values = ", ".join(f"{s.get('name')}={s.get('labelValue')}" for s in segments)
            raise InputError(f"no segment with label value {label}; segments: {values}", file=file, patient=patient)
        if len(hits) > 1:  # overlapping segmentations reuse label values across layers
            raise InputError(f"label value {label} is used by {len(hits)} segments in different layers "
                             f"({', '.join(str(s.get('name')) for s in hits)}); choose by name (--segment)",
                             file=file, patient=patient)
        return hits[0]
    if len(segments) == 1:
        return segments[0]
    raise InputError(f"segmentation has {len(segments)} segments; choose one with --segment NAME or --label N: "
                     f"{', '.join(map(str, names))}", file=file, patient=patient)


def _image_from_ijk(voxels: np.ndarray, ijk_to_lps: np.ndarray) -> sitk.Image:
    """(i, j, k) voxel array + 4x4 ijk->LPS matrix -> SimpleITK image."""
    m = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(2, 1, 0)))
    img.SetSpacing([float(s) for s in spacing])
    img.SetOrigin([float(x) for x in ijk_to_lps[:3, 3]])
    img.SetDirection([float(x) for x in (m / spacing).ravel()])
    return img


def _read_old_slicer_seg(path: Path, *, label: int | None, segment: str | None, patient: str | None) -> LoadedMask:
    """Slicer segmentations written before 4.11: 4-D with a trailing size-1 axis, ``space dimension``."""
    try:
        data, hdr = nrrd.read(str(path))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read Slicer segmentation (corrupt or truncated?): {e}", file=str(path),
                         patient=patient) from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"unsupported old Slicer segmentation layout, array shape {data.shape}", file=str(path),
                         patient=patient)
    dirs = np.asarray(hdr["space directions"], float)[:3, :3].T  # columns = i, j, k steps
    origin = np.asarray(hdr["space origin"], float)[:3]
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = dirs, origin
    segments = []
    n = 0
    while f"Segment{n}_ID" in hdr:
        lv = hdr.get(f"Segment{n}_LabelValue")
        segments.append({"id": hdr[f"Segment{n}_ID"], "name": hdr.get(f"Segment{n}_Name", hdr[f"Segment{n}_ID"]),
                         "labelValue": int(lv) if lv is not None else n + 1, "layer": 0})
        n += 1
    if not segments:
        raise InputError("no Segment0_ID in the header: not a Slicer segmentation", file=str(path), patient=patient)
    chosen = _choose_segment(segments, label=label, segment=segment, file=str(path), patient=patient)
    values = set(np.unique(data).tolist()) - {0}
    # files of that era store one binary labelmap per segment layer; with one segment, any non-zero voxel is it
    voxels = (data > 0) if len(segments) == 1 or values <= {1} else (data == chosen["labelValue"])
    img = _image_from_ijk(voxels.astype(np.uint8), affine)
    info = {"kind": "slicer_seg_legacy", "segment_name": chosen["name"], "segment_id": chosen["id"],
            "warnings": ["old (pre-4.11) Slicer segmentation format read with a fallback reader"]}
    return LoadedMask(img, 1, info)


# --- DICOM RTSTRUCT / SEG --------------------------------------------------------------------------

def _read_dicom_mask(path: Path, reference: sitk.Image, *, label: int | None, segment: str | None,
                     patient: str | None) -> LoadedMask:
    import pydicom  # noqa: PLC0415 - see the module top

    candidates = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    found = []
    for p in candidates:
        try:
            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001
            if not path.is_dir():
                raise InputError(f"cannot read DICOM file (corrupt or truncated?): {e}", file=str(p),
                                 patient=patient) from None
            continue
        if str(getattr(ds, "Modality", "")) in ("RTSTRUCT", "SEG"):
            found.append((p, str(ds.Modality)))
    if not found:
        raise InputError("no DICOM RTSTRUCT or SEG found (Modality must be RTSTRUCT or SEG)", file=str(path),
                         patient=patient)
    if len(found) > 1:
        raise InputError(f"{len(found)} RTSTRUCT/SEG files found; name one: {', '.join(p.name for p, _ in found)}",
                         file=str(path), patient=patient)
    p, modality = found[0]
    if modality == "RTSTRUCT":
        from gistrisk.radiomics.rtstruct import rasterise_rtstruct  # noqa: PLC0415 - see the module top

        mask, info = rasterise_rtstruct(p, reference, roi=segment, roi_number=label, patient=patient)
        return LoadedMask(mask, 1, {"kind": "rtstruct", **info})
    return _read_dicom_seg(p, label=label, segment=segment, patient=patient)


def _read_dicom_seg(path: Path, *, label: int | None, segment: str | None, patient: str | None) -> LoadedMask:
    import highdicom as hd  # noqa: PLC0415 - see the module top

    try:
        seg = hd.seg.segread(str(path))
    except Exception as e:  # noqa: BLE001
        raise InputError(f"cannot read DICOM SEG (corrupt or truncated?): {e}", file=str(path),
                         patient=patient) from None
    descs = {int(d.SegmentNumber): str(d.SegmentLabel) for d in seg.SegmentSequence}
    if segment is not None:
        nums = [n for n, name in descs.items() if name == segment]
        if not nums:
            raise InputError(f"DICOM SEG has no segment named {segment!r}; it has: {', '.join(descs.values())}",
                             file=str(path), patient=patient)
        number = nums[0]
    elif label is not None:
        if label not in descs:
            raise InputError(f"DICOM SEG has no segment number {label}; it has: "
                             f"{', '.join(f'{k}={v}' for k, v in descs.items())}", file=str(path), patient=patient)
        number = label
    elif len(descs) == 1:
        number = next(iter(descs))
    else:
        raise InputError(f"DICOM SEG has {len(descs)} segments; choose one by name (--segment): "
                         f"{', '.join(descs.values())}", file=str(path), patient=patient)
    try:
        vol = seg.get_volume(segment_numbers=[number], combine_segments=True, relabel=True, dtype=np.uint8)
    except Exception as e:  # noqa: BLE001  (irregular slice spacing, missing frames)
        raise InputError(f"DICOM SEG does not form a regular 3-D volume: {e}", file=str(path),
                         patient=patient) from None
    arr = np.asarray(vol.array)  # (slices, rows, columns)
    aff = np.asarray(vol.affine, float)  # index (slice, row, column) -> LPS
    ijk = np.eye(4)
    ijk[:3, 0], ijk[:3, 1], ijk[:3, 2], ijk[:3, 3] = aff[:3, 2], aff[:3, 1], aff[:3, 0], aff[:3, 3]
    img = _image_from_ijk(arr.transpose(2, 1, 0), ijk)  # to (column, row, slice) = (i, j, k)
    return LoadedMask(img, 1, {"kind": "dicom_seg", "segment_name": descs[number], "segment_number": number})
