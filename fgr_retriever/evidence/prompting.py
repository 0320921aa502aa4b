"""Evidence-trimmed prompt context: give the generator the highlighted words, not whole documents.

Sources (retrieved documents with their spans) become a numbered context block; each entry is the
document's evidence with a few words of context, every entry is cited as ``[n]`` back to its
document id, and an optional token budget is shared by the sources in rank order. Nothing here
knows about LangChain or Haystack: their prompt helpers turn their documents into
:class:`EvidenceSource` objects (via the evidence metadata schema) and call :func:`build_context`.

>>> from fgr_retriever import Span
>>> text = "Our boutiques open at ten. Returns are accepted within 30 days of delivery. Gift wrap is free."
>>> source = EvidenceSource(id="policy-returns", text=text,
...                         spans=(Span(start=48, end=62, text="within 30 days", score=0.9),))
>>> context = build_context([source], context_words=2)
>>> print(context.text)
[1] policy-returns
… are accepted within 30 days of delivery. …
>>> context.citations[0].id, context.tokens
('policy-returns', 11)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Sequence

from ..errors import InvalidInputError
from ..types import SearchResult, Span
from .metadata import RELEVANCE_SCORE_KEY, full_text_of, spans_from_metadata
from .text import count_words, evidence_text

__all__ = [
    "EvidenceSource",
    "Citation",
    "EvidenceContext",
    "build_context",
    "build_prompt",
    "DEFAULT_PROMPT_TEMPLATE",
]

TokenCounter = Callable[[str], int]
_WORD = re.compile(r"\S+")

DEFAULT_PROMPT_TEMPLATE = (
    "Answer the question using only the numbered evidence below. Cite the evidence you use with its "
    "number in square brackets, e.g. [1]. If the evidence does not answer the question, say so.\n\n"
    "Evidence:\n{context}\n\nQuestion: {question}\nAnswer:"
)


@dataclass(frozen=True)
class EvidenceSource:
    """One retrieved document as the prompt builder sees it.

    ``text`` is the full text that the ``spans`` offsets refer to; ``title`` (optional) names the
    source in the context header instead of its id.
    """

    id: str
    text: str
    spans: tuple[Span, ...] = ()
    score: float | None = None
    title: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInputError(f"source id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise InvalidInputError(f"source text must be str, got {type(self.text).__name__}")
        object.__setattr__(self, "spans", tuple(self.spans))
        for span in self.spans:
            if not (0 <= span.start < span.end <= len(self.text)):
                raise InvalidInputError(f"span {span.start}:{span.end} of source {self.id!r} is outside its text")

    @classmethod
    def from_result(cls, result: SearchResult) -> EvidenceSource:
        """From an :class:`~fgr_retriever.FGRRetriever` search or re-rank result."""
        title = result.metadata.get("title")
        return cls(id=result.id, text=result.text, spans=result.spans, score=result.score,
                   title=title if isinstance(title, str) else None)

    @classmethod
    def from_fields(cls, *, id: str, text: str, metadata: Mapping[str, Any]) -> EvidenceSource:
        """From a framework document's id, text and metadata in the evidence schema.

        The full text is taken from ``full_text`` when the document was trimmed, so spans always
        point into the right string; a document without evidence metadata has no spans.
        """
        full = full_text_of(text, metadata)
        score = metadata.get(RELEVANCE_SCORE_KEY)
        title = metadata.get("title")
        return cls(id=id, text=full, spans=tuple(spans_from_metadata(metadata, text=full)),
                   score=float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None,
                   title=title if isinstance(title, str) else None)


@dataclass(frozen=True)
class Citation:
    """A numbered context entry: ``label`` (``"[n]"``) is what the generator cites."""

    number: int
    id: str
    title: str | None = None
    spans: tuple[Span, ...] = ()

    @property
    def label(self) -> str:
        return f"[{self.number}]"

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "label": self.label, "id": self.id, "title": self.title,
                "spans": [s.to_dict() for s in self.spans]}


@dataclass(frozen=True)
class EvidenceContext:
    """The context block for a prompt, its citations, its size and what did not fit.

    ``omitted`` lists the ids of sources left out, because they had no evidence (with
    ``without_evidence="skip"``) or the token budget was spent.
    """

    text: str
    citations: tuple[Citation, ...] = ()
    tokens: int = 0
    omitted: tuple[str, ...] = field(default_factory=tuple)

    def citation(self, label_or_number: str | int) -> Citation:
        """The citation behind ``"[2]"``, ``"2"`` or ``2``; unknown numbers raise ``KeyError``."""
        number = int(str(label_or_number).strip("[] "))
        for c in self.citations:
            if c.number == number:
                return c
        raise KeyError(f"no citation [{number}] in this context")

    def cited_in(self, answer: str) -> list[Citation]:
        """The citations an answer refers to (``[n]`` markers), in order of first mention."""
        seen: list[Citation] = []
        for m in re.finditer(r"\[(\d+)\]", answer):
            try:
                c = self.citation(int(m.group(1)))
            except KeyError:
                continue
            if c not in seen:
                seen.append(c)
        return seen

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "citations": [c.to_dict() for c in self.citations], "tokens": self.tokens,
                "omitted": list(self.omitted)}


def _prefix_words(text: str, budget: int, counter: TokenCounter) -> str:
    """The longest prefix of whole words of ``text`` whose size is within ``budget``."""
    if counter(text) <= budget:
        return text
    cut = 0
    for m in _WORD.finditer(text):
        if counter(text[:m.end()]) > budget:
            break
        cut = m.end()
    return text[:cut] + (" …" if cut else "")


def build_context(sources: Sequence[EvidenceSource | SearchResult], *, mode: Literal["evidence", "full"] = "evidence",
                  context_words: int = 16, max_tokens: int | None = None,
                  without_evidence: Literal["skip", "full"] = "skip",
                  token_counter: TokenCounter = count_words) -> EvidenceContext:
    """Number the sources and lay out their evidence (or full text) as one context block.

    Args:
        sources: best first; :class:`SearchResult` objects are accepted as they are.
        mode: ``"evidence"`` keeps the highlighted spans widened by ``context_words`` words on each
            side (gaps shown as ``…``); ``"full"`` keeps whole documents (the baseline).
        max_tokens: budget for the whole block, header lines included, counted by
            ``token_counter`` (whitespace words by default; pass a tokenizer's counter for model
            tokens). Sources are filled in rank order; within a source the best-scoring evidence
            pieces are kept first. Sources that no longer fit are listed in ``omitted``.
        without_evidence: what to do with a source that has no span in ``"evidence"`` mode:
            ``"skip"`` it (the model saw nothing relevant) or include its ``"full"`` text.
    """
    if mode not in ("evidence", "full"):
        raise InvalidInputError(f"mode must be 'evidence' or 'full', got {mode!r}")
    if without_evidence not in ("skip", "full"):
        raise InvalidInputError(f"without_evidence must be 'skip' or 'full', got {without_evidence!r}")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if isinstance(sources, (str, EvidenceSource, SearchResult)):
        raise InvalidInputError("sources must be a list (wrap a single source in [...])")
    items = [EvidenceSource.from_result(s) if isinstance(s, SearchResult) else s for s in sources]
    for i, s in enumerate(items):
        if not isinstance(s, EvidenceSource):
            raise InvalidInputError(f"source {i} must be an EvidenceSource or SearchResult, got {type(s).__name__}")

    blocks: list[str] = []
    citations: list[Citation] = []
    omitted: list[str] = []
    used = 0
    for source in items:
        use_evidence = mode == "evidence" and bool(source.spans)
        if mode == "evidence" and not source.spans and without_evidence == "skip":
            omitted.append(source.id)
            continue
        header = f"[{len(citations) + 1}] {source.title or source.id}"
        remaining = None if max_tokens is None else max_tokens - used - token_counter(header)
        if remaining is not None and remaining < 1:
            omitted.append(source.id)
            continue
        if use_evidence:
            body = evidence_text(source.text, source.spans, context_words=context_words, max_tokens=remaining,
                                 token_counter=token_counter)
        else:
            body = " ".join(source.text.split())
            if remaining is not None:
                body = _prefix_words(body, remaining, token_counter)
        if not body.strip() or (remaining is not None and token_counter(body) > remaining):
            omitted.append(source.id)
            continue
        block = f"{header}\n{body}"
        used += token_counter(header) + token_counter(body)
        blocks.append(block)
        citations.append(Citation(number=len(citations) + 1, id=source.id, title=source.title,
                                  spans=source.spans if use_evidence else ()))
    return EvidenceContext(text="\n\n".join(blocks), citations=tuple(citations), tokens=used, omitted=tuple(omitted))


def build_prompt(question: str, context: EvidenceContext | str, *, template: str = DEFAULT_PROMPT_TEMPLATE) -> str:
    """Fill ``template`` (with ``{context}`` and ``{question}`` fields) for one question."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidInputError("question must be a non-empty string")
    if "{context}" not in template or "{question}" not in template:
        raise InvalidInputError("template must contain {context} and {question}")
    text = context.text if isinstance(context, EvidenceContext) else context
    return template.replace("{context}", text).replace("{question}", question)
