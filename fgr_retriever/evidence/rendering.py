"""Show highlights to people: ANSI terminal colours, HTML ``<mark>``, Markdown bold.

Two tiers: the evidence spans (sentences) and, inside them, the answer (``answers``, optional).
Evidence is marked as before; an answer is marked within it (HTML: a nested
``<mark class="answer">``, terminal: bold underlined, Markdown: italic inside the bold).
"""

from __future__ import annotations

import html
import re
from typing import Callable, Sequence

from ..types import Span

__all__ = ["render_ansi", "render_html", "render_markdown", "render_plain"]

_ANSI_ON = "\x1b[1;30;43m"  # bold black on yellow: readable on dark and light terminals
_ANSI_ANSWER_ON = "\x1b[4;30;46m"  # underlined black on cyan: the answer stands out inside the evidence
_ANSI_OFF = "\x1b[0m"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")

Mark = Callable[[str, Span], str]


def _layout(spans: Sequence[Span], start: int, end: int) -> list[Span]:
    """The spans that fit in ``[start, end)``, in order, without overlaps (a span overlapping an
    earlier one, or reaching outside, is left out: render what is consistent)."""
    out: list[Span] = []
    pos = start
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos or span.end > end:
            continue
        out.append(span)
        pos = span.end
    return out


def _render(text: str, spans: Sequence[Span], plain: Callable[[str], str], mark: Mark,
            answers: Sequence[Span] = (), answer_mark: Mark | None = None) -> str:
    def flat(start: int, end: int, marks: Sequence[Span], fn: Mark, inner: Callable[[Span], str]) -> str:
        out, pos = [], start
        for span in _layout(marks, start, end):
            out.append(plain(text[pos:span.start]))
            out.append(fn(inner(span), span))
            pos = span.end
        out.append(plain(text[pos:end]))
        return "".join(out)

    def with_answers(span: Span) -> str:
        inside = [a for a in answers if span.start <= a.start and a.end <= span.end]
        if not inside or answer_mark is None:
            return plain(text[span.start:span.end])
        return flat(span.start, span.end, inside, answer_mark, lambda a: plain(text[a.start:a.end]))

    return flat(0, len(text), spans, mark, with_answers)


def render_ansi(text: str, spans: Sequence[Span], *, answers: Sequence[Span] = ()) -> str:
    """Text with the spans in bold on a yellow background (ANSI escape codes), and the answers
    inside them underlined on cyan."""
    return _render(text, spans, lambda s: s, lambda s, _: f"{_ANSI_ON}{s}{_ANSI_OFF}", answers,
                   lambda s, _: f"{_ANSI_OFF}{_ANSI_ANSWER_ON}{s}{_ANSI_OFF}{_ANSI_ON}")


def render_plain(text: str, spans: Sequence[Span], *, answers: Sequence[Span] = ()) -> str:
    """Text with the spans in ``[[…]]`` and the answers inside them in ``{{…}}`` (for pipes and logs)."""
    return _render(text, spans, lambda s: s, lambda s, _: f"[[{s}]]", answers, lambda s, _: f"{{{{{s}}}}}")


def render_html(text: str, spans: Sequence[Span], *, tag: str = "mark", answers: Sequence[Span] = ()) -> str:
    """HTML-escaped text with each span in ``<mark data-score="…">`` and each answer inside it
    in ``<mark class="answer" data-score="…">``."""
    return _render(text, spans, html.escape,
                   lambda s, sp: f'<{tag} data-score="{sp.score:.3f}">{s}</{tag}>', answers,
                   lambda s, sp: f'<{tag} class="answer" data-score="{sp.score:.3f}">{s}</{tag}>')


def _md_emphasis(marker: str) -> Mark:
    def mark(s: str, _: Span) -> str:
        core = s.strip()
        if not core:
            return s
        lead = s[: len(s) - len(s.lstrip())]
        trail = s[len(s.rstrip()):]
        return f"{lead}{marker}{core}{marker}{trail}"
    return mark


def render_markdown(text: str, spans: Sequence[Span], *, answers: Sequence[Span] = ()) -> str:
    """Markdown with the spans in bold and the answers inside them in italics (bold italic);
    Markdown syntax characters in the text are escaped."""
    def esc(s: str) -> str:
        return _MD_SPECIAL.sub(r"\\\1", s)

    return _render(text, spans, esc, _md_emphasis("**"), answers, _md_emphasis("*"))
