"""MRML nodes <-> SimpleITK images, numpy arrays and DataFrames.

Works with the full Slicer application and with the headless ``slicer-core``
package alike: only MRML/VTK classes are used, never ``slicer.app`` or
``slicer.mrmlScene`` (every function takes its scene from the nodes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist
from vtk.util import numpy_support

from gistrisk.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# pandas is imported inside the DataFrame functions only: Slicer's Python lacks it until the user agrees to
# the install (dependencies.py), and this module is used before that (creating the tumour segment).

# RAS (Slicer) <-> LPS (ITK, DICOM): flip the first two axes.
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def node_label(node: Any) -> str:
    """A name for messages: the node's name, else its class."""
    if node is None:
        return "<none>"
    return node.GetName() or node.GetClassName()


def ijk_to_ras(volume_node: Any) -> np.ndarray:
    """The volume's 4x4 IJK-to-RAS matrix as a numpy array, shape (4, 4)."""
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def voxel_array(image_data: Any) -> np.ndarray:
    """Scalars of a vtkImageData as a (k, j, i) numpy view (no copy)."""
    scalars = image_data.GetPointData().GetScalars()
    dims = image_data.GetDimensions()
    return numpy_support.vtk_to_numpy(scalars).reshape(dims[::-1])


def volume_to_sitk(volume_node: Any) -> sitk.Image:
    """Copy a scalar volume node into a SimpleITK image in LPS physical space.

    Returns
    -------
    SimpleITK.Image with the node's voxel type, size (i, j, k), spacing,
    origin and direction (RAS converted to LPS as ITK expects).
    """
    name = node_label(volume_node)
    if volume_node is None or volume_node.GetImageData() is None:
        raise InputError("the volume has no voxel data", file=name)
    image_data = volume_node.GetImageData()
    if image_data.GetNumberOfScalarComponents() != 1:
        raise InputError(f"expected a single-component scalar volume, got "
                         f"{image_data.GetNumberOfScalarComponents()} components", file=name)
    image = sitk.GetImageFromArray(np.array(voxel_array(image_data)))
    _set_geometry(image, ijk_to_ras(volume_node))
    return image


def _set_geometry(image: sitk.Image, matrix: np.ndarray) -> None:
    lps = _RAS_TO_LPS @ matrix[:3, :]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in lps[:, 3]])
    image.SetDirection([float(d) for d in (lps[:, :3] / spacing).ravel()])


def segment_ids(segmentation_node: Any) -> list[str]:
    """IDs of all segments of a segmentation node, in order."""
    seg = segmentation_node.GetSegmentation()
    return [seg.GetNthSegmentID(i) for i in range(seg.GetNumberOfSegments())]


def segment_to_sitk(segmentation_node: Any, segment_id: str, reference_volume: Any) -> sitk.Image:
    """Rasterise one segment on the reference volume's grid, as a 0/1 uint8 SimpleITK image.

    Raises
    ------
    InputError
        When the segmentation or segment is missing, or the segment is empty.
    """
    if segmentation_node is None:
        raise InputError("no segmentation selected: draw the tumour first", file=node_label(reference_volume))
    seg_name = node_label(segmentation_node)
    segment = segmentation_node.GetSegmentation().GetSegment(segment_id) if segment_id else None
    if segment is None:
        raise InputError(f"segment {segment_id!r} not found (segments: {segment_ids(segmentation_node)})",
                         file=seg_name)
    scene = segmentation_node.GetScene()
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__gistrisk_tmp_mask__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segment_id)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, reference_volume)
        if not ok or labelmap.GetImageData() is None:
            raise InputError(f"could not rasterise segment {segment.GetName()!r}", file=seg_name)
        mask = volume_to_sitk(labelmap)
    finally:
        _remove_with_display(scene, labelmap)
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    if not np.any(sitk.GetArrayViewFromImage(mask)):
        raise InputError(f"segment {segment.GetName()!r} is empty on volume {node_label(reference_volume)!r}: "
                         "draw the tumour (or run the semi-automatic start) first", file=seg_name)
    return mask


