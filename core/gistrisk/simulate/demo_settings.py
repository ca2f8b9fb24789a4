"""What `gistrisk demo` shrinks so the whole pipeline runs on 2 CPU cores, next to the paper's values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gistrisk.simulate.config import SimulationConfig


@dataclass(frozen=True)
class DemoSettings:
    """Sizes and training settings of the demo run (paper values in ``PAPER``)."""

    patients: int = 100
    external: int = 50
    seed: int = 0
    jobs: int = 2
    wsi_size: int = 1024
    annotated_slides: int = 16
    tile_size: int = 224
    epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-4
    tumour_threshold: float = 0.5
    bootstrap: int = 200
    rsf_trees: int = 50
    rsf_folds: int = 5
    weights: Path | None = None

    def simulation_config(self) -> SimulationConfig:
        return SimulationConfig(wsi_size=self.wsi_size, min_annotated=self.annotated_slides)


#: The paper's setting for each shrunk item (NPJ Precision Oncology 2024).
PAPER: dict[str, str] = {
    "patients": "254 development (218 CT, 186 WSI, 163 all three)",
    "external": "42 external, all three modalities",
    "wsi_size": "whole slides at 20x (0.5 um/px), tens of thousands of px a side",
    "annotated_slides": "30 partially annotated slides",
    "tile_size": "224 x 224 px, non-overlapping; 300,000 tiles sampled, split 7:3",
    "epochs": "30 epochs, ImageNet-pretrained ResNet50",
    "batch_size": "64",
    "lr": "Adam, 1e-4",
    "bootstrap": "bootstrap CI (resamples not stated; the fit default is 500)",
    "rsf_trees": "random survival forest (the fit default is 100 trees)",
    "rsf_folds": "10-fold cross-validation",
}


def settings_rows(s: DemoSettings) -> list[tuple[str, str, str]]:
    """(setting, demo value, paper value) for every shrunk setting."""
    demo = {
        "patients": f"{s.patients} development (about 86 % with CT, 73 % with a slide)",
        "external": f"{s.external} external, all three modalities",
        "wsi_size": f"{s.wsi_size} x {s.wsi_size} px simulated slides at 0.5 um/px",
        "annotated_slides": f"{s.annotated_slides} partially annotated slides",
        "tile_size": f"{s.tile_size} x {s.tile_size} px, every labelled tile",
        "epochs": f"{s.epochs} epoch(s), " + ("given start weights" if s.weights else
                                             "random initialisation (no ImageNet weights offline)"),
        "batch_size": str(s.batch_size),
        "lr": f"Adam, {s.lr:g}",
        "bootstrap": f"{s.bootstrap} resamples",
        "rsf_trees": f"{s.rsf_trees} trees",
        "rsf_folds": f"{s.rsf_folds}-fold cross-validation",
    }
    return [(k, demo[k], PAPER[k]) for k in PAPER]
