"""Train the tissue classifier on labelled tiles (the paper's ResNet50 and recipe by default; any timm
encoder with a linear head, optionally frozen, as a choice: :mod:`gistrisk.pathology.encoders`).

Writes into the output folder: ``classifier.safetensors`` (best epoch by validation accuracy,
JSON header in its metadata), ``history.csv``, ``confusion_matrix.csv``/``.json`` (validation set,
best epoch), ``class_balance.json``, ``split.parquet`` (which tile went where) and
``provenance.json``.

Training refuses tiles of fewer than two classes, and warns (console, classifier header,
provenance) about each class with fewer than :data:`MIN_CLASS_TILES` labelled tiles or none in
the validation split: its validation accuracy rests on too few tiles to mean anything.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from gistrisk.atomic import write_json, write_table
from gistrisk.errors import InputError
from gistrisk.pathology.data import SlideSource, TileDataset, fit_stain, resolve_device, to_input
from gistrisk.pathology.encoders import RESNET50, EncoderSpec, resolve_encoder
from gistrisk.pathology.model import (
    HEADER_SCHEMA,
    Classifier,
    build_model,
    check_header,
    load_backbone,
    model_with_weights,
    save_classifier,
)
from gistrisk.pathology.train_config import TrainConfig
from gistrisk.provenance import provenance

log = logging.getLogger(__name__)

#: A class with fewer labelled tiles gets a warning: at the default 30 % split 5 is the smallest
#: class with 2 validation tiles; below it the class's validation accuracy is one tile right or wrong.
MIN_CLASS_TILES = 5


@dataclass
class TrainResult:
    """best_epoch (1-based), best_val_accuracy, history rows, confusion (n_classes, n_classes)
    counts (rows true, columns predicted), class_balance {split: {class: n}}, model (best epoch,
    CPU, eval mode: the weights written to the file), warnings (also in the header and provenance)."""

    best_epoch: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    confusion: np.ndarray | None = None
    class_balance: dict = field(default_factory=dict)
    model: Classifier | None = None
    warnings: list[str] = field(default_factory=list)


def check_classes(labelled: pd.DataFrame, where: str) -> None:
    """Raise InputError unless the labelled tiles hold at least two classes; ``where``: their origin."""
    counts = labelled["label"].astype(str).value_counts()
    if len(counts) < 2:
        found = ", ".join(f"{c} ({n} tile{'s' if n != 1 else ''})" for c, n in counts.items()) or "none"
        raise InputError(f"training needs labelled tiles of at least two classes; {where} hold only {found}. "
                         "Annotate the other tissue types (e.g. stroma, background) as well")


def small_class_warnings(labelled: pd.DataFrame, split: np.ndarray) -> list[str]:
    """One warning per class with fewer than :data:`MIN_CLASS_TILES` tiles or none in the validation split."""
    labels = labelled["label"].astype(str).to_numpy()
    out = []
    for c in sorted(set(labels)):
        n = int((labels == c).sum())
        n_val = int(((labels == c) & (split == "val")).sum())
        if n_val == 0:
            out.append(f"class {c!r} has {n} labelled tile{'s' if n != 1 else ''}, none in the validation "
                       "split: the validation accuracy says nothing about it; label more of it")
        elif n < MIN_CLASS_TILES:
            out.append(f"class {c!r} has {n} labelled tiles, {n_val} in the validation split: fewer than "
                       f"{MIN_CLASS_TILES}, so its validation accuracy means little; label more of it")
    return out


def split_tiles(tiles: pd.DataFrame, val_fraction: float, seed: int) -> np.ndarray:
    """Stratified split -> (N,) array of "train"/"val". Each class with >= 2 tiles gets >= 1 in each."""
    rng = np.random.default_rng(seed)
    split = np.full(len(tiles), "train", dtype=object)
    labels = tiles["label"].astype(str).to_numpy()
    for c in sorted(set(labels)):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        else:
            n_val = 0
        split[idx[:n_val]] = "val"
    return split


def train_classifier(tiles: pd.DataFrame, out_dir: str | Path, config: TrainConfig | None = None, *,
                     weights: str | Path | None = None, sources: dict[str, SlideSource] | None = None,
                     tile_meta: dict | None = None, encoder: EncoderSpec | None = None,
                     on_epoch: Callable[[dict], None] | None = None,
                     on_warning: Callable[[str], None] | None = None) -> TrainResult:
    """Train on the labelled rows of ``tiles`` and write the classifier folder.

    Parameters
    ----------
    tiles : tiles tables (one or more slides) with a ``label`` column; unlabelled rows are ignored.
    weights : ResNet50 weights to start from (ImageNet .pth/.safetensors); None = random init.
    encoder : the tile encoder (:func:`~gistrisk.pathology.encoders.resolve_encoder`, its weights in
        ``encoder.weights``); None = the paper's ResNet50 from ``weights``.
    tile_meta : tile_size / mpp to record in the header (default: from the tiles table).
    on_epoch : called with each epoch's history row (progress reporting).
    on_warning : called with each warning about the training data (default: logged).
    """
    cfg = config or TrainConfig()
    if encoder is not None and weights is not None and str(weights) != encoder.weights:
        raise InputError(f"two start weights given: {weights} and the encoder's {encoder.weights}")
    spec = encoder or resolve_encoder(RESNET50, weights)
    weights = spec.weights
    mean, std = cfg.mean or spec.mean, cfg.std or spec.std  # None: the encoder's
    cfg = dataclasses.replace(cfg, mean=mean, std=std)
    out_dir = Path(out_dir)
    labelled = tiles[tiles["label"].notna()].reset_index(drop=True)
    unknown = sorted(set(labelled["label"].astype(str)) - set(cfg.classes))
    if unknown:
        raise InputError(f"tile labels {unknown} are not classifier classes {list(cfg.classes)}")
    if len(labelled) < 2:
        raise InputError(f"need at least 2 labelled tiles to train, found {len(labelled)} "
                         "(tile the slides with --annotations)")
    check_classes(labelled, "the tiles of slide(s) " + ", ".join(sorted(set(labelled["slide_id"].astype(str)))))
    meta = tile_meta or _tile_meta(tiles)
    if meta.get("mpp") is None:
        raise InputError("the tiles do not record the resolution (target mpp) they were cut at; tile the slides "
                         "with `gistrisk pathology tiles`")
    # refuse now what load_classifier would refuse after hours of training
    check_header({"schema": HEADER_SCHEMA, "architecture": spec.architecture, "classes": list(cfg.classes),
                  "tile_size": meta["tile_size"], "mpp": meta["mpp"], "mean": list(mean), "std": list(std),
                  "stain": cfg.stain.to_dict(), "encoder": spec.to_dict()}, str(out_dir / "classifier.safetensors"))
    split = split_tiles(labelled, cfg.val_fraction, cfg.seed)
    if not (split == "val").any():
        raise InputError("no validation tiles: every class has a single tile; label more tiles")
    warnings = small_class_warnings(labelled, split)
    for w in warnings:
        (on_warning or log.warning)(w)
    labelled = labelled.assign(split=split)
    balance = {s: {c: int(((labelled["label"] == c) & (labelled["split"] == s)).sum()) for c in cfg.classes}
               for s in ("train", "val")}
    log.info("class balance: %s", balance)

    device = resolve_device(cfg.device)
    workers = cfg.num_workers if cfg.num_workers >= 0 else (4 if device.type == "cuda" else 0)
    train_df = labelled[labelled["split"] == "train"]
    val_df = labelled[labelled["split"] == "val"]
    # fitted on all tiles of each slide (labelled or not), as feature extraction does
    stain = fit_stain(tiles, sources, cfg.stain)
    for slide, norm in stain.items():
        if norm.fallback_:
            warnings.append(f"slide {slide}: {norm.fallback_}")
            (on_warning or log.warning)(warnings[-1])
    train_ds = TileDataset(train_df, sources, cfg.classes, augment_seed=cfg.seed if cfg.augment else None,
                           stain=stain)
    val_ds = TileDataset(val_df, sources, cfg.classes, stain=stain)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
                              num_workers=workers, drop_last=False)
    val_loader = DataLoader(val_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=workers)

    with _deterministic(cfg.seed):
        model = build_model(len(cfg.classes), seed=cfg.seed, encoder=spec)
        init = load_backbone(model, weights) if weights else {"weights": None, "head_loaded": False}
        if not weights:
            log.warning(f"no --weights given: {spec.name} starts from random initialisation (weights cannot be "
                        "downloaded offline; pass the encoder's weights file for real training)")
        if cfg.freeze_encoder:  # only the head learns
            for name, p in model.named_parameters():
                p.requires_grad_(name.startswith("fc."))
        # torch's stubs lack the to(device=..., memory_format=...) overload that Module.to accepts
        model = model.to(device=device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                               weight_decay=cfg.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" \
            else contextlib.nullcontext
        history: list[dict] = []
        # accuracy, epoch, state, confusion
        best: tuple[float, int, dict[str, torch.Tensor] | None, np.ndarray | None] = (-1.0, 0, None, None)
        recal = (cfg.recalibrate_bn if cfg.recalibrate_bn is not None else not weights) and not cfg.freeze_encoder
        for epoch in range(1, cfg.epochs + 1):
            train_ds.epoch = epoch
            model.train()
            if cfg.freeze_encoder:  # normalisation statistics and dropout of the encoder as in inference
                model.eval()
                model.fc.train()
            total, n_seen, n_right = 0.0, 0, 0
            for xb, yb in train_loader:
                x = to_input(xb, mean, std, device)
                y = yb.to(device)
                with amp():
                    logits, _ = model(x)
                    loss = loss_fn(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(y)
                n_seen += len(y)
                n_right += int((logits.argmax(1) == y).sum())
            if recal:
                recalibrate_batchnorm(model, train_loader, mean, std, device, amp)
            conf = _confusion(model, val_loader, len(cfg.classes), mean, std, device, amp)
            acc = float(np.trace(conf) / max(conf.sum(), 1))
            row = {"epoch": epoch, "train_loss": total / n_seen, "train_accuracy": n_right / n_seen,
                   "val_accuracy": acc}
            history.append(row)
            if on_epoch:
                on_epoch(row)
            if acc > best[0]:
                best = (acc, epoch, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}),
                        conf)
    train_ds.close()
    val_ds.close()
    best_acc, best_epoch, state, best_conf = best
    assert state is not None and best_conf is not None  # epochs >= 1 and the first accuracy (>= 0) beats -1
    final = model_with_weights(state, len(cfg.classes), spec)

    header = {
        "classes": list(cfg.classes), "tile_size": int(meta["tile_size"]), "mpp": float(meta["mpp"]),
        "mean": list(mean), "std": list(std), "stain": cfg.stain.to_dict(), "best_epoch": best_epoch,
        "best_val_accuracy": best_acc, "train_config": cfg.to_dict(), "init": init, "encoder": spec.to_dict(),
        "n_tiles": {"train": int(len(train_df)), "val": int(len(val_df))},
        "class_balance": balance, "warnings": warnings,
        "versions": provenance()["versions"],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    save_classifier(out_dir / "classifier.safetensors", final, header)
    write_table(out_dir / "history.csv", pd.DataFrame(history))
    cm = pd.DataFrame(best_conf, index=pd.Index(cfg.classes, name="true"), columns=list(cfg.classes))
    write_table(out_dir / "confusion_matrix.csv", cm, index=True)
    write_json(out_dir / "confusion_matrix.json", {"classes": list(cfg.classes), "rows": "true",
                                                   "columns": "predicted", "epoch": best_epoch,
                                                   "matrix": best_conf.tolist()})
    write_json(out_dir / "class_balance.json", balance)
    write_table(out_dir / "split.parquet", labelled[["slide_id", "slide", "x", "y", "label", "split"]])
    stain_fit = {k: v.fitted() for k, v in stain.items()}
    write_json(out_dir / "provenance.json", provenance(cfg.to_dict(), weights=str(weights) if weights else None,
                                                       encoder=spec.to_dict(),
                                                       device=str(device), tile_meta=meta, stain_fit=stain_fit,
                                                       best_epoch=best_epoch, best_val_accuracy=best_acc,
                                                       warnings=warnings))
    return TrainResult(best_epoch, best_acc, history, best_conf, balance, final.eval(), warnings)


def recalibrate_batchnorm(model: torch.nn.Module, loader: DataLoader, mean: tuple[float, float, float],
                          std: tuple[float, float, float], device: torch.device,
                          amp: Callable = contextlib.nullcontext) -> None:
    """Replace every BatchNorm layer's running mean/variance by their average over ``loader``.

    Forward passes in training mode without gradients, with cumulative (momentum None) averaging;
    the weights are untouched. mean/std: the input normalisation (RGB, 0-1 scale) training uses.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad(), amp():
        for xb, _ in loader:
            model(to_input(xb, mean, std, device))
    for m, mom in zip(bns, momenta):
        m.momentum = mom


def _confusion(model: Classifier, loader: DataLoader, k: int, mean: tuple[float, float, float],
               std: tuple[float, float, float], device: torch.device, amp: Callable) -> np.ndarray:
    """Validation confusion counts (k, k): rows true, columns predicted."""
    conf = np.zeros((k, k), np.int64)
    model.eval()
    with torch.inference_mode(), amp():
        for xb, yb in loader:
            logits, _ = model(to_input(xb, mean, std, device))
            pred = logits.float().argmax(1).cpu().numpy()
            np.add.at(conf, (yb.numpy(), pred), 1)
    return conf


def _tile_meta(tiles: pd.DataFrame) -> dict:
    sizes = tiles["tile_size"].unique()
    if len(sizes) != 1:
        raise InputError(f"tiles of different sizes {sorted(sizes.tolist())} cannot train one classifier")
    mpp = tiles.attrs.get("gistrisk", {}).get("config", {}).get("target_mpp")
    return {"tile_size": int(sizes[0]), "mpp": float(mpp) if mpp is not None else None}


@contextlib.contextmanager
def _deterministic(seed: int):
    """Seed torch and ask for deterministic kernels; restore the global settings afterwards."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev)
            torch.backends.cudnn.benchmark = prev_bench
