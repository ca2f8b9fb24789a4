"""Checks of numeric settings (command options, config fields, header fields): an InputError naming the setting."""

from __future__ import annotations

import math
import numbers

from gistrisk.errors import InputError


def check_int(value, name: str, low: int | None = None, *, file: str | None = None) -> int:
    """``value`` as an int, or InputError unless it is an integer (not a bool or a float) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        need = "an integer" + (f" >= {low}" if low is not None else "")
        raise InputError(f"{name} must be {need}, got {value!r}", file=file)
    return int(value)


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, file: str | None = None) -> float:
    """``value`` as a float, or InputError unless it is a finite real number within the bounds."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        if low == 0 and low_open and high is None:
            need = "a positive number"
        else:
            need = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
        raise InputError(f"{name} must be {need}, got {value!r}", file=file)
    return float(value)
