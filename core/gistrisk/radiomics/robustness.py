"""Feature robustness under image perturbation (Zwanenburg et al., Sci Rep 2019;9:614).

Each development case is extracted from its original CT and from perturbed copies: additive Gaussian
noise, resampling to coarser voxels (linear interpolation) and both. A feature whose value moves little
within a case, compared with how much it differs between cases, is reproducible: the one-way random
effects, single-measurement intraclass correlation ICC(1,1) over the (original + perturbed) extractions
is the score. Keeping features with a high ICC is outcome-free, so it can be done before model fitting
without leaking the outcome, and it drops the texture features that move most with scanner noise and
voxel size (the usual cause of a radiomics score inflating on an external cohort).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from gistrisk.errors import InputError

if TYPE_CHECKING:
    import pandas as pd
    import SimpleITK as sitk

PERTURBATIONS = ("noise", "resample", "noise_resample")
SCHEMA = "gistrisk.radiomics.robustness/1"
MIN_CASES = 3
_REL_TOL = 1e-10  # a feature whose spread is below this fraction of its magnitude is constant (float noise)


# --- ICC ----------------------------------------------------------------------------------------------

def icc_1_1(values: np.ndarray) -> float:
    """One-way random effects, single-measurement ICC(1,1) (Shrout & Fleiss 1979, ICC(1,1)).

    Parameters
    ----------
    values : (n_cases, k) array, one row per case, one column per measurement (original + perturbed).
        Rows with a non-finite value are left out.

    Returns
    -------
    ``(MSB - MSW) / (MSB + (k - 1) MSW)``; NaN when fewer than 2 complete cases, k < 2, or the values
    are constant over all cases (0 / 0).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D (cases x measurements), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    scale = float(np.abs(x).max())
    if ss_total == 0.0 or math.sqrt(ss_total / x.size) <= _REL_TOL * scale:
        return float("nan")
    row_means = x.mean(axis=1)
    msb = k * float(((row_means - grand) ** 2).sum()) / (n - 1)
    msw = float(((x - row_means[:, None]) ** 2).sum()) / (n * (k - 1))
    return (msb - msw) / (msb + (k - 1) * msw)


# --- perturbations ------------------------------------------------------------------------------------

