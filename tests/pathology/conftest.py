"""Fixtures for the pathology tests: the real Aperio slide, small synthetic slides for bad input,
and classifier files built from a seeded random ResNet50 (ImageNet weights are not available offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CMU_NAME = "CMU-1-Small-Region.svs"


@pytest.fixture(scope="session")
def cmu(shared_data: Path) -> Path:
    p = shared_data / "wsi" / CMU_NAME
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


@pytest.fixture(scope="session")
def he_png(shared_data: Path) -> Path:
    p = shared_data / "he" / "he_tumour_tile_1000px.png"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return p


def _write_tiff(path: Path, rgb: np.ndarray, mpp: float | None) -> Path:
    """A tiled generic TIFF; ``mpp`` None leaves out the resolution tags."""
    import tifffile

    kw = {}
    if mpp is not None:
        kw = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, rgb, tile=(256, 256), photometric="rgb", **kw)
    return path


@pytest.fixture(scope="session")
def write_tiff():
    """``write_tiff(path, rgb (H, W, 3) uint8, mpp or None) -> path``."""
    return _write_tiff


@pytest.fixture(scope="session")
def cmu_crop(cmu: Path) -> np.ndarray:
    """Real H&E pixels: a 1024 x 1024 crop of the CMU slide (rows 1024.., cols 512..)."""
    import openslide

    with openslide.OpenSlide(str(cmu)) as s:
        return np.asarray(s.read_region((512, 1024), 0, (1024, 1024)).convert("RGB"))


@pytest.fixture
def cut_tile_tif(cmu_crop: np.ndarray, tmp_path: Path) -> Path:
    """A JPEG-tiled TIFF of the CMU crop whose tile (1, 1) is cut to half its bytes (a damaged file)."""
    import tifffile

    path = tmp_path / "cut_tile.tif"
    tifffile.imwrite(path, cmu_crop, tile=(256, 256), photometric="rgb", compression="jpeg",
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    with tifffile.TiffFile(path, mode="r+") as tf:
        counts = list(tf.pages[0].databytecounts)
        counts[5] //= 2  # tile (1, 1)
        tf.pages[0].tags["TileByteCounts"].overwrite(counts)
    return path


@pytest.fixture(scope="session")
def classifier_factory(tmp_path_factory):
    """Build and cache classifier folders from a seeded random ResNet50 whose head bias favours one class.

    ``favour=None`` keeps the random head. Returns the folder with classifier.safetensors.
    """
    from gistrisk.pathology.classes import CLASSES, IMAGENET_MEAN, IMAGENET_STD
    from gistrisk.pathology.model import build_model, save_classifier

    made: dict = {}

    def make(favour: str | None = None, seed: int = 0) -> Path:
        key = (favour, seed)
        if key not in made:
            import torch

            model = build_model(seed=seed)
            if favour is not None:
                with torch.no_grad():
                    model.fc.bias.zero_()
                    model.fc.bias[list(CLASSES).index(favour)] = 50.0
            d = tmp_path_factory.mktemp(f"clf_{favour}_{seed}")
            save_classifier(d / "classifier.safetensors", model,
                            {"classes": list(CLASSES), "tile_size": 224, "mpp": 0.5,
                             "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)})
            made[key] = d
        return made[key]

    return make


@pytest.fixture(scope="session")
def small_slide(cmu, tmp_path_factory) -> Path:
    """A 672 x 672 px TIFF of real CMU pixels (x 448-1120, y 1568-2240) at the slide's 0.499 um/px:
    a 3 x 3 tile grid, glass on the left, dense tissue on the right (5 tissue tiles). Keeps
    ResNet50 CPU work to a handful of tiles."""
    import openslide

    with openslide.OpenSlide(str(cmu)) as s:
        rgb = np.asarray(s.read_region((448, 1568), 0, (672, 672)).convert("RGB"))
    return _write_tiff(tmp_path_factory.mktemp("small") / "cmu_small.tif", rgb, mpp=0.499)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread per test process: `make test` runs pytest-xdist workers on 2 cores, and
    OpenMP threads of several processes fighting over them slow ResNet50 several-fold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def labelled(cmu, he_png, tmp_path_factory):
    """8 labelled 112-px tiles at 1.0 um/px: background and stroma on the CMU slide, tumour on the
    real H&E image (no mpp in the PNG: 0.5 given). Returns (tiles, sources)."""
    from shapely.geometry import box

    from gistrisk.pathology.data import SlideSource
    from gistrisk.pathology.pipeline import tile_one
    from gistrisk.pathology.tiling import TileConfig
    from qupath_bridge.geojson import Annotation, write_annotations

    small = TileConfig(tile_size=112, target_mpp=1.0)
    d = tmp_path_factory.mktemp("train")
    s0 = 224  # a 112-px tile at 1.0 um/px is 112 um = 224 px at the slide's 0.499 um/px
    write_annotations(d / "cmu.geojson", [
        Annotation(geometry=box(0, 0, 2 * s0, s0), class_name="Background"),
        Annotation(geometry=box(2 * s0, 4 * s0, 4 * s0, 5 * s0), class_name="Stroma")])
    write_annotations(d / "he.geojson", [Annotation(geometry=box(0, 0, 448, 448), class_name="Tumor")])
    a = tile_one(cmu, small, annotations=d / "cmu.geojson")
    b = tile_one(he_png, small, annotations=d / "he.geojson", mpp=0.5)  # the PNG has no mpp: given
    tiles = pd.concat([a, b], ignore_index=True)
    tiles = tiles[tiles.label.notna()].reset_index(drop=True)
    sources = {str(he_png): SlideSource(str(he_png), "auto", 0.5)}
    return tiles, sources
