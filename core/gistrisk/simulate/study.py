"""Simulate a development and an external GIST cohort with known ground truth, on disk.

Layout of ``out_dir`` (paths inside the CSVs are relative to the cohort folder)::

    cohort.json                       seed, parameters, versions, per-cohort oracle C-index
    development/ external/
        clinical.csv outcomes.csv truth.csv cohort.json
        radiomics_manifest.csv        patient_id,image,mask,segment
        slide_manifest.csv            patient_id,slide,slide_id,annotations,mpp
        ct/<id>.nrrd ct/<id>.seg.nrrd wsi/<id>.tiff annotations/<id>.geojson
        failures.csv                  only when some image could not be made
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gistrisk.atomic import write_json, write_table
from gistrisk.errors import InputError
from gistrisk.paths import check_output
from gistrisk.provenance import package_versions, provenance
from gistrisk.simulate.config import Acquisition, SimulationConfig
from gistrisk.simulate.ct_write import SEGMENT_NAME
from gistrisk.simulate.images import ImageJob, run_job
from gistrisk.simulate.outcomes import draw_outcomes, harrell_c, linear_predictor, reference_scale
from gistrisk.simulate.patients import clinical_table, draw_patients

MARKER = ".gistrisk-simulate.json"
_POPULATION_STREAM = 99
_ANNOTATION_CHOICE_STREAM = 98


@dataclass(frozen=True)
class _CohortSpec:
    name: str
    index: int
    n: int
    prefix: str
    acquisition: Acquisition
    all_modalities: bool


def _check_out_dir(out: Path, params: dict[str, Any], overwrite: bool) -> None:
    """Refuse to mix two different simulations in one folder; allow resuming the same one."""
    check_output(out, kind="dir")
    marker = out / MARKER
    if marker.exists():
        old = json.loads(marker.read_text(encoding="utf-8"))
        if old != json.loads(json.dumps(params)):
            if not overwrite:
                raise InputError("holds a simulation with other parameters; use --overwrite or "
                                 "another --out", file=str(out))
            for sub in ("development", "external"):
                shutil.rmtree(out / sub, ignore_errors=True)
    elif out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError("exists and is not empty (and is no simulation); use --overwrite or "
                         "another --out", file=str(out))
    write_json(marker, params)


def _baseline_scale(seed: int, cfg: SimulationConfig) -> float:
    """Weibull scale calibrated once on a large reference population (same for both cohorts)."""
    return reference_scale(np.random.default_rng([seed, _POPULATION_STREAM]), cfg)


def _annotated(rng: np.random.Generator, has_wsi: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Which slides carry annotations: a random subset, as the paper annotated 30 of 186."""
    idx = np.flatnonzero(has_wsi)
    k = min(len(idx), max(cfg.min_annotated, int(round(cfg.annotated_fraction * len(idx)))))
    out = np.zeros(len(has_wsi), bool)
    out[rng.choice(idx, size=k, replace=False)] = True
    return out


def _jobs(spec: _CohortSpec, seed: int, cfg: SimulationConfig, truth: pd.DataFrame,
          cdir: Path, resume: bool) -> list[ImageJob]:
    jobs = []
    for i, r in enumerate(truth.itertuples(index=False)):
        pid = r.patient_id
        jobs.append(ImageJob(
            patient_id=pid, seed=seed, cohort_index=spec.index, index=i, size_cm=float(r.size_cm),
            site=str(r.site), ct_texture=float(r.ct_texture), tissue_appearance=float(r.tissue_appearance),
            acquisition=spec.acquisition, config=cfg,
            ct_image=cdir / "ct" / f"{pid}.nrrd" if r.has_ct else None,
            ct_seg=cdir / "ct" / f"{pid}.seg.nrrd" if r.has_ct else None,
            slide=cdir / "wsi" / f"{pid}.tiff" if r.has_wsi else None,
            annotations=cdir / "annotations" / f"{pid}.geojson" if r.annotated else None,
            resume=resume))
    return jobs


def _run_jobs(jobs: list[ImageJob], workers: int, progress: Callable[[int], None] | None):
    failures = []
    if workers <= 1:
        for job in jobs:
            failures += run_job(job)
            if progress:
                progress(1)
        return failures
    with ProcessPoolExecutor(max_workers=workers) as ex:
        for res in ex.map(run_job, jobs, chunksize=1):
            failures += res
            if progress:
                progress(1)
    return failures


def _manifests(truth: pd.DataFrame, failed: set[tuple[str, str]], mpp: float):
    ct = truth[truth["has_ct"] & ~truth["patient_id"].map(lambda p: (p, "ct") in failed)]
    radiomics = pd.DataFrame({"patient_id": ct["patient_id"], "image": "ct/" + ct["patient_id"] + ".nrrd",
                              "mask": "ct/" + ct["patient_id"] + ".seg.nrrd", "segment": SEGMENT_NAME})
    wsi = truth[truth["has_wsi"] & ~truth["patient_id"].map(lambda p: (p, "wsi") in failed)]
    slides = pd.DataFrame({
        "patient_id": wsi["patient_id"], "slide": "wsi/" + wsi["patient_id"] + ".tiff",
        "slide_id": wsi["patient_id"] + "-HE1",
        "annotations": np.where(wsi["annotated"], "annotations/" + wsi["patient_id"] + ".geojson", ""),
        "mpp": mpp})
    return radiomics, slides


