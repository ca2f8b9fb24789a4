"""Real CT inputs for the radiomics tests (from ../shared/data), plus small crops made on the fly."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk

# lung2's tumour bounding box (i, j, k, size_i, size_j, size_k) from PyRadiomics' baseline diagnostics
LUNG2_BBOX = (318, 333, 15, 87, 66, 11)


def _crop(image: sitk.Image, mask: sitk.Image, pad: int = 6) -> tuple[sitk.Image, sitk.Image]:
    i, j, k, si, sj, sk = LUNG2_BBOX
    sl = (slice(i - pad, i + si + pad), slice(j - pad, j + sj + pad), slice(k - 1, k + sk + 1))
    return image[sl], mask[sl]


@pytest.fixture(scope="session")
def ct_dir(shared_data: Path) -> Path:
    return shared_data / "ct"


@pytest.fixture(scope="session")
def pat2_dir(ct_dir: Path) -> Path:
    return ct_dir / "dicom_ct_rtstruct_pat2"


@pytest.fixture(scope="session")
def lung2(ct_dir: Path) -> tuple[sitk.Image, sitk.Image]:
    """The full lung2 CT (512x512x61, HU) and its tumour label."""
    return sitk.ReadImage(str(ct_dir / "lung2_image.nrrd")), sitk.ReadImage(str(ct_dir / "lung2_label.nrrd"))


@pytest.fixture()
def lung2_crop(lung2) -> tuple[sitk.Image, sitk.Image]:
    """A small real CT: lung2 cropped to the tumour plus 6 voxels in-plane and one slice (fresh copies)."""
    return _crop(*lung2)


@pytest.fixture(scope="session")
def lung2_crop_files(lung2, tmp_path_factory) -> tuple[Path, Path]:
    img, msk = _crop(*lung2)
    d = tmp_path_factory.mktemp("lung2crop")
    sitk.WriteImage(img, str(d / "image.nrrd"), useCompression=True)
    sitk.WriteImage(msk, str(d / "label.nrrd"), useCompression=True)
    return d / "image.nrrd", d / "label.nrrd"
