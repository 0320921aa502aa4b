"""Small, immutable, JSON-serialisable result types."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

__all__ = ["Span", "TokenScore", "Document", "SearchResult"]


@dataclass(frozen=True, slots=True)
class _ScoredText:
    """A character range ``[start, end)`` of a source text, its text and a score."""

    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return cls(start=int(data["start"]), end=int(data["end"]), text=str(data["text"]),
                   score=float(data["score"]))


@dataclass(frozen=True, slots=True)
class Span(_ScoredText):
    """A run of relevant words: ``text == source[start:end]``.

    ``score`` is the mean relevance probability of the words in the span.

    >>> Span(start=4, end=9, text="quick", score=0.91).to_dict()
    {'start': 4, 'end': 9, 'text': 'quick', 'score': 0.91}
    """


@dataclass(frozen=True, slots=True)
class TokenScore(_ScoredText):
    """The relevance probability of one model token (a wordpiece) with its character range."""


@dataclass(frozen=True, slots=True)
class Document:
    """A stored document: id, full text and free-form JSON metadata."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Document:
        return cls(id=str(data["id"]), text=str(data["text"]), metadata=dict(data.get("metadata") or {}))


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One ranked document with its evidence.

    ``score`` is the ColBERT MaxSim score (sum over query tokens of the best cosine), so it is
    comparable between documents of one query, not between queries. ``spans`` is empty when
    highlighting was switched off or nothing crossed the threshold; ``evidence`` is the compact
    evidence string built from ``spans`` (empty when there are none). ``answers`` is the second,
    narrower tier: the answer inside each evidence span (``0.9 kg`` inside ``Weight: 0.9 kg.``),
    empty when the model has no answer head or is not sure; each lies within one of ``spans``.
    """

    id: str
    text: str
    score: float
    rank: int
    metadata: Mapping[str, Any] = field(default_factory=dict)
    spans: tuple[Span, ...] = ()
    evidence: str = ""
    answers: tuple[Span, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "score": self.score if math.isfinite(self.score) else None,
            "rank": self.rank,
            "metadata": dict(self.metadata),
            "spans": [s.to_dict() for s in self.spans],
            "evidence": self.evidence,
            "answers": [s.to_dict() for s in self.answers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchResult:
        score = data.get("score")
        return cls(
            id=str(data["id"]),
            text=str(data["text"]),
            score=float("nan") if score is None else float(score),
            rank=int(data["rank"]),
            metadata=dict(data.get("metadata") or {}),
            spans=tuple(Span.from_dict(s) for s in data.get("spans") or ()),
            evidence=str(data.get("evidence") or ""),
            answers=tuple(Span.from_dict(s) for s in data.get("answers") or ()),
        )
