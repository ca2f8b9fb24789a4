"""Macenko stain normalisation: the stain matrix recovered from images built from known H&E stain
vectors, a re-stained image brought back, real H&E pixels, the setting recorded like Reinhard's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gistrisk.errors import InputError
from gistrisk.pathology.model import check_header
from gistrisk.pathology.stain import (
    DEFAULT_MAX_CONC,
    DEFAULT_STAIN_MATRIX,
    StainConfig,
    StainNormaliser,
    macenko_stain_matrix,
    optical_density,
    resolve_stain,
    stain_target_from_image,
    tissue_weight,
)

#: Ruifrok & Johnston's haematoxylin and eosin optical-density vectors (R, G, B), unit length
H_RJ = np.array([0.650, 0.704, 0.286])
E_RJ = np.array([0.072, 0.990, 0.105])
#: another lab's (bluer haematoxylin, more orange eosin): the same tissue stained differently
H_B = np.array([0.55, 0.76, 0.35])
E_B = np.array([0.20, 0.95, 0.25])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _angle(a, b) -> float:
    """Angle in degrees between two vectors."""
    a, b = _unit(np.asarray(a, float)), _unit(np.asarray(b, float))
    return float(np.degrees(np.arccos(np.clip(a @ b, -1, 1))))


def _concentrations(n: int, seed: int = 0) -> np.ndarray:
    """(n, 2) H and E amounts of a tissue: pure nuclei, pure cytoplasm and mixtures, plus some glass."""
    rng = np.random.default_rng(seed)
    c = np.zeros((n, 2))
    kind = rng.choice(4, size=n, p=[0.15, 0.15, 0.6, 0.1])
    c[kind == 0, 0] = rng.uniform(0.3, 1.2, (kind == 0).sum())  # haematoxylin only
    c[kind == 1, 1] = rng.uniform(0.3, 1.0, (kind == 1).sum())  # eosin only
    mixed = kind == 2
    c[mixed] = rng.uniform(0.05, 0.9, (mixed.sum(), 2))
    return c  # kind 3: glass, no stain


def _image(c: np.ndarray, h: np.ndarray, e: np.ndarray, side: int) -> np.ndarray:
    """Beer-Lambert: OD = c_H * H + c_E * E -> RGB uint8 (side, side, 3), as the module's OD defines it."""
    od = c @ np.stack([_unit(h), _unit(e)])
    rgb = 256.0 * 10.0 ** (-od) - 1.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(side, side, 3)


def test_optical_density_of_glass_is_zero_and_grows_with_absorption():
    od = optical_density(np.array([[255, 255, 255], [127, 127, 127], [0, 0, 0]], np.uint8))
    assert od[0] == pytest.approx([0, 0, 0]) and od[1] == pytest.approx([np.log10(2)] * 3)
    assert (od[2] > od[1]).all()


def test_stain_matrix_of_known_stains_is_recovered():
    rgb = _image(_concentrations(200 * 200), H_RJ, E_RJ, 200)
    stains = macenko_stain_matrix(optical_density(rgb).reshape(-1, 3))
    assert stains.shape == (2, 3)
    assert np.linalg.norm(stains, axis=1) == pytest.approx([1, 1])
    # haematoxylin first, each within 2 degrees of the vector the image was built from
    assert _angle(stains[0], H_RJ) < 2 and _angle(stains[1], E_RJ) < 2
    other = macenko_stain_matrix(optical_density(_image(_concentrations(200 * 200), H_B, E_B, 200)).reshape(-1, 3))
    assert _angle(other[0], H_B) < 2 and _angle(other[1], E_B) < 2


def test_restained_image_is_brought_back_to_the_reference():
    c = _concentrations(160 * 160, seed=1)
    reference = _image(c, H_RJ, E_RJ, 160)
    restained = _image(c * [1.4, 0.7], H_B, E_B, 160)  # other stain vectors, more haematoxylin, less eosin
    stains, max_conc = stain_target_from_image(reference)
    cfg = StainConfig(method="macenko", target_stains=stains, target_max_conc=max_conc)
    out = StainNormaliser(cfg).fit([restained]).transform(restained)
    assert out.dtype == np.uint8 and out.shape == reference.shape
    tissue = tissue_weight(reference) >= 1
    before = np.abs(restained.astype(int) - reference).mean(axis=-1)[tissue].mean()
    after = np.abs(out.astype(int) - reference).mean(axis=-1)[tissue].mean()
    assert before > 15 and after < 4, (before, after)


def test_default_target_is_the_reference_image(he_png):
    he = np.asarray(Image.open(he_png).convert("RGB"))
    stains, max_conc = stain_target_from_image(he)
    assert np.asarray(stains) == pytest.approx(np.asarray(DEFAULT_STAIN_MATRIX), abs=1e-3)
    assert max_conc == pytest.approx(DEFAULT_MAX_CONC, abs=1e-3)


