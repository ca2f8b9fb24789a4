"""Tile encoders: the paper's torchvision ResNet50 (default) or any timm model from local weights.

Nothing is downloaded. A timm model is created with ``pretrained=False`` and its weights are read
from what the user gives with ``--encoder-weights``: a file (``.safetensors``, or a torch state dict
read with ``weights_only=True``) or a timm / Hugging Face folder (``config.json`` + ``model.safetensors``
or ``pytorch_model.bin``), whose ``config.json`` also gives the architecture, its arguments and the
preprocessing (mean/std, input size). Without a folder config, timm's own configuration of that model
name gives the preprocessing. The embedding size follows the encoder.

An :class:`EncoderSpec` says all of this in JSON; it is recorded in the classifier header and in every
output's provenance, so a classifier file rebuilds its encoder without any other input.
See docs/pathology_encoders.md for the pathology foundation models (UNI, Virchow2, H-optimus, ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from gistrisk.errors import InputError
from gistrisk.pathology.classes import IMAGENET_MEAN, IMAGENET_STD
from gistrisk.pathology.columns import RESNET50_DIM
from gistrisk.provenance import file_sha256

# timm is imported where a timm encoder is checked or built, not here: it takes 1.5-3 s (timm.layers imports
# torchvision, whose ops import torch._dynamo), which every `gistrisk pathology` command paid at start
# (tests/package/test_cli_startup.py).

RESNET50 = "resnet50"
TIMM = "timm"
TIMM_PREFIX = "timm:"
#: header ``architecture`` of each kind of classifier
ARCH_RESNET50 = "torchvision.resnet50"
ARCH_TIMM = "timm"
#: how a timm encoder's output becomes one vector per tile: the model's own pooled features, or the
#: class token concatenated with the mean of the patch tokens (as Virchow's authors use it)
POOLS = ("default", "cls+mean")
#: ``--encoder-arg mlp_layer=NAME``: the timm MLP blocks (in ``timm.layers``) a JSON config can name
MLP_LAYERS = ("Mlp", "GluMlp", "SwiGLU", "SwiGLUPacked")
#: weight files looked for, in this order, in a timm / Hugging Face folder
FOLDER_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "pytorch_model.pth")


@dataclass
class EncoderSpec:
    """A tile encoder, as recorded in classifier headers and provenance.

    name: ``resnet50`` or ``timm:<model>``; feature_dim: embedding size D per tile; input_size: side in
    px tiles are resized to before the encoder (None: tiles enter as cut); mean/std: RGB normalisation
    (0-1 scale) the encoder expects; model_args: extra ``timm.create_model`` arguments (JSON values);
    pool: one of :data:`POOLS`; weights: the file the encoder's weights came from (None: random
    initialisation); weights_sha256: its hash.
    """

    name: str = RESNET50
    feature_dim: int = RESNET50_DIM
    input_size: int | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    model_args: dict[str, Any] = field(default_factory=dict)
    pool: str = "default"
    weights: str | None = None
    weights_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.name != RESNET50 and not self.name.startswith(TIMM_PREFIX):
            raise ValueError(f"encoder name {self.name!r} is neither {RESNET50} nor {TIMM_PREFIX}<model>")
        if isinstance(self.feature_dim, bool) or not isinstance(self.feature_dim, int) or self.feature_dim < 1:
            raise ValueError(f"feature_dim must be a positive whole number, got {self.feature_dim!r}")
        if self.input_size is not None and (isinstance(self.input_size, bool) or not isinstance(self.input_size, int)
                                            or self.input_size < 1):
            raise ValueError(f"input_size must be a positive whole number or null, got {self.input_size!r}")
        self.mean, self.std = _rgb(self.mean, "mean"), _rgb(self.std, "std")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {list(self.std)}")
        if not isinstance(self.model_args, dict):
            raise ValueError(f"model_args must be a JSON object, got {self.model_args!r}")
        if self.pool not in POOLS:
            raise ValueError(f"pool {self.pool!r} is not one of {', '.join(POOLS)}")

    @property
    def timm_model(self) -> str | None:
        """The timm model name, or None for the torchvision ResNet50."""
        return self.name[len(TIMM_PREFIX):] if self.name.startswith(TIMM_PREFIX) else None

    @property
    def architecture(self) -> str:
        """The classifier header's ``architecture`` for this encoder."""
        return ARCH_TIMM if self.timm_model else ARCH_RESNET50

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> EncoderSpec:
        """From a header/provenance dict; None (classifiers from before encoders were a choice) is ResNet50."""
        if d is None:
            return cls()
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        return cls(**d)


