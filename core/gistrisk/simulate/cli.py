"""`gistrisk simulate` and `gistrisk demo` (placeholders until the simulation lands)."""

from __future__ import annotations


def simulate() -> None:
    """Simulate a multimodal cohort (not yet available)."""
    raise SystemExit("gistrisk simulate is not available yet")


def demo() -> None:
    """Run the whole pipeline on a simulated cohort (not yet available)."""
    raise SystemExit("gistrisk demo is not available yet")
