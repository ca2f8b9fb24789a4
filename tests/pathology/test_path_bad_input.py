"""Hostile inputs to the pathology commands: recorded mpp vs --mpp, folders given as --out, training
data or options that cannot give a meaningful classifier, and corrupt classifier headers."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from gistrisk.errors import InputError
from gistrisk.pathology.classes import CLASSES, IMAGENET_MEAN, IMAGENET_STD
from gistrisk.pathology.cli import app
from gistrisk.pathology.model import load_classifier, read_state_dict
from gistrisk.pathology.slides import Slide
from gistrisk.pathology.train import MIN_CLASS_TILES, TrainConfig, small_class_warnings, train_classifier

runner = CliRunner()
SLIDE_MPP = 0.499  # what small_slide records


def _run(args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)


def _attrs(path) -> dict:
    return pd.read_parquet(path).attrs["gistrisk"]


# -- 1. --mpp fills, --mpp-override replaces -----------------------------------------------------

def test_slide_mpp_fills_only_slides_without_metadata(small_slide, cmu_crop, write_tiff, tmp_path):
    with Slide(small_slide, mpp=0.25) as s:
        assert s.mpp == pytest.approx(SLIDE_MPP) and s.mpp_source == "metadata"
        assert s.mpp_unused == 0.25
    nompp = write_tiff(tmp_path / "nompp.tif", cmu_crop[:448, :448], mpp=None)
    with Slide(nompp, mpp=0.25) as s:
        assert (s.mpp, s.mpp_source, s.mpp_recorded, s.mpp_unused) == (0.25, "given", None, None)
    with Slide(small_slide, mpp_override=0.25) as s:
        assert (s.mpp, s.mpp_source) == (0.25, "override")
        assert s.mpp_recorded == pytest.approx(SLIDE_MPP)
    with pytest.raises(InputError, match="--mpp-override must be a positive number"):
        Slide(small_slide, mpp_override=math.nan)


def test_tiles_mpp_does_not_replace_recorded_mpp(small_slide, tmp_path):
    out = tmp_path / "t.parquet"
    r = _run(["tiles", "--slide", small_slide, "--mpp", "0.25", "--out", out])
    assert r.exit_code == 0, r.output
    meta = _attrs(out)
    assert meta["mpp"] == pytest.approx(SLIDE_MPP) and meta["mpp_source"] == "metadata"
    assert len(pd.read_parquet(out)) == 5  # the 3 x 3 grid at the recorded 0.499 um/px
    assert "0.25" in r.output and "not used" in r.output and str(small_slide) in r.output


def test_tiles_mpp_override_replaces_and_is_recorded(small_slide, tmp_path):
    out = tmp_path / "t.parquet"
    r = _run(["tiles", "--slide", small_slide, "--mpp-override", "0.25", "--out", out, "--min-tissue", "0"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and "--mpp-override 0.25" in r.output
    meta = _attrs(out)
    assert meta["mpp"] == 0.25 and meta["mpp_source"] == "override"
    assert meta["mpp_recorded"] == pytest.approx(SLIDE_MPP)
    prov = json.loads((tmp_path / "t.provenance.json").read_text())
    assert prov["parameters"]["mpp_override"] == 0.25
    assert prov["summary"]["mpp_source"] == "override"
    assert len(pd.read_parquet(out)) == 1  # 448-px reads at 0.25 um/px: one full tile in 672 px (0.499: 9)


def test_manifest_mpp_fills_only_and_mpp_override_column_replaces(small_slide, cmu_crop, write_tiff, tmp_path):
    write_tiff(tmp_path / "nompp.tif", cmu_crop[:448, 448:], mpp=None)
    copy = tmp_path / "copy.tif"
    copy.write_bytes(small_slide.read_bytes())
    m = tmp_path / "slides.csv"
    pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "slide": [str(small_slide), "nompp.tif", "copy.tif"],
                  "mpp": ["0.25", "0.499", ""], "mpp_override": ["", "", "0.25"]}).to_csv(m, index=False)
    out = tmp_path / "tiles"
    r = _run(["tiles", "--manifest", m, "--out", out, "--min-tissue", "0"])  # the 0.25 grid's one tile is half glass
    assert r.exit_code == 0, r.output
    small, given, forced = (_attrs(out / f"{n}.tiles.parquet") for n in ("cmu_small", "nompp", "copy"))
    assert small["mpp"] == pytest.approx(SLIDE_MPP) and small["mpp_source"] == "metadata"
    assert (given["mpp"], given["mpp_source"]) == (0.499, "given")
    assert (forced["mpp"], forced["mpp_source"]) == (0.25, "override")
    assert "cmu_small" in r.output and "not used" in r.output
    assert "warning" in r.output and "copy" in r.output
    prov = json.loads((out / "tiles.provenance.json").read_text())
    assert prov["results"]["copy"]["mpp_source"] == "override"


def test_features_mpp_fills_only_and_mpp_override_is_recorded(small_slide, classifier_factory, tmp_path):
    args = ["features", "--classifier", classifier_factory("tumour"), "--slides", small_slide.parent,
            "--device", "cpu", "--workers", "0", "--min-tissue", "0"]
    r = _run(args + ["--out", tmp_path / "a.parquet", "--mpp", "0.25"])
    assert r.exit_code == 0, r.output
    assert "not used" in r.output and "0.25" in r.output
    assert pd.read_parquet(tmp_path / "a.parquet").n_tiles.tolist() == [9]  # 3 x 3 at the recorded 0.499
    prov = json.loads((tmp_path / "a.provenance.json").read_text())
    assert prov["slide_mpp"]["cmu_small"]["mpp_source"] == "metadata"
    r = _run(args + ["--out", tmp_path / "b.parquet", "--mpp-override", "0.25"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and "--mpp-override 0.25" in r.output
    assert pd.read_parquet(tmp_path / "b.parquet").n_tiles.tolist() == [1]
    prov = json.loads((tmp_path / "b.provenance.json").read_text())
    assert prov["slide_mpp"]["cmu_small"]["mpp_source"] == "override" and prov["slides"][0]["mpp_override"] == 0.25


def test_manifest_bad_mpp_override_names_the_row(tmp_path):
    m = tmp_path / "m.csv"
    m.write_text("patient_id,slide,mpp_override\nP1,a.svs,-1\n")
    r = _run(["tiles", "--manifest", m, "--out", tmp_path / "t"])
    assert isinstance(r.exception, InputError)
    assert "row 2" in str(r.exception) and "mpp_override" in str(r.exception) and "P1" in str(r.exception)


# -- 2. --out and output folders -------------------------------------------------------------------

def test_tiles_one_slide_out_folder_gets_default_name(small_slide, tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    r = _run(["tiles", "--slide", small_slide, "--out", folder])
    assert r.exit_code == 0, r.output
    assert len(pd.read_parquet(folder / "cmu_small.tiles.parquet")) == 5
    assert (folder / "cmu_small.tiles.provenance.json").is_file()
    assert str(folder / "cmu_small.tiles.parquet") in r.output


def test_tiles_one_slide_out_must_be_parquet(small_slide, tmp_path):
    r = _run(["tiles", "--slide", small_slide, "--out", tmp_path / "t.csv"])
    assert isinstance(r.exception, InputError) and "--out" in str(r.exception)
    assert not (tmp_path / "t.csv").exists()


def test_features_out_folder_is_refused_before_the_batch(classifier_factory, tmp_path):
    wsi = tmp_path / "wsi"
    wsi.mkdir()
    (wsi / "broken.svs").write_bytes(b"II*\x00garbage")
    out = tmp_path / "out"
    out.mkdir()
    r = _run(["features", "--classifier", classifier_factory("tumour"), "--slides", wsi, "--out", out])
    assert isinstance(r.exception, InputError)
    assert "--out" in str(r.exception) and str(out) in str(r.exception)
    assert list(out.iterdir()) == [] and not (tmp_path / "out.cache").exists()


def _taken_file_and_manifest(tmp_path, slide):
    """A file where a command's output would go, and a one-slide manifest."""
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    m = tmp_path / "m.csv"
    pd.DataFrame({"patient_id": ["P1"], "slide": [str(slide)]}).to_csv(m, index=False)
    return taken, m


