"""Errors a user can act on: each names the file, the patient and/or the column at fault."""

from __future__ import annotations


class GistRiskError(Exception):
    """Base class for every error gistrisk raises on purpose."""


class InputError(GistRiskError, ValueError):
    """Bad input data. The message names the file, patient and column where known."""

    def __init__(self, message: str, *, file: str | None = None, patient: str | None = None,
                 column: str | None = None):
        parts = []
        if file:
            parts.append(f"file {file}")
        if patient is not None:
            parts.append(f"patient {patient}")
        if column:
            parts.append(f"column {column!r}")
        prefix = (", ".join(parts) + ": ") if parts else ""
        super().__init__(prefix + message)
        self.file, self.patient, self.column = file, patient, column


class BundleError(GistRiskError):
    """A model bundle that is missing, corrupt, or of a schema this version cannot read."""
