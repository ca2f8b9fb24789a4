"""The Cohort section: a cases table sent to ``gistrisk radiomics extract --manifest`` in the background.

Slicer runs the command with ``qt.QProcess`` (the GUI stays responsive);
:class:`SubprocessRunner` runs the same command with :mod:`subprocess` for
scripts and tests. Both read progress with :class:`ProgressParser`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

import gistrisk
from gistrisk.atomic import write_table
from gistrisk.errors import InputError

from .mrml_convert import node_label, segment_to_sitk, volume_to_sitk

MANIFEST_COLUMNS = ("patient_id", "image", "mask", "label")


@dataclass
class CohortCase:
    """One row of the cases table: files on disk, or nodes in the scene (exported on demand)."""

    patient_id: str
    image: str | None = None
    mask: str | None = None
    label: int | None = None
    volume: Any = None
    segmentation: Any = None
    segment_id: str | None = None


def export_scene_case(case: CohortCase, folder: str | Path) -> CohortCase:
    """Write a scene case's CT and tumour mask as compressed NRRD; returns the on-disk case."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = volume_to_sitk(case.volume)
    mask = segment_to_sitk(case.segmentation, case.segment_id or "", case.volume)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", case.patient_id) or "case"
    img_path, mask_path = folder / f"{safe}_image.nrrd", folder / f"{safe}_mask.nrrd"
    sitk.WriteImage(image, str(img_path), True)
    sitk.WriteImage(mask, str(mask_path), True)
    return CohortCase(case.patient_id, str(img_path), str(mask_path), 1)


def write_manifest(cases: list[CohortCase], path: str | Path, export_folder: str | Path | None = None) -> Path:
    """Write the manifest CSV (patient_id, image, mask, label); scene cases are exported first."""
    if not cases:
        raise InputError("the cases table is empty: add cases first")
    path = Path(path)
    rows = []
    seen: set[str] = set()
    for case in cases:
        if case.patient_id in seen:
            raise InputError("duplicate patient_id in the cases table", patient=case.patient_id)
        seen.add(case.patient_id)
        if case.volume is not None:
            case = export_scene_case(case, export_folder or path.parent / "scene_cases")
        if not case.image or not case.mask:
            raise InputError("case has no image or no mask", patient=case.patient_id)
        rows.append({"patient_id": case.patient_id, "image": case.image, "mask": case.mask,
                     "label": case.label if case.label is not None else ""})
    write_table(path, pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)))
    return path


def cases_from_table(df: Any) -> list[CohortCase]:
    """Cases from a cases table (a DataFrame from the table node), checking the columns."""
    missing = [c for c in ("patient_id", "image", "mask") if c not in df.columns]
    if missing:
        raise InputError(f"cases table lacks column(s) {missing}; expected {list(MANIFEST_COLUMNS)}")
    cases = []
    for _, r in df.iterrows():
        label = r.get("label")
        label = int(float(label)) if label not in (None, "") and str(label) != "nan" else None
        cases.append(CohortCase(str(r["patient_id"]), str(r["image"]), str(r["mask"]), label))
    return cases


def extract_command(manifest: str | Path, out: str | Path, jobs: int = 1, params: str | None = None,
                    python: str | None = None) -> list[str]:
    """The batch radiomics command line (``PythonSlicer -m gistrisk ...`` inside Slicer)."""
    cmd = [python or sys.executable, "-m", "gistrisk", "radiomics", "extract", "--manifest", str(manifest),
           "--out", str(out), "--jobs", str(int(jobs))]
    if params:
        cmd += ["--params", str(params)]
    return cmd


