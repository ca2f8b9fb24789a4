"""The extension's build files describe the module that is here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP = (REPO / "CMakeLists.txt").read_text()
MODULE = (REPO / "SlicerGISTRisk" / "CMakeLists.txt").read_text()


def test_extension_metadata():
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS"):
        assert re.search(rf'set\({key} "[^"]+"\)', TOP), key
    assert 'set(EXTENSION_CATEGORY "Quantification")' in TOP
    assert 'set(EXTENSION_DEPENDS "SlicerRadiomics")' in TOP
    assert "add_subdirectory(SlicerGISTRisk)" in TOP and "PyTorch" in TOP


def test_module_build_lists_every_python_file_and_resource():
    listed = set(re.findall(r"\$\{MODULE_NAME\}(Lib/\w+\.py|\.py)", MODULE))
    here = {"Lib/" + p.name for p in (REPO / "SlicerGISTRisk" / "SlicerGISTRiskLib").glob("*.py")} | {".py"}
    assert listed == here
    for res in re.findall(r"Resources/\S+", MODULE):
        assert (REPO / "SlicerGISTRisk" / res.replace("${MODULE_NAME}", "SlicerGISTRisk")).is_file(), res
    assert "WITH_GENERIC_TESTS" in MODULE and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in MODULE


def test_icon_is_128_pixels_square():
    from PIL import Image

    assert Image.open(REPO / "SlicerGISTRisk" / "Resources" / "Icons" / "SlicerGISTRisk.png").size == (128, 128)
