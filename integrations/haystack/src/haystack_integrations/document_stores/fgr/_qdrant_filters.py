"""Haystack filters translated to Qdrant payload filters, for `FGRColBERTQdrantDocumentStore`.

The target is the payload layout of :class:`fgr_retriever.index.qdrant.QdrantIndex`: `doc_id`,
`text` (window 0 only) and `metadata` (the Haystack meta plus the store's reserved keys, on every
window). Field names map as `meta.a.b` -> `metadata.a.b`, `id` -> `doc_id`, `content` -> `text`,
`score` -> `metadata._haystack.score`; a name without a dot that is no Document field is a meta
field, as in Haystack.

The meaning is Haystack's own matcher (`haystack.utils.filters.document_matches_filter`), not
Qdrant's defaults, wherever the two differ:

* Qdrant matches a list-valued field when *any* element matches, and treats `[]` as empty. In
  Haystack a list never equals a scalar and `[] == None` is false. The store records where each
  document's meta holds lists (:func:`list_paths`, kept under :data:`LISTS_KEY`), and every
  scalar comparison excludes those documents.
* Python equality crosses types: `1 == 1.0 == True`. Numbers are compared with ranges (which
  cover integers and floats) and booleans are matched as 0 and 1 where Python would.
* `!=`, `not in` and `NOT` also match documents that lack the field; `== None` matches a missing
  field or a null.
* ISO 8601 date strings compare as instants (Qdrant `DatetimeRange`) for `==`, `in` and the
  ordering operators; any other string, a list or `None` with `>`, `>=`, `<`, `<=` behaves as in
  Haystack (an error, or no match for `None`).

Anything that cannot be expressed with the same meaning raises `FilterError`. What still differs
(only where Haystack itself would raise on some stored value, or on timezones) is listed in the
integration's README.
"""

from __future__ import annotations

import json
import math
import operator
import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from haystack import Document
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from .document_store import RESERVED_META_KEY

__all__ = ["LISTS_KEY", "list_paths", "translate"]

#: Metadata key under which the store keeps the paths of a document's list-valued meta fields
#: (JSON-encoded lists of keys), so that scalar comparisons can leave those documents out.
LISTS_KEY = "_haystack_lists"

_LISTS_PAYLOAD_KEY = f"metadata.{LISTS_KEY}"
_COMPARISONS = ("==", "!=", ">", ">=", "<", "<=", "in", "not in")
_LOGICAL = ("AND", "OR", "NOT")
_ORDER = {">": ("gt", operator.gt), ">=": ("gte", operator.ge), "<": ("lt", operator.lt), "<=": ("lte", operator.le)}
_DOCUMENT_FIELDS = frozenset(f.name for f in fields(Document))
# a key Qdrant's JSON path syntax takes unquoted; anything else is quoted
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ISO_DATE_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[Tt ]|$)")
# integers beyond this lose precision as the float bounds of a Qdrant range
_EXACT_FLOAT_INT = 2**53
_INT64 = 2**63


def encode_path(parts: tuple[str, ...] | list[str]) -> str:
    """One meta path as the string stored under :data:`LISTS_KEY`."""
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))


def list_paths(meta: dict[str, Any]) -> list[str]:
    """The encoded paths of every list in `meta` that a Haystack filter can reach (through dicts only)."""
    found: list[str] = []

    def walk(value: dict[str, Any], parts: tuple[str, ...]) -> None:
        for key, item in value.items():
            if parts == () and key in (RESERVED_META_KEY, LISTS_KEY):
                continue
            if isinstance(item, list):
                found.append(encode_path((*parts, key)))
            elif isinstance(item, dict):
                walk(item, (*parts, key))

    walk(meta, ())
    return sorted(found)


def iso_date(value: str) -> datetime | None:
    """`value` as a datetime when it is an ISO 8601 date (a full `YYYY-MM-DD` first), else None."""
    if not _ISO_DATE_START.match(value):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        import dateutil.parser  # a Haystack dependency; reads ISO spellings fromisoformat does not

        try:
            return dateutil.parser.isoparse(value)
        except (ValueError, OverflowError):
            return None