def add_noise(image: "sitk.Image", sd: float, rng: np.random.Generator) -> "sitk.Image":
    """``image`` + Gaussian noise of SD ``sd`` (HU), as float32 on the same grid."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image).astype(np.float32)
    arr += rng.normal(0.0, sd, arr.shape).astype(np.float32)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out


def resample_coarser(image: "sitk.Image", factor: float) -> "sitk.Image":
    """Resample to ``factor`` x the spacing (linear interpolation) over the same field of view.

    The new grid starts at the same corner as the old one (first voxel edge, not centre), so the
    volume covered is the same up to less than one new voxel at the far end.
    """
    import SimpleITK as sitk

    spacing = np.asarray(image.GetSpacing(), float)
    size = np.asarray(image.GetSize(), int)
    new_spacing = spacing * factor
    new_size = np.maximum(1, np.floor(size * spacing / new_spacing + 1e-6)).astype(int)
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    origin = np.asarray(image.GetOrigin(), float) + direction @ ((new_spacing - spacing) / 2)
    arr = sitk.GetArrayViewFromImage(image)
    return sitk.Resample(image, [int(s) for s in new_size], sitk.Transform(), sitk.sitkLinear,
                         [float(o) for o in origin], [float(s) for s in new_spacing], image.GetDirection(),
                         float(arr.min()), sitk.sitkFloat32)


def perturb(image: "sitk.Image", kind: str, *, noise_hu: float, spacing_factor: float,
            rng: np.random.Generator) -> "sitk.Image":
    """One perturbed copy: ``kind`` is "noise", "resample" or "noise_resample" (resample, then noise)."""
    if kind == "noise":
        return add_noise(image, noise_hu, rng)
    if kind == "resample":
        return resample_coarser(image, spacing_factor)
    if kind == "noise_resample":
        return add_noise(resample_coarser(image, spacing_factor), noise_hu, rng)
    raise ValueError(f"unknown perturbation {kind!r}; choose one of {', '.join(PERTURBATIONS)}")


def case_rng(seed: int, case_index: int, repeat: int, kind: str) -> np.random.Generator:
    """The generator of one perturbed copy; depends only on (seed, case, repeat, kind), not on run order."""
    return np.random.default_rng([int(seed), int(case_index), int(repeat), PERTURBATIONS.index(kind)])


def robustness_worker(inputs: dict) -> dict:
    """Batch worker (top level, picklable): one case -> its original and perturbed feature dicts.

    A failure of any extraction of the case raises (the case is left out as a whole).
    """
    import SimpleITK as sitk

    from gistrisk.radiomics.extract import extract_case
    from gistrisk.radiomics.images import read_image
    from gistrisk.radiomics.masks import read_mask

    if inputs.get("threads"):
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(inputs["threads"]))
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


# --- cohort -------------------------------------------------------------------------------------------

def manifest_rows(cases: "pd.DataFrame | str | Path | Sequence[dict]") -> tuple[list[dict], str | None]:
    """Normalise a manifest (DataFrame, CSV path or list of dicts) to rows; check columns and files.

    Returns
    -------
    (rows, manifest file or None). Each row has patient_id, image, mask, label (int or None),
    segment (str or None), modality (str or None).

    Raises
    ------
    InputError for missing columns, empty/duplicate patient ids, a non-integer label, and missing
    image or mask files (naming the file and patient).
    """
    from gistrisk.radiomics.cohort import OPTIONAL, REQUIRED, read_manifest

    src: str | None = None
    if isinstance(cases, (str, Path)):
        src = str(cases)
        raw = read_manifest(cases)
    else:
        if hasattr(cases, "to_dict"):
            missing = [c for c in REQUIRED if c not in cases.columns]
            if missing:
                raise InputError(f"manifest lacks column(s) {', '.join(missing)}; expected patient_id,image,mask"
                                 f"[,label|segment]", column=missing[0])
            raw = cases.to_dict("records")
        else:
            raw = [dict(r) for r in cases]
        if not raw:
            raise InputError("manifest has no rows")
        for i, r in enumerate(raw):
            missing = [c for c in REQUIRED if _blank(r.get(c))]
            if missing:
                raise InputError(f"row {i}: empty or missing value", column=missing[0])
    rows = []
    for r in raw:
        row = {c: (None if _blank(r.get(c)) else r.get(c)) for c in REQUIRED + OPTIONAL}
        row["patient_id"], row["image"], row["mask"] = str(row["patient_id"]), str(row["image"]), str(row["mask"])
        if row["label"] is not None:
            try:
                f = float(row["label"])
                if not f.is_integer():
                    raise ValueError
                row["label"] = int(f)
            except (TypeError, ValueError):
                raise InputError(f"label must be a whole number, got {row['label']!r}", file=src,
                                 patient=row["patient_id"], column="label") from None
        for c in ("segment", "modality"):
            row[c] = None if row[c] is None else str(row[c])
        rows.append(row)
    ids = [r["patient_id"] for r in rows]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise InputError(f"duplicate patient_id(s): {', '.join(dup)}", file=src, column="patient_id")
    for r in rows:
        for c in ("image", "mask"):
            if not Path(r[c]).exists():
                raise InputError(f"{c} not found", file=r[c], patient=r["patient_id"])
    return rows, src


def perturbation_robustness(cases: "pd.DataFrame | str | Path | Sequence[dict]", params: str | Path | None = None,
                            n_cases: int = 30, noise_hu: float = 10.0, spacing_factor: float = 1.25,
                            repeats: int = 1, seed: int = 0, jobs: int = 1, *, modality: str = "CT",
                            cache_dir: str | Path | None = None, progress: bool = False) -> "pd.DataFrame":
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
    ``failures`` (``[{"patient_id", "error_type", "message"}]``) and ``parameters``.

    Raises
    ------
    InputError for a bad manifest or parameter file, bad options, or fewer than 3 usable cases.
    """
    from gistrisk.batch import BatchItem, file_fingerprint, run_batch
    from gistrisk.provenance import file_sha256, package_versions
    from gistrisk.radiomics.params import load_params, resolve_params

    if n_cases < MIN_CASES:
        raise InputError(f"n_cases must be at least {MIN_CASES}, got {n_cases}")
    if not (noise_hu >= 0 and math.isfinite(noise_hu)):
        raise InputError(f"noise_hu must be >= 0, got {noise_hu}")
    if not (spacing_factor > 0 and math.isfinite(spacing_factor)):
        raise InputError(f"spacing_factor must be > 0, got {spacing_factor}")
    if repeats < 1 or jobs < 1:
        raise InputError(f"repeats and jobs must be >= 1, got {repeats} and {jobs}")
    params_path = resolve_params(params).resolve()
    load_params(params_path)  # a bad parameter file stops the run before any case
    rows, src = manifest_rows(cases)
    if len(rows) < MIN_CASES:
        raise InputError(f"manifest has {len(rows)} case(s); the ICC needs at least {MIN_CASES}", file=src)
    picked = list(range(len(rows)))
    if len(rows) > n_cases:
        picked = sorted(int(i) for i in np.random.default_rng(seed).choice(len(rows), n_cases, replace=False))

    n_workers = min(jobs, len(picked))
    threads = max(1, (os.cpu_count() or 1) // n_workers) if n_workers > 1 else 0
    params_hash = file_sha256(params_path)
    versions = package_versions(("pyradiomics-bhklab", "SimpleITK", "numpy", "PyWavelets"))
    items = []
    for i in picked:
        r = rows[i]
        inputs = {"patient_id": r["patient_id"], "image": r["image"], "mask": r["mask"], "label": r["label"],
                  "segment": r["segment"], "modality": r["modality"] or modality, "params": str(params_path),
                  "noise_hu": float(noise_hu), "spacing_factor": float(spacing_factor), "repeats": int(repeats),
                  "seed": int(seed), "case_index": i, "threads": threads}
        fp = ""
        if cache_dir is not None:
            options = {k: v for k, v in inputs.items() if k not in ("patient_id", "image", "mask", "params", "threads")}
            fp = file_fingerprint(r["image"], r["mask"], params={"params_sha256": params_hash, "options": options,
                                                                 "versions": versions})
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
        "parameters": {"params_file": str(params_path), "params_sha256": params_hash,
                       "n_cases": int(n_cases), "noise_hu": float(noise_hu), "spacing_factor": float(spacing_factor),
                       "repeats": int(repeats), "seed": int(seed), "jobs": int(jobs), "modality": modality,
                       "perturbations": list(PERTURBATIONS), "icc": "ICC(1,1) one-way random, single measurement",
                       "manifest": ({"file": str(Path(src).resolve()), "sha256": file_sha256(src)} if src else None)},
    })
    return table


