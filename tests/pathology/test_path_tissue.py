"""Tissue detection on thumbnails; a slide with no tissue is an error, not an empty table."""

from __future__ import annotations

import numpy as np
import pytest

from gistrisk.pathology.slides import Slide
from gistrisk.pathology.tiling import TileConfig, tile_slide
from gistrisk.pathology.tissue import NoTissueError, box_fractions, otsu_threshold, tissue_mask


def test_otsu_splits_two_populations():
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0.1, 0.02, 5000), rng.normal(0.6, 0.05, 5000)]).clip(0, 1)
    t = otsu_threshold(v)
    assert v[:5000].max() < t < v[5000:].min()  # any cut in the empty gap is optimal


def test_real_slide_tissue_fraction(cmu):
    with Slide(cmu) as s:
        thumb = s.thumbnail(8)
    mask = tissue_mask(thumb)
    # the CMU region is a tissue strip on glass: about a third of the area, not all, not none
    assert 0.25 < mask.mean() < 0.5
    # glass in the top-left corner, tissue in the lower middle
    assert not mask[:20, :20].any()
    assert mask[300:330, 120:160].mean() > 0.9


def test_box_fractions_exact_on_a_synthetic_mask():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    boxes = np.array([[0, 0, 20, 40], [20, 0, 40, 40], [10, 0, 30, 40]])  # level-0 px, scale 4
    np.testing.assert_allclose(box_fractions(mask, boxes, 4.0), [1.0, 0.0, 0.5])


def test_blank_slide_has_no_tissue(tmp_path, write_tiff):
    white = np.full((1024, 1024, 3), 250, np.uint8)
    white += np.random.default_rng(0).integers(0, 5, white.shape, dtype=np.uint8)  # scanner noise on glass
    path = write_tiff(tmp_path / "glass.tif", white, mpp=0.5)
    with Slide(path) as s, pytest.raises(NoTissueError, match="no tissue") as e:
        tile_slide(s, TileConfig())
    assert str(path) in str(e.value)


def test_tissue_filter_drops_glass_tiles(cmu):
    with Slide(cmu) as s:
        all_tiles = tile_slide(s, TileConfig(min_tissue_fraction=0.0))
        kept = tile_slide(s, TileConfig(min_tissue_fraction=0.5))
    assert len(all_tiles) == 117
    assert 30 <= len(kept) < 70
    assert (kept["tissue_fraction"] >= 0.5).all()
    corner = all_tiles[(all_tiles.x == 0) & (all_tiles.y == 0)]
    assert float(corner["tissue_fraction"].iloc[0]) == 0.0


def test_tissue_touching_the_thumbnail_edge_is_kept(cmu_crop):
    # real tissue pixels in a 3-px strip on the right edge of a glass-white thumbnail
    thumb = np.full((40, 40, 3), 245, np.uint8)
    strip = cmu_crop[500:540, 600:603]
    thumb[:, -3:] = strip
    mask = tissue_mask(thumb, px_per_tile=4)
    assert mask[:, -3:].mean() > 0.9 and not mask[:, :30].any()
