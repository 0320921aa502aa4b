"""Compact evidence strings for prompts: only the evidence, a little context, ``…`` for gaps."""

from __future__ import annotations

import re
from typing import Callable, Sequence

from ..errors import InvalidInputError
from ..types import Span

__all__ = ["evidence_text", "count_words", "answer_in_spans"]

_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Default token counter: whitespace-separated words (about 0.75 of a BPE token count)."""
    return len(_WORD.findall(text))


def evidence_text(text: str, spans: Sequence[Span], *, context_words: int = 0, max_tokens: int | None = None,
                  separator: str = " … ", token_counter: Callable[[str], int] = count_words) -> str:
    """Join the evidence of ``text`` into one compact string.

    Each span is widened by ``context_words`` whitespace words on both sides, overlapping pieces are
    merged, and pieces are joined in document order with ``separator``; a leading or trailing
    ``…`` shows that the text goes on. With ``max_tokens``, the highest-scoring pieces are kept
    until the budget (counted by ``token_counter``) is spent; a single piece longer than the
    budget is cut to its longest prefix of whole words that fits.

    >>> text = "The bag is calfskin. It ships in a dust bag. Returns are free within 30 days."
    >>> evidence_text(text, [Span(start=62, end=77, text="within 30 days.", score=0.9)], context_words=2)
    '… are free within 30 days.'
    """
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if context_words < 0:
        raise InvalidInputError("context_words must be >= 0")
    if not spans:
        return ""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    pieces: list[list[float]] = []  # [start, end, score]
    for span in sorted(spans, key=lambda s: s.start):
        if not 0 <= span.start < span.end <= len(text):
            raise InvalidInputError(f"span {span.start}:{span.end} is outside the text (length {len(text)})")
        start, end = span.start, span.end
        if context_words and words:
            first = next((i for i, (s, e) in enumerate(words) if e > span.start), len(words) - 1)
            last = max((i for i, (s, e) in enumerate(words) if s < span.end), default=first)
            start = min(start, words[max(0, first - context_words)][0])
            end = max(end, words[min(len(words) - 1, last + context_words)][1])
        if pieces and start <= pieces[-1][1]:
            pieces[-1][1] = max(pieces[-1][1], end)
            pieces[-1][2] = max(pieces[-1][2], span.score)
        else:
            pieces.append([start, end, span.score])

    chosen = list(range(len(pieces)))
    if max_tokens is not None:
        chosen, used = [], 0
        for i in sorted(range(len(pieces)), key=lambda i: -pieces[i][2]):
            s, e = int(pieces[i][0]), int(pieces[i][1])
            cost = token_counter(text[s:e])
            if used + cost <= max_tokens:
                chosen.append(i)
                used += cost
            elif not chosen:
                # the best piece alone is over budget: keep its beginning rather than drop it
                words_in = list(_WORD.finditer(text, s, e))
                cut = words_in[0].end() if words_in else e
                for m in words_in[1:]:
                    if token_counter(text[s:m.end()]) > max_tokens:
                        break
                    cut = m.end()
                pieces[i][1] = cut
                chosen.append(i)
                break
        chosen.sort()

    out = []
    for n, i in enumerate(chosen):
        s, e = int(pieces[i][0]), int(pieces[i][1])
        if n == 0 and text[:s].strip():
            out.append(separator.lstrip())
        elif n > 0:
            prev_end = int(pieces[chosen[n - 1]][1])
            # only whitespace between two pieces: nothing was left out, so no ellipsis
            out.append(" " if not text[prev_end:s].strip() else separator)
        out.append(_SPACE.sub(" ", text[s:e]))
    last_end = int(pieces[chosen[-1]][1])
    if text[last_end:].strip():
        out.append(separator.rstrip())
    return "".join(out)


def answer_in_spans(text: str, spans: Sequence[Span], answer: str) -> bool:
    """Whether an occurrence of ``answer`` in ``text`` lies wholly inside one of ``spans``.

    >>> text = "Weight: 0.9 kg. Width: 28 cm."
    >>> answer_in_spans(text, [Span(start=0, end=15, text="Weight: 0.9 kg.", score=0.8)], "0.9 kg")
    True
    """
    if not answer:
        raise InvalidInputError("answer is empty")
    start = text.find(answer)
    while start >= 0:
        end = start + len(answer)
        if any(s.start <= start and end <= s.end for s in spans):
            return True
        start = text.find(answer, start + 1)
    return False
