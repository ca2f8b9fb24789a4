"""Opening slides with both backends, mpp handling, level choice, bad slide files."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from gistrisk.errors import InputError
from gistrisk.pathology.slides import Slide


@pytest.mark.parametrize("backend", ["openslide", "tiffslide"])
def test_real_slide_geometry_and_mpp(cmu, backend):
    with Slide(cmu, backend=backend) as s:
        assert s.backend == backend
        assert s.dimensions == (2220, 2967)
        assert s.mpp == pytest.approx(0.499)
        choice = s.choose_level(0.5, 224)
    # 224 px at 0.5 um/px is 224.4 px at 0.499 um/px: read 224 px at level 0, no resizing
    assert (choice.level, choice.read_size, choice.size0) == (0, 224, 224)
    assert choice.effective_mpp == pytest.approx(0.499)


def test_backends_read_identical_pixels(cmu):
    with Slide(cmu, backend="openslide") as a, Slide(cmu, backend="tiffslide") as b:
        for x, y in [(0, 0), (672, 1344), (1792, 2688)]:
            ta, tb = a.read_tile(x, y, 0, 224), b.read_tile(x, y, 0, 224)
            assert ta.shape == (224, 224, 3) and ta.dtype == np.uint8
            np.testing.assert_array_equal(ta, tb)


def test_coarser_target_reads_larger_region_and_resizes(cmu):
    with Slide(cmu) as s:
        choice = s.choose_level(1.0, 224)
        tile = s.read_tile(0, 0, choice.level, choice.read_size, 224)
    assert choice.read_size == 449 and choice.size0 == 449  # 224 * 1.0 / 0.499
    assert tile.shape == (224, 224, 3)


def test_target_finer_than_scan_is_refused(cmu):
    with Slide(cmu) as s, pytest.raises(InputError, match="coarser than the target"):
        s.choose_level(0.25, 224)


@pytest.mark.parametrize("backend", ["openslide", "tiffslide", "auto"])
def test_truncated_slide_is_a_clear_error(cmu, tmp_path, backend):
    bad = tmp_path / "truncated.svs"
    bad.write_bytes(cmu.read_bytes()[: cmu.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as e:
        Slide(bad, backend=backend)
    assert str(bad) in str(e.value)


def test_a_slide_refused_at_opening_leaves_no_file_open(cmu, cmu_crop, tmp_path, write_tiff, open_files):
    """A cohort run opens thousands of slides: one refused (truncated, no mpp) must not hold its file until the
    garbage collector runs."""
    bad = tmp_path / "truncated.svs"
    bad.write_bytes(cmu.read_bytes()[: cmu.stat().st_size // 2])
    nompp = write_tiff(tmp_path / "nompp.tif", cmu_crop, mpp=None)
    gc.disable()  # what the collector would close later is what this test is about
    try:
        for path, backend in ((bad, "tiffslide"), (bad, "auto"), (nompp, "openslide"), (nompp, "tiffslide")):
            with pytest.raises(InputError):
                Slide(path, backend=backend)
            assert [f for f in open_files() if f.startswith(str(tmp_path))] == [], (path.name, backend)
    finally:
        gc.enable()


def test_not_a_slide_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.svs"
    bad.write_text("this is not an image\n")
    with pytest.raises(InputError, match="cannot open slide") as e:
        Slide(bad)
    assert str(bad) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        Slide(tmp_path / "absent.svs")


def test_slide_without_mpp_requires_given_mpp(cmu_crop, tmp_path, write_tiff):
    path = write_tiff(tmp_path / "nompp.tif", cmu_crop, mpp=None)
    for backend in ("openslide", "tiffslide"):
        with pytest.raises(InputError, match="--mpp") as e:
            Slide(path, backend=backend)
        assert str(path) in str(e.value)
    with Slide(path, mpp=0.5) as s:
        assert s.mpp == 0.5 and s.mpp_source == "given" and s.mpp_recorded is None
        np.testing.assert_array_equal(s.read_tile(0, 0, 0, 224), cmu_crop[:224, :224])


def test_tiff_resolution_tags_give_mpp(cmu_crop, tmp_path, write_tiff):
    path = write_tiff(tmp_path / "mpp.tif", cmu_crop, mpp=0.25)
    with Slide(path) as s:
        assert s.mpp == pytest.approx(0.25)
        assert s.choose_level(0.5, 224).read_size == 448


def test_png_needs_mpp_and_reads_real_pixels(he_png):
    from PIL import Image

    with pytest.raises(InputError, match="--mpp"):
        Slide(he_png)
    ref = np.asarray(Image.open(he_png).convert("RGB"))
    with Slide(he_png, mpp=0.5) as s:
        assert s.backend == "pil" and s.dimensions == (1000, 1000)
        np.testing.assert_array_equal(s.read_tile(224, 448, 0, 224), ref[448:672, 224:448])


def test_bad_mpp_override(cmu):
    with pytest.raises(InputError, match="positive"):
        Slide(cmu, mpp=-1.0)


@pytest.mark.parametrize("backend", ["openslide", "tiffslide"])
def test_corrupt_tile_data_is_a_clear_error(cmu_crop, tmp_path, backend):
    import tifffile

    path = tmp_path / "corrupt.tif"
    tifffile.imwrite(path, cmu_crop, tile=(256, 256), photometric="rgb", compression="jpeg",
                     resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    with tifffile.TiffFile(path) as tf:
        off, cnt = tf.pages[0].dataoffsets[5], tf.pages[0].databytecounts[5]  # tile (1, 1)
    raw = bytearray(path.read_bytes())
    raw[off + 20:off + cnt] = b"\x00" * (cnt - 20)  # a damaged JPEG tile inside an intact file
    path.write_bytes(bytes(raw))
    with Slide(path, backend=backend) as s, pytest.raises(InputError, match="cannot read tile at x=256, y=256") as e:
        s.read_tile(256, 256, 0, 224)
    assert str(path) in str(e.value) and "corrupt" in str(e.value)
