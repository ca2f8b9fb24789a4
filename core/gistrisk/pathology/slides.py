"""Open a whole-slide image (OpenSlide, tiffslide, or PIL for small plain images) and read RGB tiles.

Every reader error becomes an :class:`~gistrisk.errors.InputError` naming the file, so a batch can
record it and move on.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_number
from gistrisk.pathology.tiff_tiles import TiffTileReader, open_tiff_reader

Backend = Literal["openslide", "tiffslide", "pil", "auto"]
PLAIN_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# A level may be this much coarser than the target mpp and still be read without up-sampling.
MPP_TOLERANCE = 0.05
# Two mpp values closer than this (relative) are the same resolution (rounding in the metadata).
MPP_AGREEMENT = 0.01


@dataclass(frozen=True)
class LevelChoice:
    """Where to read tiles for a target resolution.

    level: pyramid level; read_size: square size read at that level (px); size0: that square in
    level-0 px; effective_mpp: um/px of a tile after resizing read_size -> tile_size.
    """

    level: int
    read_size: int
    size0: int
    downsample: float
    effective_mpp: float


def resize_filter(read_size: int, tile_size: int) -> str:
    """The filter that takes a read square to the tile size: "box" when shrinking (an average over
    each output pixel's footprint), "bilinear" when enlarging (PIL's definitions)."""
    return "box" if read_size > tile_size else "bilinear"


class Slide:
    """A whole-slide image opened read-only with one backend.

    Parameters
    ----------
    path : slide file.
    backend : "openslide", "tiffslide", "pil" (PNG/JPEG only) or "auto" (OpenSlide, then tiffslide;
        PIL for plain image suffixes).
    mpp : microns per pixel for a file that records none. A recorded value wins; a given value
        that differs from it (by more than 1 %) is kept in ``mpp_unused`` so callers can say so.
    mpp_override : microns per pixel that replaces whatever the file records (a mis-recorded scan).
    fast_tiff : read tiles of Aperio / generic tiled TIFF slides opened with OpenSlide straight from
        their TIFF tiles (:mod:`gistrisk.pathology.tiff_tiles`; same pixels, several times faster),
        OpenSlide being used for what that reader declines. None: on unless the environment
        variable ``GISTRISK_FAST_TIFF`` is ``0``.
    """

    def __init__(self, path: str | Path, backend: Backend | str = "auto", mpp: float | None = None,
                 fast_tiff: bool | None = None, *, mpp_override: float | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError("slide file not found", file=str(self.path))
        self.fast_tiff = fast_tiff if fast_tiff is not None else os.environ.get("GISTRISK_FAST_TIFF", "1") != "0"
        self._fast: TiffTileReader | None = None
        self._fast_tried = False
        self.backend, self._h = _open(self.path, backend)
        with _closed_on_error(self._h):
            width, height = self._h.dimensions
            self.dimensions: tuple[int, int] = (int(width), int(height))  # (w, h)
            self.level_count: int = int(self._h.level_count)
            self.level_dimensions = [(int(w), int(h)) for w, h in self._h.level_dimensions]
            self.level_downsamples = [float(d) for d in self._h.level_downsamples]
            #: the file's own mpp (None: it records none); mpp_source: "metadata", "given" (``mpp``
            #: filled a file without it) or "override" (``mpp_override`` replaced the recorded value)
            self.mpp_recorded: float | None
            self.mpp, self.mpp_source, self.mpp_recorded = _resolve_mpp(self.path, self._h, self.backend, mpp,
                                                                        mpp_override)
        self.mpp_unused: float | None = (
            float(mpp) if mpp is not None and self.mpp_source == "metadata"
            and abs(mpp - self.mpp) > MPP_AGREEMENT * self.mpp else None)

    # -- geometry -----------------------------------------------------------------------------
    def choose_level(self, target_mpp: float, tile_size: int) -> LevelChoice:
        """The coarsest level not coarser than ``target_mpp`` (within 5 %), and the read size there."""
        if not (target_mpp > 0 and math.isfinite(target_mpp)):
            raise InputError(f"target mpp must be a positive number, got {target_mpp}", file=str(self.path))
        best = None
        for lvl, ds in enumerate(self.level_downsamples):
            if self.mpp * ds <= target_mpp * (1 + MPP_TOLERANCE):
                if best is None or ds > self.level_downsamples[best]:
                    best = lvl
        if best is None:
            raise InputError(
                f"slide resolution {self.mpp:.4g} um/px is coarser than the target {target_mpp} um/px; "
                "tiles would have to be up-sampled (use a smaller --target-mpp or a higher-resolution scan)",
                file=str(self.path))
        ds = self.level_downsamples[best]
        level_mpp = self.mpp * ds
        read_size = int(round(tile_size * target_mpp / level_mpp))
        size0 = int(round(read_size * ds))
        return LevelChoice(best, read_size, size0, ds, level_mpp * read_size / tile_size)

    # -- pixels ---------------------------------------------------------------------------------
    def read_tile(self, x0: int, y0: int, level: int, read_size: int, tile_size: int | None = None) -> np.ndarray:
        """Read a square at level-0 position (x0, y0) -> RGB uint8 array of shape (S, S, 3).

        S is ``tile_size`` when given (resized with a box/antialias filter if it differs from
        ``read_size``), else ``read_size``.
        """
        arr = None
        fast = self._fast_reader()
        if fast is not None:
            try:
                arr = fast.read_region(int(x0), int(y0), int(level), read_size, read_size)
            except Exception:  # noqa: BLE001 - a bad tile: OpenSlide below gives its pixels or the error
                arr = None
        if arr is None:
            arr = self._read_region(x0, y0, level, read_size)
        if tile_size is not None and tile_size != read_size:
            arr = np.asarray(Image.fromarray(arr).resize(
                (tile_size, tile_size), Image.Resampling[resize_filter(read_size, tile_size).upper()]))
        return arr

    @property
    def fast_reader(self) -> TiffTileReader | None:
        """The direct TIFF tile reader in use, or None (turned off, not OpenSlide, or declined)."""
        return self._fast_reader()

    def _fast_reader(self) -> TiffTileReader | None:
        # opened on first use: tiling only needs the thumbnail, and each worker process opens its own
        if not self._fast_tried:
            self._fast_tried = True
            if self.fast_tiff and self.backend == "openslide":
                self._fast = open_tiff_reader(self.path, self.level_dimensions, self.level_downsamples,
                                              self._h.properties.get("openslide.vendor"))
        return self._fast

    def _read_region(self, x0: int, y0: int, level: int, read_size: int) -> np.ndarray:
        """The backend's own read of a read_size square -> RGB uint8; errors become InputError."""
        try:
            if self.backend == "openslide":
                img = self._h.read_region((int(x0), int(y0)), int(level), (read_size, read_size))
                arr = np.asarray(_pil_rgba_to_rgb(img))
            elif self.backend == "tiffslide":
                arr = self._h.read_region((int(x0), int(y0)), int(level), (read_size, read_size), as_array=True)
                arr = _rgba_to_rgb(arr) if arr.shape[-1] == 4 else np.ascontiguousarray(arr[..., :3])
            else:
                arr = self._h.read_region((int(x0), int(y0)), int(level), (read_size, read_size))
        except InputError:
            raise
        except Exception as e:  # corrupt/truncated tile data
            raise InputError(f"cannot read tile at x={x0}, y={y0}, level={level} ({type(e).__name__}: {e}); "
                             "the slide may be truncated or corrupt", file=str(self.path)) from e
        return arr

    def thumbnail(self, downsample: float) -> np.ndarray:
        """RGB uint8 thumbnail of the whole slide at ``downsample`` x level 0, shape (h, w, 3)."""
        w, h = self.dimensions
        size = (max(1, int(round(w / downsample))), max(1, int(round(h / downsample))))
        try:
            img = (self._scanner_thumbnail(size, downsample) or self._fast_thumbnail(size)
                   or self._h.get_thumbnail(size))
        except Exception as e:
            raise InputError(f"cannot read the slide thumbnail ({type(e).__name__}: {e}); "
                             "the slide may be truncated or corrupt", file=str(self.path)) from e
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = _rgba_to_rgb(arr)
        return np.ascontiguousarray(arr[..., :3])

    def _scanner_thumbnail(self, size: tuple[int, int], downsample: float):
        """The scanner's own thumbnail (Aperio, ...) resized to ``size``, when the pyramid has no level
        near ``downsample`` (decoding the whole slide would be slow) and it is sharp enough."""
        if self.backend == "pil" or self.level_downsamples[-1] * 4 >= downsample:
            return None
        try:
            thumb = self._h.associated_images.get("thumbnail")
        except Exception:  # noqa: BLE001 - an unreadable associated image just means no shortcut
            return None
        if thumb is None:
            return None
        tw, th = thumb.size
        w, h = self.dimensions
        if tw < size[0] or th < size[1] or abs(tw / th - w / h) > 0.01 * (w / h):
            return None
        return thumb.resize(size, Image.Resampling.BOX).convert("RGB")

    def _fast_thumbnail(self, size: tuple[int, int]):
        """OpenSlide's ``get_thumbnail`` (same level, same LANCZOS reduction), with the level decoded
        by the direct TIFF reader; None when that reader is off or declines."""
        fast = self._fast_reader()
        if fast is None:  # off, or not an OpenSlide-opened TIFF (see _fast_reader)
            return None
        downsample = max(d / s for d, s in zip(self.dimensions, size))
        level = int(self._h.get_best_level_for_downsample(downsample))
        w, h = self.level_dimensions[level]
        try:
            arr = fast.read_region(0, 0, level, w, h)
        except Exception:  # noqa: BLE001 - OpenSlide's own path gives the pixels or the error
            return None
        if arr is None:
            return None
        thumb = Image.fromarray(arr)
        thumb.thumbnail(size, Image.Resampling.LANCZOS)
        return thumb

    def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        self._h.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Slide({str(self.path)!r}, backend={self.backend!r}, dims={self.dimensions}, mpp={self.mpp:.4g})"


