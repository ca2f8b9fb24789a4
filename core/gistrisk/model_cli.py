"""`gistrisk fit`, `validate` and `predict` (placeholders until the survival core lands)."""

from __future__ import annotations


def fit() -> None:
    """Fit unimodal and fused Cox models (not yet available)."""
    raise SystemExit("not available yet")


def validate() -> None:
    """Validate a frozen model (not yet available)."""
    raise SystemExit("not available yet")


def predict() -> None:
    """Predict with a frozen model (not yet available)."""
    raise SystemExit("not available yet")
