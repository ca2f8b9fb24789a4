"""One case: CT + mask -> PyRadiomics features (``<imageType>_<class>_<feature>``) and diagnostics."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics import featureextractor

from gistrisk.errors import InputError
from gistrisk.radiomics import parallel
from gistrisk.radiomics.geometry import align_mask
from gistrisk.radiomics.images import check_image, geometry, read_image
from gistrisk.radiomics.masks import read_mask
from gistrisk.radiomics.params import load_params, params_sha256, resolve_params


@dataclass
class CaseFeatures:
    """Features of one case.

    Attributes
    ----------
    features : name -> value, names ``<imageType>_<class>_<feature>`` (e.g. ``original_glcm_Contrast``).
    diagnostics : PyRadiomics' ``diagnostics_*`` entries plus ``gistrisk_*`` entries (geometry,
        parameter file and its sha256, warnings; ``gistrisk_parallel`` when asked for more than one
        worker: processes used, and why fewer if so); JSON-serialisable.
    """

    features: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)


def choose_label(mask: sitk.Image, label: int | None, *, file: str | None = None,
                 patient: str | None = None) -> int:
    """The label to extract: the one asked for (it must be present), or the only one present."""
    arr = sitk.GetArrayViewFromImage(mask)
    present = [int(v) for v in np.unique(arr[arr != 0])]  # unique of the ROI only: fast on a 512^2 CT
    if not present:
        raise InputError("mask is empty: no voxel is labelled", file=file, patient=patient)
    if label is None:
        if len(present) == 1:
            return present[0]
        raise InputError(f"mask has several labels {present}; choose one with --label", file=file, patient=patient)
    if label not in present:
        raise InputError(f"label {label} is not in the mask; labels present: {present}", file=file, patient=patient)
    return label


def check_roi(mask: sitk.Image, label: int, *, force2d: bool = False, file: str | None = None,
              patient: str | None = None) -> dict:
    """The ROI must have more than one voxel and, for 3-D features, extend over >1 voxel on every axis.

    Returns
    -------
    dict with ``voxels`` and ``bbox_size`` (i, j, k).
    """
    arr = sitk.GetArrayViewFromImage(mask) == label  # (k, j, i)
    n = int(arr.sum())
    if n == 0:
        raise InputError(f"mask is empty: no voxel has label {label}", file=file, patient=patient)
    if n == 1:
        raise InputError(f"ROI (label {label}) is a single voxel: texture and shape features are undefined",
                         file=file, patient=patient)
    nz = np.nonzero(arr)
    extent = [int(nz[a].max() - nz[a].min() + 1) for a in (2, 1, 0)]  # i, j, k
    flat = [ax for ax, e in zip("ijk", extent) if e == 1]
    if flat and not force2d:
        raise InputError(f"ROI (label {label}) is flat: one voxel thick along axis {','.join(flat)} "
                         f"(bounding box {extent[0]}x{extent[1]}x{extent[2]} voxels); 3-D shape/texture needs "
                         f"at least 2 slices (or set force2D: true in the parameter file)", file=file, patient=patient)
    return {"voxels": n, "bbox_size": extent}


def extract_case(image: sitk.Image, mask: sitk.Image, params: str | Path | None = None,
                 label: int | None = None, *, modality: str = "CT", geometry_policy: str = "resample",
                 patient_id: str | None = None, image_file: str | None = None,
                 mask_file: str | None = None, workers: int | None = 1,
                 idle_imports: Sequence[str] | None = None, started: parallel.Started | None = None) -> CaseFeatures:
    """Extract PyRadiomics features for one case.

    Parameters
    ----------
    image : 3-D CT (HU) as SimpleITK image.
    mask : label image (any grid; resampled onto the image grid with a warning if it differs).
    params : shipped name (``"gist_ct_paper"``), path to a YAML/JSON file, or None (GIST paper setting).
    label : label value of the ROI; None = the only label present.
    modality : "CT" requires HU values (min < 0); other values skip that check.
    geometry_policy : "resample" or "strict" (see :func:`gistrisk.radiomics.geometry.align_mask`).
    patient_id, image_file, mask_file : named in error messages.
    workers : processes sharing this case's image types (None or 0 = the available cores, at most 4; 1 =
        PyRadiomics' own sequential ``execute``). Same features, order and warnings either way; see
        :mod:`gistrisk.radiomics.parallel`. Keep 1 inside a cohort's worker processes.
    idle_imports : with workers, what this process imports while it waits on them (see
        :func:`gistrisk.radiomics.parallel.execute`; None = what a later call's filters need).
    started : worker processes begun before the image was read (:func:`gistrisk.radiomics.parallel.start`);
        used and closed here, also when the case is refused.

    Returns
    -------
    CaseFeatures

    Raises
    ------
    InputError for bad input (empty/one-voxel/flat ROI, missing label, off-grid mask, not CT, NaN).
    """
    ctx = {"file": mask_file, "patient": patient_id}
    try:
        path = resolve_params(params)
        cfg = load_params(path)
        setting = cfg.get("setting") or {}
        check_image(image, modality=modality, file=image_file, patient=patient_id)
        label = choose_label(mask, label, **ctx)
        mask, warnings = align_mask(image, mask, label=label, policy=geometry_policy, **ctx)
        roi = check_roi(mask, label, force2d=bool(setting.get("force2D", False)), **ctx)
    except BaseException:
        if started is not None:
            started.close()
        raise

    extractor = _extractor(path)
    records = _capture_radiomics_warnings()
    run = None
    try:
        if workers == 1:
            result = extractor.execute(image, mask, label=label)
            radiomics_warnings = [r.getMessage() for r in records.records]
        else:
            result, radiomics_warnings, run = parallel.execute(extractor, image, mask, label, workers,
                                                               idle_imports=idle_imports, started=started)
    except (ValueError, RuntimeError, AssertionError) as e:
        raise InputError(f"PyRadiomics could not extract features: {e}", file=image_file,
                         patient=patient_id) from None
    finally:
        _release(records)

    features: dict[str, float] = {}
    diagnostics: dict[str, Any] = {}
    for k, v in result.items():
        if k.startswith("diagnostics_"):
            diagnostics[k] = _jsonable(v)
        else:
            # a few features come through eigenvalues numpy may return as complex (zero imaginary part):
            # the real part, as float() took it before numpy 2.5 began to warn
            features[k] = float(np.real(v))
    g = geometry(image)
    diagnostics.update({
        "gistrisk_patient_id": patient_id,
        "gistrisk_image_file": image_file,
        "gistrisk_mask_file": mask_file,
        "gistrisk_label": label,
        "gistrisk_roi_voxels": roi["voxels"],
        "gistrisk_roi_bbox_size": roi["bbox_size"],
        "gistrisk_image_size": g["size"],
        "gistrisk_image_spacing": g["spacing"],
        "gistrisk_image_origin": g["origin"],
        "gistrisk_image_direction": g["direction"],
        "gistrisk_params_file": str(path),
        "gistrisk_params_sha256": params_sha256(path),
        "gistrisk_modality": modality,
        "gistrisk_warnings": warnings + radiomics_warnings,
    })
    if run is not None:
        diagnostics["gistrisk_parallel"] = run.as_dict()
    return CaseFeatures(features, diagnostics)


def extract_files(image_path: str | Path, mask_path: str | Path, *, label: int | None = None,
                  segment: str | None = None, params: str | Path | None = None, patient_id: str | None = None,
                  modality: str = "CT", geometry_policy: str = "resample", workers: int | None = 1,
                  idle_imports: Sequence[str] | None = None) -> CaseFeatures:
    """Read a CT (NRRD/NIfTI/DICOM folder) and a mask (label map, .seg.nrrd, RTSTRUCT, SEG) and extract.

    ``segment`` chooses a Slicer segment, RTSTRUCT ROI or SEG segment by name; ``label`` a label value
    (label map / .seg.nrrd LabelValue) or ROI/segment number (DICOM). ``workers``, ``idle_imports``: as for
    :func:`extract_case`.
    """
    # the worker processes start first: their first-use imports (0.6 s) overlap reading and checking the case
    started = None
    if workers != 1:
        path = resolve_params(params)
        load_params(path)  # a parameter file PyRadiomics would refuse: one clear error, no worker started
        started = parallel.start(_extractor(path), workers)
    try:
        image = read_image(image_path, patient=patient_id)
        loaded = read_mask(mask_path, image, label=label, segment=segment, patient=patient_id)
    except BaseException:
        if started is not None:
            started.close()
        raise
    out = extract_case(image, loaded.image, params, loaded.label, modality=modality,
                       geometry_policy=geometry_policy, patient_id=patient_id, image_file=str(image_path),
                       mask_file=str(mask_path), workers=workers, idle_imports=idle_imports, started=started)
    info = dict(loaded.info)
    out.diagnostics["gistrisk_warnings"] = info.pop("warnings", []) + out.diagnostics["gistrisk_warnings"]
    out.diagnostics["gistrisk_mask_source"] = info
    return out


_LOCAL = threading.local()


def _extractor(path: Path):
    """One PyRadiomics extractor per parameter file content and thread (``execute`` copies its settings,
    so reuse is safe; building one re-validates the file, which costs as much as a small case)."""
    key = (str(path), params_sha256(path))
    cache = _LOCAL.__dict__.setdefault("extractors", {})
    if key not in cache:
        cache.clear()
        cache[key] = featureextractor.RadiomicsFeatureExtractor(str(path))
    return cache[key]


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _capture_radiomics_warnings() -> _ListHandler:
    """Collect PyRadiomics warnings into the diagnostics instead of printing them per case."""
    radiomics.setVerbosity(logging.ERROR)
    h = _ListHandler()
    logging.getLogger("radiomics").addHandler(h)
    return h


def _release(h: _ListHandler) -> None:
    logging.getLogger("radiomics").removeHandler(h)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v
