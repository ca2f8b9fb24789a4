"""Static checks of the Groovy scripts (no QuPath or Groovy on the build machines, so they are not run).

What is checked: delimiters balance outside strings and comments; the header names purpose, QuPath
version and parameters; the documented parameters are exactly those in the parameters block and
each is used; the file-name rule matches qupath_bridge.naming; the export uses QuPath's
FeatureCollection form, whose output our reader covers (fixture in that form); the import script's
defaults match what write_tile_predictions writes. Not checked: that QuPath runs them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from qupath_bridge import GROOVY_DIR, groovy_script
from qupath_bridge.geojson import load_features, read_annotations, write_tile_predictions
from qupath_bridge.naming import (
    STRIP_EXTENSION,
    TILE_PREDICTIONS_SUFFIX,
    UNSAFE_CHARS,
    annotations_file_name,
    image_base_name,
)
from qupath_bridge.tiles import TUMOUR_MEASUREMENT

SCRIPTS = ["export_annotations_geojson", "import_tile_predictions"]
_PAIRS = {")": "(", "]": "[", "}": "{"}


def code_outside_strings(src: str) -> str:
    """The source with comments and string contents blanked (newlines kept); raises on unterminated ones."""
    out, i, n = [], 0, len(src)
    while i < n:
        two, three = src[i:i + 2], src[i:i + 3]
        if two == "//":
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif two == "/*":
            j = src.find("*/", i + 2)
            if j < 0:
                raise SyntaxError(f"unterminated comment at line {src.count(chr(10), 0, i) + 1}")
            out.append(re.sub(r"[^\n]", " ", src[i:j + 2]))
            i = j + 2
        elif three in ("'''", '"""'):
            j = src.find(three, i + 3)
            if j < 0:
                raise SyntaxError(f"unterminated triple-quoted string at line {src.count(chr(10), 0, i) + 1}")
            out.append(three + re.sub(r"[^\n]", " ", src[i + 3:j]) + three)
            i = j + 3
        elif src[i] in "'\"":
            q, j = src[i], i + 1
            while j < n and src[j] != q:
                if src[j] == "\n":
                    raise SyntaxError(f"unterminated string at line {src.count(chr(10), 0, i) + 1}")
                j += 2 if src[j] == "\\" else 1
            if j >= n:
                raise SyntaxError(f"unterminated string at line {src.count(chr(10), 0, i) + 1}")
            out.append(q + " " * (j - i - 1) + q)
            i = j + 1
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def unbalanced(src: str) -> str | None:
    """None when (), [] and {} balance outside strings and comments, else where they do not."""
    stack: list[tuple[str, int]] = []
    for lineno, line in enumerate(code_outside_strings(src).splitlines(), start=1):
        for ch in line:
            if ch in "([{":
                stack.append((ch, lineno))
            elif ch in _PAIRS:
                if not stack or stack[-1][0] != _PAIRS[ch]:
                    return f"unexpected {ch!r} at line {lineno}"
                stack.pop()
    return f"unclosed {stack[-1][0]!r} from line {stack[-1][1]}" if stack else None


def header(src: str) -> str:
    assert src.lstrip().startswith("/*"), "script must open with a header comment"
    return src[: src.index("*/")]


def documented_params(src: str) -> list[str]:
    block = header(src).split("Parameters", 1)[1]
    return re.findall(r"^\s*\*\s{3}(\w+)\s{2,}\S", block, flags=re.M)


def params_block(src: str) -> dict[str, str]:
    m = re.search(r"// ---- Parameters ----\n(.*?)// ---- End of parameters ----", src, flags=re.S)
    assert m, "parameters block markers missing"
    return dict(re.findall(r"^\s*(\w+)\s*:\s*(.+?),?\s*$", m.group(1), flags=re.M))


def _groovy_single_quoted(literal: str) -> str:
    return literal.replace("\\\\", "\\")


@pytest.fixture(params=SCRIPTS)
def script(request) -> tuple[str, str]:
    return request.param, groovy_script(request.param).read_text(encoding="utf-8")


def test_all_bundled_scripts_are_checked():
    assert sorted(p.stem for p in GROOVY_DIR.glob("*.groovy")) == sorted(SCRIPTS)


