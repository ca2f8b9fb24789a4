"""Stand-ins for the Slicer *application* pieces the ``slicer-core`` package lacks.

Only what a headless MRML library cannot have: ``slicer.app``, ``slicer.mrmlScene``,
``qt`` (an empty module: the widget is not exercised here), the
ScriptedLoadableModule base classes, ``slicer.i18n`` and a small
``parameterNodeWrapper`` that stores typed values in a real
``vtkMRMLScriptedModuleNode``; and what the application sets up at start-up
and a bare scene lacks (:func:`new_scene`: segmentation converters, colour
tables). Every MRML class (scene, volumes, segmentations, tables, plots) is
the real one from slicer-core.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import types
import typing
import unittest
from typing import Any

_INSTALLED = False

_RULES = (
    "vtkBinaryLabelmapToClosedSurfaceConversionRule",
    "vtkClosedSurfaceToBinaryLabelmapConversionRule",
    "vtkClosedSurfaceToFractionalLabelmapConversionRule",
    "vtkFractionalLabelmapToClosedSurfaceConversionRule",
)
_COLOR_LOGICS: list[Any] = []  # keep each scene's colour logic alive with it


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


def new_scene() -> Any:
    """A fresh MRML scene ready for volumes, segmentations, tables and plots, as the application's
    (segmentation converters registered, default colour tables added)."""
    import slicer

    register_segmentation_converters()
    scene = slicer.vtkMRMLScene()
    colors = slicer.vtkMRMLColorLogic()
    colors.SetMRMLScene(scene)  # adds the default colour tables labelmaps refer to
    _COLOR_LOGICS.append(colors)
    return scene


class _App:
    """The few ``slicer.app`` members the module touches."""

    temporaryPath = tempfile.gettempdir()

    @staticmethod
    def testingEnabled() -> bool:
        return True

    @staticmethod
    def processEvents() -> None:
        return None


class WithinRange:
    """``Annotated[float, WithinRange(lo, hi)]``: values outside are refused, as in Slicer."""

    def __init__(self, minimum: float, maximum: float):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value: Any) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"{value} not in [{self.minimum}, {self.maximum}]")


def parameterNodeWrapper(cls: type) -> type:
    """Typed properties over a vtkMRMLScriptedModuleNode (str/int/float/bool/Path/MRML node)."""
    import slicer

    hints = typing.get_type_hints(cls, include_extras=True)
    defaults = {name: getattr(cls, name) for name in hints if hasattr(cls, name)}

    def __init__(self, parameterNode):
        self.parameterNode = parameterNode
        for name, value in defaults.items():
            if not parameterNode.GetParameter(name):
                setattr(self, name, value)

    def _prop(name: str, hint: Any) -> property:
        base, validators = hint, []
        if typing.get_origin(hint) is typing.Annotated:
            base, *validators = typing.get_args(hint)
        is_node = isinstance(base, type) and issubclass(base, slicer.vtkMRMLNode)

        def get(self):
            if is_node:
                return self.parameterNode.GetNodeReference(name)
            raw = self.parameterNode.GetParameter(name)
            if base is bool:
                return raw == "true"
            if base in (int, float):
                return base(raw) if raw else base()
            if base is pathlib.Path:
                return pathlib.Path(raw) if raw else pathlib.Path()
            return raw

        def set_(self, value):
            if is_node:
                self.parameterNode.SetNodeReferenceID(name, value.GetID() if value is not None else None)
                return
            for v in validators:
                if hasattr(v, "validate"):
                    v.validate(value)
            text = ("true" if value else "false") if base is bool else str(value)
            self.parameterNode.SetParameter(name, text)

        return property(get, set_)

    ns: dict[str, Any] = {"__init__": __init__, "__doc__": cls.__doc__, "allParameters": dict(hints),
                          "connectGui": lambda self, gui: object(), "disconnectGui": lambda self, tag: None}
    for name, hint in hints.items():
        ns[name] = _prop(name, hint)
    return type(cls.__name__, (), ns)


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None):
        self.parent = parent


class ScriptedLoadableModuleLogic:
    """Parameter node singleton per module in ``slicer.mrmlScene``, as Slicer's base class keeps it."""

    def __init__(self, parent=None):
        self.moduleName = type(self).__name__.removesuffix("Logic")

    def getParameterNode(self):
        import slicer

        scene = slicer.mrmlScene
        for i in range(scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode")):
            node = scene.GetNthNodeByClass(i, "vtkMRMLScriptedModuleNode")
            if node.GetAttribute("ModuleName") == self.moduleName:
                return node
        node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", self.moduleName)
        node.SetAttribute("ModuleName", self.moduleName)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message: str, msec: int = 0) -> None:
        return None


def install(module_dir: str | pathlib.Path | None = None) -> None:
    """Register the stand-ins (idempotent); ``module_dir`` holds the module (default: this checkout's)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import slicer

    folder = str(module_dir or pathlib.Path(__file__).resolve().parents[2] / "SlicerGISTRisk")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    for name in ("qt",):
        sys.modules.setdefault(name, types.ModuleType(name))
    slm = types.ModuleType("slicer.ScriptedLoadableModule")
    for obj in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(slm, obj.__name__, obj)
    pnw = types.ModuleType("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper, pnw.WithinRange = parameterNodeWrapper, WithinRange
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    for mod in (slm, pnw, i18n):
        sys.modules[mod.__name__] = mod
        setattr(slicer, mod.__name__.split(".")[1], mod)
    slicer.app = _App()
    slicer.mrmlScene = new_scene()
    _INSTALLED = True
