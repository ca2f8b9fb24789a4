"""Simulated CT: readable by SimpleITK and slicerio on one grid, tumour size agrees with the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gistrisk.simulate.config import DEVELOPMENT, EXTERNAL
from gistrisk.simulate.ct import largest_diameter_mm, simulate_ct


def _cases(cohort, name):
    d = cohort[f"{name}_dir"]
    return d, pd.read_csv(d / "radiomics_manifest.csv")


def test_ct_and_segmentation_share_a_grid(cohort):
    import SimpleITK as sitk
    import slicerio

    d, man = _cases(cohort, "development")
    assert len(man) > 0 and set(man["segment"]) == {"GIST tumour"}
    for row in man.itertuples():
        img = sitk.ReadImage(str(d / row.image))
        seg = slicerio.read_segmentation(str(d / row.mask))
        assert seg["voxels"].shape == img.GetSize()  # slicerio is (i, j, k)
        ijk = np.asarray(seg["ijkToLPS"])
        assert np.allclose(np.diag(ijk)[:3], img.GetSpacing())
        assert np.allclose(ijk[:3, 3], img.GetOrigin())
        (segment,) = seg["segments"]
        assert segment["name"] == "GIST tumour"
        assert segment["terminology"]["type"][2] == "Mass"
        assert len(segment["color"]) == 3
        mask = slicerio.segment_mask(seg, segment).transpose(2, 1, 0).astype(bool)  # -> (z, y, x)
        hu = sitk.GetArrayFromImage(img)
        assert hu.dtype == np.int16 and mask.sum() > 20
        # soft-tissue tumour in fat/soft-tissue surroundings, necrosis darker than the enhancing rim
        assert 15 < hu[mask].mean() < 110
        assert (hu[~mask] < -50).mean() > 0.2


def test_table_size_matches_segment_largest_diameter(cohort):
    """Largest diameter by SimpleITK's Feret diameter, an implementation independent of ours."""
    import SimpleITK as sitk
    import slicerio

    d, man = _cases(cohort, "development")
    clin = pd.read_csv(d / "clinical.csv").set_index("patient_id")
    for row in man.itertuples():
        seg = slicerio.read_segmentation(str(d / row.mask))
        lab = sitk.GetImageFromArray(seg["voxels"].transpose(2, 1, 0).astype(np.uint8))
        lab.SetSpacing(tuple(np.diag(seg["ijkToLPS"])[:3]))
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.ComputeFeretDiameterOn()
        stats.Execute(lab)
        feret_cm = stats.GetFeretDiameter(1) / 10.0
        table_cm = clin.loc[row.patient_id, "tumour_size_cm"]
        voxel_cm = max(lab.GetSpacing()) / 10.0
        assert abs(table_cm - feret_cm) <= 0.12 * feret_cm + voxel_cm, row.patient_id


@pytest.mark.parametrize("size_cm", [2.0, 20.0])
def test_extreme_sizes_fit_the_grid(size_cm):
    case = simulate_ct(np.random.default_rng(1), size_cm, 0.0, DEVELOPMENT)
    assert case.mask.sum() > 0
    # the tumour never touches the border of the crop
    assert not (case.mask[0].any() or case.mask[-1].any() or case.mask[:, 0].any() or case.mask[:, :, -1].any())
    assert case.diameter_cm == pytest.approx(size_cm, rel=0.12, abs=0.3)
    assert largest_diameter_mm(case.mask, case.spacing) == pytest.approx(10 * case.diameter_cm)


def _noise_sd(hu: np.ndarray, mask: np.ndarray) -> float:
    """Robust high-frequency noise: MAD of the residual after a 3x3x3 mean, in fat away from edges."""
    from scipy import ndimage

    hu = hu.astype(float)
    resid = hu - ndimage.uniform_filter(hu, 3)
    fat = ndimage.binary_erosion((hu > -200) & (hu < -40) & ~mask, iterations=2)
    r = resid[fat]
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def test_external_scanner_is_noisier_and_coarser(cohort):
    import SimpleITK as sitk
    import slicerio

    sds, spacings = {}, {}
    for name in ("development", "external"):
        d, man = _cases(cohort, name)
        vals = []
        for row in man.itertuples():
            img = sitk.ReadImage(str(d / row.image))
            seg = slicerio.read_segmentation(str(d / row.mask))
            vals.append(_noise_sd(sitk.GetArrayFromImage(img), seg["voxels"].transpose(2, 1, 0) > 0))
            spacings[name] = img.GetSpacing()
        sds[name] = np.median(vals)
    assert sds["external"] > 1.3 * sds["development"]
    assert spacings["development"] == pytest.approx(DEVELOPMENT.ct_spacing_mm)
    assert spacings["external"] == pytest.approx(EXTERNAL.ct_spacing_mm)


def test_heterogeneity_follows_the_texture_latent():
    """The hazard-carrying CT latent must be visible to first-order radiomics (SD inside the ROI)."""
    sd = {}
    for t in (-1.5, 1.5):
        vals = [simulate_ct(np.random.default_rng(s), 6.0, t, DEVELOPMENT) for s in range(4)]
        sd[t] = np.mean([c.hu[c.mask].std() for c in vals])
    assert sd[1.5] > 1.3 * sd[-1.5]
