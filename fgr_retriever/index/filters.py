"""Metadata filters, MongoDB-style, evaluated on plain JSON metadata.

Supported: ``{"field": value}`` (equality), and per field ``{"$eq", "$ne", "$in", "$nin", "$gt",
"$gte", "$lt", "$lte", "$exists"}``; several fields are ANDed; ``{"$and": [...]}`` and
``{"$or": [...]}`` combine filters. Dotted names reach into nested metadata (``"care.level"``).

>>> match = compile_filter({"category": {"$in": ["policy", "care_guide"]}, "price_eur": {"$lt": 500}})
>>> match({"category": "policy", "price_eur": 120})
True
>>> match({"category": "product", "price_eur": 120})
False
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..types import Document

__all__ = ["compile_filter", "compile_document_filter", "MetadataFilter", "DocumentPredicate"]

#: A predicate over a whole stored :class:`~fgr_retriever.types.Document`; integrations use it to
#: plug in their own filter languages (e.g. Haystack's) without translating them to ours.
DocumentPredicate = Callable[["Document"], bool]
MetadataFilter = Union[Mapping[str, Any], DocumentPredicate]
_MISSING = object()
_OPS = {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists"}


def _get(metadata: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is _MISSING or left is None:
        return False
    try:
        if op == "$gt":
            return left > right
        if op == "$gte":
            return left >= right
        if op == "$lt":
            return left < right
        return left <= right
    except TypeError:
        return False  # comparing a string field with a number simply does not match


def _field_predicate(field: str, cond: Any) -> Callable[[Mapping[str, Any]], bool]:
    if not isinstance(cond, Mapping):
        return lambda md: _get(md, field) == cond
    unknown = set(cond) - _OPS
    if unknown:
        raise InvalidInputError(f"unknown filter operator(s) {sorted(unknown)} on {field!r}; use one of {sorted(_OPS)}")
    checks: list[Callable[[Any], bool]] = []
    for op, arg in cond.items():
        if op in ("$in", "$nin"):
            if isinstance(arg, (str, bytes)) or not hasattr(arg, "__iter__"):
                raise InvalidInputError(f"{op} on {field!r} needs a list, got {type(arg).__name__}")
            values = list(arg)
            if op == "$in":
                checks.append(lambda v, values=values: v is not _MISSING and v in values)
            else:
                checks.append(lambda v, values=values: v is _MISSING or v not in values)
        elif op == "$eq":
            checks.append(lambda v, arg=arg: v is not _MISSING and v == arg)
        elif op == "$ne":
            checks.append(lambda v, arg=arg: v is _MISSING or v != arg)
        elif op == "$exists":
            checks.append(lambda v, arg=bool(arg): (v is not _MISSING) == arg)
        else:
            checks.append(lambda v, op=op, arg=arg: _compare(op, v, arg))
    return lambda md: all(check(_get(md, field)) for check in checks)


def compile_document_filter(spec: MetadataFilter | None) -> Callable[[Document], bool]:
    """A predicate over stored documents: a mapping is compiled; a callable receives each document
    with read-only metadata (a user predicate must not be able to edit what is stored).

    >>> from fgr_retriever import Document
    >>> match = compile_document_filter(lambda doc: doc.id.startswith("care-"))
    >>> match(Document(id="care-suede", text="Brush suede in one direction."))
    True
    """
    if spec is not None and callable(spec) and not isinstance(spec, Mapping):
        return lambda doc: bool(spec(replace(doc, metadata=MappingProxyType(doc.metadata))))
    on_metadata = compile_filter(spec)
    return lambda doc: bool(on_metadata(doc.metadata))


def compile_filter(spec: Mapping[str, Any] | None) -> Callable[[Mapping[str, Any]], bool]:
    """Turn a filter mapping into a predicate over metadata; ``None`` matches everything."""
    if spec is None:
        return lambda md: True
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"filter must be a mapping, got {type(spec).__name__}")
    preds: list[Callable[[Mapping[str, Any]], bool]] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise InvalidInputError(f"{key} needs a non-empty list of filters")
            parts = [compile_filter(v) for v in value]
            if key == "$and":
                preds.append(lambda md, parts=parts: all(p(md) for p in parts))
            else:
                preds.append(lambda md, parts=parts: any(p(md) for p in parts))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidInputError(f"unknown top-level filter operator {key!r}; use $and or $or")
        elif not isinstance(key, str) or not key:
            raise InvalidInputError("filter field names must be non-empty strings")
        else:
            preds.append(_field_predicate(key, value))
    return lambda md: all(p(md) for p in preds)
