"""Attention pooling of a patient's tumour-tile embeddings into one survival risk: gated attention-based
multiple-instance learning (Ilse, Tomczak & Welling 2018, "Attention-based deep multiple instance
learning", the gated variant) trained with the Cox partial likelihood (Breslow ties) over patients.

The survival pipeline (:class:`gistrisk.survival.pipeline.ModalityPipeline` with ``aggregation: abmil``)
trains it on the training rows of each fold only and fits the modality's Cox on its risk. This module:

- finds each patient's embeddings files for a slide-feature table (:func:`bag_files`: the
  ``<table stem>.embeddings/`` folder beside the table, else the files its provenance lists; every slide of
  a patient is pooled into one bag);
- reads the tumour tiles of a bag with the features' tumour rule (:func:`read_bag`), a seeded sample of at
  most ``max_tiles`` for training;
- trains (:meth:`AttentionCox.fit`, seeded, deterministic on CPU), scores (:meth:`AttentionCox.risk`,
  every tumour tile), and writes/reads the weights as safetensors bytes whose sha256 the bundle records.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
import torch
from torch import nn

from gistrisk.errors import BundleError, InputError
from gistrisk.extraction import provenance_file
from gistrisk.pathology.embeddings import SUFFIX, read_ids, read_tile_scores
from gistrisk.pathology.tumour import FeatureConfig, tumour_mask
from gistrisk.survival.config import ABMILConfig

#: the one feature the attention model gives the modality's Cox
FEATURE = "abmil_risk"
FORMAT = "gistrisk.abmil"
#: bags with fewer numbers than this (patients x tiles x D) train and score on one thread: sharing tiny
#: operations between threads costs more than it gains (80 x 56 x 12, 80 steps: 0.48 s on one thread, 3.7 s
#: on two of a loaded 2-core machine)
ONE_THREAD_BELOW = 1 << 24


# ---- bags ----------------------------------------------------------------------------------------------
def tumour_rule(X: pd.DataFrame) -> FeatureConfig:
    """The tumour-tile rule the slide table was made with (its provenance's ``feature`` settings), else the
    default (:class:`~gistrisk.pathology.tumour.FeatureConfig`)."""
    prov = _provenance(X.attrs.get("source"))
    feature = (prov.get("parameters") or {}).get("feature") or {}
    return FeatureConfig(**{k: v for k, v in feature.items() if k in ("tumour_threshold", "tumour_class")})


def bag_files(X: pd.DataFrame) -> list[list[Path]]:
    """Each row's (patient's) embeddings files, in the order of ``X``'s index (patient ids).

    ``X.attrs["source"]`` is the slide-feature table; its embeddings are the ``<stem>.embeddings/`` folder
    beside it, else the files its ``<stem>.provenance.json`` lists (``gistrisk pathology aggregate`` tables).
    InputError naming the table or the patient when there are none."""
    source = X.attrs.get("source")
    if not source:
        raise InputError("aggregation abmil reads the per-tile embeddings kept beside the slide table; give the "
                         "table as the file `gistrisk pathology features` (or `aggregate`) wrote")
    table = Path(source)
    folder = table.with_name(table.stem + ".embeddings")
    if folder.is_dir():
        files, where = sorted(folder.glob(f"*{SUFFIX}")), str(folder)
    else:
        files, where = _provenance_files(table), str(provenance_file(table))
    if not files:
        raise InputError(f"aggregation abmil needs this table's per-tile embeddings: no {folder.name}/ folder "
                         "beside it and no embeddings files in its provenance (run `gistrisk pathology features`, "
                         "which keeps them)", file=str(table))
    by_patient: dict[str, list[Path]] = {}
    for f in files:
        by_patient.setdefault(read_ids(f)[0], []).append(f)
    out = []
    for pid in X.index.astype(str):
        if pid not in by_patient:
            raise InputError(f"no embeddings file of this patient among the {len(files)} in {where}",
                             file=str(table), patient=pid)
        out.append(by_patient[pid])
    return out


def _provenance(source: str | None) -> dict[str, Any]:
    path = provenance_file(source) if source else None
    if path is None or not path.is_file():
        return {}
    try:
        prov = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"unreadable provenance file ({e})", file=str(path)) from e
    return prov if isinstance(prov, dict) else {}


def _provenance_files(table: Path) -> list[Path]:
    """The embeddings files a table's provenance lists (``features``: {slide_id: {file}}; ``aggregate``:
    [{file}]), as given or relative to the table's folder; those that do not exist are left out."""
    rec = _provenance(str(table)).get("embeddings") or []
    names = [r.get("file") for r in (rec.values() if isinstance(rec, dict) else rec) if isinstance(r, dict)]
    out = []
    for name in filter(None, names):
        p = Path(name)
        for cand in (p, table.parent / p, table.parent / p.name):
            if cand.is_file():
                out.append(cand)
                break
    return out


