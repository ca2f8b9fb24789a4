"""Which tiles of a slide are tumour tiles: the one rule for the paper's slide mean and for attention pooling.
Torch-free, so that code reading stored embeddings (``gistrisk.pathology.abmil``) does not load the network."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gistrisk.pathology.checks import check_number
from gistrisk.pathology.classes import TUMOUR


@dataclass
class FeatureConfig:
    """tumour_threshold: minimum tumour probability of a tile whose predicted class is tumour;
    tumour_class: the class whose tiles are pooled."""

    tumour_threshold: float = 0.5
    tumour_class: str = TUMOUR

    def __post_init__(self) -> None:
        check_number(self.tumour_threshold, "--tumour-threshold", low=0, high=1)

    def to_dict(self) -> dict:
        return asdict(self)


def tumour_mask(probs: np.ndarray, classes: list[str], config: FeatureConfig | None = None) -> np.ndarray:
    """probs (N, C) -> (N,) bool: the tile's predicted class is the tumour class, with at least the threshold."""
    cfg = config or FeatureConfig()
    t = list(classes).index(cfg.tumour_class)
    if not len(probs):
        return np.zeros(0, bool)
    return (probs.argmax(axis=1) == t) & (probs[:, t] >= cfg.tumour_threshold)
