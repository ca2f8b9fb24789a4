"""Read regions of tiled TIFF slides (Aperio SVS, generic pyramidal TIFF) straight from their tiles.

OpenSlide's ``read_region`` costs ~1.5 ms for a 224 px tile, most of it outside the JPEG decoder;
reading the TIFF tile bytes and decoding them with imagecodecs (libjpeg-turbo, as OpenSlide) costs a
fraction of that, and neighbouring 224 px tiles share their 240/256 px TIFF tiles (kept in a small
LRU cache). The output is pixel-identical to the OpenSlide path of :class:`~gistrisk.pathology.slides.Slide`
(white outside the image), so the reader only takes cases where that holds and *declines* the others
(``open_tiff_reader`` returns None, ``read_region`` returns None) for the caller to use OpenSlide:
JPEG 2000 and other codecs, strips, non-RGB or alpha pages, levels whose coordinates fall between
pixels, zero-length, garbled (Aperio) or cut JPEG tiles, and formats other than Aperio / generic TIFF.

Limit: OpenSlide also fails a read when libjpeg merely warns about damaged entropy-coded data inside
an otherwise complete JPEG tile (bit errors); imagecodecs does not report those warnings, so such a
tile decodes here (as with the tiffslide backend) instead of raising. Cut, truncated or zero-filled
tiles are caught (see :func:`jpeg_intact`) and left to OpenSlide.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# OpenSlide vendors whose levels are plain TIFF directories read tile by tile (no overlaps, offsets
# or sparse-tile rules of their own)
SUPPORTED_VENDORS = ("aperio", "generic-tiff")
JPEG = 7
# TIFF codes of codecs OpenSlide's libtiff and tifffile decode to the same bytes (lossless)
LOSSLESS = {1: "none", 5: "lzw", 8: "deflate", 32946: "deflate"}
DEFAULT_CACHE_TILES = 128  # ~25 MB of 256 px RGB tiles per open slide
ZERO_RUN = bytes(32)
# Adobe APP14 segment: version 100, no flags, colour transform 0 (components are RGB, not YCbCr)
ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"


class _Decline(Exception):
    """This read is not one the reader can guarantee to match OpenSlide on."""


@dataclass
class _Level:
    width: int
    height: int
    tile_w: int
    tile_h: int
    across: int
    downsample: float
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    decode: Callable[[bytes, int], np.ndarray]
    jpeg: bool
    tables: bytes | None = None  # the page's shared JPEGTables (abbreviated tile streams)
    rgb: bool = False  # photometric RGB: JPEG data stored without a colour transform (Aperio)


class TileUnavailable(Exception):
    """A tile whose compressed stream cannot be handed to another JPEG decoder; ``str()`` says why."""


@dataclass(frozen=True)
class JpegLevel:
    """Geometry of a JPEG-tiled level served by the reader (level px; tiles are ``tile_w`` x ``tile_h``,
    ``across`` x ``down`` of them, edge tiles padded); ``rgb``: the JPEG data is untransformed RGB."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    across: int
    down: int
    downsample: float
    rgb: bool


