"""Batched JPEG decoding of slide tiles on the inference device (nvJPEG on CUDA).

The CPU path decodes every tile in DataLoader worker processes (libjpeg-turbo); on a GPU that caps
end-to-end speed at what the CPU cores decode. Here workers only *read* the compressed TIFF tiles
(:meth:`~gistrisk.pathology.tiff_tiles.TiffTileReader.jpeg_stream`: JPEGTables joined, an Adobe
marker for untransformed RGB), and the main process decodes each batch's distinct TIFF tiles with
one ``torchvision.io.decode_jpeg(list, device=...)`` call, then assembles, crops and resizes the
224 px tiles on the device with the CPU path's geometry (white outside the image, PIL's box /
bilinear filters in integer arithmetic). With ``device="cpu"`` the same code runs on libjpeg-turbo,
which is how it is tested without a GPU.

Before a (slide, level) is decoded on the device, a few of its tiles are decoded both ways and
compared (:data:`PROBE_MEAN_TOL`): a decoder that applies a colour transform the CPU path does not
(Aperio's RGB JPEGs) or upsamples chroma very differently is caught there. Whatever the device path
cannot take (non-JPEG levels, other backends, missing, damaged or marked tiles, level positions
between pixels, a failed device decode, stain normalisation) goes through the CPU path and is
counted per reason in a :class:`DecodeReport`.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from gistrisk.errors import InputError
from gistrisk.pathology.data import TileDataset
from gistrisk.pathology.slides import resize_filter
from gistrisk.pathology.tiff_tiles import JpegLevel, TileUnavailable

# torchvision is imported only when tiles are decoded here: it takes about 1.4 s (its ops import
# torch._dynamo), which every `gistrisk pathology` command paid at start (tests/package/test_cli_startup.py).

DECODE_MODES = ("cpu", "gpu", "auto")
#: today's path stays the default until the device path has been measured on a GPU
DEFAULT_DECODE = "cpu"
PROBE_TILES = 8  # TIFF tiles per (slide, level) decoded both ways before trusting the device decoder
#: mean |device - CPU decoder| over the probe tiles, grey levels, above which a level goes to the CPU
#: path: decoders differ by ~0-1 level on average; a wrong colour transform by ~50
PROBE_MEAN_TOL = 2.0
PRECISION_BITS = 22  # PIL's fixed-point resampling coefficients (8-bit images)
# decode modes tried in the probe: RGB output; raw components (no colour conversion at all) for
# untransformed RGB data, in case a decoder ignores the Adobe marker
_VARIANTS = {False: ("RGB",), True: ("RGB", "UNCHANGED")}


@dataclass
class DecodeReport:
    """How a call of :func:`~gistrisk.pathology.engine.predict_tiles` decoded its tiles (for outputs,
    provenance and the console).

    requested: the ``decode`` setting; used: "gpu", "cpu" or "mixed"; tiles_device / tiles_cpu: tiles
    decoded on the device / through the CPU path; fallback: reason -> tiles that went the CPU path
    although the device path was wanted; probes: per (slide, level) the device-vs-CPU check;
    compile_*: whether ``torch.compile`` was asked for, used, or failed (then eager).
    """

    requested: str = DEFAULT_DECODE
    used: str = "cpu"
    device: str = "cpu"
    tiles: int = 0
    tiles_device: int = 0
    tiles_cpu: int = 0
    fallback: dict[str, int] = field(default_factory=dict)
    probes: list[dict] = field(default_factory=list)
    compile_requested: bool = False
    compile_used: bool = False
    compile_error: str | None = None
    torchvision: str = field(default_factory=lambda: _torchvision().__version__)

    def add_fallback(self, reason: str, n: int) -> None:
        if n:
            self.fallback[reason] = self.fallback.get(reason, 0) + int(n)

    def finish(self) -> None:
        """Set ``used`` from the counts."""
        self.used = ("cpu" if self.tiles_device == 0 else "gpu" if self.tiles_cpu == 0 else "mixed")

    def to_dict(self) -> dict:
        return asdict(self)

    def messages(self) -> list[str]:
        """Console lines for what did not go as requested (empty when it did)."""
        out = []
        if self.fallback:
            why = "; ".join(f"{r}: {n}" for r, n in sorted(self.fallback.items(), key=lambda kv: -kv[1]))
            out.append(f"warning: {sum(self.fallback.values())} of {self.tiles} tiles decoded on the CPU path "
                       f"instead of the device ({why})")
        for p in self.probes:
            if not p["accepted"] and p.get("mean_abs") is not None:
                out.append(f"warning: {p['slide']} level {p['level']}: the device JPEG decoder differs from the CPU "
                           f"path by {p['mean_abs']:.2f} grey levels on average (max {p['max_abs']}); decoded on "
                           "the CPU")
        if self.compile_error:
            out.append(f"warning: torch.compile failed ({self.compile_error}); ran the network eagerly")
        return out


def check_decode(decode: str) -> str:
    """``decode`` if it is one of :data:`DECODE_MODES`, else an InputError naming --decode."""
    if decode not in DECODE_MODES:
        raise InputError(f"--decode must be one of {', '.join(DECODE_MODES)}, got {decode!r}")
    return decode


def resolve_decode(decode: str, device: torch.device) -> str:
    """The path a ``decode`` setting asks for on ``device``: "gpu" (batched decoding on the inference
    device) or "cpu" (worker processes); "auto" is "gpu" on CUDA."""
    check_decode(decode)
    if decode == "auto":
        return "gpu" if device.type == "cuda" else "cpu"
    return decode


# -- resizing as PIL does it ------------------------------------------------------------------------------------
def _filter_weights(name: str, x: np.ndarray) -> np.ndarray:
    if name == "box":
        return ((x > -0.5) & (x <= 0.5)).astype(np.float64)
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


def resize_taps(n_in: int, n_out: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Input index and integer weight (sum 2**22) of each tap of each output pixel, as PIL's 8-bit
    ``resize`` computes them for filter ``name`` ("box" or "bilinear"): (n_out, k) int64 and int32."""
    support0 = 0.5 if name == "box" else 1.0
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = support0 * fscale
    k = int(math.ceil(support)) * 2 + 1
    idx = np.zeros((n_out, k), np.int64)
    weight = np.zeros((n_out, k), np.int32)
    for o in range(n_out):
        centre = (o + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        xs = np.arange(lo, hi)
        w = _filter_weights(name, (xs - centre + 0.5) / fscale)
        if w.sum() != 0:
            w = w / w.sum()
        idx[o, :len(xs)] = xs
        weight[o, :len(xs)] = np.floor(0.5 + w * (1 << PRECISION_BITS)).astype(np.int32)
    return idx, weight


def _resize_pass(x: torch.Tensor, dim: int, idx: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[dim] = -1
    acc = x.index_select(dim, idx[:, 0]).to(torch.int32) * weight[:, 0].view(shape)
    for t in range(1, idx.shape[1]):
        acc += x.index_select(dim, idx[:, t]).to(torch.int32) * weight[:, t].view(shape)
    return ((acc + (1 << (PRECISION_BITS - 1))) >> PRECISION_BITS).clamp_(0, 255).to(torch.uint8)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """Square uint8 tiles (B, S, S, 3) -> (B, size, size, 3) with the CPU path's filter
    (:func:`~gistrisk.pathology.slides.resize_filter`), pixel for pixel as PIL: horizontal then
    vertical pass, each rounded to 8 bits, in int32 on ``x``'s device."""
    n_in = x.shape[1]
    if n_in == size:
        return x
    idx, weight = resize_taps(n_in, size, resize_filter(n_in, size))
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(weight).to(x.device)
    return _resize_pass(_resize_pass(x, 2, idx_t, w_t), 1, idx_t, w_t)


# -- worker side: compressed tiles ------------------------------------------------------------------------------
@dataclass
class CompressedBatch:
    """One batch as a worker hands it over: JPEG streams of the distinct TIFF tiles the device tiles
    cover, where each device tile takes its pixels from, and the tiles the CPU path decoded.

    rows: (b,) positions in the tiles table; data / lengths: the streams end to end (one tensor, so a
    batch crosses processes as a few shared buffers); device_pos / cpu_pos: positions within the batch;
    xy: (n_dev, 2) level-px top-left of each device tile; origin: (n_dev, 2) TIFF tile column and row
    of ``lut[:, 0, 0]``; lut: (n_dev, ky, kx) stream index per covered TIFF tile (-1: outside the
    level); cpu_pixels: (n_cpu, tile, tile, 3) uint8; reasons: why tiles went the CPU path.
    """

    group: int
    rows: np.ndarray
    data: torch.Tensor
    lengths: np.ndarray
    stream_index: np.ndarray
    device_pos: np.ndarray
    xy: np.ndarray
    origin: np.ndarray
    lut: np.ndarray
    cpu_pos: np.ndarray
    cpu_pixels: torch.Tensor
    reasons: dict[str, int]


@dataclass(frozen=True)
class TileGroup:
    """Tiles of one slide read at one level and size (one geometry per device batch)."""

    slide: str
    level: int
    read_size: int
    tile_size: int


def _covered(x: int, y: int, size: int, geo: JpegLevel) -> tuple[int, int, int, int]:
    """TIFF tile columns [c0, c1] and rows [r0, r1] a size x size square at level px (x, y) touches
    inside the level (c1 < c0 when it lies outside)."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + size, geo.width) - 1, min(y + size, geo.height) - 1
    return x0 // geo.tile_w, x1 // geo.tile_w, y0 // geo.tile_h, y1 // geo.tile_h


class CompressedBatches(Dataset):
    """Batches (item k = batch k) of compressed tiles for the device path; runs in DataLoader workers.

    Parameters
    ----------
    tiles : the CPU-path dataset of the same tiles (its slide handles, and its reads for fallbacks).
    groups : the geometry of each group; batches: (group id, row positions) per batch.
    on_device : group id -> whether its tiles are decoded on the device (the probe accepted it).
    """

    def __init__(self, tiles: TileDataset, groups: list[TileGroup], batches: list[tuple[int, np.ndarray]],
                 on_device: dict[int, bool]):
        self.tiles = tiles
        self.groups = groups
        self.batches = batches
        self.on_device = on_device

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> CompressedBatch:
        g, rows = self.batches[k]
        grp = self.groups[g]
        reasons: Counter[str] = Counter()
        dev, cpu = [], []
        streams: list[bytes] = []
        stream_index: list[int] = []
        where: dict[int, int] = {}
        cover: list[tuple[int, int, int, int, int, int]] = []
        reader = self.tiles.handle(grp.slide).fast_reader if self.on_device.get(g, False) else None
        geo = reader.jpeg_level(grp.level) if reader is not None else None
        for p, r in enumerate(rows):
            if geo is None or reader is None:
                cpu.append(p)
                continue
            x0, y0 = (int(v) for v in self.tiles.xyl[r, :2])
            x, y = x0 / geo.downsample, y0 / geo.downsample
            if not (x.is_integer() and y.is_integer()):
                reasons["level position between pixels"] += 1
                cpu.append(p)
                continue
            x, y = int(x), int(y)
            c0, c1, r0, r1 = _covered(x, y, grp.read_size, geo)
            try:
                for ty in range(r0, r1 + 1):
                    for tx in range(c0, c1 + 1):
                        index = ty * geo.across + tx
                        if index not in where:
                            streams.append(reader.jpeg_stream(grp.level, index))
                            stream_index.append(index)
                            where[index] = len(streams) - 1
            except TileUnavailable as e:
                reasons[str(e)] += 1
                cpu.append(p)
                continue
            dev.append(p)
            cover.append((x, y, c0, c1, r0, r1))
        n_dev = len(dev)
        ky = max((r1 - r0 + 1 for *_, r0, r1 in cover), default=1)
        kx = max((c1 - c0 + 1 for _, _, c0, c1, _, _ in cover), default=1)
        lut = np.full((n_dev, max(ky, 1), max(kx, 1)), -1, np.int64)
        xy = np.zeros((n_dev, 2), np.int64)
        origin = np.zeros((n_dev, 2), np.int64)
        across = geo.across if geo is not None else 0
        for i, (x, y, c0, c1, r0, r1) in enumerate(cover):
            xy[i] = (x, y)
            origin[i] = (c0, r0)
            for ty in range(r0, r1 + 1):
                for tx in range(c0, c1 + 1):
                    lut[i, ty - r0, tx - c0] = where[ty * across + tx]
        ts = grp.tile_size
        pixels = (torch.from_numpy(np.stack([self.tiles.read(int(rows[p])) for p in cpu])) if cpu
                  else torch.empty((0, ts, ts, 3), dtype=torch.uint8))
        data = torch.from_numpy(np.frombuffer(bytearray(b"".join(streams)), np.uint8))
        return CompressedBatch(g, rows, data, np.asarray([len(s) for s in streams], np.int64),
                               np.asarray(stream_index, np.int64), np.asarray(dev, np.int64), xy, origin, lut,
                               np.asarray(cpu, np.int64), pixels, dict(reasons))


def _as_is(batch):
    return batch


# -- main process: probe, decode, assemble --------------------------------------------------------------------
def _decode(streams: list[torch.Tensor], mode: str, device: torch.device) -> list[torch.Tensor]:
    with warnings.catch_warnings():  # torchvision >= 0.29 marks its image decoders deprecated (TorchCodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        io = _torchvision().io
        return io.decode_jpeg(streams, mode=io.ImageReadMode[mode], device=device)


def _decode_each(streams: list[torch.Tensor], mode: str, device: torch.device,
                 shape: tuple[int, int, int]) -> list[torch.Tensor | None]:
    """Decoded (H, W, 3) per stream, one batched call; None for streams the decoder fails on or
    decodes to another shape (found by decoding one by one after a failed batch)."""
    out: list[torch.Tensor | None]
    try:
        out = list(_decode(streams, mode, device))
    except RuntimeError:
        out = []
        for s in streams:
            try:
                out.append(_decode([s], mode, device)[0])
            except RuntimeError:
                out.append(None)
    return [o.permute(1, 2, 0) if o is not None and tuple(o.shape) == shape else None for o in out]


def probe_group(tiles: TileDataset, grp: TileGroup, rows: np.ndarray,
                device: torch.device) -> tuple[dict, JpegLevel | None]:
    """Decode up to :data:`PROBE_TILES` TIFF tiles the group's first tiles cover on ``device`` and
    with the CPU path's decoder; the first decode mode within :data:`PROBE_MEAN_TOL` is accepted.

    Returns {slide, level, accepted, mode, mean_abs, max_abs, tiles, reason} and the level's geometry
    (None where the level is not JPEG or not served by the direct reader).
    """
    out = {"slide": grp.slide, "level": grp.level, "accepted": False, "mode": None, "mean_abs": None,
           "max_abs": None, "tiles": 0, "reason": None}
    h = tiles.handle(grp.slide)
    reader = h.fast_reader
    if reader is None:
        out["reason"] = f"not a tiled TIFF the direct reader takes (backend {h.backend})"
        return out, None
    geo = reader.jpeg_level(grp.level)
    if geo is None:
        out["reason"] = "level not JPEG-compressed or declined by the direct reader"
        return out, None
    picked: list[int] = []
    for r in rows:
        x0, y0 = (int(v) for v in tiles.xyl[r, :2])
        x, y = x0 / geo.downsample, y0 / geo.downsample
        if not (x.is_integer() and y.is_integer()):
            continue
        c0, c1, r0, r1 = _covered(int(x), int(y), grp.read_size, geo)
        picked += [ty * geo.across + tx for ty in range(r0, r1 + 1) for tx in range(c0, c1 + 1)
                   if ty * geo.across + tx not in picked]
        if len(picked) >= PROBE_TILES:
            break
    streams, refs = [], []
    for index in picked[:PROBE_TILES]:
        try:
            s = reader.jpeg_stream(grp.level, index)
            refs.append(reader.reference_tile(grp.level, index))
        except TileUnavailable:
            continue
        streams.append(torch.frombuffer(bytearray(s), dtype=torch.uint8))
    if not streams:
        out["reason"] = "no intact JPEG tile to check the device decoder on"
        return out, geo
    ref = np.stack(refs).astype(np.int16)
    out["tiles"] = len(streams)
    for mode in _VARIANTS[geo.rgb]:
        dec = [d for d in _decode_each(streams, mode, device, (3, geo.tile_h, geo.tile_w)) if d is not None]
        if len(dec) < len(streams):
            continue
        diff = np.abs(torch.stack(dec).cpu().numpy().astype(np.int16) - ref)
        out.update(mode=mode, mean_abs=float(diff.mean()), max_abs=int(diff.max()))
        if diff.mean() <= PROBE_MEAN_TOL:
            out["accepted"] = True
            return out, geo
    out["reason"] = ("device decoder disagrees with the CPU path" if out["mean_abs"] is not None
                     else "device decoder fails on the level's tiles")
    return out, geo


def assemble(decoded: torch.Tensor, batch: CompressedBatch, geo: JpegLevel, read_size: int) -> torch.Tensor:
    """Crop the device tiles of ``batch`` out of its decoded TIFF tiles ``decoded`` (U, th, tw, 3):
    (n_dev, read_size, read_size, 3) uint8, white outside the level, on ``decoded``'s device."""
    dev = decoded.device
    th, tw = geo.tile_h, geo.tile_w
    white = torch.full((1, th, tw, 3), 255, dtype=torch.uint8, device=dev)
    pool = torch.cat([decoded, white]).reshape(-1, 3)
    blank = decoded.shape[0]
    xy = torch.from_numpy(batch.xy).to(dev)
    origin = torch.from_numpy(batch.origin).to(dev)
    lut = torch.from_numpy(batch.lut).to(dev)
    n, ky, kx = lut.shape
    ar = torch.arange(read_size, device=dev)
    gx = xy[:, :1] + ar  # (n, S) level px
    gy = xy[:, 1:] + ar
    cx = (gx.div(tw, rounding_mode="floor") - origin[:, :1]).clamp(0, kx - 1)
    cy = (gy.div(th, rounding_mode="floor") - origin[:, 1:]).clamp(0, ky - 1)
    t = lut[torch.arange(n, device=dev)[:, None, None], cy[:, :, None], cx[:, None, :]]
    inside = (((gy >= 0) & (gy < geo.height))[:, :, None] & ((gx >= 0) & (gx < geo.width))[:, None, :] & (t >= 0))
    t = torch.where(inside, t, blank)
    flat = (t * th + gy.remainder(th)[:, :, None]) * tw + gx.remainder(tw)[:, None, :]
    return pool[flat]


class DeviceDecoder:
    """Iterates over the tiles of a :class:`TileDataset` in device batches: ``(rows, pixels)`` with
    ``pixels`` (b, tile, tile, 3) uint8 on ``device``; fills ``report``.

    Parameters
    ----------
    tiles : the tiles (without stain normalisation: the device path has none).
    batch_size : tiles per batch; a batch never mixes slides or levels.
    device : where JPEG tiles are decoded and assembled.
    num_workers : reader processes (0: in this process).
    """

    def __init__(self, tiles: TileDataset, batch_size: int, device: torch.device, num_workers: int,
                 report: DecodeReport):
        self.tiles = tiles
        self.device = device
        self.report = report
        self.groups: list[TileGroup] = []
        self.batches: list[tuple[int, np.ndarray]] = []
        ids: dict[TileGroup, int] = {}
        members: dict[int, list[int]] = {}
        for r in range(len(tiles)):
            _, _, level, read_size, tile_size = (int(v) for v in tiles.xyl[r])
            grp = TileGroup(str(tiles.slide[r]), level, read_size, tile_size)
            g = ids.setdefault(grp, len(ids))
            if g == len(self.groups):
                self.groups.append(grp)
            members.setdefault(g, []).append(r)
        self.probes: dict[int, dict] = {}
        self.geos: dict[int, JpegLevel | None] = {}
        for g, rows in members.items():
            idx = np.asarray(rows, np.int64)
            self.probes[g], self.geos[g] = probe_group(tiles, self.groups[g], idx, device)
            report.probes.append(self.probes[g])
            self.batches += [(g, idx[i:i + batch_size]) for i in range(0, len(idx), batch_size)]
        self.num_workers = num_workers

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        on_device = {g: p["accepted"] for g, p in self.probes.items()}
        ds = CompressedBatches(self.tiles, self.groups, self.batches, on_device)
        loader = DataLoader(ds, batch_size=None, shuffle=False, num_workers=self.num_workers, collate_fn=_as_is,
                            prefetch_factor=4 if self.num_workers else None)
        for batch in loader:
            yield batch.rows, self._pixels(batch)

    def _pixels(self, batch: CompressedBatch) -> torch.Tensor:
        grp = self.groups[batch.group]
        probe = self.probes[batch.group]
        rep = self.report
        ts, n = grp.tile_size, len(batch.rows)
        out = torch.empty((n, ts, ts, 3), dtype=torch.uint8, device=self.device)
        cpu_pos = list(batch.cpu_pos)
        if not probe["accepted"]:
            rep.add_fallback(probe["reason"], len(batch.cpu_pos))
        for reason, k in batch.reasons.items():
            rep.add_fallback(reason, k)
        dev_pos = batch.device_pos
        geo = self.geos[batch.group]
        if len(dev_pos) and geo is not None:
            streams = list(torch.split(batch.data, batch.lengths.tolist()))
            dec = _decode_each(streams, probe["mode"], self.device, (3, geo.tile_h, geo.tile_w))
            failed = [i for i, d in enumerate(dec) if d is None]
            keep: np.ndarray = np.ones(len(dev_pos), bool)
            if failed:  # tiles covering a stream the device could not decode: CPU path
                keep = ~np.asarray(np.isin(batch.lut, failed).any(axis=(1, 2)), bool)
                rep.add_fallback("device decoder failed on the tile", int((~keep).sum()))
                cpu_pos += [int(p) for p in dev_pos[~keep]]
            blank = torch.zeros((geo.tile_h, geo.tile_w, 3), dtype=torch.uint8, device=self.device)
            if keep.any():
                sub = _subset(batch, keep)
                tiles = assemble(torch.stack([blank if d is None else d for d in dec]), sub, geo, grp.read_size)
                out[torch.from_numpy(dev_pos[keep]).to(self.device)] = resize_batch(tiles, ts)
                rep.tiles_device += int(keep.sum())
        if cpu_pos:
            extra = cpu_pos[len(batch.cpu_pos):]
            pix = batch.cpu_pixels
            if extra:
                pix = torch.cat([pix, torch.from_numpy(np.stack([self.tiles.read(int(batch.rows[p])) for p in extra]))])
            out[torch.as_tensor(cpu_pos, device=self.device)] = pix.to(self.device)
            rep.tiles_cpu += len(cpu_pos)
        return out


def _subset(batch: CompressedBatch, keep: np.ndarray) -> CompressedBatch:
    return CompressedBatch(batch.group, batch.rows, batch.data, batch.lengths, batch.stream_index, batch.device_pos[keep],
                           batch.xy[keep], batch.origin[keep], batch.lut[keep], batch.cpu_pos, batch.cpu_pixels,
                           batch.reasons)


def decode_tiles(tiles: TileDataset, device: str | torch.device = "cpu", batch_size: int = 64,
                 num_workers: int = 0, report: DecodeReport | None = None) -> np.ndarray:
    """Every tile of ``tiles`` through the device path: (N, tile, tile, 3) uint8 in table order (for
    checks against the CPU path and for benchmarks)."""
    device = torch.device(device)
    rep = report if report is not None else DecodeReport(requested="gpu", device=str(device))
    out: np.ndarray | None = None
    for rows, pix in DeviceDecoder(tiles, batch_size, device, num_workers, rep):
        arr = pix.cpu().numpy()
        if out is None:
            out = np.empty((len(tiles), *arr.shape[1:]), np.uint8)
        out[rows] = arr
    rep.tiles = len(tiles)
    rep.finish()
    return out if out is not None else np.zeros((0, 0, 0, 3), np.uint8)


def _torchvision():
    """torchvision, with its io submodule (see the module top for why not at import)."""
    import torchvision.io  # noqa: PLC0415 - see the module top

    return torchvision
