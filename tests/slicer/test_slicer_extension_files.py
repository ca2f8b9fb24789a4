"""The extension as Slicer's Default template lays it out, configured by CMake against a Slicer stand-in,
its Extensions Index entry, LICENSE, and the pictures its description points to."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
RAW = "https://raw.githubusercontent.com/SlicerGISTRisk/SlicerGISTRisk/main/"
#: keys and types of Slicer's extension catalog entry schema v1.0.1 (Schemas/ in the Slicer repository)
CATALOG_KEYS = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
CATALOG_SCHEMA = "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json#"


@pytest.fixture(scope="module")
def description(extension_build) -> dict[str, str]:
    """EXTENSION_* as CMake set them when configuring the extension."""
    build, _ = extension_build
    text = (build / "stand_in" / "extension.txt").read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def test_configured_as_a_plain_extension_not_a_superbuild(description):
    # the SuperBuild template's settings without a SuperBuild made Slicer look for an inner build
    assert description["EXTENSION_BUILD_SUBDIRECTORY"] == "" and description["SUPERBUILD_TOPLEVEL_PROJECT"] == ""
    assert description["EXTENSION_CATEGORY"] == "Quantification"
    assert description["EXTENSION_DEPENDS"] == "NA"  # SlicerRadiomics is optional: used when installed


def test_contributors_are_name_and_affiliation(description, module):
    pattern = re.compile(r"^[^(),]+ \([^()]+\)$")
    names = re.split(r",\s*(?![^()]*\))", description["EXTENSION_CONTRIBUTORS"])
    assert names and all(pattern.match(n) for n in names), names
    probe = type("P", (), {})()
    module.SlicerGISTRisk(probe)
    assert all(pattern.match(n) for n in probe.contributors) and probe.contributors == names


def test_icon_and_screenshots_point_to_files_in_this_repository(description):
    urls = [description["EXTENSION_ICONURL"], *description["EXTENSION_SCREENSHOTURLS"].split()]
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(RAW), url
        path = REPO / url.removeprefix(RAW)
        assert path.is_file(), f"{url} -> {path} does not exist"
        with Image.open(path) as img:
            assert img.format == "PNG" and min(img.size) >= 128


def test_icon_is_128_pixels_square():
    with Image.open(REPO / "SlicerGISTRisk" / "Resources" / "Icons" / "SlicerGISTRisk.png") as icon:
        assert icon.size == (128, 128)


def test_license_is_the_apache_2_text_pyproject_declares(description):
    text = (REPO / "LICENSE").read_text()
    assert Path(description["EXTENSION_LICENSE_FILE"]) == REPO / "LICENSE"
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 170
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]  # SPDX form


def test_extensions_index_entry_matches_the_catalog_schema_and_cmake(description):
    entry = json.loads((REPO / "SlicerGISTRisk.json").read_text())
    assert entry["$schema"] == CATALOG_SCHEMA
    assert set(entry) <= set(CATALOG_KEYS) and {"$schema", "category", "scm_url"} <= set(entry)
    for key, value in entry.items():
        assert isinstance(value, CATALOG_KEYS[key]), key
    assert entry.get("tier", 1) in (1, 3, 5) and entry.get("scm_type", "git") in ("git", "local")
    assert entry["category"] == description["EXTENSION_CATEGORY"]
    assert entry.get("build_dependencies", []) == ([] if description["EXTENSION_DEPENDS"] == "NA"
                                                   else description["EXTENSION_DEPENDS"].split())
    assert entry.get("build_subdirectory", ".") == "."  # no inner build
    home = urlparse(description["EXTENSION_HOMEPAGE"])
    assert entry["scm_url"] == f"https://{home.netloc}{home.path}.git"


def test_module_test_is_registered_with_ctest(extension_build):
    build, _ = extension_build
    assert (build / "stand_in" / "unittests.txt").read_text().split() == ["SlicerGISTRisk.py"]
