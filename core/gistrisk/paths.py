"""Output paths checked before any work starts: never over an input, never the wrong kind of thing."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from gistrisk.errors import InputError


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_output(out: str | Path, *, kind: str, inputs: Iterable[str | Path | None] = (), option: str = "--out") -> Path:
    """Refuse an output that is one of the inputs, exists as the other kind (a folder where a file
    is written, a file where a folder is) or lies under an existing file.

    Parameters
    ----------
    out : the output path
    kind : "file" or "dir"
    inputs : the paths the command reads (None entries ignored)
    option : the option's name, for the message
    """
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be file or dir, got {kind!r}")
    out = Path(out)
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(inp)
        if _same(out, inp) or (inp.is_dir() and out.exists() and _inside(out, inp)):
            raise InputError(f"{option} {out} is also an input of this command; it would be overwritten. "
                             "Choose another output path")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"{option} {out}: {blocking} is an existing file, not a folder; give a path in a folder")
    if kind == "file" and out.is_dir():
        raise InputError(f"{option} {out} is an existing folder; give the path of the file to write inside it")
    if kind == "dir" and out.exists() and not out.is_dir():
        raise InputError(f"{option} {out} is an existing file; give a folder")
    return out


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def sidecar(out: Path, kind: str, suffix: str | None = None) -> Path:
    """``features.parquet`` -> ``features.<kind><suffix>`` beside it (the one rule for the files a
    command writes next to its output: provenance, diagnostics, failures)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}{suffix if suffix is not None else out.suffix}")
