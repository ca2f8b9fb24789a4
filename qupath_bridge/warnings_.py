"""The warning category the bridge emits for repairs and flagged objects."""

from __future__ import annotations


class QuPathBridgeWarning(UserWarning):
    """Something in a QuPath file was repaired or is suspicious; the message names the file and object."""
