"""Argument checks shared by the store and the components, so bad settings fail at construction."""

from __future__ import annotations

from typing import Any

# thresholds are checked by the core, so every integration rejects the same values the same way
from fgr_retriever.validation import check_threshold

__all__ = ["check_int", "check_threshold"]


def check_int(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{' or None' if allow_none else ''}, got {value!r}")