def _summary(truth: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, Any]:
    t, e = outcomes["time"].to_numpy(), outcomes["event"].to_numpy()

    def c(col_sum: pd.Series) -> float | None:
        v = harrell_c(t, e, col_sum.to_numpy())
        return None if np.isnan(v) else round(v, 4)  # None: no comparable pair (no event)

    return {
        "n": len(truth), "events": int(e.sum()), "censored_fraction": round(1 - float(e.mean()), 4),
        "median_followup_months": float(np.median(t)),
        "n_ct": int(truth["has_ct"].sum()), "n_wsi": int(truth["has_wsi"].sum()),
        "n_all_modalities": int((truth["has_ct"] & truth["has_wsi"]).sum()),
        "n_annotated": int(truth["annotated"].sum()),
        "oracle_c_index": c(truth["lp"]),
        # the best each data source alone could do (what it can see of the true log-hazard)
        "oracle_c_index_by_view": {
            "clinical": c(truth["lp_size"] + truth["lp_clinical"]),
            "radiomics": c(truth["lp_size"] + truth["lp_radiomics"]),
            "pathology": c(truth["lp_pathology"]),
        },
    }


def simulate_cohort(out_dir: str | Path, n_patients: int, n_external: int, seed: int,
                    config: SimulationConfig | None = None, workers: int = 1,
                    overwrite: bool = False,
                    progress: Callable[[int], None] | None = None) -> dict[str, Path]:
    """Simulate a development cohort of ``n_patients`` and an external one of ``n_external``.

    Re-running into the same folder with the same arguments resumes: existing image files are
    kept, tables are rewritten (identical). ``progress`` is called with 1 per patient done.

    Returns
    -------
    dict of paths: ``cohort_json``, and per cohort ``<cohort>_dir``, ``<cohort>_clinical``,
    ``<cohort>_outcomes``, ``<cohort>_truth``, ``<cohort>_radiomics_manifest``,
    ``<cohort>_slide_manifest`` (and ``<cohort>_failures`` when some image failed).
    """
    if n_patients < 1 or n_external < 0:
        raise InputError(f"need at least 1 development patient and 0 or more external ones "
                         f"(got {n_patients}, {n_external})")
    cfg = config or SimulationConfig()
    out = Path(out_dir)
    params = {"n_patients": n_patients, "n_external": n_external, "seed": seed, "config": cfg.to_dict()}
    _check_out_dir(out, params, overwrite)
    scale = _baseline_scale(seed, cfg)
    specs = [_CohortSpec("development", 0, n_patients, "DEV", cfg.development, False)]
    if n_external:
        specs.append(_CohortSpec("external", 1, n_external, "EXT", cfg.external, True))

    paths: dict[str, Path] = {}
    cohorts: dict[str, Any] = {}
    for spec in specs:
        cdir = out / spec.name
        rng = np.random.default_rng([seed, spec.index, 0])
        pts = draw_patients(rng, spec.n, spec.prefix, cfg, spec.all_modalities)
        # own stream: how many slides are annotated must not change the clinical values
        ann_rng = np.random.default_rng([seed, spec.index, _ANNOTATION_CHOICE_STREAM])
        pts["annotated"] = (_annotated(ann_rng, pts["has_wsi"].to_numpy(), cfg) if not spec.all_modalities
                            else np.zeros(spec.n, bool))
        clinical = clinical_table(pts, rng, cfg)
        lp = linear_predictor(pts, cfg.hazard)
        outcomes = draw_outcomes(rng, pts["patient_id"], lp["lp"].to_numpy(), scale,
                                 cfg.hazard.weibull_shape, cfg.censoring)
        truth = pts.merge(lp, on="patient_id")

        failures = _run_jobs(_jobs(spec, seed, cfg, truth, cdir, resume=not overwrite), workers, progress)
        failed = {(p, m) for p, m, _ in failures}
        radiomics, slides = _manifests(truth, failed, cfg.wsi_mpp)

        files = {"clinical": clinical, "outcomes": outcomes, "truth": truth,
                 "radiomics_manifest": radiomics, "slide_manifest": slides}
        for key, df in files.items():
            paths[f"{spec.name}_{key}"] = cdir / f"{key}.csv"
            write_table(paths[f"{spec.name}_{key}"], df)
        fail_path = cdir / "failures.csv"
        if failures:
            write_table(fail_path, pd.DataFrame(failures, columns=["patient_id", "modality", "error"]))
            paths[f"{spec.name}_failures"] = fail_path
        elif fail_path.exists():
            fail_path.unlink()
        summary = _summary(truth, outcomes)
        summary["failures"] = len(failures)
        cohorts[spec.name] = summary
        write_json(cdir / "cohort.json", {"cohort": spec.name, "seed": seed, **summary})
        paths[f"{spec.name}_dir"] = cdir

    record = provenance(params, tool="gistrisk simulate", weibull_scale_months=round(scale, 6),
                        weibull_shape=cfg.hazard.weibull_shape, cohorts=cohorts)
    record["versions"].update(_image_versions())
    paths["cohort_json"] = out / "cohort.json"
    write_json(paths["cohort_json"], record)
    return paths


def _image_versions() -> dict[str, str]:
    """Versions of the writers whose output format matters (slicerio, tifffile, imagecodecs)."""
    return {k: v for k, v in package_versions(("slicerio", "pynrrd", "tifffile", "imagecodecs")).items()
            if k not in ("python", "gistrisk")}
