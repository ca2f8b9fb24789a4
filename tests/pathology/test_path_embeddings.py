"""Per-tile embeddings kept per slide (HDF5, as CLAM and TRIDENT keep them) and slide features
re-aggregated from them without running the network, on real slide pixels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from gistrisk.errors import InputError
from gistrisk.extraction import differences, read_extraction
from gistrisk.pathology import model as model_module
from gistrisk.pathology.cli import app
from gistrisk.pathology.data import SlideSource
from gistrisk.pathology.embeddings import read_embeddings, read_ids, read_tile_scores
from gistrisk.pathology.engine import InferenceConfig, predict_tiles
from gistrisk.pathology.features import FEATURE_COLUMNS, FLAG_NO_TUMOUR
from gistrisk.pathology.manifest import SlideEntry
from gistrisk.pathology.model import load_classifier
from gistrisk.pathology.pipeline import tile_one
from gistrisk.pathology.runs import aggregate_embeddings, feature_cohort
from gistrisk.pathology.tiling import TileConfig
from gistrisk.provenance import file_sha256

CPU = InferenceConfig(batch_size=8, num_workers=0, device="cpu")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A random ResNet50 whose head predicts tumour for every tissue tile, with a probability that grows
    with the tile's mean feature (about 0.6-0.97 on the CMU tiles), so tumour thresholds select subsets."""
    import torch

    from gistrisk.pathology.classes import CLASSES, IMAGENET_MEAN, IMAGENET_STD
    from gistrisk.pathology.model import build_model, save_classifier

    model = build_model(seed=0)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[0] = 1.0 / 2048  # tumour logit = mean feature (about 18-21 here) - 16
        model.fc.bias[0] = -16.0
    d = tmp_path_factory.mktemp("graded")
    save_classifier(d / "classifier.safetensors", model, {"classes": list(CLASSES), "tile_size": 224, "mpp": 0.5,
                                                          "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
    return d


@pytest.fixture(scope="module")
def cohort(small_slide, cmu_crop, graded, tmp_path_factory):
    """Two real-pixel slides (S1, S2) through `features` with the graded classifier."""
    import tifffile

    d = tmp_path_factory.mktemp("emb")
    second = d / "crop.tif"
    tifffile.imwrite(second, cmu_crop[:448, 448:], tile=(256, 256), photometric="rgb",
                     resolution=(1e4 / 0.499, 1e4 / 0.499), resolutionunit="CENTIMETER")
    entries = [SlideEntry("P1", str(small_slide), "S1"), SlideEntry("P2", str(second), "S2")]
    out = d / "feats.parquet"
    res = feature_cohort(graded, entries, out, inference=CPU, progress=False, feature={"tumour_threshold": 0.0})
    return res, entries, d


def test_features_writes_one_hdf5_per_slide(cohort, graded):
    res, entries, d = cohort
    assert res.embeddings == d / "feats.embeddings"
    files = sorted(res.embeddings.glob("*.h5"))
    assert [f.name for f in files] == ["S1.h5", "S2.h5"]
    assert not [f for f in res.embeddings.iterdir() if f.suffix != ".h5"]  # no temporary files left
    model, header = load_classifier(graded)
    tiles = tile_one(entries[0].slide, TileConfig(tile_size=224, target_mpp=0.5), slide_id="S1")
    probs, feats = predict_tiles(model, header, tiles, SlideSource(entries[0].slide), CPU)
    with h5py.File(files[0], "r") as f:  # read as any HDF5 tool (CLAM, TRIDENT) would
        assert f["coords"].shape == (len(tiles), 2) and f["coords"].dtype == np.int64
        np.testing.assert_array_equal(f["coords"][:], tiles[["x", "y"]].to_numpy())
        assert f["coords"].attrs["patch_size"] == 224 and f["coords"].attrs["patch_level"] == 0
        assert f["coords"].attrs["patch_size_level0"] == int(tiles["size0"].iloc[0])
        assert f["features"].dtype == np.float32
        # the run's own forward passes (thread count may differ from this test's: float sums in another order)
        np.testing.assert_allclose(f["features"][:], feats, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(f["probs"][:], probs, rtol=1e-4, atol=1e-5)
        stored = f["features"][:]
        assert list(f.attrs["classes"]) == header["classes"]
        assert f.attrs["slide_id"] == "S1" and f.attrs["patient_id"] == "P1"
        prov = json.loads(f.attrs["provenance"])
    assert prov["parameters"]["classifier_sha256"] == file_sha256(graded / "classifier.safetensors")
    assert prov["parameters"]["encoder"]["name"] == "resnet50" and "torch" in prov["versions"]
    table = pd.read_parquet(d / "feats.parquet")
    np.testing.assert_array_equal(table.loc[0, FEATURE_COLUMNS].to_numpy(float), stored.astype(np.float64).mean(0))
    cohort_prov = json.loads((d / "feats.provenance.json").read_text())
    assert cohort_prov["embeddings"]["S1"]["sha256"] == file_sha256(files[0])


def test_aggregate_runs_no_network_and_equals_the_features_table(cohort, monkeypatch, tmp_path):
    res, _, d = cohort

    def forbidden(*a, **k):
        raise AssertionError("the network was used")

    for name in ("build_model", "load_classifier", "TissueClassifier", "TimmClassifier"):
        monkeypatch.setattr(model_module, name, forbidden)
    monkeypatch.setattr("torch.nn.Module.__call__", forbidden)
    out = tmp_path / "again.parquet"
    agg = aggregate_embeddings(res.embeddings, out, feature={"tumour_threshold": 0.0})
    assert (agg.n_slides, agg.n_no_tumour) == (2, 0)
    again = pd.read_parquet(out)
    first = pd.read_parquet(d / "feats.parquet")
    pd.testing.assert_frame_equal(again.set_index("slide_id").loc[first.slide_id].reset_index()[first.columns], first)
    prov = json.loads(agg.provenance.read_text())
    assert prov["parameters"]["source"] == "embeddings"
    assert {e["slide_id"]: e["sha256"] for e in prov["embeddings"]} == \
        {sid: file_sha256(res.embeddings / f"{sid}.h5") for sid in ("S1", "S2")}
    # `fit` sees the same extraction as for the table `features` wrote
    assert differences(read_extraction(d / "feats.parquet"), read_extraction(out)) == []


def test_aggregate_with_another_threshold_matches_the_stored_probabilities(cohort, tmp_path):
    res, _, _ = cohort
    emb = read_embeddings(res.embeddings / "S1.h5")
    t = emb.probs[:, 0]
    cut = float(np.sort(t)[len(t) // 2])  # about half of the tiles pass
    out = tmp_path / "half.csv"
    aggregate_embeddings(res.embeddings, out, feature={"tumour_threshold": cut})
    row = pd.read_csv(out).set_index("slide_id").loc["S1"]
    keep = (emb.probs.argmax(1) == 0) & (t >= cut)
    assert 0 < keep.sum() < len(t) and row.n_tumour_tiles == keep.sum()
    np.testing.assert_allclose(row[FEATURE_COLUMNS].to_numpy(float), emb.features[keep].astype(np.float64).mean(0))
    over = tmp_path / "none.csv"
    r = aggregate_embeddings(res.embeddings, over, feature={"tumour_threshold": 1.0})
    t2 = pd.read_csv(over)
    assert r.n_no_tumour == 2 and (t2.flag == FLAG_NO_TUMOUR).all() and t2[FEATURE_COLUMNS].isna().all(axis=None)
    assert pd.read_csv(r.failures).error_type.tolist() == [FLAG_NO_TUMOUR] * 2


def test_resume_keeps_embeddings_and_a_deleted_file_is_rewritten(cohort, graded):
    res, entries, d = cohort
    s1, s2 = res.embeddings / "S1.h5", res.embeddings / "S2.h5"
    before = s2.stat().st_mtime_ns
    s1.unlink()
    again = feature_cohort(graded, entries, d / "feats.parquet", inference=CPU, progress=False,
                           feature={"tumour_threshold": 0.0})
    assert again.n_cached == 1 and s1.is_file() and s2.stat().st_mtime_ns == before


def test_no_embeddings_option(small_slide, classifier_factory, tmp_path):
    folder = tmp_path / "wsi"
    folder.mkdir()
    os.symlink(small_slide, folder / "S1.tif")
    r = CliRunner().invoke(app, ["features", "--classifier", str(classifier_factory("tumour")), "--slides",
                                 str(folder), "--out", str(tmp_path / "f.csv"), "--device", "cpu", "--workers", "0",
                                 "--no-embeddings"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "f.embeddings").exists()
    assert json.loads((tmp_path / "f.provenance.json").read_text())["embeddings"] == {}


def test_aggregate_cli_and_bad_embeddings(cohort, tmp_path):
    res, _, _ = cohort
    r = CliRunner().invoke(app, ["aggregate", "--embeddings", str(res.embeddings), "--out", str(tmp_path / "a.csv"),
                                 "--tumour-threshold", "0"])
    assert r.exit_code == 0, r.output
    assert "2 slides" in r.output and "from stored embeddings" in r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no embeddings") as e:
        aggregate_embeddings(empty, tmp_path / "b.csv")
    assert "empty" in str(e.value)
    junk = tmp_path / "junk" / "S9.h5"
    junk.parent.mkdir()
    junk.write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="not an embeddings file") as e:
        aggregate_embeddings(junk.parent, tmp_path / "c.csv")
    assert "S9.h5" in str(e.value)
    # a slide embedded with another classifier cannot be pooled with the others
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for sid in ("S1", "S2"):
        (mixed / f"{sid}.h5").write_bytes((res.embeddings / f"{sid}.h5").read_bytes())
    with h5py.File(mixed / "S2.h5", "r+") as f:
        prov = json.loads(f.attrs["provenance"])
        prov["parameters"]["classifier_sha256"] = "0" * 64
        f.attrs["provenance"] = json.dumps(prov)
    with pytest.raises(InputError, match="classifier_sha256") as e:
        aggregate_embeddings(mixed, tmp_path / "d.csv")
    assert "S2.h5" in str(e.value) and "S1.h5" in str(e.value)
    p = subprocess.run([sys.executable, "-m", "gistrisk", "pathology", "aggregate", "--embeddings", str(mixed),
                        "--out", str(tmp_path / "e.csv")], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().startswith("error:") and "classifier_sha256" in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_ids_are_read_again_when_a_file_is_replaced(cohort, tmp_path):
    """read_ids remembers each file's ids (attention pooling asks once per fold); a file rewritten under the
    same name (as the writer does: a new file renamed into place) is read again, and junk is refused each time."""
    res, _, _ = cohort
    f = tmp_path / "S.h5"
    f.write_bytes((res.embeddings / "S1.h5").read_bytes())
    first = read_ids(f)
    tmp = tmp_path / "S.h5.tmp"
    tmp.write_bytes((res.embeddings / "S2.h5").read_bytes())
    os.replace(tmp, f)
    assert read_ids(f) != first and read_ids(f) == read_ids(res.embeddings / "S2.h5")
    f.write_bytes(b"not hdf5")
    for _ in range(2):
        with pytest.raises(InputError, match="not an embeddings file"):
            read_ids(f)


def test_pooling_reads_the_tiles_read_embeddings_reads(cohort):
    res, _, _ = cohort
    for f in sorted(res.embeddings.glob("*.h5")):
        emb = read_embeddings(f)
        features, probs, classes = read_tile_scores(f)
        np.testing.assert_array_equal(features, emb.features)
        np.testing.assert_array_equal(probs, emb.probs)
        assert classes == emb.classes
