"""Show highlights to people: ANSI terminal colours, HTML ``<mark>``, Markdown bold."""

from __future__ import annotations

import html
import re
from typing import Callable, Sequence

from ..types import Span

__all__ = ["render_ansi", "render_html", "render_markdown"]

_ANSI_ON = "\x1b[1;30;43m"  # bold black on yellow: readable on dark and light terminals
_ANSI_OFF = "\x1b[0m"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def _render(text: str, spans: Sequence[Span], plain: Callable[[str], str], mark: Callable[[str, Span], str]) -> str:
    out, pos = [], 0
    for span in sorted(spans, key=lambda s: s.start):
        if span.start < pos or span.end > len(text):
            continue  # overlapping or foreign spans: render what is consistent
        out.append(plain(text[pos:span.start]))
        out.append(mark(text[span.start:span.end], span))
        pos = span.end
    out.append(plain(text[pos:]))
    return "".join(out)


def render_ansi(text: str, spans: Sequence[Span]) -> str:
    """Text with the spans in bold on a yellow background (ANSI escape codes)."""
    return _render(text, spans, lambda s: s, lambda s, _: f"{_ANSI_ON}{s}{_ANSI_OFF}")


def render_html(text: str, spans: Sequence[Span], *, tag: str = "mark") -> str:
    """HTML-escaped text with each span in ``<mark data-score="…">``."""
    return _render(text, spans, html.escape,
                   lambda s, sp: f'<{tag} data-score="{sp.score:.3f}">{html.escape(s)}</{tag}>')


def render_markdown(text: str, spans: Sequence[Span]) -> str:
    """Markdown with the spans in bold; Markdown syntax characters in the text are escaped."""
    def esc(s: str) -> str:
        return _MD_SPECIAL.sub(r"\\\1", s)

    def mark(s: str, _: Span) -> str:
        core = s.strip()
        if not core:
            return esc(s)
        lead = s[: len(s) - len(s.lstrip())]
        trail = s[len(s.rstrip()):]
        return f"{esc(lead)}**{esc(core)}**{esc(trail)}"

    return _render(text, spans, esc, mark)