def test_real_tile_gets_the_target_stains_and_glass_stays(cmu_crop):
    tile = cmu_crop[:512, 512:]  # real CMU tissue with some glass
    norm = StainNormaliser(StainConfig(method="macenko")).fit([tile])
    assert norm.fallback_ is None
    assert _angle(norm.stains_[0], DEFAULT_STAIN_MATRIX[0]) > 3  # CMU's stains differ from the target's
    out = norm.transform(tile)
    assert np.array_equal(out, StainNormaliser(StainConfig(method="macenko")).fit([tile]).transform(tile))
    # the same tissue pixels, after: their stain vectors and amounts are the target's
    tissue = tissue_weight(tile) >= 1
    od = optical_density(out)[tissue].astype(np.float64)
    refit = macenko_stain_matrix(od)
    for k in range(2):
        assert _angle(refit[k], DEFAULT_STAIN_MATRIX[k]) < 0.5
    amounts = od @ np.linalg.pinv(np.asarray(DEFAULT_STAIN_MATRIX))
    assert np.percentile(amounts, 99, axis=0) == pytest.approx(DEFAULT_MAX_CONC, rel=0.02)
    glass = tissue_weight(tile) == 0
    assert glass.any() and np.array_equal(out[glass], tile[glass])


def test_blank_slide_is_left_as_is_and_says_so():
    glass = np.full((64, 64, 3), 245, np.uint8)
    norm = StainNormaliser(StainConfig(method="macenko")).fit([glass])
    assert norm.fallback_ and "stained pixels" in norm.fallback_
    assert np.array_equal(norm.transform(glass), glass)
    assert norm.fitted()["fallback"] == norm.fallback_


def test_setting_round_trips_and_reinhard_records_what_it_did_before():
    mac = StainConfig(method="macenko")
    d = mac.to_dict()
    assert d["method"] == "macenko" and np.asarray(d["target_stains"]).shape == (2, 3)
    assert "target_mean" not in d and StainConfig.from_dict(json.loads(json.dumps(d))) == mac
    # Reinhard and none keep exactly the fields they always had: tables extracted before stay comparable
    for method in ("reinhard", "none"):
        assert set(StainConfig(method=method).to_dict()) == {"method", "target_mean", "target_std", "n_fit_tiles"}
    cfg, warning = resolve_stain(StainConfig().to_dict(), "macenko")
    assert cfg.method == "macenko" and "differs" in warning


def test_classifier_header_accepts_macenko_and_names_a_bad_stain_matrix():
    header = {"schema": 1, "architecture": "torchvision.resnet50", "classes": ["tumour", "stroma"], "tile_size": 224,
              "mpp": 0.5, "mean": [0.5] * 3, "std": [0.2] * 3, "stain": StainConfig(method="macenko").to_dict()}
    check_header(header, "clf.safetensors")
    bad = {**header, "stain": {**header["stain"], "target_stains": [[1, 0, 0]]}}
    with pytest.raises(InputError, match="'stain'") as e:
        check_header(bad, "clf.safetensors")
    assert "clf.safetensors" in str(e.value)
    with pytest.raises(InputError, match="macenko|reinhard"):
        StainConfig(method="vahadane")


def test_features_cli_applies_and_records_macenko(small_slide, classifier_factory, tmp_path):
    from typer.testing import CliRunner

    from gistrisk.pathology.cli import app

    folder = tmp_path / "wsi"
    folder.mkdir()
    (folder / "S1.tif").write_bytes(small_slide.read_bytes())
    clf = classifier_factory("tumour")  # trained without normalisation
    args = ["features", "--classifier", str(clf), "--slides", str(folder), "--device", "cpu", "--workers", "0",
            "--no-embeddings"]
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "plain.parquet")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, args + ["--out", str(tmp_path / "mac.parquet"), "--stain-normalise", "macenko"])
    assert r.exit_code == 0, r.output
    assert "warning: --stain-normalise macenko differs" in r.output
    prov = json.loads((tmp_path / "mac.provenance.json").read_text())
    assert prov["parameters"]["stain"] == StainConfig(method="macenko").to_dict()
    plain = pd.read_parquet(tmp_path / "plain.parquet").filter(like="path_").to_numpy()
    mac = pd.read_parquet(tmp_path / "mac.parquet").filter(like="path_").to_numpy()
    assert not np.allclose(plain, mac)


def test_features_flag_a_slide_macenko_left_as_scanned(small_slide, classifier_factory, tmp_path, monkeypatch):
    """Per-slide fits are recorded; a slide the normalisation left as scanned is a warning on the console
    and in the provenance (here every slide: the stained-pixel minimum is raised above any tile set)."""
    from gistrisk.pathology import stain as stain_module
    from gistrisk.pathology.manifest import SlideEntry
    from gistrisk.pathology.runs import feature_cohort

    entries = [SlideEntry("P1", str(small_slide), "S1")]
    kw = {"inference": {"device": "cpu", "num_workers": 0, "batch_size": 8}, "stain_normalise": "macenko",
          "progress": False, "embeddings": False}
    seen: list[str] = []
    feature_cohort(classifier_factory("tumour"), entries, tmp_path / "ok.csv", on_message=seen.append, **kw)
    fit = json.loads((tmp_path / "ok.provenance.json").read_text())["stain_fit"]["S1"]
    assert np.asarray(fit["stains"]).shape == (2, 3) and fit["fallback"] is None
    assert not [m for m in seen if "left as scanned" in m]
    monkeypatch.setattr(stain_module, "MIN_STAIN_PIXELS", 10 ** 9)
    res = feature_cohort(classifier_factory("tumour"), entries, tmp_path / "fb.csv", on_message=seen.append, **kw)
    assert any("left as scanned" in m and "cmu_small" in m for m in res.messages)
    prov = json.loads((tmp_path / "fb.provenance.json").read_text())
    assert prov["stain_fallbacks"] == ["S1"] and "left as scanned" in prov["stain_fit"]["S1"]["fallback"]
