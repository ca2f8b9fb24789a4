"""The QuPath file-name contract: qupath_bridge.naming and both Groovy scripts give the same names,
and images whose names give one file name are refused on both sides (never overwritten silently)."""

from __future__ import annotations

import re

import pytest

from qupath_bridge import groovy_script
from qupath_bridge.naming import (
    ANNOTATIONS_SUFFIX,
    TILE_PREDICTIONS_SUFFIX,
    NameClash,
    annotations_file_name,
    file_name_clashes,
    image_base_name,
    tile_predictions_file_name,
)

SCRIPTS = {"export_annotations_geojson": ANNOTATIONS_SUFFIX, "import_tile_predictions": TILE_PREDICTIONS_SUFFIX}
AWKWARD = ["HE (1).svs", "a.b c.svs", "x+y#z.svs", "CMU-1-Small-Region.svs", "TD_01.ome.tif", "no_extension",
           "café ünïcode.ndpi", "tab\there.svs", "slash/and\\back:colon.tif", "trailing dot.",
           "Copy of 88 (region 2).tif", "emoji \U0001F52C.svs"]


def groovy_base_name(script: str, image_name: str) -> str:
    """Apply the script's own ``replaceAll`` chain (parsed from the .groovy file) to ``image_name``."""
    src = groovy_script(script).read_text(encoding="utf-8")
    pairs = re.findall(r"\.replaceAll\('((?:[^'\\]|\\.)*)', '((?:[^'\\]|\\.)*)'\)", src)
    assert len(pairs) == 2, f"{script}: expected one chain of two replaceAll calls, found {pairs}"
    out = image_name
    for pattern, repl in pairs:
        assert "$" not in repl and "\\" not in repl, "Java replacement string with group references"
        out = re.sub(pattern.replace("\\\\", "\\"), repl, out)
    return out


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("name", AWKWARD)
def test_python_and_groovy_give_the_same_file_name(script, name):
    assert image_base_name(name) == groovy_base_name(script, name)


def test_awkward_names():
    assert tile_predictions_file_name("HE (1).svs") == "HE _1_.tiles.geojson"
    assert tile_predictions_file_name("a.b c.svs") == "a.b c.tiles.geojson"
    assert tile_predictions_file_name("x+y#z.svs") == "x_y_z.tiles.geojson"
    assert annotations_file_name("x+y#z.svs") == "x_y_z.geojson"


def test_file_name_clashes_are_structured_and_ignore_case():
    names = ["HE (1).svs", "ok.svs", "HE _1_.tif", "he _1_.svs", "b.svs", "b.svs"]
    clashes = file_name_clashes(names)
    assert clashes == [NameClash("HE _1_.tiles.geojson", (0, 2, 3), ("HE (1).svs", "HE _1_.tif", "he _1_.svs")),
                       NameClash("b.tiles.geojson", (4, 5), ("b.svs", "b.svs"))]
    assert file_name_clashes(["a.svs", "b.svs"]) == []
    assert file_name_clashes(["a.svs", "A.tif"], suffix=ANNOTATIONS_SUFFIX)[0].file_name == "a.geojson"


@pytest.mark.parametrize("script", SCRIPTS)
def test_groovy_scripts_refuse_images_sharing_a_file_name(script):
    """Each script applies its one name rule to every image of the project and stops on a clash."""
    src = groovy_script(script).read_text(encoding="utf-8")
    assert src.count(".replaceAll(") == 2, "the name rule must be written once"
    m = re.search(r"def (\w+) = \{ String \w+ -> \w+\.replaceAll\(", src)
    assert m, "the name rule must be a closure, applied to this image and to every image of the project"
    rule = m.group(1)
    assert f"String baseName = {rule}(imageName)" in src
    check = re.search(r"getProject\(\)(.*?)throw new IllegalStateException\(", src, flags=re.S)
    assert check, "no duplicate-name check against the project"
    body = check.group(1)
    assert "getImageList()" in body and f"{rule}(it.getImageName()).equalsIgnoreCase(baseName)" in body
    assert "size() > 1" in body
    head = src[: src.index("*/")]
    assert "same file name" in head  # documented in the header
