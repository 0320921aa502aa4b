"""The one evidence metadata schema every integration attaches to the documents it returns.

A retrieved (or re-ranked) document carries, in its metadata:

- ``relevance_score`` (float): the ColBERT MaxSim score of the document for the query;
- ``evidence_spans`` (list of ``{"start", "end", "text", "score"}``): the highlighted spans, as
  character offsets into the document's **full** text;
- ``answer_spans`` (same shape): the answer inside the evidence spans (the second highlight
  tier; an empty list when the model marked none);
- ``full_text`` (str): only when the document's text was replaced by its evidence
  (``evidence_only=True``), the untrimmed text the offsets refer to.

Everything is plain JSON, so the metadata survives serialisation in LangChain and Haystack.

>>> from fgr_retriever import SearchResult, Span
>>> hit = SearchResult(id="returns", text="Returns are free within 30 days of delivery.", score=7.5,
...                    rank=1, spans=(Span(start=19, end=33, text="within 30 days", score=0.8),),
...                    evidence="free within 30 days of")
>>> text, meta = evidence_fields(hit, evidence_only=True)
>>> text
'free within 30 days of'
>>> meta["evidence_spans"][0]["text"], meta["full_text"] == hit.text
('within 30 days', True)
>>> [s.text for s in spans_from_metadata(meta)], full_text_of(text, meta) == hit.text
(['within 30 days'], True)
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from ..errors import InvalidInputError
from ..types import SearchResult, Span

__all__ = [
    "RELEVANCE_SCORE_KEY",
    "EVIDENCE_SPANS_KEY",
    "ANSWER_SPANS_KEY",
    "FULL_TEXT_KEY",
    "EVIDENCE_KEYS",
    "evidence_fields",
    "spans_from_metadata",
    "full_text_of",
    "strip_evidence_fields",
]

RELEVANCE_SCORE_KEY = "relevance_score"
EVIDENCE_SPANS_KEY = "evidence_spans"
ANSWER_SPANS_KEY = "answer_spans"
FULL_TEXT_KEY = "full_text"
EVIDENCE_KEYS = (RELEVANCE_SCORE_KEY, EVIDENCE_SPANS_KEY, ANSWER_SPANS_KEY, FULL_TEXT_KEY)


def evidence_fields(result: SearchResult, *, evidence_only: bool = False) -> tuple[str, dict[str, Any]]:
    """The text to hand on and the evidence metadata for one search or re-rank result.

    With ``evidence_only`` the text is ``result.evidence`` (the highlighted evidence with a little
    context) and the full text moves to ``full_text``. A result with no highlighted span keeps
    its full text even then: an empty document would silently drop whatever the threshold missed.
    """
    score = float(result.score)
    meta: dict[str, Any] = {
        RELEVANCE_SCORE_KEY: score if math.isfinite(score) else None,
        EVIDENCE_SPANS_KEY: [span.to_dict() for span in result.spans],
        ANSWER_SPANS_KEY: [span.to_dict() for span in result.answers],
    }
    text = result.text
    if evidence_only and result.evidence:
        text = result.evidence
        meta[FULL_TEXT_KEY] = result.text
    return text, meta


def full_text_of(text: str, metadata: Mapping[str, Any]) -> str:
    """The text that ``evidence_spans`` offsets refer to: ``full_text`` if the text was trimmed."""
    full = metadata.get(FULL_TEXT_KEY)
    return full if isinstance(full, str) else text


def spans_from_metadata(metadata: Mapping[str, Any], *, text: str | None = None,
                        key: str = EVIDENCE_SPANS_KEY) -> list[Span]:
    """Read ``evidence_spans`` (or ``key``, e.g. ``answer_spans``) back as :class:`Span` objects
    (``[]`` when there are none).

    With ``text`` (the full text), every span is checked against it, so metadata that was edited
    or attached to the wrong document raises :class:`InvalidInputError` instead of pointing at
    the wrong words.
    """
    raw = metadata.get(key)
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise InvalidInputError(f"{key} must be a list, got {type(raw).__name__}")
    spans = []
    for i, item in enumerate(raw):
        if isinstance(item, Span):
            span = item
        elif isinstance(item, Mapping):
            try:
                span = Span.from_dict(item)
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInputError(f"{key}[{i}] is not a span ({exc!r})") from None
        else:
            raise InvalidInputError(f"{key}[{i}] must be a mapping, got {type(item).__name__}")
        if text is not None and not (0 <= span.start < span.end <= len(text)
                                     and text[span.start:span.end] == span.text):
            raise InvalidInputError(f"{key}[{i}] ({span.start}:{span.end} {span.text!r}) "
                                    f"does not match the document text")
        spans.append(span)
    return spans


def strip_evidence_fields(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``metadata`` without the evidence keys (e.g. before re-ranking a document again)."""
    return {k: v for k, v in metadata.items() if k not in EVIDENCE_KEYS}