def read_bag(files: Sequence[Path], rule: FeatureConfig, *, patient: str, max_tiles: int | None = None,
             seed: int = 0) -> np.ndarray:
    """A patient's tumour tiles pooled over their slides, shape (n, D) float32; with ``max_tiles`` a sample of
    at most that many, seeded by ``seed`` and the patient id (the same tiles whichever fold the patient is in).
    InputError naming the patient when no tile passes the rule or the slides differ in embedding size."""
    parts = []
    for f in files:
        features, probs, classes = read_tile_scores(f)
        if rule.tumour_class not in classes:
            raise InputError(f"no class {rule.tumour_class!r} among {classes}", file=str(f), patient=patient)
        parts.append(features[tumour_mask(probs, classes, rule)])
    if len({p.shape[1] for p in parts}) > 1:
        raise InputError(f"the patient's slides differ in embedding size ({sorted({p.shape[1] for p in parts})})",
                         file=str(files[0]), patient=patient)
    bag = np.concatenate(parts).astype(np.float32)
    if not len(bag):
        raise InputError(f"no tumour tile (probability >= {rule.tumour_threshold}) in the patient's "
                         f"{len(files)} slide(s); attention pooling has nothing to pool", file=str(files[0]),
                         patient=patient)
    if max_tiles is not None and len(bag) > max_tiles:
        rng = np.random.default_rng([seed, zlib.crc32(patient.encode("utf-8"))])
        bag = bag[np.sort(rng.choice(len(bag), max_tiles, replace=False))]
    return bag


# ---- the network ---------------------------------------------------------------------------------------
class GatedAttentionMIL(nn.Module):
    """Tiles (B, N, D) and a mask (B, N) -> risk (B,) and attention (B, N).

    h = ReLU(W1 x) (hidden); attention a_i = softmax_i(w^T (tanh(V h_i) * sigmoid(U h_i))) over the bag's tiles;
    risk = r^T sum_i a_i h_i."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.embed = nn.Linear(dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.attn_v = nn.Linear(hidden, hidden)
        self.attn_u = nn.Linear(hidden, hidden)
        self.attn_w = nn.Linear(hidden, 1)
        self.risk = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.drop(torch.relu(self.embed(x)))
        logits = self.attn_w(torch.tanh(self.attn_v(h)) * torch.sigmoid(self.attn_u(h))).squeeze(-1)
        a = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1)
        return self.risk((a.unsqueeze(-1) * h).sum(1)).squeeze(-1), a


def cox_loss(risk: torch.Tensor, time: np.ndarray, event: np.ndarray) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties) per event; risk (n,), time and event (n,).

    Rows are picked with ``index_select``, whose gradient on the CPU (``index_add_``) adds in index order:
    deterministic with any number of threads, where an indexing gradient (``index_put_`` accumulating) may
    not be without torch's process-wide determinism switch."""
    order = np.argsort(-time, kind="stable")
    t = time[order]
    # each patient's risk set ends at the last (in descending time) patient with the same time
    last = np.searchsorted(-t, -t, side="right") - 1
    events = torch.as_tensor(np.flatnonzero(event[order]))
    r = risk.index_select(0, torch.as_tensor(order))
    log_risk_set = torch.logcumsumexp(r, dim=0).index_select(0, torch.as_tensor(last))
    return -(r.index_select(0, events) - log_risk_set.index_select(0, events)).sum() / max(len(events), 1)


