"""The Apply workflow for one case, from MRML nodes to MRML results.

``run_case`` checks the inputs, extracts radiomics, predicts, and returns a
:class:`CaseResult`; ``write_results`` puts it into a table node and a plot
chart. Both take nodes, never ``slicer.mrmlScene``, so they run headless.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

from gistrisk.errors import InputError
from gistrisk.provenance import file_sha256
from gistrisk.radiomics.params import resolve_params

from .clinical_form import parse_values
from .mrml_convert import (
    check_ct_volume,
    check_segment_geometry,
    dataframe_to_table_node,
    largest_diameter_mm,
    node_label,
    segment_to_sitk,
    volume_to_sitk,
)
from .prediction import PatientPrediction, load_bundle, model_form, predict_patient, read_pathology
from .radiomics_step import Cancelled, RadiomicsResult, compute_radiomics

ProgressCallback = Callable[[float, str], None]

CHART_NAME = "GISTRisk RFS"
CURVE_COLORS = {"patient": (0.85, 0.10, 0.10), "low": (0.15, 0.55, 0.15), "high": (0.35, 0.35, 0.35)}


@dataclass
class CaseInputs:
    """Everything Apply needs for one patient (MRML nodes + files + form values)."""

    volume: Any
    segmentation: Any
    segment_id: str
    bundle_dir: str | None = None
    clinical_values: dict[str, Any] | None = None
    pathology_file: str | None = None  # None or "" = not available
    params: str | Path | None = None  # None = the GIST paper parameter file
    patient_id: str | None = None
    site_file: str | None = None  # `gistrisk harmonise` site file; None = features not harmonised


@dataclass
class CaseResult:
    """Radiomics, prediction (when a bundle was given), tumour size and timings of one case."""

    patient_id: str
    radiomics: RadiomicsResult
    diameter_mm: float
    prediction: PatientPrediction | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Short answer for the panel and the report."""
        out: dict[str, Any] = {"patient_id": self.patient_id, "largest_diameter_mm": round(self.diameter_mm, 1),
                               "pyradiomics": self.radiomics.provenance.get("pyradiomics", {})}
        p = self.prediction
        if p is not None:
            out.update({k: p.prediction.get(k) for k in ("risk", "risk_group", "rfs_12", "rfs_36", "rfs_60",
                                                          "modalities_used", "partial")})
            out["modified_nih"] = p.nih or f"not available (needs {', '.join(p.nih_missing)})"
            out["warnings"] = list(p.warnings)
        return out


def tumour_diameter_mm(volume: Any, segmentation: Any, segment_id: str) -> float:
    """Largest 3D diameter of the segment in mm (prefills the clinical size field)."""
    check_segment_geometry(segmentation, segment_id, volume)
    return largest_diameter_mm(segment_to_sitk(segmentation, segment_id, volume))


def radiomics_key(image: Any, mask: Any, params: str | Path | None) -> str:
    """Content key of a radiomics run: voxels, geometry, mask and parameter file (hash)."""
    h = hashlib.blake2b(digest_size=20)
    for img in (image, mask):
        h.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(img)).tobytes())
        h.update(repr((img.GetSpacing(), img.GetOrigin(), img.GetDirection(), img.GetPixelIDValue())).encode())
    h.update(file_sha256(resolve_params(params)).encode())
    return h.hexdigest()


def run_case(inputs: CaseInputs, progress: ProgressCallback | None = None,
             is_cancelled: Callable[[], bool] | None = None, cache: dict[str, RadiomicsResult] | None = None,
             cache_size: int = 4) -> CaseResult:
    """Check inputs, compute radiomics and, with a bundle, the prediction.

    Bad input raises InputError/BundleError before any long computation: the
    bundle, clinical form and pathology file are read before radiomics starts.
    With ``cache`` (a dict kept by the caller), Apply again on the same CT,
    segment and parameter file reuses the features: editing the clinical form
    and re-applying is instant.

    Raises
    ------
    Cancelled when ``is_cancelled()`` turns true; nothing is written then.
    """
    report = progress or (lambda f, m: None)
    t0 = time.perf_counter()
    check_ct_volume(inputs.volume)
    if inputs.segmentation is None:
        raise InputError("no segmentation selected: create the tumour segment first",
                         file=node_label(inputs.volume))
    check_segment_geometry(inputs.segmentation, inputs.segment_id, inputs.volume)
    patient_id = inputs.patient_id or node_label(inputs.volume)

    model = load_bundle(inputs.bundle_dir) if inputs.bundle_dir else None
    pathology = None
    if model is not None:
        # Typos in the form must not cost a radiomics run: check them first.
        parse_values(model_form(model), inputs.clinical_values or {}, patient_id)
        if inputs.pathology_file:
            pathology = read_pathology(inputs.pathology_file, model, patient_id)
    report(0.02, "converting volume and segment")
    image = volume_to_sitk(inputs.volume)
    mask = segment_to_sitk(inputs.segmentation, inputs.segment_id, inputs.volume)
    diameter = largest_diameter_mm(mask)
    t1 = time.perf_counter()

    key = radiomics_key(image, mask, inputs.params) if cache is not None else ""
    rad = cache.get(key) if cache is not None else None
    if rad is None:
        rad = compute_radiomics(image, mask, inputs.params,
                                progress=lambda f, m: report(0.05 + 0.9 * f, m), is_cancelled=is_cancelled)
        if cache is not None:
            while len(cache) >= cache_size:
                cache.pop(next(iter(cache)))
            cache[key] = rad
    else:
        report(0.95, "radiomics unchanged: reusing the features")
    t2 = time.perf_counter()
    if is_cancelled and is_cancelled():
        raise Cancelled("cancelled by the user")
    prediction = None
    if model is not None:
        report(0.96, "predicting")
        prediction = predict_patient(model, patient_id, rad.features, inputs.clinical_values, pathology,
                                     params_file=rad.provenance.get("params_file", ""), site_file=inputs.site_file)
    t3 = time.perf_counter()
    report(1.0, "done")
    timings = {"prepare_s": t1 - t0, "radiomics_s": t2 - t1, "predict_s": t3 - t2, "total_s": t3 - t0}
    return CaseResult(patient_id, rad, diameter, prediction, timings)