class TiffTileReader:
    """Regions of a tiled TIFF's pyramid levels, decoded tile by tile with an LRU tile cache.

    Build it with :func:`open_tiff_reader`. Levels the reader cannot match OpenSlide on are None
    and reads there are declined.

    Parameters
    ----------
    path : the TIFF file.
    levels : per OpenSlide level, its TIFF page geometry and decoder, or None (declined).
    cache_tiles : decoded TIFF tiles kept (least recently used dropped first).
    keep : objects to keep alive while the reader is open (the tifffile handle behind ``decode``).
    """

    def __init__(self, path: Path, levels: list[_Level | None], cache_tiles: int = DEFAULT_CACHE_TILES,
                 keep: object = None):
        self.path = Path(path)
        self.levels = levels
        self.cache_tiles = max(1, int(cache_tiles))
        self.reads = 0  # regions served
        self.declined = 0  # regions left to the caller
        self._keep = keep
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    def read_region(self, x0: int, y0: int, level: int, w: int, h: int) -> np.ndarray | None:
        """RGB uint8 (h, w, 3) at level-0 position (x0, y0), size in ``level`` px, white outside the
        image; None where the read is declined (use OpenSlide). Decoding errors propagate."""
        lv = self.levels[level] if 0 <= level < len(self.levels) else None
        if lv is None:
            self.declined += 1
            return None
        x, y = x0 / lv.downsample, y0 / lv.downsample
        # OpenSlide draws a level at x0 / downsample; a fractional position is resampled by cairo
        if not (x.is_integer() and y.is_integer()):
            self.declined += 1
            return None
        x, y = int(x), int(y)
        try:
            out = self._assemble(lv, level, x, y, int(w), int(h))
        except _Decline:
            self.declined += 1
            return None
        self.reads += 1
        return out

    def _assemble(self, lv: _Level, level: int, x: int, y: int, w: int, h: int) -> np.ndarray:
        ix0, iy0 = max(x, 0), max(y, 0)
        ix1, iy1 = min(x + w, lv.width), min(y + h, lv.height)
        out = np.empty((h, w, 3), np.uint8)
        if ix0 >= ix1 or iy0 >= iy1 or (ix0, iy0, ix1, iy1) != (x, y, x + w, y + h):
            out.fill(255)  # OpenSlide leaves it transparent, which Slide turns white
        if ix0 >= ix1 or iy0 >= iy1:
            return out
        tw, th = lv.tile_w, lv.tile_h
        for ty in range(iy0 // th, (iy1 - 1) // th + 1):
            sy0, sy1 = max(iy0, ty * th), min(iy1, (ty + 1) * th)
            for tx in range(ix0 // tw, (ix1 - 1) // tw + 1):
                sx0, sx1 = max(ix0, tx * tw), min(ix1, (tx + 1) * tw)
                tile = self._tile(lv, level, ty * lv.across + tx)
                out[sy0 - y:sy1 - y, sx0 - x:sx1 - x] = tile[sy0 - ty * th:sy1 - ty * th, sx0 - tx * tw:sx1 - tx * tw]
        return out

    def _tile(self, lv: _Level, level: int, index: int) -> np.ndarray:
        key = (level, index)
        with self._lock:
            tile = self._cache.get(key)
            if tile is not None:
                self._cache.move_to_end(key)
                return tile
        data = self._raw(lv, level, index)
        if lv.jpeg and not jpeg_intact(data):
            raise _Decline  # damaged or garbled (Aperio): OpenSlide raises an error or renders it blank
        tile = lv.decode(data, index)
        if tile.shape != (lv.tile_h, lv.tile_w, 3) or tile.dtype != np.uint8:
            raise ValueError(f"tile {index} of level {level} decodes to {tile.shape} {tile.dtype}, expected "
                             f"({lv.tile_h}, {lv.tile_w}, 3) uint8")
        with self._lock:
            self._cache[key] = tile
            while len(self._cache) > self.cache_tiles:
                self._cache.popitem(last=False)
        return tile

    def _raw(self, lv: _Level, level: int, index: int) -> bytes:
        """The stored (compressed) bytes of one TIFF tile."""
        count = lv.counts[index]
        if count == 0:  # a missing tile: OpenSlide's rules for these differ by vendor
            raise _Decline
        data = os.pread(self._fd, count, lv.offsets[index]) if hasattr(os, "pread") else self._read_at(
            lv.offsets[index], count)
        if len(data) != count:
            raise OSError(f"tile {index} of level {level}: {len(data)} of {count} bytes (truncated file)")
        return data

    # -- compressed tiles for decoders elsewhere (gistrisk.pathology.gpu_decode) ---------------------
    def jpeg_level(self, level: int) -> JpegLevel | None:
        """The geometry of ``level`` when the reader serves it and its tiles are JPEG, else None."""
        lv = self.levels[level] if 0 <= level < len(self.levels) else None
        if lv is None or not lv.jpeg:
            return None
        return JpegLevel(lv.width, lv.height, lv.tile_w, lv.tile_h, lv.across, len(lv.counts) // lv.across,
                         lv.downsample, lv.rgb)

    def jpeg_stream(self, level: int, index: int) -> bytes:
        """Tile ``index`` of JPEG level ``level`` as one complete JPEG stream any decoder reads to the
        pixels this reader gives (see :func:`complete_jpeg`); raises :class:`TileUnavailable` (why) for
        a tile to leave to the CPU path: missing, damaged or cut, an RGB tile carrying its own colour
        marker, a truncated file."""
        lv = self.levels[level] if 0 <= level < len(self.levels) else None
        if lv is None or not lv.jpeg:
            raise TileUnavailable("not a JPEG level the direct reader serves")
        try:
            data = self._raw(lv, level, index)
        except _Decline:
            raise TileUnavailable("missing tile") from None
        except OSError as e:
            raise TileUnavailable(f"unreadable tile ({e})") from None
        if not jpeg_intact(data):
            raise TileUnavailable("damaged or cut JPEG tile")
        if lv.rgb and _colour_marker(data):
            raise TileUnavailable("RGB JPEG tile with its own JFIF/Adobe colour marker")
        return complete_jpeg(data, lv.tables, lv.rgb)

    def reference_tile(self, level: int, index: int) -> np.ndarray:
        """Tile ``index`` of ``level`` decoded as the CPU path decodes it (libjpeg-turbo through
        imagecodecs, OpenSlide's colour rule): the reference a device decoder is checked against."""
        lv = self.levels[level] if 0 <= level < len(self.levels) else None
        if lv is None:
            raise TileUnavailable("level declined by the direct reader")
        try:
            return self._tile(lv, level, index)
        except _Decline:
            raise TileUnavailable("missing or damaged tile") from None

    def _read_at(self, offset: int, count: int) -> bytes:
        """Positioned read where os.pread is missing (Windows)."""
        with self._lock:
            os.lseek(self._fd, offset, os.SEEK_SET)
            return os.read(self._fd, count)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._cache.clear()
        if self._keep is not None and hasattr(self._keep, "close"):
            self._keep.close()
        self._keep = None

    def __enter__(self) -> TiffTileReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self):
        raise TypeError("TiffTileReader holds an open file; open one per process")


def open_tiff_reader(path: str | Path, level_dimensions: list[tuple[int, int]], level_downsamples: list[float],
                     vendor: str | None, cache_tiles: int = DEFAULT_CACHE_TILES) -> TiffTileReader | None:
    """A reader for the OpenSlide levels ``level_dimensions`` (w, h) / ``level_downsamples`` of
    ``path``, or None when no level qualifies (not a supported vendor or TIFF, unreadable header).

    Each level is matched to the one tiled TIFF page of its size; a level without exactly one such
    page, or one whose page is not 8-bit RGB/YCbCr in a supported codec, is declined.
    """
    if vendor not in SUPPORTED_VENDORS:
        return None
    try:
        import tifffile  # noqa: PLC0415 - an optional fast path: without it OpenSlide reads the slide

        tf = tifffile.TiffFile(str(path))
    except Exception:  # noqa: BLE001 - OpenSlide opened it; let it read what tifffile cannot parse
        return None
    try:
        pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage) and p.is_tiled]  # frames: never tiled
        levels: list[_Level | None] = []
        for (w, h), ds in zip(level_dimensions, level_downsamples):
            match = [p for p in pages if (p.imagewidth, p.imagelength) == (w, h)]
            levels.append(_level(match[0], float(ds)) if len(match) == 1 else None)
    except Exception:  # noqa: BLE001 - odd tags: leave the file to OpenSlide
        levels = []
    if not any(lv is not None for lv in levels):
        tf.close()
        return None
    try:
        return TiffTileReader(Path(path), levels, cache_tiles, keep=tf)
    except OSError:
        tf.close()
        return None