def test_checker_catches_what_it_should():
    assert unbalanced("def a = [1, 2]\nif (x) { y('}') }\n// }\n/* ( */") is None
    assert unbalanced("def a = [1, 2\n") == "unclosed '[' from line 1"
    assert unbalanced("if (x) { y() ]") == "unexpected ']' at line 1"
    with pytest.raises(SyntaxError, match="unterminated string at line 2"):
        code_outside_strings("ok()\nprintln 'oops\n")


def test_delimiters_balance(script):
    name, src = script
    assert unbalanced(src) is None, name


def test_header_fields(script):
    name, src = script
    head = header(src)
    for field in ("Purpose:", "QuPath version:", "Run:", "Parameters"):
        assert field in head, f"{name}: header lacks {field!r}"
    version_line = head.split("QuPath version:", 1)[1].splitlines()[0]
    assert "0.4-0.6" in version_line and "not run here" in version_line
    assert "QuPath script -p" in head and "Run for project" in head  # headless and GUI both documented


def test_documented_parameters_exist_and_are_used(script):
    name, src = script
    params = params_block(src)
    assert documented_params(src) == list(params), name
    body = src.split("// ---- End of parameters ----", 1)[1]
    used = set(re.findall(r"params\.(\w+)\b(?!\s*\()", body))  # property reads, not method calls
    assert used == set(params), f"{name}: used {sorted(used)} vs defined {sorted(params)}"
    assert "binding.hasVariable('args')" in body  # headless -a name=value overrides, GUI without args


def test_file_name_rule_matches_python(script):
    name, src = script
    regexes = re.findall(r"\.replaceAll\('((?:[^'\\]|\\.)*)', '(_?)'\)", src)
    assert [(_groovy_single_quoted(r), repl) for r, repl in regexes] == [(STRIP_EXTENSION, ""), (UNSAFE_CHARS, "_")]
    assert image_base_name("CMU-1-Small-Region.svs") == "CMU-1-Small-Region"
    assert image_base_name("TD_01_verysmall_mIF.ome.tif") == "TD_01_verysmall_mIF.ome"
    assert image_base_name("Copy of 88 (region 2).tif") == "Copy of 88 _region 2_"


def test_export_script_uses_feature_collection_form_our_reader_covers(qp_fixture: Path):
    src = groovy_script("export_annotations_geojson").read_text(encoding="utf-8")
    code = code_outside_strings(src)
    assert "exportObjectsToGeoJson(" in code
    assert "options = ['FEATURE_COLLECTION']" in src
    assert "+ '.geojson'" in src and annotations_file_name("CMU-1-Small-Region.svs") == "CMU-1-Small-Region.geojson"
    # The fixture is in that output form; the reader covers all of it (see data/README.md).
    feats = load_features(qp_fixture)
    assert all(list(f) == ["type", "id", "geometry", "properties"] for f in feats)
    assert all(f["properties"]["objectType"] == "annotation" for f in feats)
    anns = read_annotations(qp_fixture)
    assert len(anns) == len(feats) and all(a.id for a in anns)


def test_import_script_defaults_match_the_writer(tmp_path: Path):
    src = groovy_script("import_tile_predictions").read_text(encoding="utf-8")
    params = params_block(src)
    assert params["measurementName"] == f"'{TUMOUR_MEASUREMENT}'"
    assert params["fileSuffix"] == f"'{TILE_PREDICTIONS_SUFFIX}'"
    assert "PathIO.readObjects(file)" in src
    # What write_tile_predictions writes passes the script's own check: every object carries the measurement.
    df = pd.DataFrame({"x": [0, 224], "y": [0, 0], "prob_tumour": [0.7, 0.1], "prob_stroma": [0.3, 0.9]})
    out = tmp_path / ("CMU-1-Small-Region" + TILE_PREDICTIONS_SUFFIX)
    write_tile_predictions(out, df, tile_size_px=224, classes=["tumour", "stroma"])
    objs = read_annotations(out)
    assert all(TUMOUR_MEASUREMENT in a.measurements for a in objs)
    assert {a.object_type for a in objs} <= {"tile", "detection"}  # both are detections, which the script replaces
