"""The pathology Python API (gistrisk.pathology.runs): one slide's tiles, a tiles cohort and a features
cohort from Python, on real slide pixels, with the files, counts and console lines the commands print."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import InputError
from gistrisk.pathology.features import FEATURE_COLUMNS
from gistrisk.pathology.manifest import SlideEntry, slide_entries
from gistrisk.pathology.runs import (
    FeatureCohortResult,
    TileCohortResult,
    feature_cohort,
    tile_cohort,
    tile_single,
)
from gistrisk.pathology.tiling import TileConfig


@pytest.fixture()
def entries(tmp_path, cmu, small_slide, cmu_crop, write_tiff) -> list[SlideEntry]:
    """Slides given from Python: a good one, one without mpp metadata (mpp from the run), a truncated one."""
    nompp = write_tiff(tmp_path / "nompp.tif", cmu_crop[:448, 448:], mpp=None)
    trunc = tmp_path / "truncated.svs"
    trunc.write_bytes(cmu.read_bytes()[: cmu.stat().st_size // 2])
    return [SlideEntry("P1", str(small_slide), "S1"), SlideEntry("P2", str(nompp), "S2"),
            SlideEntry("P3", str(trunc), "S3")]


def test_slide_entries_from_python_are_copied_and_filled(entries):
    got = slide_entries(entries, mpp=0.499, mpp_override=None)
    assert [e.mpp for e in got] == [0.499] * 3 and all(e.mpp is None for e in entries)  # copies, not edits
    kept = slide_entries([SlideEntry("P1", "a.svs", "S1", mpp=0.25)], mpp=0.5)
    assert kept[0].mpp == 0.25  # an entry's own value wins, as a manifest's does
    with pytest.raises(InputError, match="slide_id 'S1' appears twice"):
        slide_entries([entries[0], entries[0]])
    with pytest.raises(InputError, match="no slides given"):
        slide_entries([])


def test_tile_cohort_from_python_records_failures_resumes_and_recomputes_deleted_output(entries, tmp_path):
    out = tmp_path / "tiles"
    entries[0] = replace(entries[0], mpp=0.25)  # its own value: the run's mpp fills the others only
    seen: list[str] = []
    res = tile_cohort(entries, out, mpp=0.499, on_message=seen.append, progress=False)
    assert isinstance(res, TileCohortResult)
    assert (res.n_slides, res.n_done, res.n_failed, res.n_cached) == (3, 2, 1, 0)
    assert res.tables == {"S1": out / "S1.tiles.parquet", "S2": out / "S2.tiles.parquet"}
    assert len(pd.read_parquet(res.tables["S1"])) == 5 and res.tables["S2"].is_file()
    fails = pd.read_csv(res.failures)
    assert fails.slide_id.tolist() == ["S3"] and fails.patient_id.tolist() == ["P3"]
    assert "truncated" in fails.message[0]
    # the small slide records its own mpp (0.499): the given 0.25 is noted as not used, on the console and in the result
    assert seen == res.messages and len(seen) == 1 and "0.25 was not used" in seen[0] and "cmu_small" in seen[0]
    prov = json.loads(res.provenance.read_text())
    assert prov["failures"] == 1 and [s["mpp"] for s in prov["slides"]] == [0.25, 0.499, 0.499]
    assert res.summary() == f"{out}: 2 slides tiled (0 from cache), 1 failed (see {out / 'tiles.failures.csv'})"

    again = tile_cohort(entries, out, mpp=0.499, progress=False)
    assert (again.n_done, again.n_cached, again.n_failed) == (2, 2, 1)
    res.tables["S2"].unlink()  # a deleted output is computed again, not taken from the cache
    third = tile_cohort(entries, out, mpp=0.499, progress=False)
    assert third.n_cached == 1 and res.tables["S2"].is_file()


def test_tile_cohort_refuses_a_file_as_its_folder(entries, tmp_path):
    f = tmp_path / "tiles"
    f.write_text("")
    with pytest.raises(InputError, match="is an existing file; give a folder"):
        tile_cohort(entries[:1], f)


def test_tile_single_writes_table_provenance_and_images(small_slide, tmp_path):
    seen: list[str] = []
    res = tile_single(small_slide, tmp_path / "one.parquet", TileConfig(), mpp_override=0.5,
                      images=tmp_path / "png", on_message=seen.append)
    assert (res.n_grid, res.n_tiles, res.n_labelled) == (9, 5, 0) and not res.annotated
    assert len(res.images) == 5 and all(p.is_file() for p in res.images)
    assert seen == res.messages and seen[0].startswith("warning: ") and "--mpp-override 0.5" in seen[0]
    prov = json.loads((tmp_path / "one.provenance.json").read_text())
    assert res.provenance == tmp_path / "one.provenance.json" and prov["parameters"]["mpp_override"] == 0.5
    assert res.summary() == f"{tmp_path / 'one.parquet'}: 5 tiles kept of 9 in the grid"


@pytest.mark.slow
def test_feature_cohort_from_python(entries, classifier_factory, tmp_path):
    out = tmp_path / "feats.csv"
    seen: list[str] = []
    res = feature_cohort(classifier_factory("tumour"), entries, out, mpp=0.499, stain_normalise="reinhard",
                         feature={"tumour_threshold": 0.6},
                         inference={"device": "cpu", "num_workers": 0, "batch_size": 8},
                         review_geojson=tmp_path / "review", on_message=seen.append, progress=False)
    assert isinstance(res, FeatureCohortResult)
    assert (res.n_slides, res.n_done, res.n_failed, res.n_no_tumour, res.n_cached) == (3, 2, 1, 0, 0)
    table = pd.read_csv(out)
    assert table.patient_id.tolist() == ["P1", "P2"] and np.isfinite(table[FEATURE_COLUMNS].to_numpy()).all()
    assert pd.read_csv(res.failures).slide_id.tolist() == ["S3"]
    # the classifier was trained without stain normalisation: asking for it is warned about, first
    assert seen[0].startswith("warning: --stain-normalise reinhard differs") and seen == res.messages
    prov = json.loads(res.provenance.read_text())
    assert prov["parameters"]["feature"]["tumour_threshold"] == 0.6 and prov["parameters"]["inference"]["device"] == "cpu"
    assert prov["n_done"] == 2 and prov["n_failed"] == 1 and prov["parameters"]["stain"]["method"] == "reinhard"
    assert sorted(p.name for p in (tmp_path / "review").iterdir()) == ["cmu_small.tiles.geojson", "nompp.tiles.geojson"]
    assert res.summary().startswith(f"{out}: 2 slides (0 from cache), 0 without tumour tiles, 1 failed (see ")
