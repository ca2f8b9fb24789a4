"""The bridge's own errors (it imports nothing from gistrisk; gistrisk.pathology converts them)."""

from __future__ import annotations


class QuPathBridgeError(Exception):
    """Base class of the errors the bridge raises on purpose."""


class QuPathInputError(QuPathBridgeError, ValueError):
    """A QuPath file or table the bridge cannot use.

    ``str()`` is "file F, column 'C': message"; ``message``, ``file`` and ``column`` hold the parts.
    """

    def __init__(self, message: str, *, file: str | None = None, column: str | None = None):
        parts = ([f"file {file}"] if file else []) + ([f"column {column!r}"] if column else [])
        super().__init__((", ".join(parts) + ": " if parts else "") + message)
        self.message, self.file, self.column = message, file, column


class QuPathUnavailableError(QuPathBridgeError, RuntimeError):
    """paquo or a QuPath install is needed and missing."""