class ProgressParser:
    """Reads progress from the command's output: ``n/N`` counters (tqdm, logs) or ``NN%``."""

    _COUNT = re.compile(r"(?<![\d.])(\d+)\s*/\s*(\d+)(?![\d.])")
    _PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")

    def __init__(self) -> None:
        self.fraction = 0.0

    def feed(self, line: str) -> float | None:
        """Update from one output line; returns the new fraction in [0, 1] when the line had one."""
        m = self._COUNT.search(line)
        value = None
        if m and int(m.group(2)) > 0 and int(m.group(1)) <= int(m.group(2)):
            value = int(m.group(1)) / int(m.group(2))
        else:
            p = self._PERCENT.search(line)
            if p and float(p.group(1)) <= 100:
                value = float(p.group(1)) / 100.0
        if value is not None:
            self.fraction = max(self.fraction, value)  # never go backwards on interleaved lines
            return self.fraction
        return None


@dataclass
class RunState:
    """What a background run has done: status, exit code, output lines, progress."""

    status: str = "idle"  # idle | running | finished | failed | cancelled
    returncode: int | None = None
    lines: list[str] = field(default_factory=list)
    fraction: float = 0.0


class SubprocessRunner:
    """Run a command in the background with progress and cancel (the non-Qt twin of the widget's QProcess)."""

    def __init__(self, command: list[str], on_progress: Callable[[float], None] | None = None,
                 env: dict[str, str] | None = None, cwd: str | None = None):
        self.command, self.on_progress = command, on_progress
        self.env, self.cwd = env, cwd
        self.state = RunState()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._parser = ProgressParser()

    def start(self) -> SubprocessRunner:
        env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, bufsize=1, env=env, cwd=self.cwd)
        self.state.status = "running"
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self._proc.stdout:  # closed at the end of the output: a Slicer session runs many cohorts
            for raw in self._proc.stdout:
                # tqdm redraws with carriage returns: each piece is a progress line.
                for line in raw.replace("\r", "\n").splitlines():
                    if not line.strip():
                        continue
                    self.state.lines.append(line)
                    f = self._parser.feed(line)
                    if f is not None:
                        self.state.fraction = f
                        if self.on_progress:
                            self.on_progress(f)

    def cancel(self) -> None:
        """Stop the run (terminate, then kill if it does not exit within 5 s)."""
        if self._proc is not None and self._proc.poll() is None:
            self.state.status = "cancelled"
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def wait(self, timeout: float | None = None) -> RunState:
        """Wait for the end; returns the final state."""
        assert self._proc is not None, "start() first"
        rc = self._proc.wait(timeout=timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.state.returncode = rc
        if self.state.status != "cancelled":
            self.state.status = "finished" if rc == 0 else "failed"
            if rc == 0:
                self.state.fraction = 1.0
        return self.state

    def error_text(self, n: int = 10) -> str:
        """The last ``n`` output lines (what to show when the run failed)."""
        return "\n".join(self.state.lines[-n:])


def load_features(path: str | Path) -> Any:
    """Read the cohort feature table the command wrote (Parquet or CSV)."""
    p = Path(path)
    if not p.is_file():
        raise InputError("the batch run wrote no feature table", file=str(p))
    return pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)


def scene_case(volume: Any, segmentation: Any, segment_id: str, patient_id: str | None = None) -> CohortCase:
    """A cases-table row for nodes in the scene."""
    return CohortCase(patient_id or node_label(volume), volume=volume, segmentation=segmentation,
                      segment_id=segment_id)


def child_env() -> dict[str, str]:
    """Environment additions so the child process imports the same gistrisk as this one."""
    root = str(Path(gistrisk.__file__).resolve().parent.parent)
    old = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": root + (os.pathsep + old if old else ""), "PYTHONUNBUFFERED": "1"}


def failure_report(out: str | Path, n: int = 20) -> str:
    """The batch's recorded failures (``<stem>.failures.csv`` beside the output), one line per case."""
    out = Path(out)
    path = out.with_name(out.stem + ".failures.csv")
    if not path.is_file():
        return ""
    df = pd.read_csv(path)
    lines = [f"{r.get('patient_id', '?')}: {r.get('message', '')}" for _, r in df.head(n).iterrows()]
    more = len(df) - n
    return "\n".join(lines + ([f"... and {more} more (see {path})"] if more > 0 else []))
