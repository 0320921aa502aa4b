"""Argument checks shared by the core and the integrations, so every entry point rejects bad
queries, ``k`` and thresholds with the same typed error (:class:`InvalidInputError`, a ``ValueError``).

>>> check_k(3), check_threshold(None), check_threshold(0.25)
(3, None, 0.25)
"""

from __future__ import annotations

from .errors import InvalidInputError

__all__ = ["check_query", "check_k", "check_threshold"]


def check_query(query: object) -> str:
    """The query, or :class:`InvalidInputError` for a non-string or blank one."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty")
    return query


def check_k(k: object, *, allow_none: bool = False) -> int | None:
    """A positive int (or ``None`` when allowed)."""
    if k is None and allow_none:
        return None
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInputError(f"k must be a positive int, got {k!r}")
    return k


def check_threshold(threshold: object) -> float | None:
    """``None`` (use the model's own threshold) or a probability in [0, 1], as a float."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise InvalidInputError(f"threshold must be a probability in [0, 1] or None, got {threshold!r}")
    return float(threshold)