def _remove_with_display(scene: Any, node: Any) -> None:
    """Remove a temporary volume node with the display, colour and storage nodes made for it."""
    display = node.GetDisplayNode()
    color = display.GetColorNode() if display is not None else None
    storage = node.GetStorageNode()
    for n in (display, storage, node):
        if n is not None:
            scene.RemoveNode(n)
    # A colour table made for this export alone (not a shared default) goes too.
    if color is not None and color.GetScene() is scene and not color.GetSingletonTag():
        scene.RemoveNode(color)


def check_segment_geometry(segmentation_node: Any, segment_id: str, volume_node: Any,
                           tol: float = 1e-3) -> None:
    """Refuse a segment drawn on another grid than the CT.

    The segment's internal labelmap must share the CT's axes and spacing, its
    voxel corners must fall on CT voxel positions, and it must lie inside the
    CT's extent; otherwise it was drawn on another image (a different series,
    a resampled copy) and radiomics on this CT would be wrong.
    """
    seg_name = node_label(segmentation_node)
    internal = segmentation_node.GetBinaryLabelmapInternalRepresentation(segment_id)
    if internal is None:
        return  # no labelmap yet (e.g. closed surface only); rasterisation decides
    m = vtk.vtkMatrix4x4()
    internal.GetImageToWorldMatrix(m)
    seg_m = np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
    ct_m = ijk_to_ras(volume_node)
    transform_ids = (segmentation_node.GetTransformNodeID(), volume_node.GetTransformNodeID())
    if transform_ids[0] != transform_ids[1]:
        raise InputError(f"segmentation and CT {node_label(volume_node)!r} are under different transforms; "
                         "harden or remove the transforms first", file=seg_name)
    scale = np.abs(ct_m[:3, :3]).max()
    if not np.allclose(seg_m[:3, :3], ct_m[:3, :3], atol=tol * scale):
        raise InputError(
            f"segment geometry differs from CT {node_label(volume_node)!r} (spacing/axes "
            f"{np.round(np.linalg.norm(seg_m[:3, :3], axis=0), 4).tolist()} vs "
            f"{np.round(np.linalg.norm(ct_m[:3, :3], axis=0), 4).tolist()} mm): it was drawn on another image",
            file=seg_name)
    ext = internal.GetExtent()
    if ext[0] > ext[1]:
        return  # empty labelmap: reported as an empty segment later
    # Segment voxel (0,0,0) in CT IJK: must be an integer index inside the CT.
    corner = np.linalg.solve(ct_m, seg_m @ np.array([ext[0], ext[2], ext[4], 1.0]))[:3]
    if not np.allclose(corner, np.round(corner), atol=0.01):
        raise InputError(f"segment voxels are offset from CT {node_label(volume_node)!r} voxels by "
                         f"{np.round(corner - np.round(corner), 3).tolist()} voxel: drawn on another image",
                         file=seg_name)
    far = np.linalg.solve(ct_m, seg_m @ np.array([ext[1], ext[3], ext[5], 1.0]))[:3]
    dims = np.array(volume_node.GetImageData().GetDimensions())
    lo, hi = np.minimum(corner, far), np.maximum(corner, far)
    if np.any(hi < -0.5) or np.any(lo > dims - 0.5):
        raise InputError(f"segment lies outside CT {node_label(volume_node)!r}: drawn on another image",
                         file=seg_name)


def check_ct_volume(volume_node: Any) -> None:
    """Refuse a volume that is not a CT in Hounsfield units.

    A DICOM modality other than CT is refused outright; otherwise the
    intensities must include air (below -500 HU), as every abdominal CT field
    of view does, and stay within the HU range of a CT (below 5000).
    """
    name = node_label(volume_node)
    if volume_node is None:
        raise InputError("no CT volume selected")
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError("this is a labelmap, not a CT volume", file=name)
    modality = volume_node.GetAttribute("DICOM.Modality")
    if modality and modality.upper() != "CT":
        raise InputError(f"DICOM modality is {modality}, expected CT (portal-venous phase)", file=name)
    image_data = volume_node.GetImageData()
    if image_data is None:
        raise InputError("the volume has no voxel data", file=name)
    lo, hi = image_data.GetScalarRange()
    if lo > -500 or hi > 5000:
        raise InputError(f"intensities {lo:g} to {hi:g} do not look like a CT in Hounsfield units "
                         "(expected air near -1000 HU); pick the portal-venous CT", file=name)


