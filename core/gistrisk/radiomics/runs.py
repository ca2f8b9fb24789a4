"""Radiomics cohort runs on the batch engine: feature extraction (``extract_cohort``) and feature
robustness under image perturbation (``perturbation_robustness``, Zwanenburg et al., Sci Rep 2019;9:614).

Both read the radiomics manifest (:mod:`gistrisk.radiomics.manifest`) and share one set-up
(:func:`run_setup`: parameter file, its hash, package versions; :func:`worker_threads`), so a case's
cache fingerprint is built the same way for both.

Robustness: each development case is extracted from its original CT and from perturbed copies
(:mod:`gistrisk.radiomics.perturb`); the ICC(1,1) over those extractions (:mod:`gistrisk.radiomics.icc`)
scores each feature. Keeping features with a high ICC is outcome-free, so it can be done before model
fitting without leaking the outcome, and it drops the texture features that move most with scanner noise
and voxel size (the usual cause of a radiomics score inflating on an external cohort).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import SimpleITK as sitk

import gistrisk
from gistrisk.batch import BatchItem, file_fingerprint, run_batch
from gistrisk.errors import InputError
from gistrisk.paths import sidecar
from gistrisk.provenance import RADIOMICS_PACKAGES, file_sha256, package_versions, provenance
from gistrisk.radiomics.extract import extract_case, extract_files
from gistrisk.radiomics.icc import icc_table
from gistrisk.radiomics.images import read_image
from gistrisk.radiomics.manifest import manifest_cases, read_manifest
from gistrisk.radiomics.masks import read_mask
from gistrisk.radiomics.params import load_params, resolve_params
from gistrisk.radiomics.perturb import PERTURBATIONS, case_rng, perturb
from gistrisk.radiomics.tables import write_json, write_rows

if TYPE_CHECKING:
    import pandas as pd

MIN_CASES = 3  # the ICC of a robustness run needs at least this many cases


@dataclass(frozen=True)
class RunSetup:
    """What a radiomics run fixes before its first case: the parameter file, its sha256, the versions of
    the packages that decide feature values."""

    params_path: Path
    params_sha256: str
    versions: dict[str, str]

    def fingerprint(self, image: str, mask: str, options: dict[str, Any]) -> str:
        """Cache fingerprint of one case: its image and mask bytes, the parameter file, ``options``, versions."""
        return file_fingerprint(image, mask, params={"params_sha256": self.params_sha256, "options": options,
                                                     "versions": self.versions})


def run_setup(params: str | Path | None) -> RunSetup:
    """Resolve and check the parameter file (a bad one stops the run before any case)."""
    params_path = resolve_params(params).resolve()
    load_params(params_path)
    return RunSetup(params_path, file_sha256(params_path), package_versions(RADIOMICS_PACKAGES))


def worker_threads(n_workers: int) -> int:
    """SimpleITK threads of each of ``n_workers`` worker processes (the cores shared out); 0 = SimpleITK's
    default, for a run in one process."""
    return max(1, (os.cpu_count() or 1) // n_workers) if n_workers > 1 else 0


@dataclass
class CohortOutputs:
    """Where a cohort run wrote its results, and what happened."""

    features: Path
    diagnostics: Path
    failures: Path
    provenance: Path
    n_cases: int
    n_done: int
    n_failed: int
    n_cached: int

    def summary(self) -> str:
        """The one line ``gistrisk radiomics extract`` prints (Slicer's progress parser reads it)."""
        return (f"{self.n_done}/{self.n_cases} cases extracted ({self.n_cached} from cache), {self.n_failed} failed "
                f"-> {self.features}")


def extract_worker(inputs: dict) -> dict:
    """Batch worker (top level, picklable): one case -> {"features", "diagnostics"}."""
    _set_threads(inputs)
    res = extract_files(inputs["image"], inputs["mask"], label=inputs.get("label"), segment=inputs.get("segment"),
                        params=inputs["params"], patient_id=inputs["patient_id"],
                        modality=inputs.get("modality") or "CT",
                        geometry_policy=inputs.get("geometry_policy", "resample"))
    return {"features": res.features, "diagnostics": res.diagnostics}


def extract_cohort(manifest: str | Path, out: str | Path, *, params: str | Path | None = None, jobs: int = 1,
                   scheduler: str | None = None, cache_dir: str | Path | None = None, modality: str = "CT",
                   geometry_policy: str = "resample", progress: bool = True) -> CohortOutputs:
    """Extract every case of a manifest; failures are recorded and the rest go on; re-runs resume.

    Parameters
    ----------
    manifest : CSV with ``patient_id,image,mask`` and optional ``label``, ``segment``, ``modality``.
    out : feature table (``.parquet`` or ``.csv``): ``patient_id`` + one column per feature.
        Beside it: ``<stem>.diagnostics<suffix>``, ``<stem>.failures.csv``, ``<stem>.provenance.json``.
    params : shipped name or parameter file (default: the GIST paper setting).
    jobs, scheduler : local processes, or the address of a Dask scheduler.
    cache_dir : per-case results (default ``<out folder>/.<stem>.cache``), keyed by input file hashes
        + parameter-file hash + options.
    """
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise InputError("output must end in .parquet or .csv", file=str(out))
    setup = run_setup(params)
    cases = read_manifest(manifest)
    cache = Path(cache_dir) if cache_dir else out.parent / f".{out.stem}.cache"
    threads = worker_threads(1 if scheduler else max(1, jobs))

    items = []
    for c in cases:
        inputs = {"patient_id": c["patient_id"], "image": c["image"], "mask": c["mask"],
                  "label": int(c["label"]) if c["label"] else None, "segment": c["segment"] or None,
                  "modality": c["modality"] or modality, "params": str(setup.params_path),
                  "geometry_policy": geometry_policy, "threads": threads}
        options = {k: inputs[k] for k in ("label", "segment", "modality", "geometry_policy")}
        items.append(BatchItem(key=c["patient_id"], inputs=inputs,
                               fingerprint=setup.fingerprint(c["image"], c["mask"], options)))

    res = run_batch(items, extract_worker, cache_dir=cache, jobs=jobs, scheduler=scheduler,
                    desc="radiomics", progress=progress)

    feat_rows, diag_rows = [], []
    for pid, rec in res.done.items():
        feat_rows.append({"patient_id": pid, **rec["features"]})
        diag_rows.append({"patient_id": pid, **{k: _cell(v) for k, v in rec["diagnostics"].items()}})
    fail_rows = [{"patient_id": f["key"], "error_type": f["error_type"], "message": f["message"],
                  "image": f["inputs"]["image"], "mask": f["inputs"]["mask"]} for f in res.failures]
    n_features = len({k for r in feat_rows for k in r} - {"patient_id"})

    paths = CohortOutputs(features=out, diagnostics=sidecar(out, "diagnostics"),
                          failures=sidecar(out, "failures", ".csv"), provenance=sidecar(out, "provenance", ".json"),
                          n_cases=len(items), n_done=len(res.done), n_failed=len(res.failures),
                          n_cached=res.skipped_cached)
    write_rows(paths.features, feat_rows, ["patient_id"])
    write_rows(paths.diagnostics, diag_rows, ["patient_id"])
    write_rows(paths.failures, fail_rows, ["patient_id", "error_type", "message", "image", "mask"])
    write_json(paths.provenance, provenance(
        parameters={"params_file": str(setup.params_path), "params_sha256": setup.params_sha256, "jobs": jobs,
                    "scheduler": scheduler, "modality": modality, "geometry_policy": geometry_policy},
        command="gistrisk radiomics extract", gistrisk_version=gistrisk.__version__,
        manifest={"file": str(Path(manifest).resolve()), "sha256": file_sha256(manifest)},
        radiomics_versions=setup.versions,
        counts={"cases": paths.n_cases, "done": paths.n_done, "failed": paths.n_failed, "cached": paths.n_cached,
                "features": n_features},
        outputs={k: str(v) for k, v in asdict(paths).items() if isinstance(v, Path)}))
    return paths


def robustness_worker(inputs: dict) -> dict:
    """Batch worker (top level, picklable): one case -> its original and perturbed feature dicts.

    A failure of any extraction of the case raises (the case is left out as a whole).
    """
    _set_threads(inputs)
    pid, params = inputs["patient_id"], inputs["params"]
    image = read_image(inputs["image"], patient=pid)
    loaded = read_mask(inputs["mask"], image, label=inputs.get("label"), segment=inputs.get("segment"), patient=pid)
    common = {"modality": inputs.get("modality") or "CT", "patient_id": pid, "image_file": inputs["image"],
              "mask_file": inputs["mask"]}
    first = extract_case(image, loaded.image, params, loaded.label, **common)
    label = first.diagnostics["gistrisk_label"]
    out = [{"perturbation": "original", "repeat": 0, "features": first.features}]
    for r in range(int(inputs["repeats"])):
        for kind in PERTURBATIONS:
            img = perturb(image, kind, noise_hu=float(inputs["noise_hu"]),
                          spacing_factor=float(inputs["spacing_factor"]),
                          rng=case_rng(inputs["seed"], inputs["case_index"], r, kind))
            try:
                # off-grid mask: extract_case resamples it nearest-neighbour onto the coarser grid
                res = extract_case(img, loaded.image, params, label, **common)
            except InputError as e:
                raise InputError(f"{kind} perturbation (repeat {r}): {e}") from None
            out.append({"perturbation": kind, "repeat": r, "features": res.features})
    return {"patient_id": pid, "extractions": out}


def perturbation_robustness(cases: pd.DataFrame | str | Path | Sequence[dict], params: str | Path | None = None,
                            n_cases: int = 30, noise_hu: float = 10.0, spacing_factor: float = 1.25,
                            repeats: int = 1, seed: int = 0, jobs: int = 1, *, modality: str = "CT",
                            cache_dir: str | Path | None = None, progress: bool = False) -> pd.DataFrame:
    """ICC(1,1) of every feature over original + perturbed extractions of up to ``n_cases`` cases.

    Parameters
    ----------
    cases : the radiomics manifest (``patient_id,image,mask[,label|segment][,modality]``) as a DataFrame,
        a CSV path (relative paths from its folder) or a list of dicts.
    params : shipped parameter-file name or path (default gist_ct_paper), as for ``radiomics extract``.
    n_cases : cases used; when the manifest has more, a subset drawn with ``seed`` (manifest order kept).
    noise_hu : SD of the added Gaussian noise (HU).
    spacing_factor : the resampled copies have ``spacing_factor`` x the original voxel spacing.
    repeats : perturbed copies of each kind per case (each with its own noise draw).
    seed : noise and subset seed; a copy's noise depends on (seed, manifest row, repeat, kind) only.
    jobs : local worker processes (the radiomics batch engine).
    modality : default for rows without a modality ("CT" checks for Hounsfield units).
    cache_dir : per-case results kept for a re-run (keyed by input file hashes, parameter file and
        options); None = a temporary folder (nothing kept).
    progress : show a progress bar (stderr).

    Returns
    -------
    DataFrame, one row per feature (extraction order): ``feature, image_type, feature_class, icc,
    icc_noise, icc_resample, icc_noise_resample, n_cases, n_extractions`` (``icc`` over all extractions,
    ``icc_<kind>`` over the original + that kind only). ``attrs`` holds ``cases`` (patient ids used),
    ``failures`` (``[{"patient_id", "error_type", "message"}]``), ``n_cached`` and ``parameters``.

    Raises
    ------
    InputError for a bad manifest or parameter file, bad options, or fewer than 3 usable cases.
    """
    if n_cases < MIN_CASES:
        raise InputError(f"n_cases must be at least {MIN_CASES}, got {n_cases}")
    if not (noise_hu >= 0 and math.isfinite(noise_hu)):
        raise InputError(f"noise_hu must be >= 0, got {noise_hu}")
    if not (spacing_factor > 0 and math.isfinite(spacing_factor)):
        raise InputError(f"spacing_factor must be > 0, got {spacing_factor}")
    if repeats < 1 or jobs < 1:
        raise InputError(f"repeats and jobs must be >= 1, got {repeats} and {jobs}")
    setup = run_setup(params)
    rows, src = manifest_cases(cases)
    if len(rows) < MIN_CASES:
        raise InputError(f"manifest has {len(rows)} case(s); the ICC needs at least {MIN_CASES}", file=src)
    picked = list(range(len(rows)))
    if len(rows) > n_cases:
        picked = sorted(int(i) for i in np.random.default_rng(seed).choice(len(rows), n_cases, replace=False))

    threads = worker_threads(min(jobs, len(picked)))
    items = []
    for i in picked:
        r = rows[i]
        inputs = {"patient_id": r["patient_id"], "image": r["image"], "mask": r["mask"], "label": r["label"],
                  "segment": r["segment"], "modality": r["modality"] or modality, "params": str(setup.params_path),
                  "noise_hu": float(noise_hu), "spacing_factor": float(spacing_factor), "repeats": int(repeats),
                  "seed": int(seed), "case_index": i, "threads": threads}
        fp = ""
        if cache_dir is not None:
            options = {k: v for k, v in inputs.items() if k not in ("patient_id", "image", "mask", "params", "threads")}
            fp = setup.fingerprint(r["image"], r["mask"], options)
        items.append(BatchItem(key=r["patient_id"], inputs=inputs, fingerprint=fp))
    with tempfile.TemporaryDirectory(prefix="gistrisk-robustness-") as tmp:
        res = run_batch(items, robustness_worker, cache_dir=Path(cache_dir) if cache_dir is not None else Path(tmp),
                        jobs=jobs, desc="robustness", progress=progress)
    failures = [{"patient_id": f["key"], "error_type": f["error_type"], "message": f["message"]}
                for f in res.failures]
    if len(res.done) < MIN_CASES:
        why = "; ".join(f"patient {f['patient_id']}: {f['message']}" for f in failures) or "none failed"
        raise InputError(f"only {len(res.done)} of {len(items)} case(s) could be extracted and perturbed; the ICC "
                         f"needs at least {MIN_CASES}. Failures: {why}", file=src)

    table = icc_table(list(res.done.values()))
    table.attrs.update({
        "cases": list(res.done), "failures": failures, "n_cached": res.skipped_cached,
        "parameters": {"params_file": str(setup.params_path), "params_sha256": setup.params_sha256,
                       "n_cases": int(n_cases), "noise_hu": float(noise_hu), "spacing_factor": float(spacing_factor),
                       "repeats": int(repeats), "seed": int(seed), "jobs": int(jobs), "modality": modality,
                       "perturbations": list(PERTURBATIONS), "icc": "ICC(1,1) one-way random, single measurement",
                       "manifest": ({"file": str(Path(src).resolve()), "sha256": file_sha256(src)} if src else None)},
    })
    return table


def _set_threads(inputs: dict) -> None:
    """SimpleITK threads of this worker process, as the run shared the cores out."""
    if inputs.get("threads"):
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(inputs["threads"]))


def _cell(v: Any) -> Any:
    """Parquet needs one type per column: nested diagnostics become JSON text."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return json.dumps(v)