def _level(page, downsample: float) -> _Level | None:
    """The geometry and decoder of one tiled page, or None when OpenSlide's output is not assured."""
    compression = int(page.compression)
    photometric = int(page.photometric)
    ok = (page.samplesperpixel == 3 and page.bitspersample == 8 and page.planarconfig == 1
          and not page.extrasamples and page.sampleformat == 1 and page.fillorder == 1
          and page.imagedepth == 1 and page.tiledepth == 1 and page.tags.valueof(274, 1) == 1)  # orientation
    if not ok:
        return None
    across = -(-page.imagewidth // page.tilewidth)
    down = -(-page.imagelength // page.tilelength)
    if len(page.dataoffsets) != across * down or len(page.databytecounts) != across * down:
        return None
    shape = (page.tilelength, page.tilewidth, 3)
    if compression == JPEG and photometric in (2, 6):
        decode = _jpeg_decoder(page.jpegtables, photometric)
    elif compression in LOSSLESS and photometric == 2:
        decode = _page_decoder(page, shape)
    else:
        return None
    return _Level(int(page.imagewidth), int(page.imagelength), int(page.tilewidth), int(page.tilelength), across,
                  downsample, tuple(int(v) for v in page.dataoffsets), tuple(int(v) for v in page.databytecounts),
                  decode, compression == JPEG, page.jpegtables if compression == JPEG else None,
                  photometric == 2)


def jpeg_intact(data: bytes) -> bool:
    """Whether ``data`` is one complete sequential JPEG scan: SOI, header segments, SOS, entropy-coded
    bytes holding no marker but restarts (in order) and no run of 32 zero bytes, EOI as the last two
    bytes.

    libjpeg only *warns* on a cut or padded stream (and imagecodecs drops warnings) where OpenSlide
    fails the read, so such tiles are left to OpenSlide.
    """
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        return False
    header = _header_markers(data)
    if header is None:
        return False
    i = header[1]
    # a zero-filled stretch (a hole left by a failed copy) still decodes, to garbage; encoded image
    # data has no such run (a false alarm only costs the OpenSlide read)
    if i >= n - 2 or data.find(ZERO_RUN, i) != -1:
        return False
    scan = np.frombuffer(data, np.uint8, count=n - 2 - i, offset=i)
    after = scan[np.flatnonzero(scan[:-1] == 0xFF) + 1]
    restarts = after[after != 0].astype(np.int64) - 0xD0  # must run 0, 1, ..., 7, 0, ...
    return bool(scan[-1] != 0xFF and np.array_equal(restarts, np.arange(len(restarts)) % 8))


def _header_markers(data: bytes) -> tuple[list[int], int] | None:
    """The marker codes of the header segments after SOI up to and including SOS, and the offset
    where the entropy-coded data starts; None when the header is malformed or cut."""
    n, i, markers = len(data), 2, []
    while True:
        if i + 4 > n or data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0xD9) or 0xD0 <= marker <= 0xD7:
            return None
        markers.append(marker)
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:
            return markers, i


def _colour_marker(data: bytes) -> bool:
    """Whether a JPEG header carries a JFIF (APP0) or Adobe (APP14) segment, which decoders read as
    colour-space hints."""
    header = _header_markers(data)
    return header is None or any(m in (0xE0, 0xEE) for m in header[0])


def complete_jpeg(data: bytes, tables: bytes | None, rgb: bool) -> bytes:
    """One TIFF JPEG tile as a self-contained stream: the page's JPEGTables (quantisation and Huffman
    tables the tile streams omit) inserted after SOI and, for RGB data (photometric RGB: no colour
    transform, as Aperio stores it), an Adobe APP14 segment with transform 0, so a decoder that only
    sees the stream (nvJPEG, torchvision's libjpeg) does not convert it from YCbCr."""
    parts = [data[:2]]
    if rgb:
        parts.append(ADOBE_RGB)
    if tables:
        body = tables[2:] if tables[:2] == b"\xff\xd8" else tables
        parts.append(body[:-2] if body[-2:] == b"\xff\xd9" else body)
    parts.append(data[2:])
    return b"".join(parts)


def _jpeg_decoder(tables: bytes | None, photometric: int) -> Callable[[bytes, int], np.ndarray]:
    import imagecodecs  # noqa: PLC0415 - an optional fast path: without it OpenSlide reads the slide

    # OpenSlide sets the JPEG colour space from the TIFF photometric tag (Aperio writes RGB JPEGs
    # without an Adobe marker), whatever the JPEG's own markers suggest; do the same
    colorspace = "YCBCR" if photometric == 6 else "RGB"

    def decode(data: bytes, index: int) -> np.ndarray:
        return imagecodecs.jpeg8_decode(data, tables=tables, colorspace=colorspace, outcolorspace="RGB")

    return decode


def _page_decoder(page, shape: tuple[int, int, int]) -> Callable[[bytes, int], np.ndarray]:
    dec = page.decode  # handles predictors and byte order

    def decode(data: bytes, index: int) -> np.ndarray:
        arr = dec(data, index)[0]
        return np.asarray(arr).reshape(shape)

    return decode
