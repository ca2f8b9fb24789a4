"""Batched inference over the tiles of a slide: class probabilities and embeddings (2048-d with ResNet50)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int
from gistrisk.pathology.data import SlideSource, TileDataset, fit_stain, resolve_device, to_input
from gistrisk.pathology.gpu_decode import DEFAULT_DECODE, DecodeReport, DeviceDecoder, check_decode, resolve_decode
from gistrisk.pathology.model import Classifier
from gistrisk.pathology.stain import StainConfig


@dataclass
class InferenceConfig:
    """batch_size: tiles per forward pass; num_workers: tile-decoding processes (0 = in this
    process; -1 = one per CPU core up to 8 on CUDA, 0 on CPU where the network needs the cores);
    device: cpu | cuda | cuda:N | auto; decode: where JPEG tiles are decoded, "cpu" (worker
    processes), "gpu" (batched on the inference device, see :mod:`gistrisk.pathology.gpu_decode`) or
    "auto" (gpu on CUDA); compile: run the network through ``torch.compile``."""

    batch_size: int = 64
    num_workers: int = -1
    device: str = "auto"
    decode: str = DEFAULT_DECODE
    compile: bool = False

    def __post_init__(self) -> None:
        check_int(self.batch_size, "--batch-size", 1)
        check_int(self.num_workers, "--workers", -1)
        check_decode(self.decode)
        if not isinstance(self.compile, bool):
            raise InputError(f"--compile must be true or false, got {self.compile!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def predict_tiles(model: Classifier, header: dict, tiles: pd.DataFrame,
                  source: SlideSource | dict[str, SlideSource] | None = None,
                  config: InferenceConfig | None = None,
                  stain: StainConfig | None = None, *,
                  report: DecodeReport | None = None,
                  stain_fit: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run the classifier over ``tiles``.

    ``stain`` defaults to the classifier's own setting (header ``stain``; none for classifiers
    trained before stain normalisation); each slide is fitted on its tiles in ``tiles``.
    ``report``, if given, is filled with how tiles were decoded (device or CPU path, fallbacks and
    their reasons) and whether the network was compiled. Rows of the outputs follow ``tiles``.
    ``stain_fit``, if given, is filled with what the stain normalisation fitted per slide
    (``StainNormaliser.fitted()``: Reinhard mean/std, Macenko stains and a fallback reason).

    Returns
    -------
    probs : (N, n_classes) float32 softmax probabilities.
    features : (N, D) float32 tile embeddings (D = ``model.feature_dim``; ResNet50: 2048-d average pool).
    """
    cfg = config or InferenceConfig()
    device = resolve_device(cfg.device)
    n = len(tiles)
    if n == 0:
        return np.zeros((0, len(header["classes"])), np.float32), np.zeros((0, model.feature_dim), np.float32)
    sources = {source.path: source} if isinstance(source, SlideSource) else (source or {})
    stain_cfg = stain if stain is not None else StainConfig.from_dict(header.get("stain"))
    ds = TileDataset(tiles, sources=sources, stain=fit_stain(tiles, sources, stain_cfg))
    if stain_fit is not None:
        stain_fit.update({path: norm.fitted() for path, norm in ds.stain.items()})
    rep = report if report is not None else DecodeReport()
    rep.requested, rep.device, rep.tiles = cfg.decode, str(device), n
    workers = cfg.num_workers
    if workers < 0:
        workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
    path = resolve_decode(cfg.decode, device)
    if path == "gpu" and ds.stain:
        rep.add_fallback("stain normalisation runs on the CPU decoding path", n)
        path = "cpu"
    batches = (DeviceDecoder(ds, cfg.batch_size, device, workers, rep) if path == "gpu"
               else _worker_batches(ds, cfg.batch_size, workers, device, rep))
    # torch's stubs lack the to(device=..., memory_format=...) overload that Module.to accepts
    model = model.to(device=device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else contextlib.nullcontext())
    net = _Network(model, cfg.batch_size, cfg.compile, rep)
    probs = np.empty((n, model.num_classes), np.float32)
    feats = np.empty((n, model.feature_dim), np.float32)
    pending = None
    try:
        with torch.inference_mode(), amp:
            for rows, batch in batches:
                x = to_input(batch, header["mean"], header["std"], device)
                logits, f = net(x)
                p, f = torch.softmax(logits.float(), dim=1), f.float()
                event = None
                if device.type == "cuda":  # copy back while the next batch is read and decoded
                    p, f = p.to("cpu", non_blocking=True), f.to("cpu", non_blocking=True)
                    event = torch.cuda.Event()
                    event.record()
                if pending is not None:
                    _store(pending, probs, feats)
                pending = (rows, p, f, event)
            if pending is not None:
                _store(pending, probs, feats)
    finally:
        ds.close()
    rep.finish()
    return probs, feats


def _store(pending: tuple, probs: np.ndarray, feats: np.ndarray) -> None:
    rows, p, f, event = pending
    if event is not None:
        event.synchronize()
    probs[rows] = p.numpy()
    feats[rows] = f.numpy()


def _worker_batches(ds: TileDataset, batch_size: int, workers: int, device: torch.device,
                    rep: DecodeReport) -> Iterator[tuple[slice, torch.Tensor]]:
    """The CPU decoding path: DataLoader workers decode tiles; yields (rows, uint8 batch)."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if workers else None)
    i = 0
    for batch, _ in loader:
        b = len(batch)
        rep.tiles_cpu += b
        yield slice(i, i + b), batch
        i += b


class _Network:
    """The model, or ``torch.compile`` of it (static shapes: a short last batch is padded to
    ``batch_size``). A compile failure, which surfaces on the first call, is recorded in ``report``
    and the eager model runs instead."""

    def __init__(self, model: torch.nn.Module, batch_size: int, compile_: bool, report: DecodeReport):
        self.model, self.batch_size, self.report = model, batch_size, report
        report.compile_requested = compile_
        self.compiled = None
        self.checked = False
        if compile_:
            try:
                self.compiled = torch.compile(model, dynamic=False)
            except Exception as e:  # noqa: BLE001 - e.g. a Python version dynamo does not support
                report.compile_error = f"{type(e).__name__}: {e}"[:300]

    def __call__(self, x: torch.Tensor):
        if self.compiled is None:
            return self.model(x)
        b = len(x)
        if b < self.batch_size:
            pad = x.new_zeros((self.batch_size - b, *x.shape[1:]))
            x = torch.cat([x, pad]).contiguous(memory_format=torch.channels_last)
        if self.checked:
            logits, f = self.compiled(x)
        else:
            try:
                logits, f = self.compiled(x)
            except Exception as e:  # noqa: BLE001 - dynamo/inductor failures vary; eager is the fallback
                self.report.compile_error = f"{type(e).__name__}: {e}"[:300]
                self.compiled = None
                return self.model(x[:b])
            self.checked = self.report.compile_used = True
        return logits[:b], f[:b]