def icc_table(results: Sequence[dict]) -> "pd.DataFrame":
    """Per-feature ICCs from worker results (``{"patient_id", "extractions": [...]}`` per case).

    Only features present in every extraction of every case are scored.
    """
    import pandas as pd

    names: list[str] = list(results[0]["extractions"][0]["features"])
    common = set(names)
    for rec in results:
        for e in rec["extractions"]:
            common &= set(e["features"])
    names = [n for n in names if n in common]
    columns = ["feature", "image_type", "feature_class", "icc", *(f"icc_{k}" for k in PERTURBATIONS),
               "n_cases", "n_extractions"]
    if not names:
        return pd.DataFrame(columns=columns)

    def matrix(kinds: tuple[str, ...]) -> np.ndarray:
        # (cases, extractions, features); every case has the same extractions in the same order
        return np.array([[[float(e["features"][n]) for n in names] for e in rec["extractions"]
                          if e["perturbation"] in kinds] for rec in results], dtype=float)

    full = matrix(("original", *PERTURBATIONS))
    per_kind = {k: matrix(("original", k)) for k in PERTURBATIONS}
    out = []
    for j, name in enumerate(names):
        parts = name.split("_", 2)
        col = full[:, :, j]
        out.append({
            "feature": name,
            "image_type": parts[0] if len(parts) == 3 else "",
            "feature_class": parts[1] if len(parts) == 3 else "",
            "icc": icc_1_1(col),
            **{f"icc_{k}": icc_1_1(m[:, :, j]) for k, m in per_kind.items()},
            "n_cases": int(np.isfinite(col).all(axis=1).sum()),
            "n_extractions": int(col.shape[1]),
        })
    return pd.DataFrame(out, columns=columns)