@pytest.mark.parametrize("cmd", ["tiles-slide", "tiles-manifest", "features"])
def test_an_output_inside_a_file_is_refused(cmd, small_slide, classifier_factory, tmp_path):
    """--out under a path that exists as a file (a typo, a table named like a folder): one line, no traceback."""
    taken, m = _taken_file_and_manifest(tmp_path, small_slide)
    args = {
        "tiles-slide": ["tiles", "--slide", small_slide, "--out", taken / "t.parquet"],
        "tiles-manifest": ["tiles", "--manifest", m, "--out", taken / "tiles"],
        "features": ["features", "--classifier", classifier_factory("tumour"), "--manifest", m,
                     "--out", taken / "f.parquet"],
    }[cmd]
    r = _run(args)
    assert isinstance(r.exception, InputError), r.output
    assert f"{taken} is an existing file, not a folder" in str(r.exception)
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize("cmd", ["tiles-manifest", "tiles-images", "train", "features-review"])
def test_folder_outputs_that_are_files_are_refused(cmd, small_slide, classifier_factory, tmp_path):
    taken, m = _taken_file_and_manifest(tmp_path, small_slide)
    args = {
        "tiles-manifest": ["tiles", "--manifest", m, "--out", taken],
        "tiles-images": ["tiles", "--slide", small_slide, "--out", tmp_path / "t.parquet", "--images", taken],
        "train": ["train", "--tiles", tmp_path / "none.parquet", "--out", taken],
        "features-review": ["features", "--classifier", classifier_factory("tumour"), "--manifest", m,
                            "--out", tmp_path / "f.parquet", "--review-geojson", taken],
    }[cmd]
    r = _run(args)
    assert isinstance(r.exception, InputError), r.output
    assert "is an existing file; give a folder" in str(r.exception) and str(taken) in str(r.exception)
    assert taken.read_text() == "not a folder"
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "f.parquet").exists()


