"""QuPath colours: packed signed ARGB integers (0.2, classes.json) and [r, g, b] lists (0.4+)."""

from __future__ import annotations

import hashlib
from typing import Any

RGB = tuple[int, int, int]

#: Colours for the paper's tissue classes, used when writing predictions (QuPath keeps its own if it has them).
TISSUE_COLORS: dict[str, RGB] = {
    "tumour": (200, 0, 0),
    "stroma": (150, 200, 150),
    "mucosa": (255, 170, 60),
    "smooth muscle": (160, 90, 160),
    "necrosis": (90, 60, 30),
    "background": (220, 220, 220),
}


def packed_to_rgb(value: int) -> RGB:
    """Java ``Color.getRGB()`` style int (signed, alpha in the top byte) -> (r, g, b)."""
    v = int(value) & 0xFFFFFFFF
    return ((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF)


def rgb_to_packed(rgb: RGB) -> int:
    """(r, g, b) -> signed 32-bit ARGB int with opaque alpha, as QuPath 0.2 writes ``colorRGB``."""
    r, g, b = (int(c) & 0xFF for c in rgb)
    v = (0xFF << 24) | (r << 16) | (g << 8) | b
    return v - (1 << 32)


def parse_color(value: Any) -> RGB | None:
    """Accept [r, g, b], [r, g, b, a], a packed int, or None; return (r, g, b) or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return packed_to_rgb(value)
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        try:
            r, g, b = (int(value[0]), int(value[1]), int(value[2]))
        except (TypeError, ValueError):
            return None
        if all(0 <= c <= 255 for c in (r, g, b)):
            return (r, g, b)
    return None


def class_color(name: str) -> RGB:
    """A stable colour for a class: the tissue palette, else one derived from the name's hash."""
    key = " ".join(name.casefold().replace("_", " ").split())
    if key == "tumor":
        key = "tumour"
    if key in TISSUE_COLORS:
        return TISSUE_COLORS[key]
    h = hashlib.sha256(name.encode("utf-8")).digest()
    return (64 + h[0] % 192, 64 + h[1] % 192, 64 + h[2] % 192)