def _rgb(values: Any, what: str) -> tuple[float, float, float]:
    try:
        r, g, b = (float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be 3 numbers (R, G, B), got {values!r}") from e
    if not all(math.isfinite(v) for v in (r, g, b)):
        raise ValueError(f"{what} must be finite, got {values!r}")
    return r, g, b


def parse_encoder_args(items: list[str] | None) -> dict[str, Any]:
    """``["mlp_ratio=5.3375", "act_layer=silu"]`` -> {"mlp_ratio": 5.3375, "act_layer": "silu"}: each
    value read as JSON (numbers, true/false, lists), otherwise kept as text."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--encoder-arg {item!r}: give KEY=VALUE (e.g. mlp_ratio=5.3375 or act_layer=silu)")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def parse_rgb(text: str | None, option: str) -> tuple[float, float, float] | None:
    """``"0.485,0.456,0.406"`` -> (0.485, 0.456, 0.406); None stays None; InputError naming ``option``."""
    if text is None:
        return None
    try:
        rgb = _rgb(text.split(","), option)
    except ValueError as e:
        raise InputError(f"{option} {text!r}: give three numbers R,G,B on the 0-1 scale ({e})") from e
    if option.endswith("std") and min(rgb) <= 0:
        raise InputError(f"{option} {text!r}: standard deviations must be positive")
    return rgb


def resolve_encoder(name: str = RESNET50, weights: str | Path | None = None, *, args: dict[str, Any] | None = None,
                    pool: str = "default", mean: tuple[float, float, float] | None = None,
                    std: tuple[float, float, float] | None = None) -> EncoderSpec:
    """The encoder a user asked for, checked before any work: ``resnet50`` (``weights``: torchvision
    ResNet50 weights to start from, e.g. ImageNet) or ``timm:<model>`` / ``timm`` (``weights``: a file,
    or a folder whose config.json names the model). Raises InputError naming the option or file.

    A timm encoder's preprocessing: ``mean``/``std`` if given, else the folder's config.json, else timm's
    default configuration of the model name; input size: the ``img_size`` argument if given, else the
    same sources."""
    name = (name or RESNET50).strip()
    if name == RESNET50:
        if args or pool != "default" or mean is not None or std is not None:
            raise InputError("--encoder-arg, --encoder-pool, --encoder-mean and --encoder-std go with a timm encoder "
                             "(--encoder timm:<model>)")
        if weights is None:
            return EncoderSpec()
        path = _existing(weights)
        if path.is_dir():
            raise InputError("--weights for resnet50 is a file (.pth or .safetensors), not a folder", file=str(path))
        return EncoderSpec(weights=str(path), weights_sha256=file_sha256(path))
    if name != TIMM and not name.startswith(TIMM_PREFIX):
        raise InputError(f"--encoder {name!r}: give {RESNET50} (the paper's) or {TIMM_PREFIX}<model> (any timm "
                         "model, with its weights from --encoder-weights)")
    if pool not in POOLS:
        raise InputError(f"--encoder-pool {pool!r}: choose {' or '.join(POOLS)}")
    model = name[len(TIMM_PREFIX):].strip() if name.startswith(TIMM_PREFIX) else ""
    config: dict[str, Any] = {}
    weights_file = None
    if weights is not None:
        path = _existing(weights)
        if path.is_dir():
            config, arch = _folder_config(path)
            found = [path / f for f in FOLDER_WEIGHTS if (path / f).is_file()]
            if not found:
                raise InputError(f"no weights in the encoder folder (looked for {', '.join(FOLDER_WEIGHTS)})",
                                 file=str(path))
            weights_file = found[0]
            if arch and model and arch != model:
                raise InputError(f"{path / 'config.json'} names architecture {arch!r}, not the --encoder "
                                 f"{TIMM_PREFIX}{model}; give --encoder {TIMM_PREFIX}{arch} (or just --encoder timm)")
            model = model or arch or ""
        else:
            weights_file = path
    if not model:
        raise InputError(f"--encoder {name}: name the timm model ({TIMM_PREFIX}<model>); only a weights folder "
                         "with a config.json naming its architecture can stand in for it, and "
                         + (f"{weights} is a file with no config.json" if weights is not None else
                            "no --encoder-weights was given"))
    import timm  # noqa: PLC0415 - see the module top

    if not timm.is_model(model):
        similar = timm.list_models(f"*{model}*")[:5]
        raise InputError(f"--encoder '{TIMM_PREFIX}{model}' is not a timm model"
                         + (f" (similar: {', '.join(similar)})" if similar else "")
                         + f"; timm {timm.__version__} lists its models with timm.list_models()")
    pre = config.get("pretrained_cfg", config)
    model_args = {k: v for k, v in (config.get("model_args") or {}).items() if k != "num_classes"}
    model_args.update(args or {})
    spec = EncoderSpec(name=f"{TIMM_PREFIX}{model}", model_args=model_args, pool=pool,
                       weights=str(weights_file) if weights_file else None,
                       weights_sha256=file_sha256(weights_file) if weights_file else None)
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        enc = create_timm_encoder(spec)
    defaults = _pretrained_cfg(enc)
    mean_, std_ = pre.get("mean") or defaults.get("mean"), pre.get("std") or defaults.get("std")
    mean, std = mean or mean_, std or std_
    size = pre.get("input_size") or defaults.get("input_size") or (3, 224, 224)
    img = model_args.get("img_size")
    if isinstance(img, int) or (isinstance(img, list) and len(img) == 2 and img[0] == img[1]):
        size = (3, img, img) if isinstance(img, int) else (3, *img)
    if pool == "cls+mean" and (getattr(enc, "cls_token", None) is None or not getattr(enc, "num_prefix_tokens", 0)):
        raise InputError(f"--encoder-pool cls+mean needs a model with a class token; {model} has none")
    spec.mean, spec.std, spec.input_size = _rgb(mean, "mean"), _rgb(std, "std"), int(size[-1])
    spec.feature_dim = _feature_dim(enc, spec)
    return spec


def _pretrained_cfg(enc: nn.Module) -> dict[str, Any]:
    """A timm model's ``pretrained_cfg`` (its preprocessing and head name); {} if it has none."""
    cfg = getattr(enc, "pretrained_cfg", None)
    return cfg if isinstance(cfg, dict) else {}


def _forward_features(enc: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``enc.forward_features(x)``: a timm model's tokens before pooling; ValueError if it has no such method."""
    forward = getattr(enc, "forward_features", None)
    if not callable(forward):
        raise ValueError(f"{type(enc).__name__} has no forward_features method (tokens before pooling)")
    return forward(x)


def _existing(weights: str | Path) -> Path:
    path = Path(weights)
    if not path.exists():
        raise InputError("encoder weights not found", file=str(path))
    return path


def _folder_config(folder: Path) -> tuple[dict[str, Any], str | None]:
    """A timm / Hugging Face folder's config.json -> (config, architecture); ({}, None) without one."""
    path = folder / "config.json"
    if not path.is_file():
        return {}, None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable encoder config ({e})", file=str(path)) from e
    if not isinstance(config, dict):
        raise InputError("encoder config.json is not a JSON object", file=str(path))
    arch = config.get("architecture")
    return config, arch if isinstance(arch, str) and arch else None


def create_timm_encoder(spec: EncoderSpec) -> nn.Module:
    """The timm model of ``spec`` without its classification head (``num_classes=0``), randomly
    initialised (``pretrained=False``: nothing is downloaded). Named MLP layers are resolved."""
    model = spec.timm_model
    if model is None:
        raise ValueError("create_timm_encoder needs a timm encoder")
    import timm  # noqa: PLC0415 - see the module top

    kwargs = dict(spec.model_args)
    if isinstance(kwargs.get("mlp_layer"), str):
        if kwargs["mlp_layer"] not in MLP_LAYERS:
            raise InputError(f"--encoder-arg mlp_layer={kwargs['mlp_layer']!r}: choose one of {', '.join(MLP_LAYERS)}")
        kwargs["mlp_layer"] = getattr(timm.layers, kwargs["mlp_layer"])
    try:
        return timm.create_model(model, pretrained=False, num_classes=0, **kwargs)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as e:
        raise InputError(f"timm model {model} cannot be built with arguments {spec.model_args} "
                         f"({type(e).__name__}: {e})") from e


def _feature_dim(enc: nn.Module, spec: EncoderSpec) -> int:
    """Embedding size of ``enc`` (built on the meta device) for one tile at ``spec.input_size``."""
    x = torch.zeros(1, 3, spec.input_size or 224, spec.input_size or 224, device="meta")
    try:
        out = _forward_features(enc, x) if spec.pool == "cls+mean" else enc(x)
    except Exception as e:  # noqa: BLE001 - any model may fail on its own terms; say which and why
        raise InputError(f"timm model {spec.timm_model} with arguments {spec.model_args} fails on a "
                         f"{x.shape[-1]}-px tile ({type(e).__name__}: {e})") from e
    if spec.pool == "cls+mean":
        return 2 * int(out.shape[-1])
    if out.ndim != 2:
        raise InputError(f"timm model {spec.timm_model} with arguments {spec.model_args} gives {tuple(out.shape)} "
                         "per tile, not one vector: drop global_pool='' from --encoder-arg, or use --encoder-pool "
                         "cls+mean")
    return int(out.shape[1])


def encoder_features(enc: nn.Module, spec: EncoderSpec, x: torch.Tensor) -> torch.Tensor:
    """Normalised tiles (B, 3, H, W) -> (B, D) embeddings of a timm encoder: resized to the encoder's
    input size if they differ (bilinear, antialiased), then pooled as ``spec.pool`` says."""
    s = spec.input_size
    if s and tuple(x.shape[-2:]) != (s, s):
        x = nn.functional.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
    if spec.pool == "cls+mean":
        tokens = _forward_features(enc, x)
        return torch.cat([tokens[:, 0], tokens[:, enc.num_prefix_tokens:].mean(1)], dim=1)
    return enc(x)


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a weights file: ``.safetensors`` or a torch ``.pth``/``.pt``/``.bin``.

    A torch file is read with ``torch.load(weights_only=True)`` (no code can run); a checkpoint dict
    with ``state_dict``/``model`` is unwrapped and a ``module.`` prefix (DataParallel) removed.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("weights file not found", file=str(path))
    try:
        if path.suffix == ".safetensors":
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


def state_dict_mismatch(sd: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], what: str) -> str | None:
    """What keeps ``sd`` from loading into a model whose state dict is ``expected``, or None."""
    missing = [k for k in expected if k not in sd]
    wrong = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    unexpected = [k for k in sd if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of {len(expected)} {what} tensors missing (e.g. {missing[0]})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} with the wrong shape (e.g. {k}: {tuple(sd[k].shape)}, {what} has "
                     f"{tuple(expected[k].shape)})")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors {what} does not have (e.g. {unexpected[0]})")
    return "; ".join(parts) or None


def load_timm_weights(enc: nn.Module, spec: EncoderSpec) -> dict[str, Any]:
    """Load ``spec.weights`` into the timm encoder ``enc`` (a classification head in the file is
    dropped). Raises InputError naming the file unless every encoder tensor is there with its shape."""
    if spec.weights is None:
        return {"weights": None, "weights_sha256": None, "head_dropped": 0}
    sd, _ = read_state_dict(spec.weights)
    expected = enc.state_dict()
    head = str(_pretrained_cfg(enc).get("classifier") or "head")
    heads = tuple({head, "head", "fc", "classifier"})
    dropped = [k for k in sd if k not in expected and k.split(".")[0] in {h.split(".")[0] for h in heads}]
    sd = {k: v for k, v in sd.items() if k not in dropped}
    problem = state_dict_mismatch(sd, expected, f"timm model {spec.timm_model}")
    if problem:
        raise InputError(f"not weights of timm model {spec.timm_model} with arguments {spec.model_args}: {problem}",
                         file=spec.weights)
    enc.load_state_dict(sd, strict=True)
    return {"weights": spec.weights, "weights_sha256": spec.weights_sha256, "head_dropped": len(dropped)}
