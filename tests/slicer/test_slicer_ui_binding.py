"""The .ui and the code cannot drift: every bound widget exists with a matching parameter, and back."""

from __future__ import annotations

import pathlib
import re
import typing
import xml.etree.ElementTree as ET

import slicer

MODULE_DIR = pathlib.Path(__file__).resolve().parents[2] / "SlicerGISTRisk"

UI = MODULE_DIR / "Resources" / "UI" / "SlicerGISTRisk.ui"
SOURCE = MODULE_DIR / "SlicerGISTRisk.py"

# Widget classes parameterNodeWrapper can bind to each parameter type.
COMPATIBLE = {
    "node": {"qMRMLNodeComboBox"},
    str: {"QLineEdit", "QComboBox"},
    float: {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox", "qMRMLSliderWidget"},
    int: {"QSpinBox", "QSlider", "ctkSliderWidget"},
    bool: {"QCheckBox", "QPushButton", "ctkCheckBox"},
    pathlib.Path: {"ctkPathLineEdit", "ctkDirectoryButton"},
}


def _widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget") if w.get("name")}


def _bound() -> dict[str, tuple[str, ET.Element]]:
    out = {}
    for name, w in _widgets().items():
        for prop in w.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.find("string").text] = (name, w)
    return out


def _kind(hint):
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, type) and issubclass(hint, slicer.vtkMRMLNode):
        return "node", hint.__name__
    return hint, None


def test_every_bound_widget_has_a_parameter_of_a_matching_type(module):
    params = module.SlicerGISTRiskParameterNode.allParameters
    bound = _bound()
    assert bound, "no widget in the .ui carries SlicerParameterName"
    for param, (widget_name, w) in bound.items():
        assert param in params, f"widget {widget_name} binds unknown parameter {param!r}"
        kind, node_class = _kind(params[param])
        assert w.get("class") in COMPATIBLE[kind], f"{widget_name} ({w.get('class')}) cannot hold {param}: {kind}"
        if node_class:
            types = [s.text for s in w.find("property[@name='nodeTypes']/stringlist")]
            assert node_class in types, f"{widget_name} lists {types}, parameter {param} is a {node_class}"


def test_every_parameter_is_bound_or_declared_as_set_by_code(module):
    params = set(module.SlicerGISTRiskParameterNode.allParameters)
    bound = set(_bound())
    assert params - bound == set(module.UNBOUND_PARAMETERS)
    assert not (bound & set(module.UNBOUND_PARAMETERS))


def test_every_widget_the_code_uses_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.(\w+)", SOURCE.read_text(encoding="utf-8")))
    missing = used - set(_widgets())
    assert not missing, f"SlicerGISTRisk.py uses widgets the .ui lacks: {sorted(missing)}"


def test_mrml_widgets_receive_the_scene():
    root = ET.parse(UI).getroot()
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    mrml = {n for n, w in _widgets().items() if w.get("class", "").startswith("qMRML") and n != "SlicerGISTRisk"}
    assert mrml and mrml <= receivers


def _ranges(module) -> dict[str, tuple[float, float]]:
    """(minimum, maximum) of every parameter declared ``Annotated[..., WithinRange(lo, hi)]``."""
    out = {}
    for name, hint in module.SlicerGISTRiskParameterNode.allParameters.items():
        if typing.get_origin(hint) is typing.Annotated:
            for extra in typing.get_args(hint)[1:]:
                if hasattr(extra, "minimum") and hasattr(extra, "maximum"):
                    out[name] = (float(extra.minimum), float(extra.maximum))
    return out


def test_declared_ranges_and_defaults_are_the_widgets(module):
    ranges = _ranges(module)
    fresh = module.SlicerGISTRiskParameterNode(slicer.vtkMRMLScriptedModuleNode())  # defaults only
    assert set(ranges) == {"huMin", "huMax", "seedRadiusMm", "cohortJobs"}
    bound = _bound()
    for name, (lo, hi) in ranges.items():
        props = {p.get("name"): p[0].text for p in bound[name][1].findall("property") if len(p)}
        assert (float(props["minimum"]), float(props["maximum"])) == (lo, hi), name
        default = getattr(fresh, name)
        assert lo <= default <= hi and float(props["value"]) == default, name
