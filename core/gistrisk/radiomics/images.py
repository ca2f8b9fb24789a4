"""Read the CT: NRRD, NIfTI, MetaImage or a DICOM series folder, with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gistrisk.errors import InputError

# pydicom is imported inside the DICOM readers only: it adds about 0.25 s to every extraction (measured on
# top of this module's imports), which a case read from NRRD/NIfTI need not pay.

FRAME_OF_REFERENCE = "0020|0052"
MODALITY = "0008|0060"


def read_image(path: str | Path, *, patient: str | None = None) -> sitk.Image:
    """Read a 3-D image; a folder (or one of its .dcm files) is read as one DICOM series.

    Returns
    -------
    SimpleITK.Image, 3-D, scalar. DICOM images carry the series' Modality and
    FrameOfReferenceUID as metadata (tags 0008|0060, 0020|0052).

    Raises
    ------
    InputError for a missing, corrupt or truncated file, a folder without a series or with
    several, and a non-3-D or multi-component image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("image not found", file=str(path), patient=patient)
    if path.is_dir() or path.suffix.lower() in (".dcm", ".dicom"):
        img = _read_dicom_series(path, patient)
    else:
        try:
            img = sitk.ReadImage(str(path))
        except RuntimeError as e:
            raise InputError(f"cannot read image (corrupt, truncated or unsupported format): {_first_line(e)}",
                             file=str(path), patient=patient) from None
    if img.GetDimension() != 3:
        raise InputError(f"image must be 3-D, got {img.GetDimension()}-D", file=str(path), patient=patient)
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"image must be scalar, got {img.GetNumberOfComponentsPerPixel()} components per voxel",
                         file=str(path), patient=patient)
    return img


def _read_dicom_series(path: Path, patient: str | None) -> sitk.Image:
    folder = path if path.is_dir() else path.parent
    reader = sitk.ImageSeriesReader()
    series = list(reader.GetGDCMSeriesIDs(str(folder)))
    if path.is_file():  # one file named: the series it belongs to
        import pydicom  # noqa: PLC0415 - see the module top

        try:
            uid = str(pydicom.dcmread(str(path), stop_before_pixels=True).SeriesInstanceUID)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read DICOM file: {e}", file=str(path), patient=patient) from None
        series = [s for s in series if s == uid]
    if not series:
        raise InputError("no DICOM image series found in the folder", file=str(folder), patient=patient)
    if len(series) > 1:
        counts = ", ".join(f"{s} ({len(reader.GetGDCMSeriesFileNames(str(folder), s))} files)" for s in series)
        raise InputError(f"folder holds {len(series)} DICOM series; put one series per folder or name one of its "
                         f"files: {counts}", file=str(folder), patient=patient)
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    _check_series_files(folder, series[0], list(files), patient)
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        img = reader.Execute()
    except RuntimeError as e:
        raise InputError(f"cannot read DICOM series (corrupt or truncated slice?): {_first_line(e)}",
                         file=str(folder), patient=patient) from None
    for tag in (MODALITY, FRAME_OF_REFERENCE):
        if reader.HasMetaDataKey(0, tag):
            img.SetMetaData(tag, reader.GetMetaData(0, tag).strip())
    return img


def _check_series_files(folder: Path, uid: str, files: list[str], patient: str | None) -> None:
    """GDCM silently drops unreadable slices; find them, and gaps, before reading.

    Raises InputError for a truncated/corrupt slice of the series and for missing slices.
    """
    import pydicom  # noqa: PLC0415 - see the module top

    listed = {Path(f).resolve() for f in files}
    positions = []
    for f in sorted(p for p in folder.iterdir() if p.is_file()):
        if not _has_dicom_preamble(f):
            continue  # README, licence, thumbnails
        try:
            ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"corrupt or truncated DICOM file in the series folder: {e}", file=str(f),
                             patient=patient) from None
        if "SeriesInstanceUID" not in ds or "SOPClassUID" not in ds:
            raise InputError("corrupt or truncated DICOM file in the series folder (no SeriesInstanceUID/"
                             "SOPClassUID could be read)", file=str(f), patient=patient)
        if str(ds.SeriesInstanceUID) != uid or "Rows" not in ds:
            continue
        expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("BitsAllocated", 16)) // 8 * int(
            ds.get("NumberOfFrames", 1) or 1) * int(ds.get("SamplesPerPixel", 1))
        uncompressed = not ds.file_meta.TransferSyntaxUID.is_compressed
        if f.resolve() not in listed or (uncompressed and f.stat().st_size < expected):
            raise InputError("truncated or corrupt DICOM slice (its pixel data is incomplete or unreadable)",
                             file=str(f), patient=patient)
        if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
            o = np.asarray(ds.ImageOrientationPatient, float)
            positions.append(float(np.dot(np.cross(o[:3], o[3:]), np.asarray(ds.ImagePositionPatient, float))))
    if len(positions) > 2:
        z = np.sort(np.asarray(positions))
        gaps = np.diff(z)
        step = float(np.median(gaps))
        if step <= 0 or np.any(np.abs(gaps - step) > 0.1 * abs(step) + 1e-3):
            worst = int(np.argmax(np.abs(gaps - step)))
            raise InputError(f"DICOM series has missing slices or uneven spacing: gap of {gaps[worst]:.3g} mm "
                             f"between slices at {z[worst]:.3f} and {z[worst + 1]:.3f} mm (typical "
                             f"{step:.3g} mm)", file=str(folder), patient=patient)


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def check_image(img: sitk.Image, *, modality: str = "CT", file: str | None = None,
                patient: str | None = None) -> None:
    """Values must be finite; a CT must be in Hounsfield units (air and fat are below 0).

    Parameters
    ----------
    modality : "CT" checks for HU; anything else (e.g. "MR") checks finiteness only.
    """
    arr = sitk.GetArrayViewFromImage(img)
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        n_bad = int(bad.sum())
        if n_bad:
            k, j, i = (int(x[0]) for x in np.nonzero(bad))
            raise InputError(f"image has {n_bad} NaN/inf voxels (first at index i={i}, j={j}, k={k})",
                             file=file, patient=patient)
    if modality.upper() == "CT":
        tag = img.GetMetaData(MODALITY) if img.HasMetaDataKey(MODALITY) else None
        if tag and tag.upper() != "CT":
            raise InputError(f"DICOM modality is {tag}, not CT (pass modality other than CT to extract anyway)",
                             file=file, patient=patient)
        lo = float(arr.min())
        if lo >= 0:
            raise InputError(f"image does not look like CT in Hounsfield units: values never go below 0 "
                             f"(min {lo:g}, max {float(arr.max()):g}); air is about -1000 HU. If it is CT stored "
                             f"without its rescale slope/intercept, convert to HU; if it is not CT, set the "
                             f"modality (e.g. MR)", file=file, patient=patient)


def geometry(img: sitk.Image) -> dict:
    """Size, spacing, origin and direction as plain lists (for diagnostics)."""
    return {"size": list(img.GetSize()), "spacing": [float(x) for x in img.GetSpacing()],
            "origin": [float(x) for x in img.GetOrigin()], "direction": [float(x) for x in img.GetDirection()]}


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # ITK messages start with a file/line location; the useful part is the last line
    return lines[-1] if lines else type(e).__name__