def load_volume_file(scene: Any, path: str | Path, name: str | None = None, labelmap: bool = False) -> Any:
    """Read an image file (NRRD, NIfTI, ...) into a new volume node with Slicer's own reader."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    cls = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    node = scene.AddNewNodeByClass(cls, name or path.name.split(".")[0])
    storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
    storage.SetFileName(str(path))
    if labelmap:
        storage.SetCenterImage(False)
    if not storage.ReadData(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise InputError("could not read the image", file=str(path))
    node.SetAndObserveStorageNodeID(storage.GetID())
    return node


def labelmap_file_to_segmentation(scene: Any, path: str | Path, reference_volume: Any,
                                  name: str = "Segmentation") -> Any:
    """Import a label image file as a new segmentation node (one segment per label value)."""
    labelmap = load_volume_file(scene, path, name=f"{name}_labelmap", labelmap=True)
    seg = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    seg.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume)
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, seg, ""):
            raise InputError("could not import the label image as a segmentation", file=str(path))
    finally:
        storage = labelmap.GetStorageNode()
        scene.RemoveNode(labelmap)
        if storage is not None:
            scene.RemoveNode(storage)
    return seg


def dataframe_to_table_node(df: pd.DataFrame, table_node: Any) -> Any:
    """Replace the content of a table node with a DataFrame (numbers as double, others as text)."""
    import pandas as pd  # noqa: PLC0415 - see the module top

    table = vtk.vtkTable()
    for col in df.columns:
        values = df[col]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            arr = vtk.vtkStringArray()
            for v in values:
                arr.InsertNextValue("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
        else:
            arr = vtk.vtkDoubleArray()
            for v in values.astype(float):
                arr.InsertNextValue(float(v))
        arr.SetName(str(col))
        table.AddColumn(arr)
    table_node.SetAndObserveTable(table)
    table_node.Modified()
    return table_node


def table_node_to_dataframe(table_node: Any) -> pd.DataFrame:
    """The content of a table node as a DataFrame (numeric columns as float, others as str)."""
    import pandas as pd  # noqa: PLC0415 - see the module top

    table = table_node.GetTable()
    data: dict[str, list[Any]] = {}
    for c in range(table.GetNumberOfColumns()):
        col = table.GetColumn(c)
        n = col.GetNumberOfTuples() if hasattr(col, "GetNumberOfTuples") else col.GetNumberOfValues()
        if col.IsA("vtkStringArray"):
            data[col.GetName()] = [col.GetValue(i) for i in range(n)]
        else:
            data[col.GetName()] = [col.GetValue(i) for i in range(n)]
    return pd.DataFrame(data)


def largest_diameter_mm(mask: sitk.Image) -> float:
    """Largest 3D diameter (Feret) of a binary mask in millimetres.

    The maximum distance between voxel centres on the convex hull of the
    mask, plus one voxel (so a single voxel measures its own size).
    """
    arr = sitk.GetArrayViewFromImage(mask) > 0
    if not arr.any():
        return 0.0
    kji = np.argwhere(arr)
    ijk = kji[:, ::-1].astype(float)
    spacing = np.array(mask.GetSpacing())
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    pts = (ijk * spacing) @ direction.T
    try:
        hull = pts[ConvexHull(pts).vertices] if len(pts) > 4 else pts
    except QhullError:  # flat or linear object: all points are extreme
        hull = pts
    if len(hull) < 2:
        return float(spacing.min())
    d = pdist(hull)
    a, b = _pair_from_condensed(int(np.argmax(d)), len(hull))
    u = (hull[b] - hull[a]) / d.max()
    # Centre-to-centre distance plus the voxel's own extent along that line.
    voxel_extent = float(np.abs(direction.T @ u) @ spacing)
    return float(d.max()) + voxel_extent


def _pair_from_condensed(index: int, n: int) -> tuple[int, int]:
    """Row/column of entry ``index`` of a condensed distance matrix of ``n`` points."""
    i = 0
    while index >= n - i - 1:
        index -= n - i - 1
        i += 1
    return i, i + 1 + index
