"""CT radiomics: CT + tumour mask -> PyRadiomics features, for one case or a cohort.

Public API (loaded lazily so that ``gistrisk --help`` stays fast)::

    extract_case(image, mask, params=None, label=None) -> CaseFeatures
    extract_files(image_path, mask_path, *, label=None, segment=None, params=None, patient_id=None)
    param_file("gist_ct_paper") -> Path
"""

from __future__ import annotations

from typing import Any

__all__ = ["CaseFeatures", "extract_case", "extract_files", "param_file", "extract_cohort"]

_WHERE = {"CaseFeatures": "extract", "extract_case": "extract", "extract_files": "extract",
          "param_file": "params", "extract_cohort": "cohort"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"gistrisk.radiomics.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gistrisk.radiomics' has no attribute {name!r}")