@dataclass(frozen=True)
class _Field:
    key: str  # the payload key
    name: str  # the Haystack field, for messages
    parts: tuple[str, ...] | None = None  # the meta path, for meta fields (which may hold lists)


def translate(filters: dict[str, Any], *, search: bool = False) -> Any:
    """`filters` as a Qdrant `Filter`, or `True` (matches everything) or `False` (nothing).

    :param search: The filter will run on every window of a document (a search), not on window 0
        only: a `content` condition cannot, and raises `FilterError`.
    :raises FilterError: for a malformed filter or one Qdrant cannot evaluate with Haystack's meaning.
    """
    from fgr_retriever.index.qdrant import require_qdrant

    require_qdrant()  # the library's message when qdrant-client is missing
    from qdrant_client import models

    result = _Translator(models, search).node(filters)
    if isinstance(result, bool) or isinstance(result, models.Filter):
        return result
    return models.Filter(must=[result])


class _Translator:
    """Walks a Haystack filter; each node becomes a Qdrant condition, `True` or `False`."""

    def __init__(self, models: Any, search: bool) -> None:
        self.m = models
        self.search = search

    # ------------------------------------------------------------------ structure
    def node(self, condition: Any) -> Any:
        if not isinstance(condition, dict):
            raise FilterError(f"a filter must be a dict in Haystack filter syntax, got {type(condition).__name__}")
        # as in Haystack: a dict with "field" is a comparison, anything else a logical operator
        if "field" in condition:
            return self.comparison(condition)
        return self.logical(condition)

    def logical(self, condition: dict[str, Any]) -> Any:
        if "operator" not in condition:
            raise FilterError(f"'operator' key missing in {condition}")
        if "conditions" not in condition:
            raise FilterError(f"'conditions' key missing in {condition}")
        op = condition["operator"]
        if op not in _LOGICAL:
            raise FilterError(f"Unknown logical operator {op!r}; valid operators are {list(_LOGICAL)}")
        conditions = condition["conditions"]
        if not isinstance(conditions, (list, tuple)):
            raise FilterError(f"'conditions' of {op} must be a list, got {type(conditions).__name__}")
        parts = [self.node(c) for c in conditions]
        if op == "AND":
            return self.all(parts)
        if op == "OR":
            return self.any(parts)
        return self.negate(self.all(parts))  # Haystack's NOT: not all of them

    def comparison(self, condition: dict[str, Any]) -> Any:
        if "operator" not in condition:
            raise FilterError(f"'operator' key missing in {condition}")
        if "value" not in condition:
            raise FilterError(f"'value' key missing in {condition}")
        op, value, name = condition["operator"], condition["value"], condition["field"]
        if op not in _COMPARISONS:
            raise FilterError(f"Unknown comparison operator {op!r}; valid operators are {list(_COMPARISONS)}")
        target = self.field(name)
        if target is None:
            # a field that is None on every stored document: Haystack's own answer is the answer
            # (including its errors, e.g. "in" without a list)
            return document_matches_filter({"field": name, "operator": op, "value": value}, Document())
        if op == "==":
            return self.equal(target, value)
        if op == "!=":
            return self.negate(self.equal(target, value))
        if op == "in":
            return self.is_in(target, value)
        if op == "not in":
            return self.negate(self.is_in(target, value))
        return self.ordered(target, op, value)

    def field(self, name: Any) -> _Field | None:
        """The payload key for a Haystack field name; None for a field that is None on every document."""
        if not isinstance(name, str) or not name:
            raise FilterError(f"a filter field must be a non-empty string, got {name!r}")
        if name == "id":
            return _Field("doc_id", name)
        if name == "content":
            if self.search:
                raise FilterError(
                    "a search cannot filter on 'content' in FGRColBERTQdrantDocumentStore: the text is stored "
                    "on the first window of each document only, and a search ranks every window. Filter on "
                    "meta fields or id, or use filter_documents() for content conditions."
                )
            return _Field("text", name)
        if name == "score":
            return _Field(f"metadata.{RESERVED_META_KEY}.score", name)
        if "." in name:
            root, *parts = name.split(".")
            if root != "meta":
                return None  # Haystack walks only dicts, and only `meta` is one: always None
        elif name in _DOCUMENT_FIELDS:
            raise FilterError(
                f"FGRColBERTQdrantDocumentStore cannot filter on the Document field {name!r} "
                "(filter on id, content, score or meta fields)"
            )
        else:
            parts = [name]  # a legacy filter's bare meta field, as in Haystack
        if parts[0] in (RESERVED_META_KEY, LISTS_KEY):
            return None  # the store's own keys are never part of a Document's meta
        if any(not part for part in parts):
            raise FilterError(f"field {name!r} has an empty key")
        return _Field("metadata." + ".".join(_quote(p, name) for p in parts), name, tuple(parts))

    # ---------------------------------------------------------- combinators
    def all(self, parts: list[Any]) -> Any:
        if any(p is False for p in parts):
            return False
        rest = [p for p in parts if p is not True]
        if not rest:
            return True
        return rest[0] if len(rest) == 1 else self.m.Filter(must=rest)

    def any(self, parts: list[Any]) -> Any:
        if any(p is True for p in parts):
            return True
        rest = [p for p in parts if p is not False]
        if not rest:
            return False
        return rest[0] if len(rest) == 1 else self.m.Filter(should=rest)

    def negate(self, part: Any) -> Any:
        if isinstance(part, bool):
            return not part
        return self.m.Filter(must_not=[part])

    def scalar(self, target: _Field, conditions: list[Any]) -> Any:
        """Any of `conditions` holds, on a scalar: documents whose field (or a dict above it) is a
        list are left out, where Qdrant would look at the list's elements."""
        if not conditions:
            return False
        if target.parts is None:
            return conditions[0] if len(conditions) == 1 else self.m.Filter(should=conditions)
        prefixes = [encode_path(target.parts[:i]) for i in range(1, len(target.parts) + 1)]
        listed = self.m.FieldCondition(key=_LISTS_PAYLOAD_KEY, match=self.m.MatchAny(any=prefixes))
        return self.m.Filter(should=conditions, must_not=[listed])

    # ------------------------------------------------------------ operators
    def is_none(self, target: _Field) -> Any:
        """Haystack's `== None`: the field is missing or null (not `[]`)."""
        m = self.m
        empty = m.IsEmptyCondition(is_empty=m.PayloadField(key=target.key))  # missing, null or []
        if target.parts is None:
            return empty
        here = m.FieldCondition(key=_LISTS_PAYLOAD_KEY, match=m.MatchAny(any=[encode_path(target.parts)]))
        missing_or_null = m.Filter(must=[empty], must_not=[here])
        if len(target.parts) == 1:
            return missing_or_null
        # a list above the field makes it None for Haystack whatever Qdrant reads through the list
        above = [encode_path(target.parts[:i]) for i in range(1, len(target.parts))]
        blocked = m.FieldCondition(key=_LISTS_PAYLOAD_KEY, match=m.MatchAny(any=above))
        return m.Filter(should=[missing_or_null, blocked])

    def equal(self, target: _Field, value: Any) -> Any:
        if value is None:
            return self.is_none(target)
        return self.scalar(target, self.equal_conditions(target, value))

    def equal_conditions(self, target: _Field, value: Any) -> list[Any]:
        """Conditions, any of which holds when a scalar stored value `== value` in Python (or
        both are ISO dates of the same instant)."""
        m, key = self.m, target.key
        if isinstance(value, bool):
            return [m.FieldCondition(key=key, match=m.MatchValue(value=value)),
                    m.FieldCondition(key=key, range=m.Range(gte=int(value), lte=int(value)))]
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                return []  # NaN equals nothing, and stored meta holds no infinities (JSON)
            if isinstance(value, int) and abs(value) > _EXACT_FLOAT_INT:
                if abs(value) >= _INT64:
                    raise FilterError(f"{target.name!r}: {value} is outside the integers Qdrant stores (int64)")
                conditions = [m.FieldCondition(key=key, match=m.MatchValue(value=value))]
            else:
                # a range matches integers and floats alike, as Python's 2 == 2.0 does
                conditions = [m.FieldCondition(key=key, range=m.Range(gte=value, lte=value))]
            conditions += [m.FieldCondition(key=key, match=m.MatchValue(value=flag))
                           for flag in (False, True) if int(flag) == value]
            return conditions
        if isinstance(value, str):
            conditions = [m.FieldCondition(key=key, match=m.MatchValue(value=value))]
            date = iso_date(value)
            if date is not None:  # another spelling of the same instant is equal too
                conditions.append(m.FieldCondition(key=key, range=m.DatetimeRange(gte=date, lte=date)))
            return conditions
        if isinstance(value, datetime):
            return [m.FieldCondition(key=key, range=m.DatetimeRange(gte=value, lte=value))]
        raise FilterError(
            f"FGRColBERTQdrantDocumentStore cannot compare {target.name!r} with a {type(value).__name__} "
            "(compare with a string, number, bool, datetime or None)"
        )

    def is_in(self, target: _Field, values: Any) -> Any:
        if not isinstance(values, list):
            raise FilterError(
                f"Filter value must be a `list` when using operator 'in' or 'not in', received type '{type(values)}'"
            )
        m = self.m
        plain = list(dict.fromkeys(v for v in values if isinstance(v, str) and iso_date(v) is None))
        conditions = [m.FieldCondition(key=target.key, match=m.MatchAny(any=plain))] if plain else []
        for value in values:
            if value is not None and not (isinstance(value, str) and iso_date(value) is None):
                conditions += self.equal_conditions(target, value)
        parts = [self.scalar(target, conditions)]
        if any(value is None for value in values):
            parts.append(self.is_none(target))
        return self.any(parts)

    def ordered(self, target: _Field, op: str, value: Any) -> Any:
        m, key = self.m, target.key
        bound, compare = _ORDER[op]
        if value is None:
            return False  # Haystack: None is never ordered
        if isinstance(value, list):
            raise FilterError(f"Filter value can't be of type {type(value)} using operators '>', '>=', '<', '<='")
        if isinstance(value, str):
            date = iso_date(value)
            if date is None:
                raise FilterError(
                    "Can't compare strings using operators '>', '>=', '<', '<='. "
                    "Strings are only comparable if they are ISO formatted dates."
                )
            value = date
        if isinstance(value, datetime):
            return self.scalar(target, [m.FieldCondition(key=key, range=m.DatetimeRange(**{bound: value}))])
        if not isinstance(value, (bool, int, float)):
            raise FilterError(f"FGRColBERTQdrantDocumentStore cannot order {target.name!r} by a {type(value).__name__}")
        if isinstance(value, float) and math.isnan(value):
            return False
        if isinstance(value, int) and abs(value) >= _INT64:
            raise FilterError(f"{target.name!r}: {value} is outside the integers Qdrant stores (int64)")
        conditions = []
        if isinstance(value, float) and math.isinf(value):
            if compare(0.0, value):  # every finite number satisfies it: `< inf`, `>= -inf`...
                conditions.append(m.FieldCondition(key=key, range=m.Range(gte=-1.7976931348623157e308)))
        else:
            limit = int(value) if isinstance(value, bool) else value  # Python orders a bool as its number
            conditions.append(m.FieldCondition(key=key, range=m.Range(**{bound: limit})))
        # Python orders booleans as 0 and 1; Qdrant ranges skip them
        conditions += [m.FieldCondition(key=key, match=m.MatchValue(value=flag))
                       for flag in (False, True) if compare(int(flag), value)]
        return self.scalar(target, conditions)


def _quote(part: str, name: str) -> str:
    if _PLAIN_KEY.fullmatch(part):
        return part
    if '"' in part:
        raise FilterError(f"field {name!r}: Qdrant cannot address a key containing a double quote")
    return f'"{part}"'
