"""Radiomics for one case inside Slicer, with progress and cooperative cancel.

The features come from ``gistrisk.radiomics.extract_case`` (the same code as
``gistrisk radiomics extract``), its image types shared over the available cores
where Slicer can start worker processes (:func:`case_workers`). Progress is read
from PyRadiomics' own log ("Calculating features for <image type> image"); a
cancel request is honoured at the next log record by raising :class:`Cancelled`
out of the extraction (the worker processes are stopped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gistrisk.provenance import file_sha256
from gistrisk.radiomics import extract_case, parallel
from gistrisk.radiomics.params import resolve_params

from .dependencies import radiomics_source

ProgressCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """The user cancelled the computation; nothing was written."""


@dataclass
class RadiomicsResult:
    """Features (name -> value), PyRadiomics diagnostics and provenance of one case."""

    features: dict[str, float]
    diagnostics: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)


def count_image_types(params_path: str | Path) -> int:
    """How many images (original + filtered) PyRadiomics will compute features on."""
    with open(params_path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f) or {}
    types = cfg.get("imageType") or {"Original": {}}
    n = 0
    for name, opts in types.items():
        opts = opts or {}
        if name == "Wavelet":
            n += 8 if not opts.get("start_level") and opts.get("level", 1) == 1 else 8 * int(opts.get("level", 1))
        elif name == "LoG":
            n += max(1, len(opts.get("sigma", []) or []))
        elif name == "LBP3D":
            n += 3
        else:
            n += 1
    return max(n, 1)


class _ProgressHandler(logging.Handler):
    """Turns PyRadiomics' INFO log into progress; raises Cancelled when asked to stop."""

    def __init__(self, total: int, progress: ProgressCallback | None, is_cancelled: Callable[[], bool] | None):
        super().__init__(level=logging.INFO)
        self.total, self.done = total, 0
        self.progress, self.is_cancelled = progress, is_cancelled

    def handle(self, record: logging.LogRecord) -> bool:  # emit() errors would be swallowed
        msg = record.getMessage()
        if msg.startswith("Calculating features for"):
            if self.progress:  # an image starts: the ones before it are done
                self.progress(min(self.done / self.total, 1.0), msg)
            self.done += 1
        elif msg.startswith("Computing ") and self.progress:  # a feature class starts
            self.progress(min(self.done / self.total, 1.0), msg)
        if self.is_cancelled and self.is_cancelled():
            raise Cancelled("radiomics cancelled by the user")
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - handle() does the work
        pass


#: why Apply runs in one process where worker processes cannot be forked
NO_FORK = ("worker processes need fork (Linux) in Slicer: Slicer's Python launcher cannot start spawned ones "
           "(Slicer issue #7445)")


def case_workers() -> tuple[int | None, str | None]:
    """Processes sharing one case's image types in Slicer, and why one if so: the available cores (at most
    4) where children are forked; one elsewhere, since a spawned child would run Slicer's launcher as its
    Python and never start (it would hold Apply until the start time limit)."""
    if parallel.default_start_method() == "fork":
        return None, None
    return 1, NO_FORK


def compute_radiomics(image: Any, mask: Any, params: str | Path | None = None,
                      progress: ProgressCallback | None = None,
                      is_cancelled: Callable[[], bool] | None = None) -> RadiomicsResult:
    """Extract the features of one case, reporting progress in [0, 1].

    Parameters
    ----------
    image, mask : SimpleITK images on the same grid (mask 0/1).
    params : parameter file path or shipped name; None = the GIST paper setting.

    Raises
    ------
    Cancelled when ``is_cancelled()`` turns true during the extraction.
    """
    params_path = resolve_params(params)
    logger = logging.getLogger("radiomics")
    handler = _ProgressHandler(count_image_types(params_path), progress, is_cancelled)
    old_level = logger.level
    logger.setLevel(min(old_level or logging.INFO, logging.INFO))
    logger.addHandler(handler)
    try:
        if is_cancelled and is_cancelled():
            raise Cancelled("radiomics cancelled by the user")
        workers, why = case_workers()
        case = extract_case(image, mask, params=params_path, label=1, workers=workers)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    if progress:
        progress(1.0, "radiomics done")
    prov = {"pyradiomics": radiomics_source(), "params_file": str(params_path),
            "params_sha256": file_sha256(params_path),
            "workers": case.diagnostics.get("gistrisk_parallel") or {"workers": 1, "why": why}}
    return RadiomicsResult(dict(case.features), dict(case.diagnostics), prov)
