"""`gistrisk pathology tiles | train | features` on real slides: outputs, failures, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gistrisk.errors import InputError
from gistrisk.pathology.cli import app
from gistrisk.pathology.features import FEATURE_COLUMNS, FLAG_NO_TUMOUR
from gistrisk.pathology.model import load_classifier

runner = CliRunner()


def _run(args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=True)


def test_tiles_one_slide_with_annotations(cmu, tmp_path):
    from shapely.geometry import box

    from qupath_bridge.geojson import Annotation, write_annotations

    geo = tmp_path / "cmu.geojson"
    write_annotations(geo, [Annotation(geometry=box(896, 1344, 1344, 1792), class_name="Tumour")])
    out = tmp_path / "cmu.tiles.parquet"
    r = _run(["tiles", "--slide", cmu, "--annotations", geo, "--out", out])
    assert r.exit_code == 0, r.output
    assert "of 117 in the grid" in r.output and "4 labelled" in r.output
    df = pd.read_parquet(out)
    assert df.label.notna().sum() == 4 and set(df.label.dropna()) == {"tumour"}
    prov = json.loads((tmp_path / "cmu.tiles.provenance.json").read_text())
    assert prov["parameters"]["tile_config"]["target_mpp"] == 0.5 and "torch" in prov["versions"]


def test_cli_error_is_one_clear_line(tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00garbage")
    p = subprocess.run([sys.executable, "-m", "gistrisk", "pathology", "tiles", "--slide", str(bad),
                        "--out", str(tmp_path / "t.parquet")], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: file") and str(bad) in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "t.parquet").exists()


@pytest.fixture()
def cohort(tmp_path, cmu, small_slide, cmu_crop, write_tiff):
    """A manifest with two good slides (one needs its mpp from the manifest) and two bad ones."""
    trunc = tmp_path / "truncated.svs"
    trunc.write_bytes(cmu.read_bytes()[: cmu.stat().st_size // 2])
    write_tiff(tmp_path / "glass.tif", np.full((672, 672, 3), 248, np.uint8), mpp=0.5)
    write_tiff(tmp_path / "nompp.tif", cmu_crop[:448, 448:], mpp=None)
    m = tmp_path / "slides.csv"
    pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4"],
                  "slide": [str(small_slide), "truncated.svs", "glass.tif", "nompp.tif"],
                  "mpp": ["", "", "", "0.499"]}).to_csv(m, index=False)
    return m


@pytest.mark.slow
def test_features_cohort_records_failures_and_resumes(cohort, classifier_factory, tmp_path):
    clf = classifier_factory("tumour")
    out = tmp_path / "feats.parquet"
    args = ["features", "--classifier", clf, "--manifest", cohort, "--out", out, "--device", "cpu",
            "--workers", "0", "--batch-size", "8", "--jobs", "2"]
    r = _run(args)
    assert r.exit_code == 1, r.output  # some slides failed, the batch finished
    table = pd.read_parquet(out)
    assert table.patient_id.tolist() == ["P1", "P4"]
    assert list(table.columns[:3]) == ["patient_id", "slide_id", "n_tumour_tiles"]
    assert list(table.columns[3:2051]) == FEATURE_COLUMNS
    assert (table.n_tumour_tiles > 0).all() and table[FEATURE_COLUMNS].notna().all(axis=None)
    fails = pd.read_csv(tmp_path / "feats.failures.csv")
    assert sorted(fails.patient_id) == ["P2", "P3"]
    msg = dict(zip(fails.patient_id, fails.message))
    assert "truncated" in msg["P2"] and "truncated.svs" in msg["P2"]
    assert "no tissue" in msg["P3"] and "glass.tif" in msg["P3"]
    prov = json.loads((tmp_path / "feats.provenance.json").read_text())
    assert prov["n_done"] == 2 and prov["n_failed"] == 2 and prov["parameters"]["classifier_sha256"]

    r2 = _run(args[:-2] + ["--jobs", "1"])  # resume: the two done slides come from the cache
    assert r2.exit_code == 1 and "(2 from cache)" in r2.output
    pd.testing.assert_frame_equal(pd.read_parquet(out), table)


def test_features_no_tumour_slide_is_flagged(small_slide, classifier_factory, tmp_path):
    folder = tmp_path / "wsi"
    folder.mkdir()
    (folder / "S9.tif").write_bytes(small_slide.read_bytes())
    out = tmp_path / "f.csv"
    geo = tmp_path / "review"
    r = _run(["features", "--classifier", classifier_factory("background"), "--slides", folder, "--out", out,
              "--device", "cpu", "--workers", "0", "--review-geojson", geo])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(out)
    assert t.patient_id.tolist() == ["S9"] and t.n_tumour_tiles.tolist() == [0]
    assert t[FEATURE_COLUMNS].isna().all(axis=None) and t.flag.tolist() == [FLAG_NO_TUMOUR]
    fails = pd.read_csv(tmp_path / "f.failures.csv")
    assert fails.error_type.tolist() == [FLAG_NO_TUMOUR]
    assert (geo / "S9.tiles.geojson").is_file()


def test_features_refuses_bad_classifier_before_the_batch(cohort, tmp_path):
    bad = tmp_path / "clf"
    bad.mkdir()
    (bad / "classifier.safetensors").write_bytes(b"\x00" * 64)
    r = _run(["features", "--classifier", bad, "--manifest", cohort, "--out", tmp_path / "x.parquet"])
    assert isinstance(r.exception, InputError) and "classifier.safetensors" in str(r.exception)
    assert not (tmp_path / "x.parquet").exists()


def test_manifest_errors_name_the_row(tmp_path, classifier_factory):
    m = tmp_path / "m.csv"
    m.write_text("patient_id,slide,mpp\nP1,a.svs,fast\n")
    r = _run(["features", "--classifier", classifier_factory("tumour"), "--manifest", m,
              "--out", tmp_path / "x.parquet"])
    assert isinstance(r.exception, InputError)
    assert "row 2" in str(r.exception) and "mpp" in str(r.exception) and "P1" in str(r.exception)


@pytest.mark.slow
def test_train_from_cli_tiles(cmu, he_png, tmp_path):
    from shapely.geometry import box

    from qupath_bridge.geojson import Annotation, write_annotations

    write_annotations(tmp_path / "cmu.geojson", [
        Annotation(geometry=box(0, 0, 448, 224), class_name="Background"),
        Annotation(geometry=box(896, 896, 1344, 1120), class_name="Stroma")])
    write_annotations(tmp_path / "he.geojson", [Annotation(geometry=box(0, 0, 448, 448), class_name="Tumor")])
    small = ["--tile-size", "112", "--target-mpp", "1.0"]
    tiles = tmp_path / "tiles"
    assert _run(["tiles", "--slide", cmu, "--annotations", tmp_path / "cmu.geojson",
                 "--out", tiles / "cmu.tiles.parquet", *small]).exit_code == 0
    r = _run(["tiles", "--slide", he_png, "--mpp", "0.5", "--annotations", tmp_path / "he.geojson",
              "--out", tiles / "he.tiles.parquet", *small])
    assert r.exit_code == 0, r.output
    r = _run(["train", "--tiles", tiles, "--out", tmp_path / "clf", "--epochs", "1", "--batch-size", "4",
              "--device", "cpu", "--workers", "0"])
    assert r.exit_code == 0, r.output
    assert "best epoch 1" in r.output
    # every class has fewer than MIN_CLASS_TILES tiles: warned on the console and recorded
    for c in ("background", "stroma", "tumour"):
        assert f"warning: class '{c}' has" in r.output
    prov = json.loads((tmp_path / "clf" / "provenance.json").read_text())
    assert len(prov["warnings"]) == 3 and prov["warnings"][1].startswith("class 'stroma' has 2 labelled tiles")
    assert load_classifier(tmp_path / "clf")[1]["warnings"] == prov["warnings"]
    for f in ("classifier.safetensors", "history.csv", "confusion_matrix.csv", "confusion_matrix.json",
              "class_balance.json", "split.parquet", "provenance.json"):
        assert (tmp_path / "clf" / f).is_file(), f
    split = pd.read_parquet(tmp_path / "clf" / "split.parquet")
    assert len(split) == 8 and (split.split == "val").sum() == 3


def test_tiles_cohort_folder_output_failures_and_resume(cohort, tmp_path):
    out = tmp_path / "tiles"
    r = _run(["tiles", "--manifest", cohort, "--out", out])
    assert r.exit_code == 1, r.output
    assert sorted(p.name for p in out.glob("*.tiles.parquet")) == ["cmu_small.tiles.parquet", "nompp.tiles.parquet"]
    fails = pd.read_csv(out / "tiles.failures.csv")
    assert sorted(fails.slide_id) == ["glass", "truncated"]
    assert len(pd.read_parquet(out / "cmu_small.tiles.parquet")) == 5
    r2 = _run(["tiles", "--manifest", cohort, "--out", out])
    assert "2 slides tiled (2 from cache), 2 failed" in r2.output


def test_tiles_images_are_the_tiles(small_slide, tmp_path):
    from PIL import Image

    from gistrisk.pathology.slides import Slide

    r = _run(["tiles", "--slide", small_slide, "--out", tmp_path / "t.parquet", "--images", tmp_path / "png"])
    assert r.exit_code == 0, r.output
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == len(pd.read_parquet(tmp_path / "t.parquet")) == 5
    with Slide(small_slide) as s:
        ref = s.read_tile(448, 224, 0, 224)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / "cmu_small_x448_y224.png")), ref)
