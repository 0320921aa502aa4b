"""Highlight evaluation data: (query, passage, gold character spans) examples from JSONL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._io import iter_jsonl
from ..errors import InvalidInputError


@dataclass(frozen=True)
class HighlightExample:
    """One (query, passage) pair with its gold evidence as ``[start, end)`` character ranges."""

    id: str
    query: str
    passage: str
    spans: tuple[tuple[int, int], ...]


def read_highlight_file(path: str | Path, *, limit: int | None = None) -> list[HighlightExample]:
    """Read a highlight file (``.jsonl`` or ``.jsonl.gz``: ``query``, ``passage``, ``spans`` and
    optional ``id`` per line; see ``shared/data/README.md``).

    Every record is validated; a bad one raises :class:`InvalidInputError` naming file and line.
    ``limit`` keeps the first records only.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
    out: list[HighlightExample] = []
    for n, rec in iter_jsonl(path):
        missing = [k for k in ("query", "passage", "spans") if k not in rec]
        if missing:
            raise InvalidInputError(f"{path}:{n}: missing key(s) {missing}")
        query, passage, spans = rec["query"], rec["passage"], rec["spans"]
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"{path}:{n}: 'query' must be a non-empty string")
        if not isinstance(passage, str):
            raise InvalidInputError(f"{path}:{n}: 'passage' must be a string")
        if not isinstance(spans, list):
            raise InvalidInputError(f"{path}:{n}: 'spans' must be a list of [start, end] pairs")
        checked = []
        for span in spans:
            ok = (isinstance(span, (list, tuple)) and len(span) == 2
                  and all(isinstance(x, int) and not isinstance(x, bool) for x in span))
            if not ok:
                raise InvalidInputError(f"{path}:{n}: span {span!r} is not a [start, end] pair of ints")
            s, e = span
            if not 0 <= s < e <= len(passage):
                raise InvalidInputError(f"{path}:{n}: span [{s}, {e}) is out of range for a passage of "
                                        f"{len(passage)} characters (need 0 <= start < end <= length)")
            checked.append((s, e))
        ex_id = rec.get("id")
        out.append(HighlightExample(id=str(ex_id) if ex_id is not None else f"{path.name}:{n}",
                                    query=query, passage=passage, spans=tuple(sorted(checked))))
        if limit is not None and len(out) >= limit:
            break
    return out
