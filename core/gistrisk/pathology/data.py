"""A torch Dataset of tiles read from their slides; each worker process opens its own slide handles."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from gistrisk.errors import InputError
from gistrisk.pathology.slides import Slide
from gistrisk.pathology.stain import StainConfig, StainNormaliser, fit_tile_indices


@dataclass(frozen=True)
class SlideSource:
    """How to open one slide (picklable for workers): path, backend, and the mpp to use if the file
    records none (tiles are read by level coordinates, so only opening needs it)."""

    path: str
    backend: str = "auto"
    mpp: float | None = None


class TileDataset(Dataset):
    """Tiles of one or more slides -> (uint8 tensor (H, W, 3), label index or -1).

    Parameters
    ----------
    tiles : table with ``slide``, ``x``, ``y``, ``level``, ``read_size``, ``tile_size`` (and
        ``label`` when ``classes`` is given).
    sources : slide path -> SlideSource (backend, mpp); default: auto backend, mpp from the file.
    classes : label names; their index becomes the target (unknown/missing label -> -1).
    augment_seed : if set, each item gets a random dihedral transform (rotation by k*90 degrees,
        optional flip) drawn from (augment_seed, epoch, index), so results do not depend on the
        number of workers. Set ``epoch`` before each pass.
    stain : slide path -> fitted StainNormaliser (see :func:`fit_stain`), applied to each tile
        before augmentation; slides not in it are left as read.
    """

    def __init__(self, tiles: pd.DataFrame, sources: dict[str, SlideSource] | None = None,
                 classes: tuple[str, ...] | None = None, augment_seed: int | None = None,
                 stain: dict[str, StainNormaliser] | None = None):
        self.slide = tiles["slide"].astype(str).to_numpy()
        self.xyl = tiles[["x", "y", "level", "read_size", "tile_size"]].to_numpy(np.int64)
        if classes is not None:
            idx = {c: i for i, c in enumerate(classes)}
            self.target = np.array([idx.get(v, -1) if isinstance(v, str) else -1
                                    for v in tiles["label"].astype(object)], np.int64)
        else:
            self.target = np.full(len(tiles), -1, np.int64)
        self.sources = dict(sources or {})
        self.augment_seed = augment_seed
        self.stain = dict(stain or {})
        self.epoch = 0
        self._handles: dict[str, Slide] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.slide)

    def handle(self, path: str) -> Slide:
        """The open slide ``path`` of this process (opened on first use, one set per process)."""
        if self._pid != os.getpid():  # a fresh worker process: never share the parent's handles
            self._handles, self._pid = {}, os.getpid()
        h = self._handles.get(path)
        if h is None:
            src = self.sources.get(path, SlideSource(path))
            h = self._handles[path] = Slide(src.path, backend=src.backend, mpp=src.mpp)
        return h

    def read(self, i: int) -> np.ndarray:
        """Tile i as an RGB uint8 array (tile_size, tile_size, 3), without augmentation."""
        x, y, level, read_size, tile_size = (int(v) for v in self.xyl[i])
        return self.handle(self.slide[i]).read_tile(x, y, level, read_size, tile_size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        arr = self.read(i)
        norm = self.stain.get(self.slide[i])
        if norm is not None:
            arr = norm.transform(arr)
        if self.augment_seed is not None:
            rng = np.random.default_rng((self.augment_seed, self.epoch, i))
            arr = np.rot90(arr, k=int(rng.integers(4)))
            if rng.random() < 0.5:
                arr = arr[:, ::-1]
            arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # arrays viewing PIL images are read-only
            arr = arr.copy()
        return torch.from_numpy(arr), int(self.target[i])

    def close(self) -> None:
        for h in self._handles.values():
            h.close()
        self._handles = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"] = {}, None
        return state


def fit_stain(tiles: pd.DataFrame, sources: dict[str, SlideSource] | None,
              config: StainConfig) -> dict[str, StainNormaliser]:
    """One fitted StainNormaliser per slide of ``tiles`` ({} for method 'none').

    Each slide is fitted on up to ``config.n_fit_tiles`` of its tiles spread evenly over its grid
    (rows sorted by y, x), so the result does not depend on row order or on a train/val split.
    """
    if config.method == "none" or len(tiles) == 0:
        return {}
    ds = TileDataset(tiles, sources)
    out: dict[str, StainNormaliser] = {}
    try:
        for path in sorted(set(ds.slide)):
            rows = np.flatnonzero(ds.slide == path)
            rows = rows[np.lexsort((ds.xyl[rows, 0], ds.xyl[rows, 1]))]
            pick = rows[fit_tile_indices(len(rows), config.n_fit_tiles)]
            out[path] = StainNormaliser(config).fit(ds.read(int(i)) for i in pick)
    finally:
        ds.close()
    return out


def to_input(batch: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, H, W) on ``device`` in channels_last layout."""
    x = batch.to(device, non_blocking=True).permute(0, 3, 1, 2).to(dtype)  # a NHWC view = channels_last
    m = torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    s = torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available) -> torch.device; clear error if absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} requested but no CUDA device is available (use --device cpu)")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise InputError(f"unknown --device {device!r} (cpu, cuda, cuda:N or auto)") from e
