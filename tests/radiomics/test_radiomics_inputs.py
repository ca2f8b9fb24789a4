"""Input formats: DICOM CT + RTSTRUCT, Slicer .seg.nrrd (new, layered, old 4-D), DICOM SEG, NIfTI, off-grid masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from gistrisk.errors import InputError
from gistrisk.radiomics import extract_case, extract_files
from gistrisk.radiomics.images import read_image
from gistrisk.radiomics.masks import read_mask


def _independent_rtstruct_mask(folder: Path, roi_name: str) -> np.ndarray:
    """Rasterise with pydicom geometry + matplotlib point-in-polygon (no SimpleITK, no skimage).

    Returns (slices, rows, cols) bool, slices sorted by z ascending.
    """
    from matplotlib.path import Path as MplPath

    slices, rs = [], None
    for f in sorted(folder.iterdir()):
        if f.suffix != ".dcm":
            continue
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        if ds.Modality == "RTSTRUCT":
            rs = ds
        elif ds.Modality == "CT":
            slices.append(ds)
    slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    ref = slices[0]
    assert [float(x) for x in ref.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]  # axial, so x->col, y->row
    x0, y0 = float(ref.ImagePositionPatient[0]), float(ref.ImagePositionPatient[1])
    dr, dc = (float(v) for v in ref.PixelSpacing)  # row spacing (y), column spacing (x)
    zs = np.array([float(d.ImagePositionPatient[2]) for d in slices])
    rows, cols = int(ref.Rows), int(ref.Columns)
    cc, rr = np.meshgrid(np.arange(cols), np.arange(rows))
    centres = np.column_stack([x0 + cc.ravel() * dc, y0 + rr.ravel() * dr])
    number = next(int(r.ROINumber) for r in rs.StructureSetROISequence if r.ROIName == roi_name)
    out = np.zeros((len(slices), rows, cols), bool)
    for rc in rs.ROIContourSequence:
        if int(rc.ReferencedROINumber) != number:
            continue
        for c in rc.ContourSequence:
            pts = np.asarray(c.ContourData, float).reshape(-1, 3)
            k = int(np.argmin(np.abs(zs - pts[0, 2])))
            inside = MplPath(pts[:, :2]).contains_points(centres).reshape(rows, cols)
            out[k] ^= inside
    return out


def test_rtstruct_roi_matches_independent_rasterisation(pat2_dir: Path) -> None:
    expected = _independent_rtstruct_mask(pat2_dir, "GTV-1")
    ct = read_image(pat2_dir)
    loaded = read_mask(pat2_dir / "DCM_RS_00041.dcm", ct, segment="GTV-1")
    ours = sitk.GetArrayFromImage(loaded.image).astype(bool)
    assert ours.shape == expected.shape
    assert int(expected.sum()) > 1000
    assert int(ours.sum()) == int(expected.sum())
    assert np.array_equal(ours, expected)  # the same voxels, not just the same count

    res = extract_files(pat2_dir, pat2_dir, segment="GTV-1", params="pyradiomics_baseline", patient_id="pat2")
    assert res.diagnostics["gistrisk_roi_voxels"] == int(expected.sum())
    assert res.diagnostics["diagnostics_Mask-original_VoxelNum"] == int(expected.sum())
    assert res.diagnostics["gistrisk_mask_source"]["roi_name"] == "GTV-1"
    assert res.diagnostics["gistrisk_image_spacing"][2] == pytest.approx(3.0, abs=1e-3)
    assert res.features["original_shape_VoxelVolume"] == pytest.approx(
        expected.sum() * 0.977 * 0.977 * 3.0, rel=1e-3)


def test_dicom_file_path_reads_its_series(pat2_dir: Path) -> None:
    img = read_image(pat2_dir / "DCM_IMG_00005.dcm")
    assert img.GetSize() == (141, 138, 41)
    assert img.GetMetaData("0008|0060") == "CT"


def _seg_raw(path: Path) -> tuple[np.ndarray, dict]:
    import nrrd

    return nrrd.read(str(path))


def test_slicer_seg_by_name_and_by_label_value(shared_data: Path) -> None:
    d = shared_data / "slicer"
    ct = read_image(d / "slicerio_CTChest4.nrrd")
    by_name = read_mask(d / "slicerio_Segmentation.seg.nrrd", ct, segment="right lung")
    by_value = read_mask(d / "slicerio_Segmentation.seg.nrrd", ct, label=5)
    a, b = sitk.GetArrayFromImage(by_name.image), sitk.GetArrayFromImage(by_value.image)
    raw, _ = _seg_raw(d / "slicerio_Segmentation.seg.nrrd")  # (i, j, k), right lung = LabelValue 5
    assert np.array_equal(a, b) and int(a.sum()) == int((raw == 5).sum()) > 1000
    assert by_name.info["segment_name"] == "right lung"
    assert by_name.image.GetSize() == ct.GetSize()
    np.testing.assert_allclose(by_name.image.GetOrigin(), ct.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(by_name.image.GetDirection(), ct.GetDirection(), atol=1e-6)
    res = extract_files(d / "slicerio_CTChest4.nrrd", d / "slicerio_Segmentation.seg.nrrd", segment="right lung",
                        params="pyradiomics_baseline")
    assert res.diagnostics["gistrisk_roi_voxels"] == int((raw == 5).sum())
    assert not [w for w in res.diagnostics["gistrisk_warnings"] if "resampled" in w]  # on the CT grid


def test_slicer_seg_overlapping_layers(shared_data: Path) -> None:
    d = shared_data / "slicer"
    ct = read_image(d / "slicerio_CTChest4.nrrd")
    path = d / "slicerio_SegmentationOverlapping.seg.nrrd"
    raw, _ = _seg_raw(path)  # (layer, i, j, k)
    sphere = read_mask(path, ct, segment="overlapping sphere")
    assert sphere.info["segment_layer"] == 1
    assert int(sitk.GetArrayFromImage(sphere.image).sum()) == int((raw[1] == 1).sum())
    ribs = read_mask(path, ct, segment="ribs")
    assert int(sitk.GetArrayFromImage(ribs.image).sum()) == int((raw[0] == 1).sum())
    with pytest.raises(InputError, match="label value 1 is used by 2 segments"):
        read_mask(path, ct, label=1)
    with pytest.raises(InputError, match="8 segments; choose one"):
        read_mask(path, ct)


def test_old_4d_slicer_segmentation(shared_data: Path) -> None:
    path = shared_data / "slicer" / "slicerrt_EclipseProstate_Bladder_Union_PTV.seg.nrrd"
    tiny = read_image(shared_data / "slicer" / "slicerrt_TinyPatientCT.nrrd")
    m = read_mask(path, tiny)  # one segment: chosen without a name
    raw, hdr = _seg_raw(path)
    assert raw.shape == (60, 89, 38, 1)
    assert m.info["segment_name"] == "Bladder_Union_PTV" and m.info["kind"] == "slicer_seg_legacy"
    assert m.image.GetSize() == (60, 89, 38)
    assert int(sitk.GetArrayFromImage(m.image).sum()) == int((raw > 0).sum()) > 0
    np.testing.assert_allclose(m.image.GetSpacing(), [0.976562, 0.976562, 2.5], atol=1e-5)
    np.testing.assert_allclose(m.image.GetOrigin(), [250, 250, -122.5])
    np.testing.assert_allclose(m.image.GetDirection(), [-1, 0, 0, 0, -1, 0, 0, 0, 1])
    assert read_mask(path, tiny, segment="Bladder_Union_PTV").info["segment_id"] == "Bladder_Union_PTV"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The string .* is unlikely to represent")
def test_dicom_seg_written_with_highdicom_reads_back(pat2_dir: Path, tmp_path: Path) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    ct = read_image(pat2_dir)
    rt = read_mask(pat2_dir / "DCM_RS_00041.dcm", ct, segment="GTV-1")
    arr = sitk.GetArrayFromImage(rt.image).astype(bool)  # (slices by z ascending, rows, cols)
    sources = sorted((pydicom.dcmread(str(f)) for f in pat2_dir.glob("DCM_IMG_*.dcm")),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    desc = hd.seg.SegmentDescription(
        segment_number=1, segment_label="GTV-1", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=arr, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[desc], series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="gistrisk-test", manufacturer_model_name="test", software_versions="0",
        device_serial_number="0")
    seg_path = tmp_path / "seg.dcm"
    seg.save_as(str(seg_path))

    res = extract_files(pat2_dir, seg_path, segment="GTV-1", params="pyradiomics_baseline", patient_id="pat2")
    assert res.diagnostics["gistrisk_mask_source"]["kind"] == "dicom_seg"
    assert res.diagnostics["gistrisk_roi_voxels"] == int(arr.sum())
    rt_res = extract_files(pat2_dir, pat2_dir, segment="GTV-1", params="pyradiomics_baseline")
    assert res.features["original_firstorder_Mean"] == pytest.approx(rt_res.features["original_firstorder_Mean"])
    with pytest.raises(InputError, match="no segment named 'Liver'"):
        extract_files(pat2_dir, seg_path, segment="Liver", params="pyradiomics_baseline")


def test_nifti_gives_the_same_features_as_nrrd(lung2_crop_files: tuple[Path, Path], tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    for src, name in ((img, "image.nii.gz"), (msk, "label.nii.gz")):
        sitk.WriteImage(sitk.ReadImage(str(src)), str(tmp_path / name))
    a = extract_files(img, msk, params="pyradiomics_baseline")
    b = extract_files(tmp_path / "image.nii.gz", tmp_path / "label.nii.gz", params="pyradiomics_baseline")
    assert a.features.keys() == b.features.keys()
    for k, v in a.features.items():
        assert b.features[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_off_grid_mask_is_resampled_with_a_warning_or_refused_when_strict(lung2_crop) -> None:
    img, msk = lung2_crop
    # the same mask on a grid with doubled in-plane spacing (half the voxels), same physical space
    coarse = sitk.Resample(msk, [s // 2 for s in msk.GetSize()[:2]] + [msk.GetSize()[2]], sitk.Transform(),
                           sitk.sitkNearestNeighbor, msk.GetOrigin(),
                           [msk.GetSpacing()[0] * 2, msk.GetSpacing()[1] * 2, msk.GetSpacing()[2]],
                           msk.GetDirection(), 0, msk.GetPixelID())
    res = extract_case(img, coarse, "pyradiomics_baseline")
    warn = [w for w in res.diagnostics["gistrisk_warnings"] if "resampled" in w]
    assert warn and "spacing" in warn[0]
    on_grid = extract_case(img, msk, "pyradiomics_baseline")
    vol, vol0 = res.features["original_shape_VoxelVolume"], on_grid.features["original_shape_VoxelVolume"]
    assert vol == pytest.approx(vol0, rel=0.1)  # nearest neighbour keeps the ROI's volume
    with pytest.raises(InputError, match="not on the image grid: size .* spacing"):
        extract_case(img, coarse, "pyradiomics_baseline", geometry_policy="strict", patient_id="p1")


def test_mask_outside_the_image_is_refused(lung2_crop) -> None:
    img, msk = lung2_crop
    moved = sitk.Image(msk)
    moved.SetOrigin([o + 500.0 for o in msk.GetOrigin()])
    with pytest.raises(InputError, match="does not lie on the image"):
        extract_case(img, moved, "pyradiomics_baseline", patient_id="p7")


def test_direction_mismatch_is_named(lung2_crop) -> None:
    img, msk = lung2_crop
    flipped = sitk.Image(msk)
    flipped.SetDirection([-1, 0, 0, 0, 1, 0, 0, 0, 1])
    with pytest.raises(InputError, match="direction"):
        extract_case(img, flipped, "pyradiomics_baseline", geometry_policy="strict")


def test_label_shared_by_unnamed_segments_is_an_input_error() -> None:
    # slicerio leaves "name" out when the header has no SegmentN_Name: the message must still be built.
    from gistrisk.radiomics.masks import _choose_segment

    segments = [{"id": "Segment_1", "labelValue": 1, "layer": 0}, {"id": "Segment_2", "labelValue": 1, "layer": 1}]
    with pytest.raises(InputError, match="label value 1 is used by 2 segments"):
        _choose_segment(segments, label=1, segment=None, file="x.seg.nrrd", patient=None)


def test_an_image_given_as_the_mask_is_refused(lung2_crop_files: tuple[Path, Path], tmp_path: Path,
                                               gistrisk_cli) -> None:
    """Image and mask swapped (or an intensity image named as the mask): its voxels that happen to equal the
    label must not become a tumour. A label map holds whole numbers >= 0; anything else is refused, named."""
    image, mask = lung2_crop_files
    ct = read_image(image)
    with pytest.raises(InputError, match=r"not a label map.*negative values \(minimum -"):
        read_mask(image, ct)
    noisy = sitk.Cast(sitk.ReadImage(str(mask)), sitk.sitkFloat32) * 0.5
    sitk.WriteImage(noisy, str(tmp_path / "half.nrrd"))
    with pytest.raises(InputError, match=r"not a label map.*values that are not whole numbers \(e\.g\. 0\.5\)"):
        read_mask(tmp_path / "half.nrrd", ct)
    whole = sitk.Cast(sitk.ReadImage(str(mask)), sitk.sitkFloat32)  # a float label map of whole numbers: fine
    sitk.WriteImage(whole, str(tmp_path / "float.nrrd"))
    assert read_mask(tmp_path / "float.nrrd", ct).info["kind"] == "labelmap"
    r = gistrisk_cli("radiomics", "extract", "--image", image, "--mask", image, "--label", "1",
                     "--out", tmp_path / "o.csv")
    assert r.returncode == 2 and str(image) in r.stderr and "not a label map" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "o.csv").exists()
