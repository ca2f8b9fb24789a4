"""A cohort: manifest -> feature table, diagnostics table, failures table and provenance (batch engine)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gistrisk.errors import InputError
from gistrisk.paths import sidecar

REQUIRED = ("patient_id", "image", "mask")
OPTIONAL = ("label", "segment", "modality")


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


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Read ``patient_id,image,mask[,label|segment][,modality]``; relative paths are taken from the manifest's folder.

    Returns
    -------
    one dict per case with keys patient_id, image, mask, label, segment, modality (strings, "" when absent).
    """
    import csv

    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in (reader.fieldnames or [])]
            raw = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except FileNotFoundError:
        raise InputError("manifest not found", file=str(path)) from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"cannot read manifest CSV: {e}", file=str(path)) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"manifest lacks column(s) {', '.join(missing)}; expected patient_id,image,mask"
                         f"[,label|segment]", file=str(path), column=missing[0])
    rows = [r for r in raw if any(r.values())]  # blank lines
    if not rows:
        raise InputError("manifest has no rows", file=str(path))
    for c in REQUIRED:
        empty = [i + 2 for i, r in enumerate(rows) if not r.get(c)]
        if empty:
            raise InputError(f"empty value in row(s) {empty}", file=str(path), column=c)
    ids = [r["patient_id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate patient_id(s): {', '.join(dup)}", file=str(path), column="patient_id")
    out = []
    for r in rows:
        case = {c: r.get(c, "") for c in REQUIRED + OPTIONAL}
        for c in ("image", "mask"):
            case[c] = str(Path(case[c]) if Path(case[c]).is_absolute() else path.parent / case[c])
        if case["label"] and not case["label"].isdigit():
            raise InputError(f"label must be a whole number, got {case['label']!r}", file=str(path),
                             patient=case["patient_id"], column="label")
        out.append(case)
    return out


def extract_worker(inputs: dict) -> dict:
    """Batch worker (top level, picklable): one case -> {"features", "diagnostics"}."""
    import SimpleITK as sitk

    from gistrisk.radiomics.extract import extract_files

    if inputs.get("threads"):
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(inputs["threads"]))
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
    import os

    import gistrisk
    from gistrisk.batch import BatchItem, file_fingerprint, run_batch
    from gistrisk.provenance import file_sha256, package_versions, provenance
    from gistrisk.radiomics.params import load_params, resolve_params
    from gistrisk.radiomics.tables import write_json, write_rows

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise InputError("output must end in .parquet or .csv", file=str(out))
    params_path = resolve_params(params).resolve()
    load_params(params_path)  # a bad parameter file stops the run before any case
    params_hash = file_sha256(params_path)
    cases = read_manifest(manifest)
    cache = Path(cache_dir) if cache_dir else out.parent / f".{out.stem}.cache"
    n_workers = 1 if scheduler else max(1, jobs)
    threads = max(1, (os.cpu_count() or 1) // n_workers) if n_workers > 1 else 0
    versions = package_versions(("pyradiomics-bhklab", "SimpleITK", "numpy", "PyWavelets"))

    items = []
    for c in cases:
        inputs = {"patient_id": c["patient_id"], "image": c["image"], "mask": c["mask"],
                  "label": int(c["label"]) if c["label"] else None, "segment": c["segment"] or None,
                  "modality": c["modality"] or modality, "params": str(params_path),
                  "geometry_policy": geometry_policy, "threads": threads}
        options = {k: inputs[k] for k in ("label", "segment", "modality", "geometry_policy")}
        fp = file_fingerprint(c["image"], c["mask"], params={"params_sha256": params_hash, "options": options,
                                                             "versions": versions})
        items.append(BatchItem(key=c["patient_id"], inputs=inputs, fingerprint=fp))

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
        parameters={"params_file": str(params_path), "params_sha256": params_hash, "jobs": jobs,
                    "scheduler": scheduler, "modality": modality, "geometry_policy": geometry_policy},
        command="gistrisk radiomics extract", gistrisk_version=gistrisk.__version__,
        manifest={"file": str(Path(manifest).resolve()), "sha256": file_sha256(manifest)},
        radiomics_versions=versions,
        counts={"cases": paths.n_cases, "done": paths.n_done, "failed": paths.n_failed, "cached": paths.n_cached,
                "features": n_features},
        outputs={k: str(v) for k, v in asdict(paths).items() if isinstance(v, Path)}))
    return paths


def _cell(v: Any) -> Any:
    """Parquet needs one type per column: nested diagnostics become JSON text."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    return json.dumps(v)
