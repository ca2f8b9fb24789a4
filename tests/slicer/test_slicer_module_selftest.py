"""The module's own Slicer self-test (run by CTest inside Slicer) passes headless too."""

from __future__ import annotations

import unittest

import pytest


@pytest.mark.slow
def test_module_self_test_passes(module):
    suite = unittest.TestSuite([module.SlicerGISTRiskTest("runTest")])
    result = unittest.TextTestRunner(verbosity=0).run(suite)
    assert result.wasSuccessful(), result.failures + result.errors


def test_grow_from_seeds_through_the_logic_with_markups(logic, lung2, lung2_files):
    import numpy as np
    import SimpleITK as sitk

    from SlicerGISTRiskLib import mrml_convert as mc

    scene, volume, _, _ = lung2
    truth = sitk.GetArrayFromImage(sitk.ReadImage(str(lung2_files[1]))) > 0
    c = np.argwhere(truth).mean(0).round().astype(int)
    m = mc.ijk_to_ras(volume)
    inside = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "inside")
    outside = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "outside")
    inside.AddControlPoint(*(m @ np.r_[c[::-1], 1.0])[:3])
    for d in ([0, 0, 40], [0, 0, -40], [0, 40, 0], [0, -40, 0]):
        outside.AddControlPoint(*(m @ np.r_[(c + d)[::-1], 1.0])[:3])
    seg, sid = logic.growFromSeeds(volume, inside, outside, None, (-50.0, 250.0), 3.0)
    draft = sitk.GetArrayFromImage(mc.segment_to_sitk(seg, sid, volume)) > 0
    assert 2 * (draft & truth).sum() / (draft.sum() + truth.sum()) > 0.75
    assert volume.GetDisplayNode() is None or volume.GetDisplayNode().GetWindow() > 0
