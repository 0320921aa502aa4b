"""Sentence boundaries by a simple punctuation rule (no model): enough for baselines and quotes.

>>> text = "Returns are free. Gift wrap costs 5 euros!  Boutiques open at ten."
>>> [text[s:e] for s, e in split_sentences(text)]
['Returns are free.', 'Gift wrap costs 5 euros!', 'Boutiques open at ten.']
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

_SENTENCE_BOUNDARY = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*\s+|\n\s*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of the sentences of ``text`` (simple punctuation rule; whitespace
    around sentences excluded)."""
    out = []
    pos = 0
    cuts = [m.end() for m in _SENTENCE_BOUNDARY.finditer(text)] + [len(text)]
    for end in cuts:
        chunk = text[pos:end]
        s = pos + (len(chunk) - len(chunk.lstrip()))
        e = pos + len(chunk.rstrip())
        if e > s:
            out.append((s, e))
        pos = end
    return out


