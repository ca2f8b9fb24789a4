"""SlicerGISTRisk: recurrence-free survival risk of a GIST patient after surgery, inside 3D Slicer.

The radiologist picks the portal-venous CT and the tumour segment, a model
bundle folder, fills the clinical form (tumour size prefilled from the
segment) and optionally the slide-feature row from the pathology arm; Apply
computes radiomics, the unimodal scores, the fused risk, the risk group and
the predicted RFS curve, with the modified NIH category beside it.

The Logic (``SlicerGISTRiskLogic``) works without the widget; the computing
is in ``SlicerGISTRiskLib`` and ``gistrisk``.
"""


import json
import logging
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Annotated, Any, Optional

import qt
import slicer
import vtk
from slicer import vtkMRMLPlotChartNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from SlicerGISTRiskLib import dependencies

# Slicer imports this file at every application start-up, before the user has agreed to install the
# packages (dependencies.py). So only the standard library, Slicer's own modules and
# SlicerGISTRiskLib.dependencies are imported here; gistrisk, pandas and the other SlicerGISTRiskLib
# modules (which import gistrisk's stack) are imported inside the methods that use them, as is numpy,
# which only the self-test uses (0.06-0.2 s to import, measured).

MODULE_DIR = os.path.dirname(os.path.abspath(__file__))
# Inside Slicer gistrisk comes from the extension's install tree or the source checkout's core/.
dependencies.add_gistrisk_source(MODULE_DIR)

#: Parameters kept in the parameter node but not bound to a .ui widget (set by code).
UNBOUND_PARAMETERS = ("tumourSegmentId", "clinicalValuesJson")


#
# SlicerGISTRisk
#


