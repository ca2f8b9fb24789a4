"""Per-tile embeddings of a slide, kept in one HDF5 file per slide (the layout CLAM and TRIDENT use).

``<slide_id>.h5`` holds

- ``coords`` (N, 2) int64: level-0 x, y of each tile's top-left corner; attributes ``patch_size``
  (tile side in px at the target resolution), ``patch_size_level0``, ``patch_level`` (the pyramid
  level tiles are read from), ``target_mpp`` and ``level0_mpp``;
- ``features`` (N, D) float32: the encoder's embedding of each tile;
- ``probs`` (N, C) float32: the tissue classifier's class probabilities;
- file attributes: ``classes`` (C names), ``slide_id``, ``patient_id``, ``slide``, ``format`` and
  ``schema``, and ``provenance`` (JSON: versions, the classifier's hash, encoder, tile and stain
  settings).

A file is written once, whole or not at all (a temporary file renamed into place). Slide features,
another tumour threshold, clusters or attention pooling are computed from these files without running
the network (:func:`gistrisk.pathology.runs.aggregate_embeddings`).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from gistrisk.atomic import atomic_path
from gistrisk.errors import InputError

FORMAT = "gistrisk.tile_embeddings"
SCHEMA = 1
SUFFIX = ".h5"


@dataclass
class SlideEmbeddings:
    """One slide's stored tiles: coords (N, 2) int64 level-0 x, y; features (N, D) float32; probs
    (N, C) float32; classes (C,); the slide's ids; provenance (its ``parameters`` say how the
    embeddings were made); path of the file."""

    coords: np.ndarray
    features: np.ndarray
    probs: np.ndarray
    classes: list[str]
    slide_id: str
    patient_id: str
    slide: str
    provenance: dict[str, Any]
    path: Path

    @property
    def parameters(self) -> dict[str, Any]:
        return self.provenance.get("parameters") or {}


def write_embeddings(path: str | Path, tiles: pd.DataFrame, features: np.ndarray, probs: np.ndarray, *,
                     classes: list[str], slide_id: str, patient_id: str, slide: str, target_mpp: float,
                     level0_mpp: float | None, provenance: dict[str, Any]) -> Path:
    """Write one slide's embeddings atomically.

    tiles: the slide's tiles table (``x``, ``y``, ``size0``, ``level``, ``tile_size``), rows in the
    order of ``features`` (N, D) and ``probs`` (N, C).
    """
    n = len(tiles)
    if features.shape[0] != n or probs.shape[0] != n or probs.shape[1] != len(classes):
        raise ValueError(f"embeddings of {n} tiles: features {features.shape}, probs {probs.shape}, "
                         f"{len(classes)} classes")
    path = Path(path)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        coords = f.create_dataset("coords", data=tiles[["x", "y"]].to_numpy(np.int64).reshape(n, 2))
        coords.attrs["patch_size"] = int(tiles["tile_size"].iloc[0]) if n else 0
        coords.attrs["patch_size_level0"] = int(tiles["size0"].iloc[0]) if n else 0
        coords.attrs["patch_level"] = int(tiles["level"].iloc[0]) if n else 0
        coords.attrs["target_mpp"] = float(target_mpp)
        coords.attrs["level0_mpp"] = float(level0_mpp) if level0_mpp is not None else np.nan
        f.create_dataset("features", data=np.asarray(features, np.float32))
        f.create_dataset("probs", data=np.asarray(probs, np.float32))
        f.attrs["classes"] = np.array(classes, dtype=h5py.string_dtype())
        f.attrs["slide_id"], f.attrs["patient_id"], f.attrs["slide"] = str(slide_id), str(patient_id), str(slide)
        f.attrs["format"], f.attrs["schema"] = FORMAT, SCHEMA
        f.attrs["provenance"] = json.dumps(provenance, default=str)
    return path


def read_embeddings(path: str | Path) -> SlideEmbeddings:
    """One slide's embeddings file -> :class:`SlideEmbeddings`; InputError naming the file if it is not one."""
    path = Path(path)
    with _checked(path) as f:
        emb = SlideEmbeddings(coords=f["coords"][:], features=f["features"][:], probs=f["probs"][:],
                              classes=[str(c) for c in f.attrs["classes"]], slide_id=str(f.attrs["slide_id"]),
                              patient_id=str(f.attrs["patient_id"]), slide=str(f.attrs["slide"]),
                              provenance=json.loads(f.attrs["provenance"]), path=path)
    _check_shapes(emb.features, emb.probs, emb.classes, path, coords=emb.coords)
    return emb


def read_tile_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Only what pooling reads of a slide's embeddings file: features (N, D), probs (N, C) and the C classes
    (attention pooling reads each file once per fold: the rest costs as much again); checked as
    :func:`read_embeddings` checks them."""
    path = Path(path)
    with _checked(path) as f:
        features, probs = f["features"][:], f["probs"][:]
        classes = [str(c) for c in f.attrs["classes"]]
    _check_shapes(features, probs, classes, path)
    return features, probs, classes


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Errors reading ``path`` inside the block (other than InputError) become InputError naming it."""
    try:
        yield
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise InputError(f"not an embeddings file ({type(e).__name__}: {e})", file=str(path)) from e


@contextlib.contextmanager
def _checked(path: Path, *, schema: bool = True) -> Iterator[h5py.File]:
    """The file opened, its format (and ``schema``) checked; reading errors inside become InputError naming it."""
    with _reading(path), h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise InputError(f"not an embeddings file of `gistrisk pathology features` (format "
                             f"{f.attrs.get('format')!r})", file=str(path))
        if schema and f.attrs.get("schema") != SCHEMA:
            raise InputError(f"embeddings schema {f.attrs.get('schema')!r} is not supported (this version "
                             f"reads {SCHEMA})", file=str(path))
        yield f


def _check_shapes(features: np.ndarray, probs: np.ndarray, classes: list[str], path: Path,
                  coords: np.ndarray | None = None) -> None:
    n = len(features)
    if (coords is not None and coords.shape != (n, 2)) or features.ndim != 2 or probs.shape != (n, len(classes)):
        shapes = [f"coords {coords.shape}"] if coords is not None else []
        shapes += [f"features {features.shape}", f"probs {probs.shape} for {len(classes)} classes"]
        raise InputError("embeddings file with inconsistent shapes: " + ", ".join(shapes), file=str(path))


def read_ids(path: str | Path) -> tuple[str, str]:
    """(patient_id, slide_id) of an embeddings file, read from its attributes only (no tile data);
    InputError naming the file if it is not one. Remembered per file (path, inode, size, modification time;
    a rewrite is a new file, renamed into place): attention pooling maps a cohort's files to patients once
    per fold."""
    path = Path(path)
    with _reading(path):
        st = path.stat()
    return _ids(path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=1 << 16)
def _ids(path: Path, version: tuple[int, int, int, int]) -> tuple[str, str]:
    with _checked(path, schema=False) as f:
        return str(f.attrs["patient_id"]), str(f.attrs["slide_id"])


def embedding_files(paths: str | Path | list[str | Path]) -> list[Path]:
    """Folders (their ``*.h5``, sorted) and files -> the embeddings files; InputError if there are none."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            found = sorted(p.glob(f"*{SUFFIX}"))
            if not found:
                raise InputError(f"no embeddings (*{SUFFIX}) in this folder; `gistrisk pathology features` writes "
                                 "them into <out stem>.embeddings/", file=str(p))
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError("embeddings file or folder not found", file=str(p))
    if not out:
        raise InputError("no embeddings given")
    return out
