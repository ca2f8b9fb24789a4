"""Inference engine and slide features on the real slide: backend-independent, deterministic, flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gistrisk.pathology.classes import CLASSES
from gistrisk.pathology.data import SlideSource
from gistrisk.pathology.engine import InferenceConfig, predict_tiles
from gistrisk.pathology.features import (
    FEATURE_COLUMNS,
    FLAG_NO_TUMOUR,
    FeatureConfig,
    features_table,
    pool_tumour_features,
)
from gistrisk.pathology.model import load_classifier
from gistrisk.pathology.pipeline import features_one, tile_one
from gistrisk.pathology.tiling import TileConfig

CPU = InferenceConfig(batch_size=4, num_workers=0, device="cpu")


@pytest.fixture(scope="module")
def six_tiles(cmu) -> pd.DataFrame:
    """Six tiles of the real slide, spread over its tissue (rows 4-9 of the grid)."""
    df = tile_one(cmu, TileConfig())
    return df[df.x == 1120].sort_values("y").iloc[2:8].reset_index(drop=True)


@pytest.fixture(scope="module")
def random_clf(classifier_factory):
    return load_classifier(classifier_factory(None))


def test_openslide_and_tiffslide_give_identical_features(cmu, six_tiles, random_clf):
    model, header = random_clf
    pa, fa = predict_tiles(model, header, six_tiles, SlideSource(str(cmu), "openslide"), CPU)
    pb, fb = predict_tiles(model, header, six_tiles, SlideSource(str(cmu), "tiffslide"), CPU)
    assert fa.shape == (6, 2048) and pa.shape == (6, len(CLASSES))
    np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_allclose(pa.sum(axis=1), 1.0, rtol=1e-5)
    assert np.abs(fa[0] - fa[1]).max() > 0  # different tiles, different features


def test_inference_deterministic_across_runs_and_worker_processes(cmu, six_tiles, classifier_factory):
    m1, h1 = load_classifier(classifier_factory(None, seed=0))
    m2, h2 = load_classifier(classifier_factory(None, seed=0))
    src = SlideSource(str(cmu))
    tiles = six_tiles.head(3)
    p1, f1 = predict_tiles(m1, h1, tiles, src, CPU)
    p2, f2 = predict_tiles(m2, h2, tiles, src, InferenceConfig(batch_size=4, num_workers=2, device="cpu"))
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)


def test_pool_tumour_features_uses_class_and_threshold():
    probs = np.array([[0.9, 0.1, 0, 0, 0, 0],      # tumour, confident
                      [0.45, 0.4, 0.15, 0, 0, 0],  # tumour by arg-max but under 0.5
                      [0.2, 0.8, 0, 0, 0, 0],      # stroma
                      [0.6, 0.4, 0, 0, 0, 0]])     # tumour
    feats = np.arange(4 * 2048, dtype=np.float32).reshape(4, 2048)
    vec, mask = pool_tumour_features(probs, feats, list(CLASSES), FeatureConfig(tumour_threshold=0.5))
    assert mask.tolist() == [True, False, False, True]
    np.testing.assert_allclose(vec, (feats[0] + feats[3]) / 2)
    vec, mask = pool_tumour_features(probs, feats, list(CLASSES), FeatureConfig(tumour_threshold=0.95))
    assert not mask.any() and np.isnan(vec).all() and vec.shape == (2048,)


def test_slide_features_are_mean_of_tumour_tiles(small_slide, classifier_factory):
    model, header = load_classifier(classifier_factory("tumour"))
    res = features_one(small_slide, model, header, patient_id="P1", inference=CPU)
    tiles = tile_one(small_slide, TileConfig())
    assert res["n_tiles"] == len(tiles) == 5
    assert res["n_tumour_tiles"] == 5  # the head's bias says tumour everywhere
    _, feats = predict_tiles(model, header, tiles, SlideSource(str(small_slide)), CPU)
    np.testing.assert_allclose(res["features"], feats.mean(axis=0), rtol=1e-6)
    assert res["flag"] is None and res["slide_id"] == small_slide.stem


def test_slide_without_tumour_is_flagged_not_zero(small_slide, classifier_factory, tmp_path):
    model, header = load_classifier(classifier_factory("background"))
    geo = tmp_path / "review.geojson"
    res = features_one(small_slide, model, header, patient_id="P2", inference=CPU, review_geojson=geo)
    assert res["n_tumour_tiles"] == 0 and res["features"] is None and res["flag"] == FLAG_NO_TUMOUR
    table = features_table([res])
    assert list(table.columns[:3]) == ["patient_id", "slide_id", "n_tumour_tiles"]
    assert list(table.columns[3:3 + 2048]) == FEATURE_COLUMNS
    assert table[FEATURE_COLUMNS].isna().all(axis=None) and table.flag.iloc[0] == FLAG_NO_TUMOUR
    # the review file is QuPath GeoJSON with one classified tile per tissue tile
    from qupath_bridge.geojson import read_annotations

    tiles = read_annotations(geo)
    assert len(tiles) == res["n_tiles"]
    assert {t.class_name for t in tiles} == {"background"} and tiles[0].object_type == "tile"
