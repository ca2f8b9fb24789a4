"""qupath_bridge is a leaf: it imports nothing from gistrisk and raises its own errors."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import box

import qupath_bridge
from qupath_bridge.annotation import Annotation
from qupath_bridge.errors import QuPathBridgeError, QuPathInputError, QuPathUnavailableError
from qupath_bridge.geojson import read_annotations, write_annotations

BRIDGE = Path(qupath_bridge.__file__).resolve().parent
REPO = BRIDGE.parent

_PROBE = r"""
import importlib, pkgutil, sys, types

class NoGistrisk:
    def find_spec(self, name, path=None, target=None):
        if name == "gistrisk" or name.startswith("gistrisk."):
            raise ImportError(f"qupath_bridge must not import {name}")
        return None

sys.meta_path.insert(0, NoGistrisk())
paquo = types.ModuleType("paquo")  # paquo_reader needs paquo + QuPath: a stand-in lets its own imports run
paquo.projects = types.ModuleType("paquo.projects")
paquo.projects.QuPathProject = object
sys.modules.update({"paquo": paquo, "paquo.projects": paquo.projects})
import qupath_bridge
names = ["qupath_bridge"] + [m.name for m in pkgutil.walk_packages(qupath_bridge.__path__, "qupath_bridge.")]
for name in names:
    importlib.import_module(name)
for name in qupath_bridge.__all__:
    getattr(qupath_bridge, name)
print(sorted(names))
"""


def test_every_module_imports_without_gistrisk():
    p = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert p.returncode == 0, p.stderr
    names = set(eval(p.stdout.strip().splitlines()[-1]))  # noqa: S307  (our own printed list)
    assert {"qupath_bridge.geojson", "qupath_bridge.project", "qupath_bridge.paquo_reader",
            "qupath_bridge.naming", "qupath_bridge.errors"} <= names


def test_no_gistrisk_import_anywhere_in_the_bridge():
    """Also imports inside functions, which an import-time check does not reach."""
    found = []
    for f in sorted(BRIDGE.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{f.name}: {m}" for m in mods if m.split(".")[0] == "gistrisk"]
    assert found == []


def test_bridge_errors_are_its_own(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(QuPathInputError) as e:
        read_annotations(bad)
    assert isinstance(e.value, ValueError) and isinstance(e.value, QuPathBridgeError)
    assert e.value.file == str(bad) and str(e.value).startswith(f"file {bad}: ")
    assert "not valid JSON" in e.value.message and not e.value.message.startswith("file ")
    assert issubclass(QuPathUnavailableError, QuPathBridgeError)


def test_write_is_atomic_and_keeps_numpy_measurements(tmp_path):
    out = tmp_path / "sub" / "a.geojson"
    write_annotations(out, [Annotation(box(0, 0, 5, 5), "Tumour", measurements={"n": np.float32(1.5)})],
                      provenance={"count": np.int64(3), "path": tmp_path})
    doc = json.loads(out.read_text())
    assert doc["gistrisk"] == {"count": 3, "path": str(tmp_path)}
    assert [p.name for p in out.parent.iterdir()] == ["a.geojson"]  # no temporary file left
