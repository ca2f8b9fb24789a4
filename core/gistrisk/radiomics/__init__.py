"""CT radiomics: CT + tumour mask -> PyRadiomics features, for one case or a cohort.

Public API (loaded lazily so that ``gistrisk --help`` stays fast)::

    extract_case(image, mask, params=None, label=None) -> CaseFeatures
    extract_files(image_path, mask_path, *, label=None, segment=None, params=None, patient_id=None)
    param_file("gist_ct_paper") -> Path
    extract_cohort(manifest, out, *, params=None, jobs=1, ...) -> CohortOutputs     (a cohort, batch engine)
    perturbation_robustness(cases, params=None, ...) -> per-feature ICC table        (robustness run)

Modules of the cohort runs: ``manifest`` (the cases CSV), ``runs`` (extraction and robustness runs on
the batch engine, one shared set-up), ``perturb`` (noisy / coarser copies of a CT), ``icc`` (ICC(1,1)),
``robustness_io`` (robust.json / robust.csv).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["CaseFeatures", "extract_case", "extract_files", "param_file", "extract_cohort",
           "perturbation_robustness"]

_WHERE = {"CaseFeatures": "extract", "extract_case": "extract", "extract_files": "extract",
          "param_file": "params", "extract_cohort": "runs", "perturbation_robustness": "runs"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"gistrisk.radiomics.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gistrisk.radiomics' has no attribute {name!r}")
