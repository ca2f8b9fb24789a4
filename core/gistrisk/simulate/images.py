"""One patient's image files (CT + segmentation, slide + annotations), as an independent job.

Each job seeds its own generator from (seed, cohort, modality, patient), so a job gives the same
files whatever order or process runs it, and a resumed run can skip files that already exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gistrisk.simulate.annotations import write_annotations
from gistrisk.simulate.config import Acquisition, SimulationConfig
from gistrisk.simulate.ct import simulate_ct
from gistrisk.simulate.ct_write import write_ct
from gistrisk.simulate.slide_layout import layout, rasterise
from gistrisk.simulate.slide_texture import render
from gistrisk.simulate.slide_write import write_slide

CT_STREAM, WSI_STREAM, ANNOTATION_STREAM = 1, 2, 3


@dataclass(frozen=True)
class ImageJob:
    """What one patient's images need. Paths are absolute; ``annotations`` is None when unannotated."""

    patient_id: str
    seed: int
    cohort_index: int
    index: int
    size_cm: float
    site: str
    ct_texture: float
    tissue_appearance: float
    acquisition: Acquisition
    config: SimulationConfig
    ct_image: Path | None
    ct_seg: Path | None
    slide: Path | None
    annotations: Path | None
    resume: bool = True


def _rng(job: ImageJob, stream: int) -> np.random.Generator:
    return np.random.default_rng([job.seed, job.cohort_index, stream, job.index])


def make_ct(job: ImageJob) -> None:
    """Simulate and write the CT volume and its `.seg.nrrd`."""
    assert job.ct_image is not None and job.ct_seg is not None  # run_job calls this only for a CT job
    if job.resume and job.ct_image.is_file() and job.ct_seg.is_file():
        return
    case = simulate_ct(_rng(job, CT_STREAM), job.size_cm, job.ct_texture, job.acquisition,
                       job.config.ct_min_grid)
    write_ct(case, job.ct_image, job.ct_seg, job.site)


def make_slide(job: ImageJob) -> None:
    """Simulate and write the slide and, for annotated slides, its QuPath GeoJSON."""
    assert job.slide is not None  # run_job calls this only for a slide job
    done = job.slide.is_file() and (job.annotations is None or job.annotations.is_file())
    if job.resume and done:
        return
    cfg = job.config
    rng = _rng(job, WSI_STREAM)
    regions = layout(rng, cfg.wsi_size, necrosis_scale=float(rng.uniform(0.4, 1.6)))
    rgb = render(rasterise(regions, cfg.wsi_size), rng, job.tissue_appearance, job.acquisition)
    write_slide(job.slide, rgb, cfg.wsi_mpp, cfg.wsi_levels, cfg.wsi_tile, cfg.jpeg_quality)
    if job.annotations is not None:
        write_annotations(job.annotations, _rng(job, ANNOTATION_STREAM), regions)


def run_job(job: ImageJob) -> list[tuple[str, str, str]]:
    """Make every image of one patient; a failure is returned, not raised, so a batch goes on.

    Returns
    -------
    list of (patient_id, modality, error message) for the parts that failed (empty if none).
    """
    failures = []
    for modality, wanted, fn in (("ct", job.ct_image, make_ct), ("wsi", job.slide, make_slide)):
        if wanted is None:
            continue
        try:
            fn(job)
        except Exception as e:  # noqa: BLE001 - recorded in failures.csv with its reason
            failures.append((job.patient_id, modality, f"{type(e).__name__}: {e}"))
    return failures
