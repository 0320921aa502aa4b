"""Compact evidence strings for prompts: only the evidence, a little context, ``…`` for gaps."""

from __future__ import annotations

import re
from typing import Callable, Sequence

from ..errors import InvalidInputError
from ..types import Span

__all__ = ["evidence_text", "context_windows", "count_words", "answer_in_spans"]

_WORD = re.compile(r"\S+")
_SPACE = re.compile(r"\s+")


def count_words(text: str) -> int:
    """Default token counter: whitespace-separated words (about 0.75 of a BPE token count)."""
    return len(_WORD.findall(text))


# A number's unit is the word after it ("15 EUR", "0.9 kg", "30 days") or a currency before it
# ("EUR 15", "€ 15"); evidence that keeps the number but not its unit misleads.
_UNITS = frozenset("""
% ‰ kg g mg t lb lbs oz ct carat carats karat k mm cm m km in inch inches ft feet yd mi ml cl dl l litre litres
liter liters gal m2 m3 sqm w kw kwh v mah wh hz ghz mb gb tb px dpi s sec secs second seconds min mins minute minutes
h hr hrs hour hours day days week weeks month months year years pcs pc pieces piece items times x
""".split())
_CURRENCY = frozenset("€ $ £ ¥ ₹ ₩ ₽ ₺ CHF".split())
_CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")
_TRAILING_PUNCT = re.compile(r"[.,;:!?)\]}'\"]+$")


def _unit_end(text: str, pos: int) -> int | None:
    """Where the unit or currency word right after ``pos`` ends, if there is one on the same line."""
    nxt = _WORD.search(text, pos)
    if not nxt or "\n" in text[pos:nxt.start()]:
        return None
    core = _TRAILING_PUNCT.sub("", nxt.group())
    if core.lower() in _UNITS or core in _CURRENCY or _CURRENCY_CODE.match(core):
        return nxt.start() + len(core)
    return None


def widen_to_units(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to the unit of a number at its end, or the currency before a
    number at its start, when that word sits on the same line."""
    inside = _WORD.findall(text, start, end)
    if inside and any(ch.isdigit() for ch in inside[-1]) and not _TRAILING_PUNCT.search(inside[-1]):
        end = _unit_end(text, end) or end
    if inside and inside[0][:1].isdigit():
        before = [m for m in _WORD.finditer(text, max(0, start - 16), start) if m.end() <= start]
        if before and "\n" not in text[before[-1].end():start] and \
                (before[-1].group() in _CURRENCY or _CURRENCY_CODE.match(before[-1].group())):
            start = before[-1].start()
    return start, end


def _is_unit_after(text: str, pos: int) -> bool:
    """Whether the word ending at ``pos`` is a number whose unit is the next word."""
    return pos > 0 and text[pos - 1].isdigit() and _unit_end(text, pos) is not None


def _widen(words: Sequence[tuple[int, int]], start: int, end: int, context_words: int) -> tuple[int, int]:
    """``[start, end)`` widened by ``context_words`` whole words on each side (``words``: the
    text's ``(start, end)`` word ranges)."""
    if not context_words or not words:
        return start, end
    first = next((i for i, (_, e) in enumerate(words) if e > start), len(words) - 1)
    last = max((i for i, (s, _) in enumerate(words) if s < end), default=first)
    return (min(start, words[max(0, first - context_words)][0]),
            max(end, words[min(len(words) - 1, last + context_words)][1]))


def context_windows(text: str, ranges: Sequence[tuple[int, int]], context_words: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges widened by ``context_words`` words on each side, overlapping or
    touching ones merged, in text order: the pieces an evidence string or a snippet shows.

    >>> context_windows("a b c d e f g h", [(2, 3), (12, 13)], 1)
    [(0, 5), (10, 15)]
    """
    words = [(m.start(), m.end()) for m in _WORD.finditer(text)]
    windows: list[list[int]] = []
    for start, end in sorted(ranges):
        a, b = _widen(words, start, end, context_words)
        if windows and a <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    return [(a, b) for a, b in windows]


def _cut(text: str, end: int, spans: list[tuple[int, int]], max_tokens: int,
         token_counter: Callable[[str], int]) -> tuple[int, int]:
    """The longest beginning of an over-budget piece that fits the budget.

    The piece's left context goes first: the result starts at its first span. It ends between
    words and never inside a highlighted span, except when the first span alone is over the
    whole budget; that span is cut between words, never between a number and its unit.
    """
    first_start, first_end = spans[0]

    def fits(stop: int) -> bool:
        return token_counter(text[first_start:stop]) <= max_tokens

    if not fits(first_end):
        words = list(_WORD.finditer(text, first_start, first_end))
        cut = None
        for m in words:
            if not fits(m.end()):
                break
            if not _is_unit_after(text, m.end()):
                cut = m.end()
        return first_start, cut or words[0].end()
    cut = first_end
    for m in _WORD.finditer(text, first_end, end):
        if any(a < m.end() < b for a, b in spans):
            continue  # would end inside a highlighted span
        if not fits(m.end()):
            break
        cut = m.end()
    return first_start, cut


def evidence_text(text: str, spans: Sequence[Span], *, context_words: int = 0, max_tokens: int | None = None,
                  separator: str = " … ", token_counter: Callable[[str], int] = count_words) -> str:
    """Join the evidence of ``text`` into one compact string.

    Each span is widened by ``context_words`` whitespace words on both sides, overlapping pieces are
    merged, and pieces are joined in document order with ``separator``; a leading or trailing
    ``…`` shows that the text goes on. With ``max_tokens``, the highest-scoring pieces are kept
    until the budget (counted by ``token_counter``) is spent; a single piece longer than the
    budget loses its context first and is then cut between words, never inside a highlighted
    span unless that span alone is over the whole budget (and never between a number and its
    unit). A number at the end of a span keeps its unit (``15 EUR``, ``0.9 kg``) and one at its
    start keeps its currency (``EUR 15``).

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
    pieces: list[list] = []  # [start, end, score, [(span start, span end), ...]]
    for span in sorted(spans, key=lambda s: s.start):
        if not 0 <= span.start < span.end <= len(text):
            raise InvalidInputError(f"span {span.start}:{span.end} is outside the text (length {len(text)})")
        core = widen_to_units(text, span.start, span.end)
        # context is counted from the span itself, so a unit it gained does not cost a context word
        start, end = _widen(words, span.start, span.end, context_words)
        start, end = min(start, core[0]), max(end, core[1])
        if pieces and start <= pieces[-1][1]:
            pieces[-1][1] = max(pieces[-1][1], end)
            pieces[-1][2] = max(pieces[-1][2], span.score)
            pieces[-1][3].append(core)
        else:
            pieces.append([start, end, span.score, [core]])

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
                pieces[i][0], pieces[i][1] = _cut(text, e, pieces[i][3], max_tokens, token_counter)
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
