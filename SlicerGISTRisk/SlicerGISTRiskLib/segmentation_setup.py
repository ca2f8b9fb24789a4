"""Create the tumour segment and give the radiologist a semi-automatic start.

The paper's ROIs were drawn by hand in 3D Slicer and verified by seniors; this
module only prepares the segment (terminology, colour, soft-tissue window) and
grows a first draft from seeds with the same filter as the Segment Editor's
"Grow from seeds" effect (``vtkImageGrowCutSegment``), restricted to a
portal-venous soft-tissue HU range. The radiologist corrects the draft.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from gistrisk.errors import InputError

from .mrml_convert import ijk_to_ras, node_label, voxel_array

TUMOUR_SEGMENT_NAME = "GIST"
OUTSIDE_SEGMENT_NAME = "outside tumour"
TUMOUR_COLOR = (0.90, 0.55, 0.10)  # fixed orange, the same in every scene
OUTSIDE_COLOR = (0.40, 0.60, 0.90)
SOFT_TISSUE_WINDOW = (400.0, 40.0)  # window, level (HU)
# Soft tissue and enhancing tumour on portal-venous CT; excludes fat, air, bone and dense contrast.
PORTAL_VENOUS_HU_RANGE = (-50.0, 250.0)
# Slicer terminology entry: category Morphologically Altered Structure (SCT 49755003),
# type Neoplasm (SCT 108369006); the GIST diagnosis itself goes in a separate tag.
TUMOUR_TERMINOLOGY = ("Segmentation category and type - 3D Slicer General Anatomy list"
                      "~SCT^49755003^Morphologically Altered Structure"
                      "~SCT^108369006^Neoplasm~^^"
                      "~Anatomic codes - DICOM master list~^^~^^")
DIAGNOSIS_TAG = ("GISTRisk.Diagnosis", "Gastrointestinal stromal tumour (ICD-O-3 8936)")


@dataclass
class GrowFromSeedsConfig:
    """Parameters of the semi-automatic start.

    hu_range: voxels outside (low, high) HU are never added to the tumour.
    seed_radius_mm: radius of the sphere painted around each seed point.
    margin_mm: the region grown is the seeds' bounding box widened by this margin.
    """

    hu_range: tuple[float, float] = PORTAL_VENOUS_HU_RANGE
    seed_radius_mm: float = 3.0
    margin_mm: float = 20.0


def create_tumour_segment(volume_node: Any, segmentation_node: Any | None = None,
                          name: str = TUMOUR_SEGMENT_NAME) -> tuple[Any, str]:
    """Add the (empty) tumour segment to a segmentation on ``volume_node``'s grid.

    Returns
    -------
    (segmentation_node, segment_id). A segmentation node is created when none is
    given; an existing segment of the same name is reused, not duplicated.
    """
    if volume_node is None:
        raise InputError("no CT volume selected: pick the portal-venous CT first")
    scene = volume_node.GetScene()
    if segmentation_node is None:
        segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                    f"{node_label(volume_node)} tumour")
        segmentation_node.CreateDefaultDisplayNodes()
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation = segmentation_node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(name)
    if not segment_id:
        segment_id = segmentation.AddEmptySegment("", name, TUMOUR_COLOR)
    segment = segmentation.GetSegment(segment_id)
    segment.SetColor(*TUMOUR_COLOR)
    if hasattr(segment, "SetTerminology"):  # Slicer 5.2+
        segment.SetTerminology(TUMOUR_TERMINOLOGY)
    else:  # pragma: no cover - older Slicer
        segment.SetTag(segment.GetTerminologyEntryTagName(), TUMOUR_TERMINOLOGY)
    segment.SetTag(*DIAGNOSIS_TAG)
    return segmentation_node, segment_id


def apply_soft_tissue_window(volume_node: Any) -> None:
    """Show the CT with a soft-tissue window (W 400 / L 40 HU)."""
    display = volume_node.GetDisplayNode()
    if display is None:
        scene = volume_node.GetScene()
        display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        volume_node.SetAndObserveDisplayNodeID(display.GetID())
    display.SetAutoWindowLevel(False)
    display.SetWindowLevel(*SOFT_TISSUE_WINDOW)


def ras_to_ijk(volume_node: Any, points_ras: np.ndarray) -> np.ndarray:
    """RAS points, shape (n, 3), to continuous IJK indices, shape (n, 3)."""
    pts = np.c_[np.asarray(points_ras, float).reshape(-1, 3), np.ones(len(points_ras))]
    return (np.linalg.inv(ijk_to_ras(volume_node)) @ pts.T).T[:, :3]


def grow_from_seeds(volume_node: Any, inside_ras: Sequence[Sequence[float]],
                    outside_ras: Sequence[Sequence[float]], segmentation_node: Any | None = None,
                    config: GrowFromSeedsConfig | None = None) -> tuple[Any, str]:
    """Draft the tumour from seed points with Grow-from-seeds, within a HU range.

    Parameters
    ----------
    volume_node : CT scalar volume.
    inside_ras, outside_ras : seed points (n, 3) in RAS mm, inside and outside the tumour.
    segmentation_node : target; created when None.

    Returns
    -------
    (segmentation_node, tumour_segment_id); the tumour segment holds the draft.
    """
    cfg = config or GrowFromSeedsConfig()
    inside = np.asarray(inside_ras, float).reshape(-1, 3)
    outside = np.asarray(outside_ras, float).reshape(-1, 3)
    if len(inside) == 0 or len(outside) == 0:
        raise InputError("place at least one seed inside and one outside the tumour",
                         file=node_label(volume_node))
    ct = voxel_array(volume_node.GetImageData())
    dims = np.array(ct.shape[::-1])
    spacing = np.linalg.norm(ijk_to_ras(volume_node)[:3, :3], axis=0)
    ijk_in, ijk_out = ras_to_ijk(volume_node, inside), ras_to_ijk(volume_node, outside)
    for pts in (ijk_in, ijk_out):
        if np.any(pts < -0.5) or np.any(pts > dims - 0.5):
            raise InputError("a seed lies outside the CT volume", file=node_label(volume_node))
    all_pts = np.vstack([ijk_in, ijk_out])
    margin = np.ceil(cfg.margin_mm / spacing)
    lo = np.clip(np.floor(all_pts.min(0) - margin), 0, dims - 1).astype(int)
    hi = np.clip(np.ceil(all_pts.max(0) + margin), 0, dims - 1).astype(int)
    crop = np.ascontiguousarray(ct[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1]).astype(np.int16)

    seeds = np.zeros(crop.shape, np.uint8)
    _paint_spheres(seeds, ijk_in - lo, cfg.seed_radius_mm / spacing, 1)
    _paint_spheres(seeds, ijk_out - lo, cfg.seed_radius_mm / spacing, 2)
    out_of_range = (crop < cfg.hu_range[0]) | (crop > cfg.hu_range[1])
    seeds[out_of_range & (seeds == 1)] = 0  # a seed cannot claim voxels outside the HU range
    mask = out_of_range.astype(np.uint8)

    # Keep the inputs referenced until Update() is done: the filter does not own them.
    inputs = [_vtk_image(crop), _vtk_image(seeds), _vtk_image(mask)]
    grow = slicer.vtkImageGrowCutSegment()
    grow.SetIntensityVolume(inputs[0])
    grow.SetSeedLabelVolume(inputs[1])
    grow.SetMaskVolume(inputs[2])
    grow.Update()
    result = numpy_support.vtk_to_numpy(grow.GetOutput().GetPointData().GetScalars()).reshape(crop.shape)
    tumour = (result == 1) & ~out_of_range

    segmentation_node, segment_id = create_tumour_segment(volume_node, segmentation_node)
    full = np.zeros(ct.shape, np.uint8)
    full[lo[2]:hi[2] + 1, lo[1]:hi[1] + 1, lo[0]:hi[0] + 1] = tumour
    set_segment_from_array(segmentation_node, segment_id, full, volume_node)
    return segmentation_node, segment_id


def set_segment_from_array(segmentation_node: Any, segment_id: str, array_kji: np.ndarray,
                           volume_node: Any) -> None:
    """Overwrite a segment with a 0/1 array on the volume's grid, shape (k, j, i)."""
    scene = volume_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__gistrisk_tmp_seed__")
    try:
        m = vtk.vtkMatrix4x4()
        volume_node.GetIJKToRASMatrix(m)
        labelmap.SetIJKToRASMatrix(m)
        labelmap.SetAndObserveImageData(_vtk_image(np.ascontiguousarray(array_kji, np.uint8)))
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmap, segmentation_node, ids):
            raise InputError("could not write the segment", file=node_label(segmentation_node))
    finally:
        scene.RemoveNode(labelmap)


def _paint_spheres(target: np.ndarray, centres_ijk: np.ndarray, radius_vox: np.ndarray, value: int) -> None:
    kk, jj, ii = np.ogrid[:target.shape[0], :target.shape[1], :target.shape[2]]
    for c in centres_ijk:
        d2 = ((ii - c[0]) / radius_vox[0]) ** 2 + ((jj - c[1]) / radius_vox[1]) ** 2 \
            + ((kk - c[2]) / radius_vox[2]) ** 2
        target[d2 <= 1.0] = value


def _vtk_image(array_kji: np.ndarray) -> Any:
    image = vtk.vtkImageData()
    image.SetDimensions(array_kji.shape[::-1])
    flat = np.ascontiguousarray(array_kji).ravel()
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    image.GetPointData().SetScalars(scalars)
    return image