# -- 3. training on data or options that cannot give a meaningful classifier -------------------------

@pytest.fixture(scope="module")
def one_class_tiles(cmu, tmp_path_factory):
    """A tiles table of the CMU slide with a single annotated class (stroma, 2 tiles)."""
    from shapely.geometry import box

    from gistrisk.atomic import write_table
    from gistrisk.pathology.pipeline import tile_one
    from gistrisk.pathology.tiling import TileConfig
    from qupath_bridge.geojson import Annotation, write_annotations

    d = tmp_path_factory.mktemp("one_class")
    write_annotations(d / "cmu.geojson", [Annotation(geometry=box(896, 896, 1344, 1120), class_name="Stroma")])
    df = tile_one(cmu, TileConfig(tile_size=112, target_mpp=1.0), annotations=d / "cmu.geojson")
    write_table(d / "cmu.tiles.parquet", df)
    return d / "cmu.tiles.parquet"


def test_train_refuses_a_single_class(one_class_tiles, tmp_path):
    r = _run(["train", "--tiles", one_class_tiles, "--out", tmp_path / "clf", "--epochs", "1",
              "--device", "cpu", "--workers", "0"])
    assert isinstance(r.exception, InputError), r.output
    msg = str(r.exception)
    assert "at least two classes" in msg and "stroma (2 tiles)" in msg and str(one_class_tiles) in msg
    assert not (tmp_path / "clf").exists()
    # the library refuses too, naming the slide the labels come from
    tiles = pd.read_parquet(one_class_tiles)
    with pytest.raises(InputError, match="at least two classes") as e:
        train_classifier(tiles, tmp_path / "lib", TrainConfig(epochs=1, device="cpu"))
    assert "CMU-1-Small-Region" in str(e.value)


def test_small_class_warnings_threshold():
    labels = ["tumour"] * MIN_CLASS_TILES + ["stroma"] * (MIN_CLASS_TILES - 1) + ["necrosis"]
    df = pd.DataFrame({"label": labels})
    split = np.array(["train", "val"] * (len(labels) // 2) + ["train"] * (len(labels) % 2), dtype=object)
    split[-1] = "train"  # necrosis: its only tile trains
    w = small_class_warnings(df, split)
    assert len(w) == 2
    assert w[0].startswith("class 'necrosis' has 1 labelled tile") and "none in the validation split" in w[0]
    assert w[1].startswith(f"class 'stroma' has {MIN_CLASS_TILES - 1} labelled tiles")


@pytest.mark.parametrize("option,value", [("--epochs", "0"), ("--epochs", "-3"), ("--batch-size", "0"),
                                          ("--lr", "0"), ("--lr", "nan"), ("--val-fraction", "0"),
                                          ("--val-fraction", "1"), ("--workers", "-2"), ("--seed", "-1")])
def test_train_refuses_impossible_numbers(option, value, one_class_tiles, tmp_path):
    r = _run(["train", "--tiles", one_class_tiles, "--out", tmp_path / "clf", option, value])
    assert isinstance(r.exception, InputError), r.output
    assert option in str(r.exception) and value in str(r.exception)
    assert not (tmp_path / "clf").exists()


def test_train_epochs_zero_is_one_line_not_a_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "gistrisk", "pathology", "train", "--tiles", str(tmp_path),
                        "--out", str(tmp_path / "clf"), "--epochs", "0"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error:") and "--epochs" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option,value", [("--tile-size", "0"), ("--tile-size", "-224"), ("--target-mpp", "0"),
                                          ("--target-mpp", "inf"), ("--min-tissue", "1.5"),
                                          ("--min-label-overlap", "0"), ("--jobs", "0")])
def test_tiles_refuses_impossible_numbers(option, value, small_slide, tmp_path):
    args = (["--slide", small_slide, "--out", tmp_path / "t.parquet"] if option != "--jobs"
            else ["--slides", small_slide.parent, "--out", tmp_path / "t"])
    r = _run(["tiles", *args, option, value])
    assert isinstance(r.exception, InputError), r.output
    assert option in str(r.exception) and value in str(r.exception)
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / "t").exists()


