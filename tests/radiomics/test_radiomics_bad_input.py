"""Bad input: each case gives a clear InputError naming the file and/or patient and what is wrong."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from gistrisk.cli import app
from gistrisk.errors import InputError
from gistrisk.radiomics import extract_case, extract_files
from gistrisk.radiomics.images import read_image


def _zeros_like(mask: sitk.Image) -> sitk.Image:
    z = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    z.CopyInformation(mask)
    return z


def test_empty_mask(lung2_crop) -> None:
    img, msk = lung2_crop
    with pytest.raises(InputError, match=r"patient P01: mask is empty"):
        extract_case(img, _zeros_like(msk), "pyradiomics_baseline", patient_id="P01")


def test_one_voxel_mask(lung2_crop) -> None:
    img, msk = lung2_crop
    one = _zeros_like(msk)
    one[40, 40, 5] = 1
    with pytest.raises(InputError, match=r"patient P02: ROI \(label 1\) is a single voxel"):
        extract_case(img, one, "pyradiomics_baseline", patient_id="P02")


def test_flat_single_slice_roi(lung2_crop) -> None:
    img, msk = lung2_crop
    arr = sitk.GetArrayFromImage(msk)
    k = int(np.argmax(arr.reshape(arr.shape[0], -1).sum(1)))
    flat_arr = np.zeros_like(arr)
    flat_arr[k] = arr[k]
    flat = sitk.GetImageFromArray(flat_arr)
    flat.CopyInformation(msk)
    with pytest.raises(InputError, match=r"patient P03: ROI \(label 1\) is flat: one voxel thick along axis k"):
        extract_case(img, flat, "pyradiomics_baseline", patient_id="P03", mask_file="flat.nrrd")


def test_label_not_present_lists_labels(lung2_crop) -> None:
    img, msk = lung2_crop
    with pytest.raises(InputError, match=r"file m.nrrd, patient P04: label 7 is not in the mask; labels present: \[1\]"):
        extract_case(img, msk, "pyradiomics_baseline", label=7, patient_id="P04", mask_file="m.nrrd")


def test_several_labels_need_a_choice(lung2_crop) -> None:
    img, msk = lung2_crop
    two = sitk.Cast(msk, sitk.sitkUInt8)
    two[5, 5, 1] = 2
    with pytest.raises(InputError, match=r"several labels \[1, 2\]"):
        extract_case(img, two, "pyradiomics_baseline")


def test_size_spacing_mismatch_strict(lung2_crop) -> None:
    img, msk = lung2_crop
    small = msk[2:-2, :, :]  # a different size and origin, on the same spacing
    respaced = sitk.Image(msk)
    respaced.SetSpacing([s * 1.5 for s in msk.GetSpacing()])
    with pytest.raises(InputError, match=r"patient P05: mask is not on the image grid: size"):
        extract_case(img, small, "pyradiomics_baseline", geometry_policy="strict", patient_id="P05")
    with pytest.raises(InputError, match=r"spacing \(0\.9404"):
        extract_case(img, respaced, "pyradiomics_baseline", geometry_policy="strict")


def test_image_that_is_not_ct(ct_dir: Path) -> None:
    with pytest.raises(InputError, match=r"brain1_image.nrrd, patient B1: image does not look like CT.*never go below 0"):
        extract_files(ct_dir / "brain1_image.nrrd", ct_dir / "brain1_label.nrrd", params="pyradiomics_baseline",
                      patient_id="B1")


def test_nan_and_inf_in_image(lung2_crop) -> None:
    img, msk = lung2_crop
    f = sitk.Cast(img, sitk.sitkFloat32)
    f[3, 4, 2] = float("nan")
    f[5, 4, 2] = float("inf")
    with pytest.raises(InputError, match=r"patient P06: image has 2 NaN/inf voxels \(first at index i=3, j=4, k=2\)"):
        extract_case(f, msk, "pyradiomics_baseline", patient_id="P06")


def test_truncated_and_corrupt_nrrd(lung2_crop_files: tuple[Path, Path], tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    data = img.read_bytes()
    cut = tmp_path / "truncated.nrrd"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"truncated.nrrd, patient T1: cannot read image"):
        extract_files(cut, msk, params="pyradiomics_baseline", patient_id="T1")
    garbage = tmp_path / "garbage.nrrd"
    garbage.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 10 10\n\n" + b"\x00" * 20)
    with pytest.raises(InputError, match="garbage.nrrd.*cannot read image"):
        extract_files(garbage, msk, params="pyradiomics_baseline")
    bad_mask = tmp_path / "mask_cut.nrrd"
    bad_mask.write_bytes(msk.read_bytes()[:200])
    with pytest.raises(InputError, match="mask_cut.nrrd.*cannot read mask"):
        extract_files(img, bad_mask, params="pyradiomics_baseline")
    bad_seg = tmp_path / "cut.seg.nrrd"
    bad_seg.write_bytes(gzip.compress(b"not a segmentation"))
    with pytest.raises(InputError, match="cut.seg.nrrd.*Slicer segmentation"):
        extract_files(img, bad_seg, params="pyradiomics_baseline")


@pytest.fixture()
def pat2_copy(pat2_dir: Path, tmp_path: Path) -> Path:
    d = tmp_path / "pat2"
    shutil.copytree(pat2_dir, d)
    return d


def test_truncated_dicom_slice(pat2_copy: Path) -> None:
    p = pat2_copy / "DCM_IMG_00020.dcm"
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 2000])  # GDCM would silently drop this slice
    with pytest.raises(InputError, match=r"DCM_IMG_00020.dcm, patient D1: truncated or corrupt DICOM slice"):
        extract_files(pat2_copy, pat2_copy, segment="GTV-1", params="pyradiomics_baseline", patient_id="D1")
    p.write_bytes(data[:400])
    with pytest.raises(InputError, match=r"DCM_IMG_00020.dcm.*corrupt or truncated"):
        read_image(pat2_copy)


def test_missing_dicom_slice(pat2_copy: Path) -> None:
    (pat2_copy / "DCM_IMG_00020.dcm").unlink()
    with pytest.raises(InputError, match=r"missing slices or uneven spacing: gap of 6 mm"):
        read_image(pat2_copy)


def test_truncated_rtstruct(pat2_copy: Path) -> None:
    rs = pat2_copy / "DCM_RS_00041.dcm"
    rs.write_bytes(rs.read_bytes()[:5000])
    with pytest.raises(InputError, match=r"DCM_RS_00041.dcm.*(corrupt or truncated)"):
        extract_files(pat2_copy, rs, segment="GTV-1", params="pyradiomics_baseline")


def test_dicom_folder_with_two_series(pat2_copy: Path) -> None:
    for f in sorted(pat2_copy.glob("DCM_IMG_0000[0-4].dcm")):
        ds = pydicom.dcmread(str(f))
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(str(pat2_copy / f"second_{f.name}"))
    with pytest.raises(InputError, match=r"pat2, patient D2: folder holds 2 DICOM series"):
        extract_files(pat2_copy, pat2_copy, segment="GTV-1", params="pyradiomics_baseline", patient_id="D2")
    # naming one file of a series picks that series
    img = read_image(pat2_copy / "DCM_IMG_00010.dcm")
    assert img.GetSize()[2] == 41


def test_rtstruct_roi_name_missing(pat2_dir: Path) -> None:
    with pytest.raises(InputError, match=r"DCM_RS_00041.dcm, patient D3: RTSTRUCT has no ROI named 'PTV'; it has: GTV-1"):
        extract_files(pat2_dir, pat2_dir, segment="PTV", params="pyradiomics_baseline", patient_id="D3")


def test_missing_files(tmp_path: Path, ct_dir: Path) -> None:
    with pytest.raises(InputError, match="nope.nrrd, patient X: image not found"):
        extract_files(tmp_path / "nope.nrrd", ct_dir / "lung2_label.nrrd", patient_id="X")
    with pytest.raises(InputError, match="mask not found"):
        extract_files(ct_dir / "lung2_image.nrrd", tmp_path / "nope.nrrd", patient_id="X")


def test_extract_never_writes_over_an_input_or_a_folder(shared_data, tmp_path):
    image = tmp_path / "image.nrrd"
    image.write_bytes((shared_data / "ct" / "lung2_image.nrrd").read_bytes())
    before = image.read_bytes()
    r = CliRunner().invoke(app, ["radiomics", "extract", "--image", str(image), "--mask",
                                 str(shared_data / "ct" / "lung2_label.nrrd"), "--out", str(image)])
    assert isinstance(r.exception, InputError) and "is also an input" in str(r.exception)
    assert image.read_bytes() == before
    r = CliRunner().invoke(app, ["radiomics", "extract", "--image", str(image), "--mask",
                                 str(shared_data / "ct" / "lung2_label.nrrd"), "--out", str(tmp_path)])
    assert isinstance(r.exception, InputError) and "is an existing folder" in str(r.exception)
