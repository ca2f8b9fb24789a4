"""gistrisk.pathology and qupath_bridge: review GeoJSON names are the ones the import script looks for,
clashing names are refused, bridge errors reach the user as one line, one class/colour table."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box
from typer.testing import CliRunner

import qupath_bridge.classes as bridge_classes
from gistrisk.errors import InputError
from gistrisk.pathology.annotations import load_slide_annotations
from gistrisk.pathology.cli import app
from gistrisk.pathology.features import write_review_geojson
from gistrisk.simulate.annotations import feature_collection
from qupath_bridge import groovy_script
from qupath_bridge.colors import TISSUE_COLORS
from qupath_bridge.geojson import Annotation, write_annotations

AWKWARD = ["HE (1).svs", "a.b c.svs", "x+y#z.svs"]


def import_script_file_name(image_name: str) -> str:
    """The file import_tile_predictions.groovy looks for: its own regexes and default suffix, parsed."""
    src = groovy_script("import_tile_predictions").read_text(encoding="utf-8")
    base = image_name
    for pattern, repl in re.findall(r"\.replaceAll\('((?:[^'\\]|\\.)*)', '(_?)'\)", src):
        base = re.sub(pattern.replace("\\\\", "\\"), repl, base)
    suffix = re.search(r"^\s*fileSuffix\s*:\s*'([^']*)'", src, flags=re.M).group(1)
    return base + suffix


def _run(args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)


@pytest.fixture(scope="module")
def coarse_classifier(tmp_path_factory) -> Path:
    """A seeded ResNet50 at 4 um/px: the CMU slide is then a handful of tiles (cheap on CPU)."""
    from gistrisk.pathology.classes import CLASSES, IMAGENET_MEAN, IMAGENET_STD
    from gistrisk.pathology.model import build_model, save_classifier

    d = tmp_path_factory.mktemp("coarse_clf")
    save_classifier(d / "classifier.safetensors", build_model(seed=0),
                    {"classes": list(CLASSES), "tile_size": 224, "mpp": 4.0,
                     "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    return d


def test_review_files_are_named_as_the_import_script_looks_for_them(cmu, coarse_classifier, tmp_path):
    wsi = tmp_path / "wsi"
    wsi.mkdir()
    for name in AWKWARD:
        shutil.copy(cmu, wsi / name)
    review = tmp_path / "review"
    r = _run(["features", "--classifier", coarse_classifier, "--slides", wsi, "--out", tmp_path / "f.csv",
              "--device", "cpu", "--workers", "0", "--min-tissue", "0.1", "--review-geojson", review])
    assert r.exit_code == 0, r.output
    written = sorted(p.name for p in review.iterdir())
    assert written == sorted(import_script_file_name(n) for n in AWKWARD)
    assert "HE _1_.tiles.geojson" in written  # the case from the issue
    for name in AWKWARD:  # each file holds its own slide's predictions
        doc = json.loads((review / import_script_file_name(name)).read_text())
        assert doc["gistrisk"]["slide"].endswith(name) and doc["features"]


@pytest.mark.parametrize("layout", ["same stem, other characters", "same file name, two folders", "case only"])
def test_slides_sharing_a_review_file_name_are_refused(layout, cmu, coarse_classifier, tmp_path):
    names = {"same stem, other characters": ["HE (1).svs", "HE _1_.svs"],
             "same file name, two folders": ["A/HE.svs", "B/HE.svs"],
             "case only": ["HE.svs", "he.svs"]}[layout]
    for n in names:
        (tmp_path / n).parent.mkdir(exist_ok=True)
        (tmp_path / n).write_bytes(b"not read: refused before")
    m = tmp_path / "slides.csv"
    pd.DataFrame({"patient_id": ["P1", "P2"], "slide": names, "slide_id": ["s1", "s2"]}).to_csv(m, index=False)
    review = tmp_path / "review"
    r = _run(["features", "--classifier", coarse_classifier, "--manifest", m, "--out", tmp_path / "f.csv",
              "--review-geojson", review])
    assert isinstance(r.exception, InputError), r.output
    msg = str(r.exception)
    assert all(str((tmp_path / n).resolve()) in msg for n in names)
    assert import_script_file_name(Path(names[0]).name) in msg and "--review-geojson" in msg
    assert not review.exists() and not (tmp_path / "f.csv").exists()


def test_clash_is_one_line_on_the_command_line(tmp_path):
    """Refused before the classifier is read (and torch imported): the classifier here is not even one."""
    for n in ("x+y.svs", "x#y.svs"):
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "clf.safetensors").write_bytes(b"not a classifier")
    p = subprocess.run([sys.executable, "-m", "gistrisk", "pathology", "features", "--classifier",
                        str(tmp_path / "clf.safetensors"), "--slides", str(tmp_path), "--out", str(tmp_path / "f.csv"),
                        "--review-geojson", str(tmp_path / "review")], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and len(p.stderr.strip().splitlines()) == 1
    assert "x_y.tiles.geojson" in p.stderr and "Traceback" not in p.stderr


def test_bridge_errors_reach_gistrisk_as_input_error(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text("{oops")
    with pytest.raises(InputError, match="not valid JSON") as e:
        load_slide_annotations(bad, 100, 100)
    assert e.value.file == str(bad) and str(e.value).count(f"file {bad}") == 1
    preds = pd.DataFrame({"x": [0], "y": [0], "width": [10], "height": [10], "prob_tumour": [1.5],
                          "prob_stroma": [0.0], "predicted_class": ["tumour"]})
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        write_review_geojson(tmp_path / "r.tiles.geojson", preds, ["tumour", "stroma"], {})


def test_bad_annotations_file_is_one_line_on_the_command_line(small_slide, tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": []}')
    p = subprocess.run([sys.executable, "-m", "gistrisk", "pathology", "tiles", "--slide", str(small_slide),
                        "--annotations", str(bad), "--out", str(tmp_path / "t.parquet")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith(f"error: file {bad}: contains no features")
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def _annotations(tmp_path, *anns) -> Path:
    path = tmp_path / "a.geojson"
    write_annotations(path, list(anns))
    return path


def test_bounds_decisions_use_the_record_kinds(tmp_path):
    partly = _annotations(tmp_path, Annotation(box(50, 50, 150, 90), class_name="Stroma"))
    with pytest.raises(InputError, match="--clip-annotations") as e:
        load_slide_annotations(partly, 100, 100)
    assert "extends outside" in str(e.value) and str(e.value).count("file ") == 1
    [clipped] = load_slide_annotations(partly, 100, 100, clip_to_slide=True)
    assert clipped.geometry.bounds == (50, 50, 100, 90)
    outside = _annotations(tmp_path, Annotation(box(500, 500, 600, 600), class_name="Stroma"))
    with pytest.raises(InputError, match="entirely outside") as e:
        load_slide_annotations(outside, 100, 100, clip_to_slide=True)
    assert "--clip-annotations" not in str(e.value)


def test_one_alias_table_the_bridges(tmp_path, monkeypatch):
    names = ["Muscularis", "muscularis propria", "Tumor tissue", "BG"]
    path = _annotations(tmp_path, *[Annotation(box(10 * i, 0, 10 * i + 5, 5), class_name=n)
                                    for i, n in enumerate(names)])
    assert [a.class_name for a in load_slide_annotations(path, 100, 100)] == \
        ["smooth muscle", "smooth muscle", "tumour", "background"]
    monkeypatch.setattr(bridge_classes, "DEFAULT_ALIASES", {})  # no second table in gistrisk to fall back on
    with pytest.raises(InputError, match="unknown classes 'BG'.*'Muscularis'.*'Tumor tissue'.*'muscularis propria'"):
        load_slide_annotations(path, 100, 100)


def test_simulated_annotations_use_the_bridge_palette(monkeypatch):
    monkeypatch.setitem(TISSUE_COLORS, "tumour", (1, 2, 3))
    fc = feature_collection(np.random.default_rng(0), [("tumour", box(0, 0, 10, 10))])
    assert fc["features"][0]["properties"]["classification"]["color"] == [1, 2, 3]
