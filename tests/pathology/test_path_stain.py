"""Reinhard stain normalisation on real H&E pixels: LAB conversion, target matching, stain shifts,
determinism, the classifier header setting and the CLI option."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gistrisk.pathology.stain import (
    DEFAULT_TARGET_MEAN,
    DEFAULT_TARGET_STD,
    StainConfig,
    StainNormaliser,
    lab_stats,
    lab_to_rgb,
    read_reference,
    resolve_stain,
    rgb_to_lab,
    target_from_image,
    tissue_weight,
)


@pytest.fixture(scope="module")
def he(he_png) -> np.ndarray:
    """The real 1000 px H&E tumour image, (1000, 1000, 3) uint8."""
    return np.asarray(Image.open(he_png).convert("RGB"))


def _stain_shift(rgb: np.ndarray, h: float, e: float) -> np.ndarray:
    """The same tissue stained differently: haematoxylin x h, eosin x e (colour deconvolution)."""
    from skimage.color import hed2rgb, rgb2hed

    hed = rgb2hed(rgb)
    hed[..., 0] *= h
    hed[..., 1] *= e
    return np.clip(np.rint(hed2rgb(hed) * 255), 0, 255).astype(np.uint8)


def _de(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two LAB vectors (colour difference Delta E 1976)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def test_lab_round_trip_and_agreement_with_skimage(he):
    from skimage.color import rgb2lab

    rng = np.random.default_rng(0)
    colours = np.concatenate([he[::7, ::7].reshape(-1, 3), rng.integers(0, 256, (5000, 3)).astype(np.uint8),
                              np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0]], np.uint8)])
    lab = rgb_to_lab(colours)
    assert np.abs(lab - rgb2lab(colours[None])[0]).max() < 0.02
    assert np.array_equal(lab_to_rgb(lab), colours)
    assert lab[-2] == pytest.approx([100, 0, 0], abs=1e-3)


def test_default_target_is_the_reference_image(he):
    mean, std = target_from_image(he)
    assert mean == pytest.approx(DEFAULT_TARGET_MEAN, abs=1e-3)
    assert std == pytest.approx(DEFAULT_TARGET_STD, abs=1e-3)


def test_tile_tissue_matches_the_target(cmu_crop):
    tile = cmu_crop[:512, 512:]  # real CMU tissue with some glass
    tissue = tissue_weight(tile) >= 1
    assert 0.3 < tissue.mean() < 1.0
    before_mean, _ = lab_stats(tile, tissue)
    assert _de(before_mean, DEFAULT_TARGET_MEAN) > 10  # CMU is paler and pinker than the target
    norm = StainNormaliser().fit([tile])
    out = norm.transform(tile)
    assert out.dtype == np.uint8 and out.shape == tile.shape
    mean, std = lab_stats(out, tissue)
    assert mean == pytest.approx(DEFAULT_TARGET_MEAN, abs=1.0)
    assert std == pytest.approx(DEFAULT_TARGET_STD, rel=0.1)
    glass = tissue_weight(tile) == 0
    assert np.array_equal(out[glass], tile[glass])  # background stays as scanned


def test_stain_shifted_copy_normalises_back_to_the_original(he):
    img = he[::2, ::2]  # 500 x 500 keeps this fast
    shifted = _stain_shift(img, h=1.25, e=0.8)  # the simulated external cohort's shift
    raw_diff = np.abs(shifted.astype(float) - img).mean()
    a = StainNormaliser().fit([img]).transform(img)
    b = StainNormaliser().fit([shifted]).transform(shifted)
    norm_diff = np.abs(a.astype(float) - b).mean()
    assert raw_diff > 4
    assert norm_diff < 0.5 * raw_diff, (raw_diff, norm_diff)  # measured: 5.4 -> 1.9 grey levels
    tissue = tissue_weight(img) >= 1
    assert _de(lab_stats(a, tissue)[0], lab_stats(b, tissue)[0]) < 0.25 * _de(lab_stats(img, tissue)[0],
                                                                              lab_stats(shifted, tissue)[0])


def test_simulated_external_stain_is_removed_but_the_tumour_signal_kept():
    from gistrisk.pathology.classes import CLASSES
    from gistrisk.simulate.config import DEVELOPMENT, EXTERNAL
    from gistrisk.simulate.slide_layout import layout, rasterise
    from gistrisk.simulate.slide_texture import render

    labels = rasterise(layout(np.random.default_rng(1), 512), 512)
    tum = labels == CLASSES.index("tumour")

    def tumour_lab(latent: float, acq, normalise: bool) -> np.ndarray:
        img = render(labels, np.random.default_rng(3), latent, acq)
        if normalise:  # fitted on the whole image, as on a whole slide
            img = StainNormaliser().fit([img]).transform(img)
        return rgb_to_lab(img)[tum].mean(0)

    for latent in (-2.0, 2.0):
        raw = _de(tumour_lab(latent, DEVELOPMENT, False), tumour_lab(latent, EXTERNAL, False))
        norm = _de(tumour_lab(latent, DEVELOPMENT, True), tumour_lab(latent, EXTERNAL, True))
        assert raw > 3 and norm < 0.4 * raw, (latent, raw, norm)
    raw_signal = _de(tumour_lab(-2.0, DEVELOPMENT, False), tumour_lab(2.0, DEVELOPMENT, False))
    norm_signal = _de(tumour_lab(-2.0, DEVELOPMENT, True), tumour_lab(2.0, DEVELOPMENT, True))
    assert norm_signal > 0.5 * raw_signal  # hyperchromatic tumour still looks different


@pytest.fixture(scope="module")
def six_tiles_for_stain(cmu):
    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.pipeline import tile_one
    from gistrisk.pathology.tiling import TileConfig

    tiles = tile_one(cmu, TileConfig(tile_size=112, target_mpp=1.0)).head(6).reset_index(drop=True)
    return tiles, {str(cmu): SlideSource(str(cmu), "openslide")}


def test_none_leaves_pixels_unchanged_and_fit_is_deterministic(he, six_tiles_for_stain):
    from gistrisk.pathology.data import TileDataset, fit_stain

    none = StainNormaliser(StainConfig(method="none"))
    assert none.transform(he) is he
    tiles, src = six_tiles_for_stain
    assert fit_stain(tiles, src, StainConfig(method="none")) == {}
    plain = TileDataset(tiles, src, stain={})
    assert all(np.array_equal(plain[i][0].numpy(), plain.read(i)) for i in range(len(tiles)))

    a = fit_stain(tiles, src, StainConfig(n_fit_tiles=4))
    b = fit_stain(tiles.iloc[::-1].reset_index(drop=True), src, StainConfig(n_fit_tiles=4))  # row order
    (path,) = a
    assert np.array_equal(a[path].mean_, b[path].mean_) and np.array_equal(a[path].std_, b[path].std_)
    ds = TileDataset(tiles, src, stain=a)
    x0, x1 = ds[0][0].numpy(), ds[0][0].numpy()
    assert np.array_equal(x0, x1) and not np.array_equal(x0, ds.read(0))
    plain.close()
    ds.close()


def test_stain_config_validation_and_resolution(tmp_path):
    from gistrisk.errors import InputError

    with pytest.raises(InputError, match="vahadane"):
        StainConfig(method="vahadane")
    assert StainConfig.from_dict(None).method == "none"  # classifiers from before stain normalisation
    trained = StainConfig(target_mean=(50, 30, -10)).to_dict()
    cfg, warn = resolve_stain(trained, None)
    assert cfg == StainConfig.from_dict(trained) and warn is None
    cfg, warn = resolve_stain(trained, "none")
    assert cfg.method == "none" and "differs" in warn and "reinhard" in warn
    cfg, warn = resolve_stain(None, "reinhard")
    assert cfg == StainConfig() and "none" in warn
    glass = np.full((32, 32, 3), 250, np.uint8)
    empty = StainNormaliser().fit([glass])  # a tile set without tissue: the identity on tissue, glass kept
    assert np.allclose(empty.mean_, DEFAULT_TARGET_MEAN) and np.array_equal(empty.transform(glass), glass)
    blank = tmp_path / "blank.png"
    Image.fromarray(glass).save(blank)
    with pytest.raises(InputError, match="no tissue") as e:
        read_reference(blank)
    assert "blank.png" in str(e.value)


@pytest.mark.slow
def test_train_records_the_setting_and_features_reuse_it(he_png, tmp_path):
    """One epoch on 6 real H&E tiles (4 labelled tumour, 2 stroma: training needs two classes): the
    header and provenance carry the stain setting, and features computed with the header's setting
    are those of the trained model on normalised tiles."""
    from shapely.geometry import box

    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.engine import InferenceConfig, predict_tiles
    from gistrisk.pathology.model import load_classifier
    from gistrisk.pathology.pipeline import tile_one
    from gistrisk.pathology.tiling import TileConfig
    from gistrisk.pathology.train import TrainConfig, train_classifier
    from qupath_bridge.geojson import Annotation, write_annotations

    write_annotations(tmp_path / "he.geojson", [Annotation(geometry=box(0, 0, 448, 448), class_name="Tumor"),
                                                Annotation(geometry=box(448, 0, 896, 224), class_name="Stroma")])
    tiles = tile_one(he_png, TileConfig(tile_size=112, target_mpp=1.0), annotations=tmp_path / "he.geojson",
                     mpp=0.5)
    sources = {str(he_png): SlideSource(str(he_png), "auto", 0.5)}
    ref = tmp_path / "ref.png"
    Image.fromarray(_stain_shift(np.asarray(Image.open(he_png).convert("RGB"))[:400, :400], 1.3, 0.8)).save(ref)
    mean, std = read_reference(ref)
    cfg = TrainConfig(epochs=1, batch_size=4, device="cpu", num_workers=0,
                      stain=StainConfig(target_mean=mean, target_std=std))
    train_classifier(tiles, tmp_path / "clf", cfg, sources=sources)
    model, header = load_classifier(tmp_path / "clf")
    assert header["stain"] == cfg.stain.to_dict() and header["stain"]["method"] == "reinhard"
    assert header["stain"]["target_mean"] == pytest.approx(list(mean))
    prov = json.loads((tmp_path / "clf" / "provenance.json").read_text())
    assert prov["parameters"]["stain"] == cfg.stain.to_dict()
    fitted = prov["stain_fit"][str(he_png)]  # the slide's own statistics: shifted towards no target
    assert len(fitted["mean"]) == 3 and _de(fitted["mean"], mean) > 3

    cpu = InferenceConfig(batch_size=8, num_workers=0, device="cpu")
    p_default, f_default = predict_tiles(model, header, tiles, sources, cpu)
    _, f_same = predict_tiles(model, header, tiles, sources, cpu, StainConfig.from_dict(header["stain"]))
    _, f_none = predict_tiles(model, header, tiles, sources, cpu, StainConfig(method="none"))
    assert np.array_equal(f_default, f_same)
    assert np.abs(f_default - f_none).max() > 1e-3  # the setting really changes what the network sees
    assert p_default.shape == (len(tiles), len(header["classes"]))


def test_features_cli_overrides_with_a_warning_and_records_it(small_slide, classifier_factory, tmp_path):
    from typer.testing import CliRunner

    from gistrisk.pathology.cli import app

    folder = tmp_path / "wsi"
    folder.mkdir()
    (folder / "S1.tif").write_bytes(small_slide.read_bytes())
    clf = classifier_factory("tumour")  # a header without a stain entry: trained without normalisation
    args = ["features", "--classifier", str(clf), "--slides", str(folder), "--device", "cpu", "--workers", "0"]
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "plain.parquet")])
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "norm.parquet"), "--stain-normalise", "reinhard"])
    assert r.exit_code == 0, r.output
    assert "warning: --stain-normalise reinhard differs" in r.output
    prov = json.loads((tmp_path / "norm.provenance.json").read_text())
    assert prov["parameters"]["stain"]["method"] == "reinhard"
    assert json.loads((tmp_path / "plain.provenance.json").read_text())["parameters"]["stain"]["method"] == "none"
    plain = pd.read_parquet(tmp_path / "plain.parquet").filter(like="path_").to_numpy()
    norm = pd.read_parquet(tmp_path / "norm.parquet").filter(like="path_").to_numpy()
    assert not np.allclose(plain, norm)
