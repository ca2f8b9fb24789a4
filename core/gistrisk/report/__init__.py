"""Self-contained HTML reports (cohort and per patient).

``write_cohort_report`` and ``write_patient_report`` are imported on first use (see below).
"""

from __future__ import annotations

from typing import Any

# The two reports stay behind __getattr__ (imported on first use): importing them here would make every
# gistrisk.report.<module> import load both, e.g. Slicer's patient report 0.6 s -> 1.3 s (the cohort report
# pulls in the survival stack; measured).

__all__ = ["write_cohort_report", "write_patient_report"]


def __getattr__(name: str) -> Any:
    if name == "write_cohort_report":
        from gistrisk.report.cohort_report import write_cohort_report  # noqa: PLC0415 - see above

        return write_cohort_report
    if name == "write_patient_report":
        from gistrisk.report.patient import write_patient_report  # noqa: PLC0415 - see above

        return write_patient_report
    raise AttributeError(name)
