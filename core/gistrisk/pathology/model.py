"""The tissue classifier's architecture and weight files (no training or data code here).

By default (the paper's) a torchvision ResNet50 whose ``fc`` predicts the six tissue classes;
``forward`` returns the logits and the 2048-d global-average-pool features. Parameter names are
torchvision's, so an ImageNet ResNet50 state dict loads as is (its 1000-class head is replaced).
Or any timm encoder (:mod:`gistrisk.pathology.encoders`) with a linear head ``fc`` on its embedding
(:class:`TimmClassifier`); the header's ``encoder`` entry rebuilds it from the classifier file alone.

ImageNet weights are NOT downloaded: this machine may be offline. Download them once elsewhere
(``torchvision.models.ResNet50_Weights.IMAGENET1K_V2``, file ``resnet50-11ad3fa6.pth``) and pass
the file with ``--weights``; without it the backbone starts from random initialisation, which is
only good for tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from gistrisk.atomic import atomic_path
from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int, check_number
from gistrisk.pathology.classes import CLASSES, TUMOUR
from gistrisk.pathology.encoders import (
    ARCH_RESNET50,
    ARCH_TIMM,
    RESNET50,
    RESNET50_DIM,
    EncoderSpec,
    create_timm_encoder,
    encoder_features,
    load_timm_weights,
    read_state_dict,
    state_dict_mismatch,
)
from gistrisk.pathology.stain import StainConfig

ARCHITECTURE = ARCH_RESNET50
HEADER_KEY = "gistrisk"
HEADER_SCHEMA = 1
FEATURE_DIM = RESNET50_DIM

__all__ = ["ARCHITECTURE", "FEATURE_DIM", "TimmClassifier", "TissueClassifier", "build_model", "check_header",
           "encoder_spec", "load_backbone", "load_classifier", "model_with_weights", "read_state_dict",
           "save_classifier"]


class TissueClassifier(nn.Module):
    """ResNet50 tissue classifier.

    forward: (B, 3, H, W) float, normalised -> (logits (B, n_classes), features (B, 2048)).
    """

    # the torchvision ResNet50's children, registered in __init__ (declared for the type checker)
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    relu: nn.ReLU
    maxpool: nn.MaxPool2d
    layer1: nn.Sequential
    layer2: nn.Sequential
    layer3: nn.Sequential
    layer4: nn.Sequential
    avgpool: nn.AdaptiveAvgPool2d
    fc: nn.Linear

    def __init__(self, num_classes: int = len(CLASSES)):
        super().__init__()
        from torchvision.models import resnet50  # noqa: PLC0415 - 1.5-3 s to import; see gistrisk.pathology.encoders

        net = resnet50(weights=None, num_classes=num_classes)
        # Own the torchvision submodules directly so state-dict keys stay "conv1.weight", "fc.bias", ...
        for name, module in net.named_children():
            self.add_module(name, module)
        self.num_classes = num_classes
        self.feature_dim = FEATURE_DIM

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2048) global-average-pooled layer4 features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc(f), f


class TimmClassifier(nn.Module):
    """A timm encoder (``encoder``) with a linear tissue-class head (``fc``) on its embedding.

    forward: (B, 3, H, W) float, normalised -> (logits (B, n_classes), features (B, D)), D =
    ``spec.feature_dim``; tiles of another size than ``spec.input_size`` are resized first.
    """

    def __init__(self, spec: EncoderSpec, num_classes: int = len(CLASSES)):
        super().__init__()
        self.spec = spec
        self.encoder = create_timm_encoder(spec)
        self.fc = nn.Linear(spec.feature_dim, num_classes)
        self.num_classes = num_classes
        self.feature_dim = spec.feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D) tile embeddings."""
        return encoder_features(self.encoder, self.spec, x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc(f), f


Classifier = TissueClassifier | TimmClassifier


def build_model(num_classes: int = len(CLASSES), seed: int | None = 0,
                encoder: EncoderSpec | None = None) -> Classifier:
    """A randomly initialised classifier (the paper's ResNet50 unless ``encoder`` names a timm model);
    ``seed`` makes the initialisation reproducible. Weights are loaded by :func:`load_backbone`."""
    def make() -> Classifier:
        if encoder is None or encoder.timm_model is None:
            return TissueClassifier(num_classes)
        return TimmClassifier(encoder, num_classes)

    if seed is None:
        return make()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def encoder_spec(header: dict[str, Any]) -> EncoderSpec:
    """The encoder of a (checked) classifier header; headers from before encoders were a choice are ResNet50."""
    return EncoderSpec.from_dict(header.get("encoder"))


def check_state_dict(sd: dict[str, torch.Tensor], model: Classifier, *, file: str,
                     require_head: bool) -> bool:
    """Raise InputError unless ``sd`` is the model's encoder (and, with require_head, has our class count).

    Returns whether the head (fc) in ``sd`` fits the model.
    """
    expected = model.state_dict()
    if isinstance(model, TimmClassifier):
        problem = state_dict_mismatch({k: v for k, v in sd.items() if not k.startswith("fc.")},
                                      {k: v for k, v in expected.items() if not k.startswith("fc.")},
                                      f"timm model {model.spec.timm_model}")
        if problem:
            raise InputError(f"classifier weights do not fit its encoder {model.spec.name}: {problem}", file=file)
        return _head_fits(sd, model, expected, file=file, require_head=require_head)
    problem = state_dict_mismatch(sd, {k: v for k, v in expected.items() if not k.startswith("fc.")} |
                                  {k: v for k, v in sd.items() if k.startswith("fc.")}, "ResNet50")
    if problem:
        raise InputError("not a torchvision ResNet50 weights file: " + problem, file=file)
    return _head_fits(sd, model, expected, file=file, require_head=require_head)


def _head_fits(sd: dict[str, torch.Tensor], model: Classifier, expected: dict[str, torch.Tensor], *, file: str,
               require_head: bool) -> bool:
    """Whether ``sd`` holds a head (fc) for the model's classes; with require_head, InputError if not."""
    head_shape = tuple(sd["fc.weight"].shape) if "fc.weight" in sd else None
    head_ok = head_shape == tuple(expected["fc.weight"].shape) and "fc.bias" in sd
    if require_head and not head_ok:
        found = f"a head for {head_shape[0]} classes" if head_shape else "no classification head"
        raise InputError(f"wrong number of classes: the weights have {found}, the classifier needs "
                         f"{model.num_classes} ({', '.join(CLASSES) if model.num_classes == len(CLASSES) else ''})",
                         file=file)
    return head_ok


def load_backbone(model: Classifier, path: str | Path) -> dict[str, Any]:
    """Load encoder weights into ``model`` for training: ResNet50 weights (e.g. ImageNet; an unfitting
    head is kept fresh), or a timm encoder's checkpoint (its own head dropped; the tissue head stays fresh).

    Returns a short record of what was loaded.
    """
    if isinstance(model, TimmClassifier):
        spec = EncoderSpec.from_dict({**model.spec.to_dict(), "weights": str(path)})
        return {**load_timm_weights(model.encoder, spec), "head_loaded": False}
    sd, _ = read_state_dict(path)
    head_ok = check_state_dict(sd, model, file=str(path), require_head=False)
    if not head_ok:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    model.load_state_dict(sd, strict=head_ok)
    return {"weights": str(path), "head_loaded": head_ok}


def save_classifier(path: str | Path, model: Classifier, header: dict[str, Any]) -> None:
    """Write weights as safetensors (fp32, contiguous) with ``header`` as JSON metadata, atomically.

    The header gets the model's ``architecture``, and a timm model's ``encoder`` (its :class:`EncoderSpec`).
    """
    sd = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
          for k, v in model.state_dict().items()}
    if isinstance(model, TimmClassifier):
        header = {**header, "encoder": model.spec.to_dict()}
    arch = ARCH_TIMM if isinstance(model, TimmClassifier) else ARCHITECTURE
    meta = {HEADER_KEY: json.dumps({"schema": HEADER_SCHEMA, "architecture": arch, **header}, default=str)}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)