def result_table(result: CaseResult) -> Any:
    """Long table of the case: section, name, value (number) and text, shape (n, 4)."""
    rows: list[dict[str, Any]] = []

    def add(section: str, name: str, value: Any) -> None:
        if isinstance(value, (bool, np.bool_)):
            rows.append({"section": section, "name": name, "value": float(value), "text": str(bool(value))})
        elif isinstance(value, (int, float, np.integer, np.floating)) and value is not None:
            rows.append({"section": section, "name": name, "value": float(value), "text": ""})
        else:
            rows.append({"section": section, "name": name, "value": np.nan,
                         "text": "" if value is None else str(value)})

    add("case", "patient_id", result.patient_id)
    add("case", "largest_diameter_mm", result.diameter_mm)
    for k, v in result.radiomics.provenance.get("pyradiomics", {}).items():
        add("provenance", f"pyradiomics_{k}", v)
    add("provenance", "params_file", result.radiomics.provenance.get("params_file"))
    add("provenance", "params_sha256", result.radiomics.provenance.get("params_sha256"))
    run = result.radiomics.provenance.get("workers") or {}
    add("provenance", "radiomics_processes", run.get("workers"))
    for note in [run.get("why"), *run.get("notes", [])]:
        if note:
            add("provenance", "radiomics_processes_note", note)
    p = result.prediction
    if p is not None:
        for k, v in p.prediction.items():
            if k != "patient_id":
                add("prediction", k, v)
        add("prediction", "modified_nih", p.nih or f"not available (needs {', '.join(p.nih_missing)})")
        for i, w in enumerate(p.warnings, 1):
            add("warning", f"warning_{i}", w)
        for k, v in p.clinical.items():
            add("clinical", k, v)
    for k, v in result.radiomics.features.items():
        add("radiomics", k, v)
    return pd.DataFrame(rows, columns=["section", "name", "value", "text"])


def write_results(result: CaseResult, scene: Any, table_node: Any | None = None,
                  chart_node: Any | None = None) -> tuple[Any, Any | None]:
    """Put the case into MRML: a table node and (with a prediction) an RFS plot chart.

    Existing nodes are reused (Apply again overwrites them).

    Returns
    -------
    (table_node, chart_node or None)
    """
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"GISTRisk {result.patient_id}")
    dataframe_to_table_node(result_table(result), table_node)
    if result.prediction is None:
        return table_node, chart_node
    if chart_node is None:
        chart_node = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", CHART_NAME)
    _write_curves(result.prediction, scene, chart_node)
    return table_node, chart_node


def _write_curves(pred: PatientPrediction, scene: Any, chart: Any) -> None:
    curves = {f"Predicted RFS ({pred.patient_id})": ("patient", pred.curve["time"], pred.curve["survival"])}
    for group in ("low", "high"):
        g = pred.group_curves.get(group)
        if g:
            curves[f"Training cohort {group}-risk group (KM)"] = (group, g["time"], g["survival"])
    chart.RemoveAllPlotSeriesNodeIDs()
    for name, (kind, t, s) in curves.items():
        st, ss = _step(np.asarray(t, float), np.asarray(s, float))
        table = _named_node(scene, "vtkMRMLTableNode", f"{name} table")
        dataframe_to_table_node(pd.DataFrame({"time_months": st, "rfs": ss}), table)
        series = _named_node(scene, "vtkMRMLPlotSeriesNode", name)
        series.SetAndObserveTableNodeID(table.GetID())
        series.SetXColumnName("time_months")
        series.SetYColumnName("rfs")
        series.SetPlotType(series.PlotTypeScatter)
        series.SetMarkerStyle(series.MarkerStyleNone)
        series.SetLineWidth(3 if kind == "patient" else 2)
        series.SetLineStyle(series.LineStyleSolid if kind == "patient" else series.LineStyleDash)
        series.SetColor(*CURVE_COLORS[kind])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
    chart.SetTitle(f"Recurrence-free survival, {pred.patient_id}")
    chart.SetXAxisTitle("Months after surgery")
    chart.SetYAxisTitle("Recurrence-free survival")
    chart.SetYAxisRange(0.0, 1.0)
    chart.SetYAxisRangeAuto(False)


def _step(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A survival step function as a polyline: each drop drawn as a vertical segment."""
    finite = np.isfinite(t) & np.isfinite(s)
    t, s = t[finite], s[finite]
    if len(t) < 2:
        return t, s
    tt = np.repeat(t, 2)[1:]
    ss = np.repeat(s, 2)[:-1]
    return tt, ss


def _named_node(scene: Any, cls: str, name: str) -> Any:
    node = scene.GetFirstNode(name, cls, False, True)
    return node if node is not None else scene.AddNewNodeByClass(cls, name)