# --- result file --------------------------------------------------------------------------------------

def kept_features(table: "pd.DataFrame", threshold: float) -> list[str]:
    """Features with ICC >= ``threshold`` (NaN never kept), in table order."""
    icc = table["icc"].to_numpy(dtype=float)
    return [f for f, v in zip(table["feature"], icc) if np.isfinite(v) and v >= threshold]


def table_path(json_path: str | Path) -> Path:
    """``robust.json`` -> ``robust.csv`` beside it (the per-feature table)."""
    return Path(json_path).with_suffix(".csv")


def write_robustness(path: str | Path, table: "pd.DataFrame", threshold: float, *,
                     command: str | None = None) -> dict:
    """Write the result JSON (``threshold, kept, icc, parameters, provenance``) and the CSV beside it.

    Both are written atomically; NaN ICCs become JSON null. Returns the JSON object written.
    """
    import gistrisk
    from gistrisk.atomic import write_json, write_table
    from gistrisk.provenance import package_versions, provenance

    if not math.isfinite(threshold):
        raise InputError(f"threshold must be a number, got {threshold}")
    path = Path(path)
    if path.suffix.lower() != ".json":
        raise InputError("output must end in .json", file=str(path))
    params = dict(table.attrs.get("parameters", {}))
    kept = kept_features(table, threshold)
    obj: dict[str, Any] = {
        "schema": SCHEMA,
        "threshold": float(threshold),
        "kept": kept,
        "n_features": int(len(table)),
        "icc": {f: (float(v) if np.isfinite(v) else None) for f, v in zip(table["feature"], table["icc"])},
        "cases": list(table.attrs.get("cases", [])),
        "failures": list(table.attrs.get("failures", [])),
        "parameters": {**params, "threshold": float(threshold)},
        "provenance": provenance(
            parameters={**params, "threshold": float(threshold)}, command=command,
            gistrisk_version=gistrisk.__version__,
            radiomics_versions=package_versions(("pyradiomics-bhklab", "SimpleITK", "numpy", "PyWavelets")),
            outputs={"json": str(path.resolve()), "table": str(table_path(path).resolve())}),
    }
    write_table(table_path(path), table)
    write_json(path, obj)
    return obj


def read_robustness(path: str | Path) -> dict:
    """Read a result JSON written by :func:`write_robustness` (``obj["kept"]`` is the feature list).

    Raises
    ------
    InputError naming the file when it is missing, not JSON, or lacks ``threshold``/``kept``/``icc``.
    """
    import json

    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("robustness file not found", file=str(path)) from None
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read robustness JSON: {e}", file=str(path)) from None
    if not isinstance(obj, dict) or any(k not in obj for k in ("threshold", "kept", "icc")):
        raise InputError("not a robustness result: expected keys threshold, kept, icc", file=str(path))
    if not isinstance(obj["kept"], list) or not all(isinstance(f, str) for f in obj["kept"]):
        raise InputError("'kept' must be a list of feature names", file=str(path))
    return obj


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()