class _PlainImage:
    """A PNG/JPEG held in memory with the small part of the OpenSlide API the Slide class uses."""

    def __init__(self, path: Path):
        with Image.open(path) as im:
            self._arr: np.ndarray | None = np.asarray(im.convert("RGB"))  # None once closed
        h, w = self._arr.shape[:2]
        self.dimensions = (w, h)
        self.level_count = 1
        self.level_dimensions = [(w, h)]
        self.level_downsamples = [1.0]
        self.properties: dict[str, str] = {}

    def read_region(self, loc: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        x, y = loc
        w, h = size
        assert self._arr is not None, "read from a closed slide"
        out = np.full((h, w, 3), 255, np.uint8)
        src = self._arr[max(y, 0):y + h, max(x, 0):x + w]
        out[max(-y, 0):max(-y, 0) + src.shape[0], max(-x, 0):max(-x, 0) + src.shape[1]] = src
        return out

    def get_thumbnail(self, size: tuple[int, int]):
        assert self._arr is not None, "read from a closed slide"
        im = Image.fromarray(self._arr)
        im.thumbnail(size, Image.Resampling.BOX)
        return im

    def close(self) -> None:
        self._arr = None


def _open(path: Path, backend: Backend | str):  # any text: manifests and CLIs pass it on, checked here
    if backend not in ("openslide", "tiffslide", "pil", "auto"):
        raise InputError(f"unknown slide backend {backend!r} (openslide, tiffslide, pil or auto)", file=str(path))
    if backend == "auto":
        order = ["pil"] if path.suffix.lower() in PLAIN_IMAGE_SUFFIXES else ["openslide", "tiffslide"]
    else:
        order = [backend]
    errors = []
    for name in order:
        try:
            return name, _open_with(name, path)
        except Exception as e:  # noqa: BLE001 - every backend failure is reported below
            errors.append(f"{name}: {type(e).__name__}: {e}")
    raise InputError("cannot open slide (" + "; ".join(errors) + "); the file is unreadable, truncated or "
                     "not a supported whole-slide format", file=str(path))


def _open_with(name: str, path: Path):
    if name == "openslide":
        import openslide  # noqa: PLC0415 - the reader chosen at run time; it may be missing

        return openslide.OpenSlide(str(path))
    if name == "tiffslide":
        import tiffslide  # noqa: PLC0415 - the reader chosen at run time (0.26 s to import); it may be missing

        # tifffile logs each bad offset of a broken file; the InputError we raise says it once
        tlog = logging.getLogger("tifffile")
        level = tlog.level
        tlog.setLevel(logging.CRITICAL)
        try:
            h = tiffslide.TiffSlide(str(path))
            with _closed_on_error(h):
                h.dimensions  # noqa: B018 - force parsing so a truncated file fails here
                _check_tiff_extent(h, path)
        finally:
            tlog.setLevel(level)
        return h
    return _PlainImage(path)


@contextlib.contextmanager
def _closed_on_error(handle) -> Iterator[None]:
    """Close ``handle`` if the block raises: a slide refused while it is being opened must not keep its file
    open until the garbage collector runs (tifffile's objects hold reference cycles)."""
    try:
        yield
    except BaseException:
        handle.close()
        raise


def _check_tiff_extent(h, path: Path) -> None:
    """Raise if tile data of any level points past the end of the file (a truncated copy).

    tifffile would otherwise return blank tiles for the missing bytes without complaint.
    """
    tf = getattr(h, "ts_tifffile", None)
    if tf is None:
        return
    size = tf.filehandle.size
    for page in tf.pages:
        offs, counts = getattr(page, "dataoffsets", ()), getattr(page, "databytecounts", ())
        if offs and counts:
            end = max(o + c for o, c in zip(offs, counts))
            if end > size:
                raise OSError(f"image data of page {page.index} ends at byte {end} but the file has {size} bytes "
                              "(truncated)")


def _resolve_mpp(path: Path, h, backend: str, given: float | None,
                 override: float | None) -> tuple[float, str, float | None]:
    """-> (mpp in use, source "metadata" | "given" | "override", the file's own mpp or None)."""
    for value, option in ((given, "--mpp"), (override, "--mpp-override")):
        if value is not None:
            check_number(value, option, low=0, low_open=True, file=str(path))
    if override is not None:
        try:
            recorded = _recorded_mpp(path, h, backend)
        except InputError:  # non-square or unreadable metadata: the override is what counts
            recorded = None
        return float(override), "override", recorded
    recorded = _recorded_mpp(path, h, backend)
    if recorded is not None:
        return recorded, "metadata", recorded
    if given is not None:
        return float(given), "given", None
    raise InputError("the slide has no microns-per-pixel metadata; pass it with --mpp "
                     "(e.g. --mpp 0.25 for 40x, 0.5 for 20x scans) or an 'mpp' manifest column", file=str(path))


def _recorded_mpp(path: Path, h, backend: str) -> float | None:
    """The mpp the file records (None if it records none); non-square pixels are an InputError."""
    props = h.properties
    vals = []
    for axis in ("x", "y"):
        v = props.get(f"{backend}.mpp-{axis}") if backend != "pil" else None
        try:
            v = float(v) if v not in (None, "") else None
        except (TypeError, ValueError):
            v = None
        vals.append(v if v is not None and v > 0 and math.isfinite(v) else None)
    if vals[0] is None:
        return None
    if vals[1] is not None and abs(vals[1] - vals[0]) / vals[0] > MPP_AGREEMENT:
        raise InputError(f"non-square pixels (mpp-x {vals[0]}, mpp-y {vals[1]}) are not supported", file=str(path))
    return vals[0]


def mpp_message(slide: str, info: dict) -> str | None:
    """A console line about how a slide's mpp was chosen (tiles ``attrs`` / worker result ``info``), or None.

    ``warning: ...`` when --mpp-override replaced the value (or filled a slide without one),
    ``note: ...`` when a given --mpp / manifest mpp was not used because the slide records its own.
    """
    if info.get("mpp_source") == "override":
        rec = info.get("mpp_recorded")
        what = f"replaces the {rec:g} um/px the slide records" if rec is not None else "used (the slide records none)"
        return f"warning: {slide}: --mpp-override {info['mpp']:g} um/px {what}"
    if info.get("mpp_unused") is not None:
        return (f"note: {slide}: the given mpp {info['mpp_unused']:g} was not used; the slide records "
                f"{info['mpp']:g} um/px (--mpp and a manifest 'mpp' only fill slides without mpp metadata; "
                "--mpp-override replaces a recorded value)")
    return None


def _pil_rgba_to_rgb(img):
    """PIL RGBA -> RGB; transparent pixels (outside the scanned area) become white, not black."""
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] < 255:
        bg = Image.new("RGB", img.size, (255, 255, 255))
        bg.paste(img, mask=img.getchannel("A"))
        return bg
    return img.convert("RGB")


def _rgba_to_rgb(arr: np.ndarray) -> np.ndarray:
    """Drop alpha; fully transparent pixels (outside the scanned area) become white."""
    rgb = np.ascontiguousarray(arr[..., :3])
    if arr.shape[-1] == 4:
        transparent = arr[..., 3] == 0
        if transparent.any():
            rgb[transparent] = 255
    return rgb
