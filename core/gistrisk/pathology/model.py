"""The tissue classifier's architecture and weight files (no training or data code here).

A torchvision ResNet50 whose ``fc`` predicts the six tissue classes; ``forward`` returns the logits
and the 2048-d global-average-pool features. Parameter names are torchvision's, so an ImageNet
ResNet50 state dict loads as is (its 1000-class head is replaced).

ImageNet weights are NOT downloaded: this machine may be offline. Download them once elsewhere
(``torchvision.models.ResNet50_Weights.IMAGENET1K_V2``, file ``resnet50-11ad3fa6.pth``) and pass
the file with ``--weights``; without it the backbone starts from random initialisation, which is
only good for tests.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gistrisk.errors import InputError
from gistrisk.pathology.checks import check_int, check_number
from gistrisk.pathology.classes import CLASSES, TUMOUR
from gistrisk.pathology.stain import StainConfig

ARCHITECTURE = "torchvision.resnet50"
HEADER_KEY = "gistrisk"
HEADER_SCHEMA = 1
FEATURE_DIM = 2048


class TissueClassifier(nn.Module):
    """ResNet50 tissue classifier.

    forward: (B, 3, H, W) float, normalised -> (logits (B, n_classes), features (B, 2048)).
    """

    def __init__(self, num_classes: int = len(CLASSES)):
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None, num_classes=num_classes)
        # Own the torchvision submodules directly so state-dict keys stay "conv1.weight", "fc.bias", ...
        for name, module in net.named_children():
            self.add_module(name, module)
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2048) global-average-pooled layer4 features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.fc(f), f


def build_model(num_classes: int = len(CLASSES), seed: int | None = 0) -> TissueClassifier:
    """A randomly initialised classifier; ``seed`` makes the initialisation reproducible."""
    if seed is None:
        return TissueClassifier(num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TissueClassifier(num_classes)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a weights file: ``.safetensors`` or a torch ``.pth``/``.pt``.

    A ``.pth`` is read with ``torch.load(weights_only=True)`` (no code can run); a checkpoint dict
    with ``state_dict``/``model`` is unwrapped and a ``module.`` prefix (DataParallel) removed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", file=str(path))
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
            meta = {}
            for key in ("state_dict", "model", "model_state_dict"):
                if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                    obj = obj[key]
            if not isinstance(obj, dict):
                raise TypeError(f"expected a state dict, found {type(obj).__name__}")
            sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot read weights ({type(e).__name__}: {e}); expected a .safetensors file or a "
                         "torch state dict (.pth) readable with weights_only=True", file=str(path)) from e
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    return sd, meta


def check_state_dict(sd: dict[str, torch.Tensor], model: TissueClassifier, *, file: str,
                     require_head: bool) -> bool:
    """Raise InputError unless ``sd`` is a ResNet50 (and, with require_head, has our class count).

    Returns whether the head (fc) in ``sd`` fits the model.
    """
    expected = model.state_dict()
    backbone = [k for k in expected if not k.startswith("fc.")]
    missing = [k for k in backbone if k not in sd]
    wrong = [k for k in backbone if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    unexpected = [k for k in sd if k not in expected]
    if missing or wrong or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of {len(backbone)} ResNet50 tensors missing (e.g. {missing[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with the wrong shape (e.g. {k}: {tuple(sd[k].shape)}, "
                         f"ResNet50 has {tuple(expected[k].shape)})")
        if unexpected:
            parts.append(f"{len(unexpected)} tensors ResNet50 does not have (e.g. {unexpected[0]})")
        raise InputError("not a torchvision ResNet50 weights file: " + "; ".join(parts), file=file)
    head_shape = tuple(sd["fc.weight"].shape) if "fc.weight" in sd else None
    head_ok = head_shape == tuple(expected["fc.weight"].shape) and "fc.bias" in sd
    if require_head and not head_ok:
        found = f"a head for {head_shape[0]} classes" if head_shape else "no classification head"
        raise InputError(f"wrong number of classes: the weights have {found}, the classifier needs "
                         f"{model.num_classes} ({', '.join(CLASSES) if model.num_classes == len(CLASSES) else ''})",
                         file=file)
    return head_ok


def load_backbone(model: TissueClassifier, path: str | Path) -> dict[str, Any]:
    """Load ResNet50 weights (e.g. ImageNet) into ``model`` for training; an unfitting head is kept fresh.

    Returns a short record of what was loaded.
    """
    sd, _ = read_state_dict(path)
    head_ok = check_state_dict(sd, model, file=str(path), require_head=False)
    if not head_ok:
        sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    model.load_state_dict(sd, strict=head_ok)
    return {"weights": str(path), "head_loaded": head_ok}


def save_classifier(path: str | Path, model: TissueClassifier, header: dict[str, Any]) -> None:
    """Write weights as safetensors (fp32, contiguous) with ``header`` as JSON metadata, atomically."""
    from safetensors.torch import save_file

    from gistrisk.atomic import atomic_path

    sd = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
          for k, v in model.state_dict().items()}
    meta = {HEADER_KEY: json.dumps({"schema": HEADER_SCHEMA, "architecture": ARCHITECTURE, **header},
                                   default=str)}
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)


def load_classifier(path: str | Path) -> tuple[TissueClassifier, dict[str, Any]]:
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
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = TissueClassifier(len(header["classes"]))
    check_state_dict(sd, model, file=str(path), require_head=True)
    # copy into fresh (aligned) CPU memory: tensors mapped from the file can take other kernel paths
    model = model.to_empty(device="cpu")
    model.load_state_dict(sd, strict=True)
    return model.eval(), header


def check_header(header: Any, file: str) -> None:
    """Raise InputError, naming ``file`` and the field, unless ``header`` is a usable classifier header."""
    if not isinstance(header, dict):
        raise InputError(f"classifier header is not a JSON object (found {type(header).__name__})", file=file)
    if header.get("schema") != HEADER_SCHEMA:
        raise InputError(f"classifier header schema {header.get('schema')!r} is not supported "
                         f"(this version reads {HEADER_SCHEMA})", file=file)
    if header.get("architecture") != ARCHITECTURE:
        raise InputError(f"architecture {header.get('architecture')!r} is not {ARCHITECTURE}", file=file)
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