@contextlib.contextmanager
def _threads(numbers: int) -> Iterator[None]:
    """One torch thread inside the block when the work is smaller than :data:`ONE_THREAD_BELOW` numbers."""
    before = torch.get_num_threads()
    if numbers < ONE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _padded(bags: Sequence[np.ndarray], mean: np.ndarray, scale: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised bags padded to the longest: (B, N, D) and mask (B, N)."""
    n = max(len(b) for b in bags)
    x = np.zeros((len(bags), n, len(mean)), np.float32)
    mask = np.zeros((len(bags), n), bool)
    for i, b in enumerate(bags):
        x[i, : len(b)] = (b - mean) / scale
        mask[i, : len(b)] = True
    return torch.from_numpy(x), torch.from_numpy(mask)


class AttentionCox:
    """A trained attention model: weights, the training tiles' standardisation and the tumour rule.

    Attributes
    ----------
    state : dict[str, ndarray]   the network's float32 weights and ``standardise.mean`` / ``standardise.scale`` (D,)
    dim, hidden : int            embedding size D and the network's hidden size
    rule : FeatureConfig         which tiles of a slide form the bag
    details : dict               training summary (patients, events, tiles per bag, final loss)
    """

    def __init__(self, state: dict[str, np.ndarray], dim: int, hidden: int, rule: FeatureConfig,
                 details: dict[str, Any] | None = None):
        self.state, self.dim, self.hidden, self.rule = state, int(dim), int(hidden), rule
        self.details = details or {}
        self._bytes: bytes | None = None

    @classmethod
    def fit(cls, bags: Sequence[np.ndarray], time: np.ndarray, event: np.ndarray, config: ABMILConfig, *,
            seed: int, rule: FeatureConfig) -> AttentionCox:
        """Train on ``bags`` (each (n_i, D)) with outcomes ``time``, ``event`` (n,): full-batch AdamW on the
        Cox loss for ``config.epochs`` steps, seeded (``seed``) and deterministic (every operation has a
        deterministic CPU kernel: see :func:`cox_loss`)."""
        time, event = np.asarray(time, float), np.asarray(event, int)
        tiles = np.concatenate(bags)
        mean = tiles.mean(axis=0)
        scale = tiles.std(axis=0)
        scale = np.where(scale > 1e-6, scale, 1.0).astype(np.float32)
        x, mask = _padded(bags, mean, scale)
        with torch.random.fork_rng(devices=[]), _threads(x.numel()):
            torch.manual_seed(seed)
            net = GatedAttentionMIL(tiles.shape[1], config.hidden, config.dropout)
            opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
            net.train()
            for _ in range(config.epochs):
                opt.zero_grad()
                loss = cox_loss(net(x, mask)[0], time, event)
                loss.backward()
                opt.step()
        state = {k: v.detach().numpy().astype(np.float32) for k, v in net.state_dict().items()}
        state["standardise.mean"], state["standardise.scale"] = mean.astype(np.float32), scale
        sizes = np.array([len(b) for b in bags])
        details = {"n_train": len(bags), "events_train": int(event.sum()), "epochs": config.epochs,
                   "final_loss": float(loss.detach()),
                   "tiles": {"median": float(np.median(sizes)), "min": int(sizes.min()), "max": int(sizes.max())}}
        return cls(state, tiles.shape[1], config.hidden, rule, details)

    def _network(self) -> GatedAttentionMIL:
        net = GatedAttentionMIL(self.dim, self.hidden)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in self.state.items() if not k.startswith("standardise.")})
        return net.eval()

    def risk(self, bags: Sequence[np.ndarray]) -> np.ndarray:
        """Risk of each bag (every tile of it), shape (len(bags),) float64."""
        net = self._network()
        mean, scale = self.state["standardise.mean"], self.state["standardise.scale"]
        out = np.empty(len(bags))
        with torch.no_grad(), _threads(max((b.size for b in bags), default=0)):
            for i, b in enumerate(bags):
                x, mask = _padded([b], mean, scale)
                out[i] = float(net(x, mask)[0][0])
        return out

    def frame(self, X: pd.DataFrame) -> pd.DataFrame:
        """The risk of each patient of a slide table ``X`` (index patient_id; its embeddings found by
        :func:`bag_files`), as the one-column frame the modality's Cox reads: ``abmil_risk`` (n,)."""
        bags = []
        for pid, files in zip(X.index.astype(str), bag_files(X)):
            bag = read_bag(files, self.rule, patient=pid)
            if bag.shape[1] != self.dim:
                raise InputError(f"tile embeddings of size {bag.shape[1]}, the model was trained on {self.dim} "
                                 "(another encoder?)", file=str(files[0]), patient=pid)
            bags.append(bag)
        out = pd.DataFrame({FEATURE: self.risk(bags)}, index=X.index)
        out.attrs.update(X.attrs)
        return out

    # ---- weights file -----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The weights as safetensors bytes (the same bytes every call)."""
        if self._bytes is None:
            tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sorted(self.state.items())}
            self._bytes = safetensors.torch.save(tensors, metadata={"format": FORMAT})
        return self._bytes

    def record(self, file: str) -> dict[str, Any]:
        """What the bundle keeps of the model beside its weights file ``file`` (name, sha256, sizes, rule)."""
        return {"file": file, "sha256": hashlib.sha256(self.to_bytes()).hexdigest(), "dim": self.dim,
                "hidden": self.hidden, "tumour_rule": dataclasses.asdict(self.rule),
                "tensors": {k: list(v.shape) for k, v in sorted(self.state.items())}, "training": self.details}

    @classmethod
    def load(cls, directory: Path, record: dict[str, Any]) -> AttentionCox:
        """The model of a bundle record (:meth:`record`) and its weights file in ``directory``; BundleError
        when the file is missing, differs from the recorded sha256, or holds other or non-finite tensors."""
        name = str(record["file"])
        path = Path(directory) / name
        if Path(name).name != name:
            raise BundleError(f"{directory}: the attention weights file {name!r} must lie beside model.json")
        if not path.is_file():
            raise BundleError(f"{path}: missing; the model's attention pooling needs its weights file, which "
                              "`gistrisk fit` writes beside model.json (copy the whole bundle folder)")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != record["sha256"]:
            raise BundleError(f"{path}: sha256 differs from the one model.json records: the weights were changed "
                              "or belong to another model")
        try:
            tensors = safetensors.torch.load(data)
        except Exception as e:  # noqa: BLE001 - any unreadable file is one clear bundle error
            raise BundleError(f"{path}: not a safetensors weights file ({e})") from e
        shapes = {k: list(v.shape) for k, v in sorted(tensors.items())}
        if shapes != record["tensors"]:
            raise BundleError(f"{path}: tensors {shapes} differ from the bundle's record {record['tensors']}")
        state = {k: v.numpy().astype(np.float32) for k, v in tensors.items()}
        bad = [k for k, v in state.items() if not np.isfinite(v).all()]
        if bad:
            raise BundleError(f"{path}: tensor {bad[0]!r} holds a number that is not finite")
        model = cls(state, record["dim"], record["hidden"], FeatureConfig(**record["tumour_rule"]),
                    record.get("training"))
        model._bytes = data
        return model
