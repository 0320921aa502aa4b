"""An answerer that needs no language model: it replies with the best evidence spans, cited.

RAG examples and chatbots fall back to it when no generator is configured, so they still run
offline; the reply says plainly that it is extractive.

>>> from fgr_retriever import Span
>>> from fgr_retriever.evidence.prompting import EvidenceSource
>>> text = "Returns are accepted within 30 days of delivery, unworn and with their tags."
>>> answer = extractive_answer([EvidenceSource(id="policy-returns", text=text,
...                              spans=(Span(start=21, end=35, text="within 30 days", score=0.8),))])
>>> print(answer.text)
(No language model is configured; these are the passages that best match the question.)
[1] "Returns are accepted within 30 days of delivery, unworn and with their tags." (policy-returns)
>>> answer.citations[0].id
'policy-returns'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..errors import InvalidInputError
from ..types import SearchResult, Span
from .prompting import Citation, EvidenceSource
from .sentences import split_sentences
from .text import evidence_text

__all__ = ["ExtractiveAnswer", "extractive_answer", "EXTRACTIVE_NOTICE"]

EXTRACTIVE_NOTICE = "(No language model is configured; these are the passages that best match the question.)"
_NOTHING = ("(No language model is configured, and no passage was highlighted for this question. "
            "The closest document is shown instead.)")


@dataclass(frozen=True)
class ExtractiveAnswer:
    """The reply text and the sources it quotes (``[n]`` in the text is ``citations[n-1]``)."""

    text: str
    citations: tuple[Citation, ...]


def _quote(source: EvidenceSource, span: Span, *, context_words: int, max_words: int) -> str:
    """The sentence holding ``span`` (a quote reads better whole); a span widened by
    ``context_words`` words when that sentence is longer than ``max_words``."""
    for start, end in split_sentences(source.text):
        if start <= span.start < end:
            sentence = source.text[start:max(end, span.end)]
            if len(sentence.split()) <= max_words:
                return " ".join(sentence.split())
            break
    quote = evidence_text(source.text, [span], context_words=context_words, separator="…").strip("…")
    return quote if quote.endswith((".", "!", "?")) else quote + "…"


def extractive_answer(sources: Sequence[EvidenceSource | SearchResult], *, max_quotes: int = 3,
                      context_words: int = 8, max_sources: int = 3, max_words: int = 45) -> ExtractiveAnswer:
    """Quote the best-scoring evidence of the first ``max_sources`` sources.

    Each quote is the sentence that holds a source's best span (or, for a sentence over
    ``max_words`` words, the span widened by ``context_words`` words); at most ``max_quotes``
    quotes, the best-scoring first, one per source. With no span anywhere, the first words of the
    best document are quoted and the reply says that nothing was highlighted.
    """
    if max_quotes < 1 or max_sources < 1:
        raise InvalidInputError("max_quotes and max_sources must be >= 1")
    items = [EvidenceSource.from_result(s) if isinstance(s, SearchResult) else s for s in sources]
    items = items[:max_sources]
    if not items:
        return ExtractiveAnswer(text="(No language model is configured, and no document matched the question.)",
                                citations=())
    best: list[tuple[float, int, Span]] = []
    for rank, source in enumerate(items):
        if source.spans:
            top = max(source.spans, key=lambda s: s.score)
            best.append((top.score, rank, top))
    best.sort(key=lambda t: (-t[0], t[1]))
    best = best[:max_quotes]
    lines: list[str] = []
    citations: list[Citation] = []
    if not best:
        source = items[0]
        words = source.text.split()
        quote = " ".join(words[:30]) + (" …" if len(words) > 30 else "")
        citations.append(Citation(number=1, id=source.id, title=source.title))
        lines = [_NOTHING, f'[1] "{quote}" ({source.title or source.id})']
    else:
        lines = [EXTRACTIVE_NOTICE]
        for _, rank, span in sorted(best, key=lambda t: t[1]):  # document order reads better
            source = items[rank]
            quote = _quote(source, span, context_words=context_words, max_words=max_words)
            number = len(citations) + 1
            citations.append(Citation(number=number, id=source.id, title=source.title, spans=(span,)))
            lines.append(f'[{number}] "{quote}" ({source.title or source.id})')
    return ExtractiveAnswer(text="\n".join(lines), citations=tuple(citations))
