"""MRML <-> SimpleITK/DataFrame conversion on the real lung2 CT in a real slicer-core scene."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import vtk

from gistrisk.errors import InputError
from SlicerGISTRiskLib import mrml_convert as mc


def test_volume_node_converts_to_the_image_itk_reads(lung2, lung2_files):
    _, volume, _, _ = lung2
    img = mc.volume_to_sitk(volume)
    ref = sitk.ReadImage(str(lung2_files[0]))
    assert img.GetSize() == ref.GetSize() == (512, 512, 61)
    np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing(), rtol=1e-9)
    np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(img.GetDirection(), ref.GetDirection(), atol=1e-12)
    assert np.array_equal(sitk.GetArrayViewFromImage(img), sitk.GetArrayViewFromImage(ref))


def test_segment_rasterises_to_the_label_file(lung2, lung2_files):
    _, volume, seg, sid = lung2
    mask = mc.segment_to_sitk(seg, sid, volume)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(lung2_files[1]))) > 0
    got = sitk.GetArrayViewFromImage(mask)
    assert got.dtype == np.uint8 and int(got.sum()) == 24644 == int(ref.sum())
    assert np.array_equal(got.astype(bool), ref)
    assert scene_has_no_temporary_nodes(volume.GetScene())


def scene_has_no_temporary_nodes(scene) -> bool:
    names = [scene.GetNthNode(i).GetName() or "" for i in range(scene.GetNumberOfNodes())]
    return not any(n.startswith("__gistrisk_tmp") for n in names)


def test_largest_diameter_of_a_box_is_its_space_diagonal():
    arr = np.zeros((12, 30, 40), np.uint8)
    arr[2:7, 5:15, 10:30] = 1  # 20 x 10 x 5 voxels
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 1.0, 2.0))  # 10 x 10 x 10 mm box
    assert mc.largest_diameter_mm(img) == pytest.approx(np.sqrt(3) * 10.0, rel=0.02)


@pytest.mark.slow
def test_lung2_diameter_is_close_to_pyradiomics_maximum_3d_diameter(lung2, lung2_result):
    _, volume, seg, sid = lung2
    d = mc.largest_diameter_mm(mc.segment_to_sitk(seg, sid, volume))
    # PyRadiomics measures on the mesh of voxel faces; ours adds one voxel extent to the centre distance.
    assert d == pytest.approx(lung2_result.radiomics.features["original_shape_Maximum3DDiameter"], rel=0.08)


def _shifted_segmentation(scene, volume, half_voxel: bool):
    """A copy of the CT's grid shifted by half a voxel (another image) or a whole voxel (same grid)."""
    from SlicerGISTRiskLib.segmentation_setup import create_tumour_segment, set_segment_from_array

    other = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "other grid")
    m = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(m)
    shift = 0.5 if half_voxel else 1.0
    m.SetElement(0, 3, m.GetElement(0, 3) + shift * m.GetElement(0, 0))
    other.SetIJKToRASMatrix(m)
    small = vtk.vtkImageData()
    small.SetDimensions(512, 512, 61)
    small.AllocateScalars(vtk.VTK_SHORT, 1)
    other.SetAndObserveImageData(small)
    seg, sid = create_tumour_segment(other)
    arr = np.zeros((61, 512, 512), np.uint8)
    arr[20:25, 300:320, 300:320] = 1
    set_segment_from_array(seg, sid, arr, other)
    return seg, sid


def test_segment_drawn_on_another_grid_is_refused(lung2):
    scene, volume, _, _ = lung2
    seg, sid = _shifted_segmentation(scene, volume, half_voxel=True)
    with pytest.raises(InputError, match="offset from CT 'lung2'.*another image"):
        mc.check_segment_geometry(seg, sid, volume)


def test_segment_on_the_same_grid_shifted_by_whole_voxels_is_accepted(lung2):
    scene, volume, _, _ = lung2
    seg, sid = _shifted_segmentation(scene, volume, half_voxel=False)
    mc.check_segment_geometry(seg, sid, volume)  # no error
    assert mc.segment_to_sitk(seg, sid, volume).GetSize() == (512, 512, 61)


def test_segment_with_other_spacing_is_refused(lung2, scene):
    _, volume, _, _ = lung2
    from SlicerGISTRiskLib.segmentation_setup import create_tumour_segment, set_segment_from_array

    other = volume.GetScene().AddNewNodeByClass("vtkMRMLScalarVolumeNode", "resampled")
    other.SetSpacing(1.0, 1.0, 1.0)
    other.SetOrigin(volume.GetOrigin())
    img = vtk.vtkImageData()
    img.SetDimensions(40, 40, 40)
    img.AllocateScalars(vtk.VTK_SHORT, 1)
    other.SetAndObserveImageData(img)
    seg, sid = create_tumour_segment(other)
    arr = np.zeros((40, 40, 40), np.uint8)
    arr[10:20, 10:20, 10:20] = 1
    set_segment_from_array(seg, sid, arr, other)
    with pytest.raises(InputError, match="geometry differs from CT 'lung2'"):
        mc.check_segment_geometry(seg, sid, volume)


def test_non_ct_volumes_are_refused(scene, shared_data):
    mr = mc.load_volume_file(scene, shared_data / "ct" / "brain1_image.nrrd", name="brain1")
    with pytest.raises(InputError, match="brain1.*Hounsfield"):
        mc.check_ct_volume(mr)
    label = mc.load_volume_file(scene, shared_data / "ct" / "lung2_label.nrrd", labelmap=True)
    with pytest.raises(InputError, match="labelmap"):
        mc.check_ct_volume(label)


def test_dicom_modality_other_than_ct_is_refused(lung2):
    _, volume, _, _ = lung2
    volume.SetAttribute("DICOM.Modality", "MR")
    with pytest.raises(InputError, match="modality is MR"):
        mc.check_ct_volume(volume)


def test_missing_file_is_named(scene, tmp_path):
    with pytest.raises(InputError, match="nope.nrrd.*not found"):
        mc.load_volume_file(scene, tmp_path / "nope.nrrd")


def test_table_node_round_trip(scene):
    df = pd.DataFrame({"name": ["a", "b"], "value": [1.5, np.nan], "flag": [True, False]})
    node = mc.dataframe_to_table_node(df, scene.AddNewNodeByClass("vtkMRMLTableNode"))
    assert node.GetNumberOfRows() == 2 and node.GetNumberOfColumns() == 3
    back = mc.table_node_to_dataframe(node)
    assert back["name"].tolist() == ["a", "b"]
    assert back["value"].iloc[0] == 1.5 and np.isnan(back["value"].iloc[1])
    assert back["flag"].tolist() == ["True", "False"]
