"""The direct TIFF tile reader: same pixels as the OpenSlide path, declines what it cannot match,
and bad tile data still ends as an InputError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gistrisk.errors import InputError
from gistrisk.pathology.slides import Slide
from gistrisk.pathology.tiff_tiles import TiffTileReader, jpeg_intact, open_tiff_reader


def _pair(path: Path, **kw) -> tuple[Slide, Slide]:
    """The product Slide (fast reader) and the same slide read through OpenSlide only."""
    return Slide(path, backend="openslide", **kw), Slide(path, backend="openslide", fast_tiff=False, **kw)


def _assert_same(fast: Slide, ref: Slide, coords, level: int = 0, size: int = 224) -> None:
    for x, y in coords:
        a, b = fast.read_tile(x, y, level, size), ref.read_tile(x, y, level, size)
        assert a.shape == (size, size, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b, err_msg=f"x={x}, y={y}, level={level}, size={size}")


def _pyramid(path: Path, rgb: np.ndarray, downsamples=(1, 4, 16), **kw) -> Path:
    """A pyramidal tiled TIFF (like benchmarks/pathology_tiling.py build_mosaic) at 0.5 um/px."""
    import tifffile
    from PIL import Image

    h, w = rgb.shape[:2]
    with tifffile.TiffWriter(path) as tw:
        for i, ds in enumerate(downsamples):
            lv = rgb if ds == 1 else np.asarray(Image.fromarray(rgb).resize((w // ds, h // ds), Image.Resampling.BOX))
            tw.write(lv, tile=(256, 256), photometric="rgb", resolution=(2e4 / ds,) * 2, resolutionunit="CENTIMETER",
                     subfiletype=0 if i == 0 else 1, **kw)
    return path


def test_cmu_every_grid_tile_and_edge_matches_openslide(cmu):
    fast, ref = _pair(cmu)
    with fast, ref:
        assert fast.backend == "openslide" and fast.fast_reader is not None and ref.fast_reader is None
        w, h = fast.dimensions
        grid = [(x, y) for y in range(0, h - 223, 224) for x in range(0, w - 223, 224)]  # every tile of the grid
        edges = ([(x, h - 100) for x in range(0, w, 448)] + [(w - 100, y) for y in range(0, h, 448)]
                 + [(-112, -112), (-50, 600), (w - 1, h - 1), (w, h), (w + 10, 0), (-224, -224)])
        _assert_same(fast, ref, grid + edges)
        r = fast.fast_reader
        assert (r.reads, r.declined) == (len(grid) + len(edges), 0)
        corner = fast.read_tile(w - 100, h - 100, 0, 224)
    assert (corner[100:] == 255).all() and (corner[:, 100:] == 255).all()  # white outside, as OpenSlide's path


def test_auto_backend_uses_the_fast_reader_and_tissue_tiles_match(cmu):
    from gistrisk.pathology.tiling import TileConfig, tile_slide

    with Slide(cmu) as s, Slide(cmu, fast_tiff=False) as ref:
        tiles = tile_slide(s, TileConfig())
        assert s.backend == "openslide"
        for r in tiles.itertuples():
            np.testing.assert_array_equal(s.read_tile(r.x, r.y, r.level, r.read_size, r.tile_size),
                                          ref.read_tile(r.x, r.y, r.level, r.read_size, r.tile_size))
        assert s.fast_reader.reads == len(tiles) > 0 and s.fast_reader.declined == 0


@pytest.mark.parametrize("size", [1, 239, 240, 241, 600])
def test_regions_straddling_tiles(cmu, size):
    fast, ref = _pair(cmu)
    with fast, ref:
        # CMU tiles are 240 px: start on, just before and just after tile boundaries
        _assert_same(fast, ref, [(239, 239), (240, 480), (241, 719), (479, 1), (2220 - size, 2967 - size)], size=size)
        assert fast.fast_reader.declined == 0


def test_reader_region_is_non_square_and_bounded_cache(cmu):
    import openslide

    with Slide(cmu, fast_tiff=False) as s:
        reader = open_tiff_reader(cmu, s.level_dimensions, s.level_downsamples, "aperio", cache_tiles=4)
    with reader, openslide.OpenSlide(str(cmu)) as o:
        for x, y, w, h in [(100, 200, 700, 300), (2000, 2900, 300, 120), (0, 0, 1, 480)]:
            ref = np.asarray(o.read_region((x, y), 0, (w, h)).convert("RGBA"))
            got = reader.read_region(x, y, 0, w, h)
            assert got.shape == (h, w, 3)
            inside = ref[..., 3] == 255
            np.testing.assert_array_equal(got[inside], ref[..., :3][inside])
            assert (got[~inside] == 255).all()
            assert len(reader._cache) <= 4


def test_pyramidal_jpeg_tiff_all_levels(cmu_crop, tmp_path):
    path = _pyramid(tmp_path / "pyr.tif", cmu_crop, compression="jpeg", compressionargs={"level": 85})
    fast, ref = _pair(path)
    with fast, ref:
        assert fast.level_downsamples == [1.0, 4.0, 16.0]
        _assert_same(fast, ref, [(x, y) for y in range(-112, 1024, 224) for x in range(-112, 1024, 224)])
        _assert_same(fast, ref, [(0, 0), (512, 256), (1020, 4), (-64, 960)], level=1, size=100)  # multiples of 4
        _assert_same(fast, ref, [(0, 0), (512, 256), (-32, 992)], level=2, size=50)  # multiples of 16
        assert fast.fast_reader.declined == 0
        # level positions between pixels are resampled by OpenSlide: declined, same pixels via OpenSlide
        _assert_same(fast, ref, [(1, 0), (6, 2), (130, 0)], level=1, size=100)
        assert fast.fast_reader.declined == 3


@pytest.mark.parametrize("compression,kw", [("deflate", {"predictor": True}), ("lzw", {}), (None, {}),
                                            ("jpeg", {"compressionargs": {"outcolorspace": "rgb"}})])
def test_synthetic_tiled_tiff_codecs(cmu_crop, tmp_path, compression, kw):
    import tifffile

    path = tmp_path / f"synthetic_{compression}.tif"
    tifffile.imwrite(path, cmu_crop[:700, :900], tile=(256, 256), photometric="rgb", compression=compression,
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER", **kw)
    fast, ref = _pair(path)
    with fast, ref:
        _assert_same(fast, ref, [(0, 0), (200, 250), (700, 500), (-30, 600), (880, 690)])
        assert fast.fast_reader.reads == 5
        if compression != "jpeg":
            np.testing.assert_array_equal(fast.read_tile(200, 250, 0, 224), cmu_crop[250:474, 200:424])


def test_truncated_tiff_is_an_input_error(cmu_crop, tmp_path):
    import tifffile

    # > 5 MB of tile data, so OpenSlide skips its open-time hash and opens the cut file
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.tile(cmu_crop, (2, 2, 1))[:1536, :1536], tile=(256, 256), photometric="rgb",
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    path.write_bytes(path.read_bytes()[:-3000])
    with Slide(path) as s:
        assert s.fast_reader is not None
        s.read_tile(0, 0, 0, 224)  # intact tiles still read
        with pytest.raises(InputError, match="cannot read tile at x=1300, y=1300") as e:
            s.read_tile(1300, 1300, 0, 224)
    assert str(path) in str(e.value) and "corrupt" in str(e.value)


def test_cut_jpeg_tile_is_an_input_error_not_garbage(cut_tile_tif):
    # libjpeg only warns on a cut tile (imagecodecs would decode it); OpenSlide fails the read
    path = cut_tile_tif
    with Slide(path) as s:
        assert s.fast_reader is not None
        with pytest.raises(InputError, match="cannot read tile at x=256, y=256") as e:
            s.read_tile(256, 256, 0, 224)
    assert str(path) in str(e.value)


def test_jpeg_intact(cmu):
    import tifffile

    with tifffile.TiffFile(cmu) as tf, open(cmu, "rb") as f:
        page = tf.pages[0]
        f.seek(page.dataoffsets[20])
        data = f.read(page.databytecounts[20])
    assert jpeg_intact(data)
    n = len(data)
    for bad in (data[: n // 2], data[:-2], data[:20] + bytes(n - 20), data[:300] + b"\xff\xc4" + data[302:],
                data[:n // 3] + bytes(500) + data[n // 3 + 500:], b"\x11" + data[1:]):
        assert not jpeg_intact(bad)


def test_unsupported_files_are_declined_and_read_by_the_fallback(cmu_crop, tmp_path):
    import tifffile

    rgb = cmu_crop[:600, :600]
    # zstd: OpenSlide reads it, the reader leaves it alone
    zstd = tmp_path / "zstd.tif"
    tifffile.imwrite(zstd, rgb, tile=(256, 256), photometric="rgb", compression="zstd",
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    fast, ref = _pair(zstd)
    with fast, ref:
        assert fast.fast_reader is None
        _assert_same(fast, ref, [(0, 0), (300, 300)])
    # alpha channel
    rgba = tmp_path / "rgba.tif"
    tifffile.imwrite(rgba, np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]), tile=(256, 256),
                     photometric="rgb", extrasamples=["unassalpha"], resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    fast, ref = _pair(rgba)
    with fast, ref:
        assert fast.fast_reader is None
        _assert_same(fast, ref, [(0, 0), (300, 300)])
    # strips: OpenSlide does not take them (tiffslide does), nor does the reader
    strips = tmp_path / "strips.tif"
    tifffile.imwrite(strips, rgb, photometric="rgb", rowsperstrip=64, resolution=(2e4, 2e4),
                     resolutionunit="CENTIMETER")
    assert open_tiff_reader(strips, [(600, 600)], [1.0], "generic-tiff") is None
    with Slide(strips) as s:
        assert s.backend == "tiffslide" and s.fast_reader is None
        np.testing.assert_array_equal(s.read_tile(100, 200, 0, 224), rgb[200:424, 100:324])
    # not a vendor the reader knows
    assert open_tiff_reader(zstd, [(600, 600)], [1.0], "ventana") is None


def test_fast_path_can_be_turned_off(cmu, monkeypatch):
    with Slide(cmu, fast_tiff=False) as s:
        assert s.fast_reader is None and s.backend == "openslide"
    with Slide(cmu, backend="tiffslide") as s:
        assert s.fast_reader is None
    monkeypatch.setenv("GISTRISK_FAST_TIFF", "0")
    with Slide(cmu) as s:
        assert s.fast_reader is None
    monkeypatch.setenv("GISTRISK_FAST_TIFF", "1")
    with Slide(cmu) as s:
        assert isinstance(s.fast_reader, TiffTileReader)


def test_thumbnail_matches_openslides_get_thumbnail(cmu, cmu_crop, tmp_path):
    path = _pyramid(tmp_path / "pyr.tif", cmu_crop, compression="jpeg", compressionargs={"level": 85})
    for p, downsamples in ((path, (2, 5, 20, 64)), (cmu, (3, 64))):
        fast, ref = _pair(p)
        with fast, ref:
            for ds in downsamples:
                reads = fast.fast_reader.reads
                a, b = fast.thumbnail(ds), ref.thumbnail(ds)
                assert a.shape == b.shape and a.shape[0] == round(fast.dimensions[1] / ds)
                np.testing.assert_array_equal(a, b, err_msg=f"{p.name}, downsample {ds}")
                # the scanner's own thumbnail serves CMU at 64x; every other one is decoded directly
                assert fast.fast_reader.reads == reads + (0 if (p == cmu and ds == 64) else 1)
