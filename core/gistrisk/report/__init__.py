"""Self-contained HTML reports (cohort and per patient).

``write_cohort_report`` and ``write_patient_report`` are imported lazily so that importing the
CLI (``gistrisk --help``) does not load matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["write_cohort_report", "write_patient_report"]


def __getattr__(name: str) -> Any:
    if name == "write_cohort_report":
        from gistrisk.report.cohort_report import write_cohort_report

        return write_cohort_report
    if name == "write_patient_report":
        from gistrisk.report.patient import write_patient_report

        return write_patient_report
    raise AttributeError(name)
