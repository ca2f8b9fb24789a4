"""What the Slicer application sets up at start-up and a bare MRML scene lacks.

Inside Slicer these steps are already done and the functions do nothing; in
batch scripts and tests that use the ``slicer-core`` package alone they make
segmentations behave as in the application.
"""

from __future__ import annotations

from typing import Any

_RULES = (
    "vtkBinaryLabelmapToClosedSurfaceConversionRule",
    "vtkClosedSurfaceToBinaryLabelmapConversionRule",
    "vtkClosedSurfaceToFractionalLabelmapConversionRule",
    "vtkFractionalLabelmapToClosedSurfaceConversionRule",
)


def register_segmentation_converters() -> int:
    """Register the segmentation representation converters if none are; returns how many were added."""
    import slicer

    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if len(factory.GetConverterRules()) > 0:
        return 0
    added = 0
    for name in _RULES:
        cls = getattr(slicer, name, None)
        if cls is not None:
            factory.RegisterConverterRule(cls())
            added += 1
    return added


_COLOR_LOGICS: list[Any] = []  # keep each scene's colour logic alive with it


def new_scene() -> Any:
    """A fresh MRML scene ready for volumes, segmentations, tables and plots (default colour tables added)."""
    import slicer

    register_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)  # adds the default colour tables labelmaps refer to
    _COLOR_LOGICS.append(colors)
    return scene
