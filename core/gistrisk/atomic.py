"""Atomic writes: a file appears whole or not at all (write to a temp file, then rename)."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # never at run time: pandas takes about 0.6 s to import (measured) and the
    # pandas-free writers (radiomics tables, batch caches) use this module
    import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2,
               default: Callable[[Any], Any] | None = None, allow_nan: bool = True) -> None:
    """Write ``obj`` as JSON (numpy scalars/arrays and paths converted unless ``default`` is given).

    ``allow_nan=False`` raises ValueError on NaN/infinity instead of writing non-standard JSON."""
    text = json.dumps(obj, indent=indent, sort_keys=False, default=default or json_default, allow_nan=allow_nan)
    write_text(path, text + "\n")


def write_table(path: str | os.PathLike, df: pd.DataFrame, index: bool = False) -> None:
    """Write a DataFrame as CSV or Parquet (by suffix), atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(tmp, index=index)
        else:
            df.to_csv(tmp, index=index)


def write_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """One row (keys = header) as :func:`write_table` writes it; CSV byte for byte without importing pandas
    (0.4 s: the one-case command's whole extraction can take under a second), Parquet through pandas."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        import pandas as pd  # noqa: PLC0415 - Parquet only; see row_imports

        write_table(path, pd.DataFrame([row]))
        return
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator=os.linesep)  # pandas' defaults: minimal quoting, os.linesep
        writer.writerow(row)
        writer.writerow([_csv_cell(v) for v in row.values()])


def row_imports(path: str | os.PathLike) -> tuple[str, ...]:
    """Modules :func:`write_row` imports for ``path`` (a caller with idle time can import them first)."""
    return () if Path(path).suffix.lower() == ".csv" else ("pandas",)


def _csv_cell(v: Any) -> Any:
    """A value as pandas' ``to_csv`` writes it: floats in shortest round-trip form, NaN and None empty."""
    if isinstance(v, (float, np.floating)):
        return "" if v != v else repr(float(v))
    return v


def json_default(o: Any) -> Any:
    """numpy scalars and arrays, and paths, as JSON types."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
