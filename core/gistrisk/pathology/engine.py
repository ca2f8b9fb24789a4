"""Batched inference over the tiles of a slide: class probabilities and 2048-d features."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gistrisk.pathology.checks import check_int
from gistrisk.pathology.data import SlideSource, TileDataset, fit_stain, resolve_device, to_input
from gistrisk.pathology.model import FEATURE_DIM, TissueClassifier
from gistrisk.pathology.stain import StainConfig


@dataclass
class InferenceConfig:
    """batch_size: tiles per forward pass; num_workers: tile-decoding processes (0 = in this
    process; -1 = one per CPU core up to 8 on CUDA, 0 on CPU where the network needs the cores);
    device: cpu | cuda | cuda:N | auto."""

    batch_size: int = 64
    num_workers: int = -1
    device: str = "auto"

    def __post_init__(self) -> None:
        check_int(self.batch_size, "--batch-size", 1)
        check_int(self.num_workers, "--workers", -1)

    def to_dict(self) -> dict:
        return asdict(self)


def predict_tiles(model: TissueClassifier, header: dict, tiles: pd.DataFrame,
                  source: SlideSource | dict[str, SlideSource] | None = None,
                  config: InferenceConfig | None = None,
                  stain: StainConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run the classifier over ``tiles``.

    ``stain`` defaults to the classifier's own setting (header ``stain``; none for classifiers
    trained before stain normalisation); each slide is fitted on its tiles in ``tiles``.

    Returns
    -------
    probs : (N, n_classes) float32 softmax probabilities.
    features : (N, 2048) float32 global-average-pool features.
    """
    cfg = config or InferenceConfig()
    device = resolve_device(cfg.device)
    n = len(tiles)
    if n == 0:
        return np.zeros((0, len(header["classes"])), np.float32), np.zeros((0, FEATURE_DIM), np.float32)
    sources = {source.path: source} if isinstance(source, SlideSource) else (source or {})
    stain_cfg = stain if stain is not None else StainConfig.from_dict(header.get("stain"))
    ds = TileDataset(tiles, sources=sources, stain=fit_stain(tiles, sources, stain_cfg))
    workers = cfg.num_workers
    if workers < 0:
        import os

        workers = min(8, os.cpu_count() or 1) if device.type == "cuda" else 0
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False,
                        prefetch_factor=4 if workers else None)
    model = model.to(device=device, memory_format=torch.channels_last).eval()
    amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
           else contextlib.nullcontext())
    probs = np.empty((n, model.num_classes), np.float32)
    feats = np.empty((n, FEATURE_DIM), np.float32)
    i = 0
    try:
        with torch.inference_mode(), amp:
            for batch, _ in loader:
                x = to_input(batch, header["mean"], header["std"], device)
                logits, f = model(x)
                b = len(batch)
                probs[i:i + b] = torch.softmax(logits.float(), dim=1).cpu().numpy()
                feats[i:i + b] = f.float().cpu().numpy()
                i += b
    finally:
        ds.close()
    return probs, feats
