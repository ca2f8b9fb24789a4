"""Tumour segment creation and the grow-from-seeds start on the real lung2 CT."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
import vtk

from gistrisk.errors import InputError
from SlicerGISTRiskLib import mrml_convert as mc
from SlicerGISTRiskLib import segmentation_setup as ss


def test_tumour_segment_has_name_colour_terminology_and_soft_tissue_window(lung2):
    _, volume, _, _ = lung2
    seg, sid = ss.create_tumour_segment(volume)
    segment = seg.GetSegmentation().GetSegment(sid)
    assert segment.GetName() == "GIST"
    np.testing.assert_allclose(segment.GetColor(), ss.TUMOUR_COLOR, atol=1e-6)
    assert "SCT^108369006^Neoplasm" in segment.GetTerminology()
    diagnosis = vtk.reference("")
    assert segment.GetTag(ss.DIAGNOSIS_TAG[0], diagnosis) and "8936" in str(diagnosis)
    # a second call reuses the segment instead of adding another
    seg2, sid2 = ss.create_tumour_segment(volume, seg)
    assert (seg2, sid2) == (seg, sid) and seg.GetSegmentation().GetNumberOfSegments() == 1
    ss.apply_soft_tissue_window(volume)
    display = volume.GetDisplayNode()
    assert (display.GetWindow(), display.GetLevel()) == (400.0, 40.0) and not display.GetAutoWindowLevel()


def _ras(volume, kji):
    return (mc.ijk_to_ras(volume) @ np.r_[np.asarray(kji, float)[::-1], 1.0])[:3]


def test_grow_from_seeds_drafts_the_lung2_tumour(lung2, lung2_files):
    _, volume, _, _ = lung2
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(lung2_files[1]))) > 0
    centre = np.argwhere(truth).mean(0).round().astype(int)
    inside = [_ras(volume, centre)]
    outside = [_ras(volume, centre + d) for d in ([0, 0, 40], [0, 0, -40], [0, 40, 0], [0, -40, 0])]
    seg, sid = ss.grow_from_seeds(volume, inside, outside)
    draft = sitk.GetArrayFromImage(mc.segment_to_sitk(seg, sid, volume)) > 0
    dice = 2 * (draft & truth).sum() / (draft.sum() + truth.sum())
    assert dice > 0.75
    ct = sitk.GetArrayFromImage(mc.volume_to_sitk(volume))
    lo, hi = ss.PORTAL_VENOUS_HU_RANGE
    assert ct[draft].min() >= lo and ct[draft].max() <= hi  # the HU restriction holds


def test_narrower_hu_range_grows_less(lung2, lung2_files):
    _, volume, _, _ = lung2
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(lung2_files[1]))) > 0
    centre = np.argwhere(truth).mean(0).round().astype(int)
    inside, outside = [_ras(volume, centre)], [_ras(volume, centre + [0, 0, 40]), _ras(volume, centre + [0, 40, 0])]
    wide = ss.grow_from_seeds(volume, inside, outside)
    narrow = ss.grow_from_seeds(volume, inside, outside, config=ss.GrowFromSeedsConfig(hu_range=(30.0, 60.0)))
    n_wide = int(sitk.GetArrayFromImage(mc.segment_to_sitk(*wide[:1], wide[1], volume)).sum())
    n_narrow = int(sitk.GetArrayFromImage(mc.segment_to_sitk(narrow[0], narrow[1], volume)).sum())
    assert 0 < n_narrow < n_wide


def test_seeds_outside_the_ct_or_missing_are_refused(lung2):
    _, volume, _, _ = lung2
    with pytest.raises(InputError, match="seed lies outside"):
        ss.grow_from_seeds(volume, [[5000.0, 0.0, 0.0]], [[0.0, 0.0, -300.0]])
    with pytest.raises(InputError, match="at least one seed"):
        ss.grow_from_seeds(volume, [], [[0.0, 0.0, -300.0]])