class SlicerGISTRisk(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("GIST Risk")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = ["Segmentations", "SegmentEditor", "Plots", "Tables"]
        self.parent.contributors = ["SlicerGISTRisk developers (independent)"]
        self.parent.helpText = _(
            "Predicts recurrence-free survival after surgery for gastrointestinal stromal tumour (GIST) from "
            "portal-venous CT radiomics, clinical data and (optionally) H&amp;E slide features, fused by a Cox "
            "model, with the modified NIH category beside the model's answer. Research use only.")
        self.parent.acknowledgementText = _(
            "Follows the multimodal model of NPJ Precision Oncology 2024 (PubMed 39060449). Radiomics by "
            "PyRadiomics (the SlicerRadiomics extension when installed, else pyradiomics-bhklab).")


#
# Parameter node
#


@parameterNodeWrapper
class SlicerGISTRiskParameterNode:
    """Everything the panel shows, saved with the scene.

    inputVolume - portal-venous CT (HU).
    inputSegmentation / tumourSegmentId - the tumour segment.
    bundleDirectory - model bundle folder written by ``gistrisk fit``.
    pathologyAvailable / pathologyFile - slide-feature row (or patscore) file from the pathology arm.
    paramsFile - PyRadiomics parameter file (default: the GIST paper setting).
    siteFile - site file from ``gistrisk harmonise`` for this hospital's scanner (empty: features not harmonised).
    clinicalValuesJson - the clinical form's values (JSON object), set by code.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    tumourSegmentId: str = ""
    patientId: str = ""
    bundleDirectory: pathlib.Path
    pathologyAvailable: bool = False
    pathologyFile: pathlib.Path
    paramsFile: pathlib.Path
    siteFile: pathlib.Path
    clinicalValuesJson: str = "{}"
    huMin: Annotated[float, WithinRange(-1024.0, 3071.0)] = -50.0
    huMax: Annotated[float, WithinRange(-1024.0, 3071.0)] = 250.0
    seedRadiusMm: Annotated[float, WithinRange(0.5, 30.0)] = 3.0
    outputTable: vtkMRMLTableNode
    outputChart: vtkMRMLPlotChartNode
    cohortCases: vtkMRMLTableNode
    cohortOutput: pathlib.Path
    cohortJobs: Annotated[int, WithinRange(1, 64)] = 1


#
# Widget
#


class SlicerGISTRiskWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: a thin layer that reads the GUI, calls the Logic, shows the answer."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional[SlicerGISTRiskLogic] = None
        self._parameterNode: Optional[SlicerGISTRiskParameterNode] = None
        self._parameterNodeGuiTag = None
        self._clinicalEditors: dict[str, Any] = {}
        self._lastResult = None
        self._cohortProcess = None
        self._cohortParser = None
        self._cohortLines: list[str] = []

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SlicerGISTRisk.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SlicerGISTRiskLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentSelector.connect("currentSegmentChanged(QString)", self.onSegmentChanged)
        self.ui.createSegmentButton.connect("clicked(bool)", self.onCreateSegment)
        self.ui.growFromSeedsButton.connect("clicked(bool)", self.onGrowFromSeeds)
        self.ui.bundlePathLineEdit.connect("currentPathChanged(QString)", self.onBundleChanged)
        self.ui.prefillSizeButton.connect("clicked(bool)", self.onPrefillSize)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReport)
        self.ui.addSceneCaseButton.connect("clicked(bool)", self.onAddSceneCase)
        self.ui.runCohortButton.connect("clicked(bool)", self.onRunCohort)
        self.ui.cancelCohortButton.connect("clicked(bool)", self.onCancelCohort)
        self.ui.cancelButton.enabled = False
        self.ui.cancelCohortButton.enabled = False
        self.ui.exportReportButton.enabled = False

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        self.onCancelCohort()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first
        if not self._parameterNode.inputSegmentation:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
            if first:
                self._parameterNode.inputSegmentation = first
        if not str(self._parameterNode.paramsFile or "").strip(". "):
            try:
                self._parameterNode.paramsFile = self.logic.defaultParamsFile()
            except ImportError:
                pass  # gistrisk not installed yet: Apply offers to install it

    def setParameterNode(self, inputParameterNode: Optional[SlicerGISTRiskParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self.ui.segmentSelector.setSegmentationNode(self._parameterNode.inputSegmentation)
            if self._parameterNode.tumourSegmentId:
                self.ui.segmentSelector.setCurrentSegmentID(self._parameterNode.tumourSegmentId)
            self._checkCanApply()

    def _checkCanApply(self, caller=None, event=None) -> None:
        pn = self._parameterNode
        if pn is None:
            return
        if self.ui.segmentSelector.currentNode() != pn.inputSegmentation:
            self.ui.segmentSelector.setSegmentationNode(pn.inputSegmentation)
        ready = bool(pn.inputVolume and pn.inputSegmentation and pn.tumourSegmentId)
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = _("Compute radiomics, scores and the fused risk") if ready else \
            _("Select the CT, the segmentation and the tumour segment")
        self.ui.pathologyPathLineEdit.enabled = pn.pathologyAvailable

    # ---- segmentation ----
    def onSegmentChanged(self, segmentId: str) -> None:
        if self._parameterNode:
            self._parameterNode.tumourSegmentId = segmentId or ""

    def onCreateSegment(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to create the tumour segment."), waitCursor=True):
            pn = self._parameterNode
            seg, segmentId = self.logic.createTumourSegment(pn.inputVolume, pn.inputSegmentation)
            pn.inputSegmentation = seg
            pn.tumourSegmentId = segmentId
            self.openSegmentEditor(seg, segmentId, pn.inputVolume)

    def onGrowFromSeeds(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Semi-automatic start failed."), waitCursor=True):
            pn = self._parameterNode
            inside, outside = self.ui.insideSeedsSelector.currentNode(), self.ui.outsideSeedsSelector.currentNode()
            seg, segmentId = self.logic.growFromSeeds(pn.inputVolume, inside, outside, pn.inputSegmentation,
                                                      (pn.huMin, pn.huMax), pn.seedRadiusMm)
            pn.inputSegmentation = seg
            pn.tumourSegmentId = segmentId
            self.openSegmentEditor(seg, segmentId, pn.inputVolume)
            slicer.util.showStatusMessage(_("Draft grown from seeds: correct it in the Segment Editor."), 5000)

    def openSegmentEditor(self, segmentationNode, segmentId: str, volumeNode) -> None:
        """Switch to the Segment Editor on the tumour segment, CT in the background."""
        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.segmenteditor.widgetRepresentation().self().editor
        editor.setSegmentationNode(segmentationNode)
        if hasattr(editor, "setSourceVolumeNode"):  # Slicer 5.2+
            editor.setSourceVolumeNode(volumeNode)
        else:
            editor.setMasterVolumeNode(volumeNode)
        editor.setCurrentSegmentID(segmentId)

    # ---- Python packages ----
    def ensureDependencies(self) -> bool:
        """One consent dialog, then one pip call, the first time a computation needs packages."""
        if self.logic.ensureDependencies(
                confirm=lambda msg: slicer.util.confirmOkCancelDisplay(msg, _("Install Python packages"))):
            return True
        self.ui.statusLabel.text = _("Python packages not installed: nothing was computed.")
        return False

    # ---- clinical form ----
    def onBundleChanged(self, path: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot read the model bundle."), show=bool(path)):
            if path and not self.ensureDependencies():
                return
            self.buildClinicalForm(self.logic.clinicalFields(path) if path else [])

    def buildClinicalForm(self, fields) -> None:
        layout = self.ui.clinicalFormWidget.layout()
        while layout.rowCount() > 0:
            layout.removeRow(0)
        self._clinicalEditors = {}
        saved = self._savedClinicalValues()
        for field in fields:
            if field.kind == "categorical":
                editor = qt.QComboBox()
                editor.addItems([""] + list(field.levels or ()))
                editor.setCurrentText(str(saved.get(field.name, "")))
                editor.connect("currentTextChanged(QString)", self._storeClinicalValues)
            else:
                editor = qt.QLineEdit()
                rng = f"{field.min:g} to {field.max:g}" if field.min is not None and field.max is not None else ""
                editor.placeholderText = " ".join(x for x in (field.unit or "", _("training range") + " " + rng
                                                              if rng else "") if x)
                editor.text = "" if saved.get(field.name) is None else str(saved[field.name])
                editor.connect("textChanged(QString)", self._storeClinicalValues)
            editor.toolTip = field.label
            layout.addRow(field.label, editor)
            self._clinicalEditors[field.name] = editor
        self.ui.prefillSizeButton.enabled = any(f.role == "size" for f in fields)
        self._storeClinicalValues()  # keep only this model's fields (a previous bundle's would be refused)

    def _savedClinicalValues(self) -> dict:
        try:
            return json.loads(self._parameterNode.clinicalValuesJson or "{}")
        except (ValueError, AttributeError):
            return {}

    def _storeClinicalValues(self, *args) -> None:
        values = {}
        for name, editor in self._clinicalEditors.items():
            values[name] = editor.currentText if isinstance(editor, qt.QComboBox) else editor.text
        self._parameterNode.clinicalValuesJson = json.dumps(values)

    def onPrefillSize(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot measure the tumour."), waitCursor=True):
            if not self.ensureDependencies():
                return
            pn = self._parameterNode
            fieldName, value = self.logic.prefillTumourSize(str(pn.bundleDirectory), pn.inputVolume,
                                                            pn.inputSegmentation, pn.tumourSegmentId)
            if fieldName in self._clinicalEditors:
                self._clinicalEditors[fieldName].text = f"{value:g}"

    # ---- apply ----
    def onApplyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute the risk."), waitCursor=True):
            if not self.ensureDependencies():
                return
            from SlicerGISTRiskLib.radiomics_check import RadiomicsMismatch
            from SlicerGISTRiskLib.radiomics_step import Cancelled

            pn = self._parameterNode
            inputs = self.logic.caseInputs(pn)
            self.ui.cancelButton.enabled = True
            self.ui.applyButton.enabled = False
            self.logic.cancelRequested = False
            try:
                try:
                    result = self.logic.process(inputs, progress=self.onProgress)
                except RadiomicsMismatch as mismatch:
                    if not slicer.util.confirmOkCancelDisplay(
                            _("{problem}\n\nGo on anyway? Every result will carry this warning.").format(
                                problem=str(mismatch)), _("Radiomics differ from the model's")):
                        self.ui.statusLabel.text = _("Stopped: radiomics differ from the model's.")
                        return
                    result = self.logic.process(inputs, progress=self.onProgress, allowRadiomicsMismatch=True)
            except Cancelled:
                self.ui.statusLabel.text = _("Cancelled: nothing was written.")
                return
            finally:
                self.ui.cancelButton.enabled = False
                self._checkCanApply()
            table, chart = self.logic.writeResults(result, pn.outputTable, pn.outputChart)
            pn.outputTable = table
            if chart is not None:
                pn.outputChart = chart
                self.logic.showChart(chart)
            self._lastResult = result
            self.ui.exportReportButton.enabled = True
            self.showResult(result)

    def onProgress(self, fraction: float, message: str) -> None:
        self.ui.progressBar.value = int(round(100 * fraction))
        self.ui.statusLabel.text = message
        slicer.app.processEvents()  # lets the Cancel click through

    def onCancel(self) -> None:
        self.logic.cancelRequested = True

    def showResult(self, result) -> None:
        s = result.summary()
        if result.prediction is None:
            self.ui.riskLabel.text = _("{n} radiomics features computed (no model bundle chosen).").format(
                n=len(result.radiomics.features))
            self.ui.nihLabel.text = ""
            return
        self.ui.riskLabel.text = _("Risk {risk:.3f}: {group} risk group. Predicted RFS 1 y {r12:.0%}, 3 y {r36:.0%}, "
                                   "5 y {r60:.0%}. Modalities: {mods}.").format(
            risk=s["risk"], group=s["risk_group"], r12=s["rfs_12"], r36=s["rfs_36"], r60=s["rfs_60"],
            mods=s["modalities_used"])
        self.ui.nihLabel.text = _("Modified NIH: {nih}").format(nih=s["modified_nih"])
        self.ui.warningsLabel.text = "\n".join(s.get("warnings", []))

    def onExportReport(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to write the report."), waitCursor=True):
            if self._lastResult is None:
                raise ValueError(_("Apply first: there is no result to report."))
            path = qt.QFileDialog.getSaveFileName(None, _("Export report"),
                                                  f"{self._lastResult.patient_id}_gistrisk.html", "HTML (*.html)")
            if path:
                self.logic.exportReport(self._lastResult, path)
                qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(path))

    # ---- cohort ----
    def onAddSceneCase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot add the case."), waitCursor=True):
            pn = self._parameterNode
            pn.cohortCases = self.logic.addSceneCase(pn.cohortCases, pn.inputVolume, pn.inputSegmentation,
                                                     pn.tumourSegmentId, pn.patientId or None)

    def onRunCohort(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Cannot start the cohort run."), waitCursor=True):
            if not self.ensureDependencies():
                return
            from SlicerGISTRiskLib.background_cohort import ProgressParser

            pn = self._parameterNode
            command, env = self.logic.cohortCommand(pn.cohortCases, str(pn.cohortOutput), pn.cohortJobs,
                                                    str(pn.paramsFile or "") or None)
            self._cohortParser = ProgressParser()
            proc = qt.QProcess()
            proc.setProcessChannelMode(qt.QProcess.MergedChannels)
            qenv = qt.QProcessEnvironment.systemEnvironment()
            for key, value in env.items():
                qenv.insert(key, value)
            proc.setProcessEnvironment(qenv)
            proc.connect("readyReadStandardOutput()", self.onCohortOutput)
            proc.connect("finished(int,QProcess::ExitStatus)", self.onCohortFinished)
            self._cohortProcess = proc
            self._cohortLines = []
            self.ui.cohortProgressBar.value = 0
            self.ui.runCohortButton.enabled = False
            self.ui.cancelCohortButton.enabled = True
            proc.start(command[0], command[1:])

    def onCohortOutput(self) -> None:
        text = bytes(self._cohortProcess.readAllStandardOutput()).decode("utf-8", "replace")
        for line in text.replace("\r", "\n").splitlines():
            self._cohortLines.append(line)
            fraction = self._cohortParser.feed(line)
            if fraction is not None:
                self.ui.cohortProgressBar.value = int(100 * fraction)
        self.ui.cohortStatusLabel.text = self._cohortLines[-1] if self._cohortLines else ""

    def onCohortFinished(self, exitCode: int, exitStatus) -> None:
        self.ui.runCohortButton.enabled = True
        self.ui.cancelCohortButton.enabled = False
        with slicer.util.tryWithErrorDisplay(_("The cohort run failed."), waitCursor=True):
            if exitCode != 0:
                from SlicerGISTRiskLib.background_cohort import failure_report

                details = failure_report(str(self._parameterNode.cohortOutput))
                raise RuntimeError(details or "\n".join(self._cohortLines[-10:]))
            self.ui.cohortProgressBar.value = 100
            self.logic.loadCohortFeatures(str(self._parameterNode.cohortOutput))

    def onCancelCohort(self) -> None:
        if self._cohortProcess is not None and self._cohortProcess.state() != qt.QProcess.NotRunning:
            self._cohortProcess.kill()
            self.ui.cohortStatusLabel.text = _("Cancelled; cases already extracted are cached and skipped next time.")


#
# Logic
#


class SlicerGISTRiskLogic(ScriptedLoadableModuleLogic):
    """Everything the module computes, usable from scripts without the widget.

    Nodes in, nodes out: the scene is taken from the nodes given, so the Logic
    also runs on a scene that is not ``slicer.mrmlScene``.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.cancelRequested = False
        self._models: dict[str, tuple[float, Any]] = {}
        self._radiomicsCache: dict[str, Any] = {}  # content key -> features (see workflow.radiomics_key)
        self._phantomCache: dict[str, dict[str, float]] = {}  # params sha256 -> phantom features

    def getParameterNode(self) -> SlicerGISTRiskParameterNode:
        return SlicerGISTRiskParameterNode(super().getParameterNode())

    # ---- set-up ----
    @staticmethod
    def ensureDependencies(confirm) -> bool:
        """Install what Resources/requirements.txt lists and Slicer lacks: one ``confirm(message)``, one pip call.

        False when the user declines. PyRadiomics is left alone when SlicerRadiomics (or any
        PyRadiomics) is importable.
        """
        dependencies.add_gistrisk_source(MODULE_DIR)
        return dependencies.ensure_packages(confirm, slicer)

    @staticmethod
    def defaultParamsFile() -> pathlib.Path:
        from gistrisk.radiomics.params import param_file

        return param_file("gist_ct_paper")

    # ---- segmentation ----
    @staticmethod
    def createTumourSegment(volumeNode, segmentationNode=None) -> tuple[Any, str]:
        """Add the GIST segment (terminology, fixed colour) and show the CT with a soft-tissue window."""
        from SlicerGISTRiskLib.segmentation_setup import apply_soft_tissue_window, create_tumour_segment

        seg, segmentId = create_tumour_segment(volumeNode, segmentationNode)
        apply_soft_tissue_window(volumeNode)
        return seg, segmentId

    @staticmethod
    def growFromSeeds(volumeNode, insideMarkups, outsideMarkups, segmentationNode=None,
                      huRange: tuple[float, float] = (-50.0, 250.0), seedRadiusMm: float = 3.0) -> tuple[Any, str]:
        """Draft the tumour from seed points (markups inside / outside) within a HU range."""
        from gistrisk.errors import InputError
        from SlicerGISTRiskLib.segmentation_setup import GrowFromSeedsConfig, grow_from_seeds

        if insideMarkups is None or outsideMarkups is None:
            raise InputError(_("place seed points inside and outside the tumour (two point lists)"))
        cfg = GrowFromSeedsConfig(hu_range=(float(huRange[0]), float(huRange[1])), seed_radius_mm=float(seedRadiusMm))
        return grow_from_seeds(volumeNode, _markupsPoints(insideMarkups), _markupsPoints(outsideMarkups),
                               segmentationNode, cfg)

    # ---- model and clinical form ----
    def loadModel(self, bundleDirectory: str):
        """The model bundle (cached while its model.json is unchanged)."""
        from SlicerGISTRiskLib.prediction import load_bundle

        model_json = pathlib.Path(bundleDirectory) / "model.json"
        mtime = model_json.stat().st_mtime if model_json.is_file() else -1.0
        cached = self._models.get(str(bundleDirectory))
        if cached and cached[0] == mtime:
            return cached[1]
        model = load_bundle(bundleDirectory)
        self._models[str(bundleDirectory)] = (mtime, model)
        return model

    def clinicalFields(self, bundleDirectory: str) -> list:
        """The clinical form's fields: the model's inputs plus the modified NIH inputs it lacks."""
        from SlicerGISTRiskLib.prediction import model_form

        return model_form(self.loadModel(bundleDirectory))

    def prefillTumourSize(self, bundleDirectory: str, volumeNode, segmentationNode,
                          segmentId: str) -> tuple[str, float]:
        """(size field name, value in its unit) from the segment's largest diameter."""
        from gistrisk.errors import InputError
        from SlicerGISTRiskLib.clinical_form import size_field, size_from_diameter
        from SlicerGISTRiskLib.workflow import tumour_diameter_mm

        field = size_field(self.clinicalFields(bundleDirectory))
        if field is None:
            raise InputError(_("the model has no tumour-size input"), file=str(bundleDirectory))
        return field.name, size_from_diameter(field, tumour_diameter_mm(volumeNode, segmentationNode, segmentId))

    # ---- apply ----
    def caseInputs(self, pn: SlicerGISTRiskParameterNode):
        """The Apply inputs from the parameter node."""
        from SlicerGISTRiskLib.workflow import CaseInputs

        bundle = str(pn.bundleDirectory or "").strip()
        pathology = str(pn.pathologyFile or "").strip() if pn.pathologyAvailable else ""
        params = str(pn.paramsFile or "").strip()
        site = str(pn.siteFile or "").strip()
        return CaseInputs(
            volume=pn.inputVolume, segmentation=pn.inputSegmentation, segment_id=pn.tumourSegmentId,
            bundle_dir=bundle if bundle not in ("", ".") else None,
            clinical_values=json.loads(pn.clinicalValuesJson or "{}") or None,
            pathology_file=pathology if pathology not in ("", ".") else None,
            params=params if params not in ("", ".") else None, patient_id=pn.patientId or None,
            site_file=site if site not in ("", ".") else None)

    def checkRadiomics(self, bundleDirectory: str, params=None, allowMismatch: bool = False) -> list:
        """Extract the bundle's phantom with the PyRadiomics and parameter file used here and compare.

        Returns the warnings to attach to every result; raises ``RadiomicsMismatch`` when the
        numbers differ from the model's record and ``allowMismatch`` is False.
        """
        from SlicerGISTRiskLib.radiomics_check import phantom_check

        return phantom_check(self.loadModel(bundleDirectory), params, allow_mismatch=allowMismatch,
                             cache=self._phantomCache)

    def process(self, inputs, progress=None, reuseRadiomics: bool = True, allowRadiomicsMismatch: bool = False):
        """Radiomics + prediction for one case; see ``SlicerGISTRiskLib.workflow.run_case``.

        With a bundle, the radiomics are first checked against the bundle's phantom record
        (:meth:`checkRadiomics`): a mismatch is refused unless ``allowRadiomicsMismatch``, and
        then warned about in the result. With ``reuseRadiomics`` the features of an unchanged
        CT, segment and parameter file are reused, so re-applying after editing the clinical
        form is instant.
        """
        from SlicerGISTRiskLib.workflow import run_case

        self.cancelRequested = False
        checked = self.checkRadiomics(inputs.bundle_dir, inputs.params, allowRadiomicsMismatch) \
            if inputs.bundle_dir else []
        result = run_case(inputs, progress=progress, is_cancelled=lambda: self.cancelRequested,
                          cache=self._radiomicsCache if reuseRadiomics else None)
        if result.prediction is not None:
            result.prediction.warnings[:0] = checked
        logging.info("SlicerGISTRisk %s: %s (timings %s)", result.patient_id, result.summary(), result.timings)
        return result

    @staticmethod
    def writeResults(result, tableNode=None, chartNode=None) -> tuple[Any, Any]:
        """Result table node and RFS chart node (created when not given)."""
        from SlicerGISTRiskLib.workflow import write_results

        scene = result_scene(tableNode, chartNode)
        return write_results(result, scene, tableNode, chartNode)

    @staticmethod
    def showChart(chartNode) -> None:
        plots = getattr(getattr(slicer, "modules", None), "plots", None)
        if plots is not None:
            plots.logic().ShowChartInLayout(chartNode)

    @staticmethod
    def exportReport(result, path: str) -> pathlib.Path:
        from SlicerGISTRiskLib.report_html import export_report

        return export_report(result, path)

    # ---- cohort ----
    @staticmethod
    def addSceneCase(casesTable, volumeNode, segmentationNode, segmentId: str, patientId: Optional[str] = None,
                     exportFolder: Optional[str] = None):
        """Export a scene case to NRRD files and append it to the cases table (created when None)."""
        import pandas as pd

        from SlicerGISTRiskLib.background_cohort import MANIFEST_COLUMNS, export_scene_case, scene_case
        from SlicerGISTRiskLib.mrml_convert import dataframe_to_table_node, table_node_to_dataframe

        case = scene_case(volumeNode, segmentationNode, segmentId, patientId)
        folder = exportFolder or os.path.join(slicer_temp_dir(), "GISTRiskCohort")
        on_disk = export_scene_case(case, folder)
        scene = volumeNode.GetScene()
        if casesTable is None:
            casesTable = scene.AddNewNodeByClass("vtkMRMLTableNode", "GISTRisk cohort cases")
            df = pd.DataFrame(columns=list(MANIFEST_COLUMNS))
        else:
            df = table_node_to_dataframe(casesTable)
            df = df[df["patient_id"] != on_disk.patient_id] if "patient_id" in df else df
        row = {"patient_id": on_disk.patient_id, "image": on_disk.image, "mask": on_disk.mask, "label": "1"}
        df = pd.concat([df.astype(str), pd.DataFrame([row])], ignore_index=True)
        return dataframe_to_table_node(df.astype(str), casesTable)

    @staticmethod
    def cohortCommand(casesTable, outPath: str, jobs: int = 1, params: Optional[str] = None,
                      python: Optional[str] = None) -> tuple[list[str], dict[str, str]]:
        """Write the manifest beside ``outPath``; return the batch command and its environment."""
        from gistrisk.errors import InputError
        from SlicerGISTRiskLib.background_cohort import cases_from_table, child_env, extract_command, write_manifest
        from SlicerGISTRiskLib.mrml_convert import table_node_to_dataframe

        if casesTable is None:
            raise InputError(_("no cases table: add cases first"))
        if not outPath or outPath in (".", ""):
            raise InputError(_("choose where to write the cohort feature table (.parquet or .csv)"))
        out = pathlib.Path(outPath)
        manifest = write_manifest(cases_from_table(table_node_to_dataframe(casesTable)),
                                  out.with_name(out.stem + ".manifest.csv"))
        return extract_command(manifest, out, jobs, params, python or python_slicer()), child_env()

    @staticmethod
    def loadCohortFeatures(path: str, scene=None, tableNode=None):
        """Load the cohort feature table as a table node."""
        from SlicerGISTRiskLib.background_cohort import load_features
        from SlicerGISTRiskLib.mrml_convert import dataframe_to_table_node

        scene = scene or slicer.mrmlScene
        if tableNode is None:
            tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode", f"GISTRisk cohort {pathlib.Path(path).stem}")
        return dataframe_to_table_node(load_features(path), tableNode)


def _markupsPoints(markupsNode) -> list[list[float]]:
    """World (RAS) positions of a point list's control points."""
    points = []
    for i in range(markupsNode.GetNumberOfControlPoints()):
        p = [0.0, 0.0, 0.0]
        markupsNode.GetNthControlPointPositionWorld(i, p)
        points.append(p)
    return points


def result_scene(*nodes):
    """The scene of the first node given, else Slicer's scene."""
    for node in nodes:
        if node is not None and node.GetScene() is not None:
            return node.GetScene()
    return slicer.mrmlScene


def python_slicer() -> str:
    """The PythonSlicer executable (falls back to the running interpreter)."""
    return shutil.which("PythonSlicer") or sys.executable


def slicer_temp_dir() -> str:
    app = getattr(slicer, "app", None)
    path = getattr(app, "temporaryPath", None)
    if path:
        return str(path)
    return tempfile.gettempdir()


#
# Test (run inside Slicer by CTest; pytest runs the same class headless)
#


class SlicerGISTRiskTest(ScriptedLoadableModuleTest):
    """Logic on a synthetic CT with a spherical soft-tissue tumour: no download needed."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_tumour_segment_and_radiomics()
        self.setUp()
        self.test_refuses_non_ct_and_empty_segment()

    def _phantom(self):
        import numpy as np

        from SlicerGISTRiskLib.segmentation_setup import set_segment_from_array

        rng = np.random.default_rng(0)
        ct = rng.normal(-1000, 5, (30, 48, 48)).astype(np.int16)  # air
        kk, jj, ii = np.ogrid[:30, :48, :48]
        body = ((ii - 24) ** 2 + (jj - 24) ** 2) <= 22 ** 2
        ct[:, body[0]] = rng.normal(40, 10, (30, int(body.sum()))).astype(np.int16)  # soft tissue
        r2 = ((ii - 24) * 1.0) ** 2 + ((jj - 24) * 1.0) ** 2 + ((kk - 15) * 2.0) ** 2
        tumour = r2 <= 8 ** 2  # radius 8 mm at 1 x 1 x 2 mm voxels
        ct[tumour] = rng.normal(90, 15, int(tumour.sum())).astype(np.int16)
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom CT")
        volume.SetSpacing(1.0, 1.0, 2.0)
        slicer.util.updateVolumeFromArray(volume, ct)
        logic = SlicerGISTRiskLogic()
        seg, segmentId = logic.createTumourSegment(volume)
        set_segment_from_array(seg, segmentId, tumour.astype(np.uint8), volume)
        return volume, seg, segmentId, logic

    def test_tumour_segment_and_radiomics(self):
        from SlicerGISTRiskLib.segmentation_setup import TUMOUR_COLOR
        from SlicerGISTRiskLib.workflow import CaseInputs

        volume, seg, segmentId, logic = self._phantom()
        segment = seg.GetSegmentation().GetSegment(segmentId)
        self.assertEqual(segment.GetName(), "GIST")
        self.assertAlmostEqual(segment.GetColor()[0], TUMOUR_COLOR[0], places=5)
        self.assertEqual(volume.GetDisplayNode().GetWindow(), 400.0)
        result = logic.process(CaseInputs(volume, seg, segmentId, params="pyradiomics_baseline"))
        # 16 mm sphere: the largest diameter is within a voxel of it
        self.assertAlmostEqual(result.diameter_mm, 17.0, delta=2.0)
        self.assertGreater(result.radiomics.features["original_firstorder_Mean"], 60.0)
        table, chart = logic.writeResults(result)
        self.assertIsNone(chart)  # no bundle -> no prediction chart
        self.assertGreater(table.GetNumberOfRows(), 100)

    def test_refuses_non_ct_and_empty_segment(self):
        import numpy as np

        from gistrisk.errors import InputError
        from SlicerGISTRiskLib.workflow import CaseInputs

        volume, seg, segmentId, logic = self._phantom()
        empty_id = seg.GetSegmentation().AddEmptySegment("", "empty")
        with self.assertRaisesRegex(InputError, "empty"):
            logic.process(CaseInputs(volume, seg, empty_id, params="pyradiomics_baseline"))
        mr = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "MR")
        slicer.util.updateVolumeFromArray(mr, np.full((30, 48, 48), 300, np.int16))
        with self.assertRaisesRegex(InputError, "Hounsfield"):
            logic.process(CaseInputs(mr, seg, segmentId, params="pyradiomics_baseline"))