def load_classifier(path: str | Path) -> tuple[Classifier, dict[str, Any]]:
    """A trained classifier (``classifier.safetensors`` or the folder holding it) -> (model in eval mode, header)."""
    path = Path(path)
    if path.is_dir():
        path = path / "classifier.safetensors"
    sd, meta = read_state_dict(path)
    if HEADER_KEY not in meta:
        raise InputError("weights file has no gistrisk header (classes, tile size, mpp, normalisation); "
                         "train a classifier with `gistrisk pathology train`", file=str(path))
    try:
        header = json.loads(meta[HEADER_KEY])
    except ValueError as e:
        raise InputError(f"classifier header is not valid JSON ({e})", file=str(path)) from e
    check_header(header, str(path))
    spec = encoder_spec(header)
    model = model_with_weights(sd, len(header["classes"]), spec,
                               check=lambda m: check_state_dict(sd, m, file=str(path), require_head=True))
    return model.eval(), header


def model_with_weights(sd: dict[str, torch.Tensor], num_classes: int, encoder: EncoderSpec | None = None,
                       check: Callable[[Classifier], object] | None = None) -> Classifier:
    """A classifier holding the weights ``sd``, built without random initialisation (a ResNet50's costs
    0.25 s); ``check`` sees the empty model before the weights are loaded."""
    with torch.device("meta"):
        model = build_model(num_classes, seed=None, encoder=encoder)
    if check is not None:
        check(model)
    if any(name not in sd for name, _ in model.named_buffers()):
        # buffers computed at construction that the weights do not hold (e.g. relative position
        # indices, rotary tables): build for real, then load every tensor there is
        model = build_model(num_classes, seed=0, encoder=encoder)
    else:  # copy into fresh (aligned) CPU memory: tensors mapped from a file can take other kernel paths
        model = model.to_empty(device="cpu")
    model.load_state_dict(sd, strict=True)
    return model