@pytest.mark.parametrize("option,value", [("--batch-size", "0"), ("--workers", "-2"), ("--jobs", "0"),
                                          ("--tumour-threshold", "1.5"), ("--min-tissue", "-0.1")])
def test_features_refuses_impossible_numbers(option, value, small_slide, classifier_factory, tmp_path):
    r = _run(["features", "--classifier", classifier_factory("tumour"), "--slides", small_slide.parent,
              "--out", tmp_path / "f.parquet", "--device", "cpu", option, value])
    assert isinstance(r.exception, InputError), r.output
    assert option in str(r.exception) and value in str(r.exception)
    assert not (tmp_path / "f.parquet").exists() and not (tmp_path / "f.cache").exists()


# -- 4. classifier header validated at load ----------------------------------------------------------

GOOD = {"schema": 1, "architecture": "torchvision.resnet50", "classes": list(CLASSES), "tile_size": 224,
        "mpp": 0.5, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def _with_header(path, header, tensors=None):
    from safetensors.torch import save_file

    save_file(tensors or {"fc.bias": torch.zeros(len(CLASSES))}, str(path), metadata={"gistrisk": json.dumps(header)})
    return path


def _drop(key):
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize("header,field", [
    ({**GOOD, "tile_size": 224.5}, "tile_size"), ({**GOOD, "tile_size": "224"}, "tile_size"),
    ({**GOOD, "tile_size": 0}, "tile_size"), ({**GOOD, "tile_size": -224}, "tile_size"),
    ({**GOOD, "tile_size": True}, "tile_size"), ({**GOOD, "mpp": 0}, "mpp"), ({**GOOD, "mpp": -0.5}, "mpp"),
    ({**GOOD, "mpp": math.nan}, "mpp"), ({**GOOD, "mpp": math.inf}, "mpp"), ({**GOOD, "mpp": None}, "mpp"),
    ({**GOOD, "mpp": "0.5"}, "mpp"), ({**GOOD, "classes": []}, "classes"),
    ({**GOOD, "classes": ["tumour", "stroma", "tumour"]}, "classes"), ({**GOOD, "classes": "tumour"}, "classes"),
    ({**GOOD, "classes": ["tumour", 3]}, "classes"), ({**GOOD, "classes": ["tumour", ""]}, "classes"),
    ({**GOOD, "classes": ["stroma", "background"]}, "classes"), ({**GOOD, "mean": [0.5, 0.5]}, "mean"),
    ({**GOOD, "mean": [0.5, "a", 0.5]}, "mean"), ({**GOOD, "std": [0.2, 0.2, 0.0]}, "std"),
    ({**GOOD, "std": [math.nan] * 3}, "std"), ({**GOOD, "stain": {"method": "magic"}}, "stain"),
    ({**GOOD, "stain": {"colour": 1}}, "stain"),
    ({**GOOD, "stain": {"method": "reinhard", "target_mean": [1, 2]}}, "stain"),
    (_drop("tile_size"), "tile_size"), (_drop("mean"), "mean"), (_drop("classes"), "classes"),
])
def test_bad_classifier_header_is_refused_naming_file_and_field(header, field, tmp_path):
    p = _with_header(tmp_path / "classifier.safetensors", header)
    with pytest.raises(InputError) as e:
        load_classifier(p)
    assert str(p) in str(e.value) and repr(field) in str(e.value)


def test_header_that_is_not_an_object_is_refused(tmp_path):
    p = tmp_path / "classifier.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.bias": torch.zeros(6)}, str(p), metadata={"gistrisk": "[1, 2]"})
    with pytest.raises(InputError, match="not a JSON object") as e:
        load_classifier(p)
    assert str(p) in str(e.value)


def test_features_refuses_real_classifier_with_non_integer_tile_size(classifier_factory, small_slide, tmp_path):
    sd, meta = read_state_dict(classifier_factory("tumour") / "classifier.safetensors")
    header = {**json.loads(meta["gistrisk"]), "tile_size": 224.5}
    clf = _with_header(tmp_path / "classifier.safetensors", header, sd)
    r = _run(["features", "--classifier", clf, "--slides", small_slide.parent, "--out", tmp_path / "f.parquet",
              "--device", "cpu", "--workers", "0"])
    assert isinstance(r.exception, InputError), r.output
    assert "'tile_size'" in str(r.exception) and "224.5" in str(r.exception) and str(clf) in str(r.exception)
    assert not (tmp_path / "f.parquet").exists()
