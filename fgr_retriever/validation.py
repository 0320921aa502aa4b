"""Argument checks shared by the core and the integrations, so every entry point rejects bad
queries, ``k`` and thresholds with the same typed error (:class:`InvalidInputError`, a ``ValueError``).

>>> check_k(3), check_threshold(None), check_threshold(0.25)
(3, None, 0.25)
"""

from __future__ import annotations

from collections.abc import Mapping

from .errors import InvalidInputError

__all__ = ["check_query", "check_k", "check_threshold", "check_encodable"]


def check_query(query: object) -> str:
    """The query, or :class:`InvalidInputError` for a non-string or blank one."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be str, got {type(query).__name__}")
    if not query.strip():
        raise InvalidInputError("query is empty")
    check_encodable(query, "query")
    return query


def check_encodable(value: object, what: str) -> None:
    """Refuse text that cannot be stored as UTF-8 (lone surrogates, e.g. from ``surrogateescape``
    decoding): the tokenizer, JSON files and SQLite would fail on it later, after work was done.

    Walks strings inside mappings and lists (metadata keys and values).

    >>> check_encodable({"title": "Caf\u00e9"}, "metadata")
    >>> check_encodable("bad " + chr(0xDCFF) + " byte", "text")
    Traceback (most recent call last):
    ...
    fgr_retriever.errors.InvalidInputError: text contains a character that is not valid Unicode text (a lone surrogate \\udcff at position 4); decode the source with the right encoding or errors="replace"
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = ascii(item[exc.start])[1:-1]
                raise InvalidInputError(
                    f"{what} contains a character that is not valid Unicode text (a lone surrogate {bad} at "
                    f'position {exc.start}); decode the source with the right encoding or errors="replace"'
                ) from None
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


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
