"""The tissue classifier's training recipe (:class:`TrainConfig`), apart from the training itself
(:mod:`gistrisk.pathology.train`) and free of torch: `gistrisk pathology train` refuses an impossible
setting before torch loads (2-5 s)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gistrisk.pathology.checks import check_int, check_number
from gistrisk.pathology.classes import CLASSES
from gistrisk.pathology.stain import StainConfig


@dataclass
class TrainConfig:
    """Training recipe; defaults follow the paper (Adam, lr 1e-4, batch 64, 30 epochs, random
    rotations/flips, 7:3 split). Rotations are by multiples of 90 degrees (with flips: the 8
    symmetries of a square), which keep every pixel real tissue, unlike arbitrary angles.
    mean/std: input normalisation; None = the encoder's (ImageNet for the ResNet50).
    stain: colour normalisation per slide (Reinhard by default, or Macenko), recorded in the classifier
    header so that feature extraction repeats it. freeze_encoder: train the head only (the encoder's
    weights and normalisation statistics stay those of its checkpoint, as usual for foundation models)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 0.0
    val_fraction: float = 0.3
    seed: int = 0
    augment: bool = True
    device: str = "auto"
    num_workers: int = -1
    classes: tuple[str, ...] = CLASSES
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    stain: StainConfig = field(default_factory=StainConfig)
    freeze_encoder: bool = False
    #: re-estimate BatchNorm statistics on the training tiles after each epoch; None = only when
    #: training starts from random weights (a few epochs from scratch leave the running averages far
    #: from the data, so evaluation-mode predictions collapse onto one class)
    recalibrate_bn: bool | None = None

    def __post_init__(self) -> None:
        check_int(self.epochs, "--epochs", 1)
        check_int(self.batch_size, "--batch-size", 1)
        check_number(self.lr, "--lr", low=0, low_open=True)
        check_number(self.weight_decay, "weight_decay", low=0)
        check_number(self.val_fraction, "--val-fraction", low=0, high=1, low_open=True, high_open=True)
        check_int(self.seed, "--seed", 0)
        check_int(self.num_workers, "--workers", -1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["classes"] = list(self.classes)
        d["mean"], d["std"] = (None if v is None else list(v) for v in (self.mean, self.std))
        d["stain"] = self.stain.to_dict()
        return d
