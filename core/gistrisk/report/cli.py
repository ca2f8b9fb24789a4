"""`gistrisk report` (placeholder until the report lands)."""

from __future__ import annotations


def report() -> None:
    """Write the HTML report (not yet available)."""
    raise SystemExit("gistrisk report is not available yet")