def check_header(header: Any, file: str) -> None:
    """Raise InputError, naming ``file`` and the field, unless ``header`` is a usable classifier header."""
    if not isinstance(header, dict):
        raise InputError(f"classifier header is not a JSON object (found {type(header).__name__})", file=file)
    if header.get("schema") != HEADER_SCHEMA:
        raise InputError(f"classifier header schema {header.get('schema')!r} is not supported "
                         f"(this version reads {HEADER_SCHEMA})", file=file)
    if header.get("architecture") not in (ARCHITECTURE, ARCH_TIMM):
        raise InputError(f"architecture {header.get('architecture')!r} is not {ARCHITECTURE} or {ARCH_TIMM}",
                         file=file)
    if header["architecture"] == ARCH_TIMM and header.get("encoder") is None:
        raise InputError("classifier header lacks 'encoder' (which timm model, its arguments and embedding size)",
                         file=file)
    _check_encoder(header, file)
    for key in ("classes", "tile_size", "mpp", "mean", "std"):
        if key not in header:
            raise InputError(f"classifier header lacks {key!r}", file=file)
    classes = header["classes"]
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, str) and c.strip() for c in classes)):
        raise InputError(f"classifier header field 'classes' must list at least two class names, got {classes!r}",
                         file=file)
    dupes = sorted({c for c in classes if classes.count(c) > 1})
    if dupes:
        raise InputError(f"classifier header field 'classes' names {dupes} more than once", file=file)
    if TUMOUR not in classes:
        raise InputError(f"classifier header field 'classes' {classes} lacks {TUMOUR!r}, the class whose tiles "
                         "make the slide features", file=file)
    check_int(header["tile_size"], "classifier header field 'tile_size'", 1, file=file)
    check_number(header["mpp"], "classifier header field 'mpp'", low=0, low_open=True, file=file)
    for key in ("mean", "std"):
        v = header[key]
        if not isinstance(v, list) or len(v) != 3:
            raise InputError(f"classifier header field {key!r} must list 3 numbers (R, G, B), got {v!r}", file=file)
        for x in v:
            check_number(x, f"classifier header field {key!r} (each of R, G, B)", low=0, low_open=key == "std",
                         file=file)
    stain = header.get("stain")
    if stain is not None:
        try:
            cfg = StainConfig.from_dict(stain) if isinstance(stain, dict) else None
        except (TypeError, ValueError) as e:  # InputError is a ValueError
            raise InputError(f"classifier header field 'stain' is not a stain setting ({e})", file=file) from e
        if cfg is None or len(cfg.target_mean) != 3 or len(cfg.target_std) != 3 \
                or not all(math.isfinite(x) for x in (*cfg.target_mean, *cfg.target_std)) \
                or isinstance(cfg.n_fit_tiles, bool) or not isinstance(cfg.n_fit_tiles, int) or cfg.n_fit_tiles < 1:
            raise InputError(f"classifier header field 'stain' is not a stain setting: {stain!r}", file=file)


def _check_encoder(header: dict[str, Any], file: str) -> None:
    """Raise InputError naming ``file`` unless the header's ``encoder`` entry (if any) fits its architecture."""
    if header.get("encoder") is None:
        return
    try:
        spec = EncoderSpec.from_dict(header["encoder"])
    except (TypeError, ValueError) as e:
        raise InputError(f"classifier header field 'encoder' is not an encoder setting ({e})", file=file) from e
    if (spec.timm_model is None) != (header["architecture"] == ARCHITECTURE):
        raise InputError(f"classifier header field 'encoder' names {spec.name} but the architecture is "
                         f"{header['architecture']}", file=file)
    if spec.timm_model is None and spec.feature_dim != FEATURE_DIM:
        raise InputError(f"classifier header field 'encoder': {RESNET50} gives {FEATURE_DIM} features, not "
                         f"feature_dim {spec.feature_dim}", file=file)
    if spec.timm_model is not None:
        import timm  # noqa: PLC0415 - only for a timm encoder (import cost: see gistrisk.pathology.encoders)

        if not timm.is_model(spec.timm_model):
            raise InputError(f"classifier header field 'encoder': {spec.name!r} is not a timm model in timm "
                             f"{timm.__version__}", file=file)
