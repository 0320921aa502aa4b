"""Argument checks shared by the store and the components, so bad settings fail at construction."""

from __future__ import annotations

from typing import Any

__all__ = ["check_int", "check_threshold"]


def check_int(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}")


def check_threshold(threshold: Any, name: str = "threshold") -> None:
    """Token-probability thresholds: ``None`` (the model's own) or a probability."""
    if threshold is None:
        return
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1] or None, got {threshold!r}")
