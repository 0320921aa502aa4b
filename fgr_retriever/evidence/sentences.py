"""Sentence boundaries with exact character offsets, from a maintained segmenter (BlingFire).

Evidence is chosen sentence by sentence, so a wrong boundary cuts an answer in two. BlingFire's
finite-state segmenter keeps abbreviations, decimals, times and units together (``2 p.m. Paris
time``, ``0.9 kg``, ``No. 5``) and costs about 0.2 ms per passage here; pySBD (5 ms) and
sentencex both split after ``p.m.`` (``benchmarks/experiments/sentence_segmenters.py``).

Three things BlingFire does not do are handled here: line breaks always end a unit (product
sheets and lists put one fact per line, and BlingFire joins lines), a lone abbreviation it cuts
off (``Dr.``) rejoins its sentence, and its offsets are re-checked against the text so a span can
never point at the wrong characters.

>>> text = "Orders placed before 2 p.m. Paris time ship today. Weight: 0.9 kg.\\nStrap: leather"
>>> [text[s:e] for s, e in split_sentences(text)]
['Orders placed before 2 p.m. Paris time ship today.', 'Weight: 0.9 kg.', 'Strap: leather']
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["split_sentences", "split_clauses"]

_LINE = re.compile(r"[^\n]+")
# a "sentence" that is only a title or abbreviation was cut off from the sentence it starts
# (BlingFire splits "… parfum. Dr. Smith signed it." after "Dr.")
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms st no nr prof sr jr vs mt ft gen col lt sgt rev hon inc ltd co corp approx fig vol "
    "cf dept est ref art sec ch pp".split())


def _is_lone_abbreviation(piece: str) -> bool:
    word = piece.strip()
    return word.endswith(".") and word[:-1].lower() in _ABBREVIATIONS
# a clause boundary inside a long sentence: ";" or ":" (not inside a time such as 10:30)
_CLAUSE = re.compile(r"(?<=[;])\s+|(?<=[^\d]:)\s+")


def _segment(line: str) -> list[tuple[int, int]]:
    try:
        import blingfire
    except ImportError:  # pragma: no cover - a core dependency; only a broken install gets here
        return [(0, len(line))]
    _, offsets = blingfire.text_to_sentences_and_offsets(line)
    out = []
    pos = 0
    for start, end in offsets:
        start, end = max(int(start), pos), min(int(end), len(line))
        if end > start:
            out.append((start, end))
            pos = end
    if not out:
        return [(0, len(line))]
    # never lose characters: text between two of BlingFire's sentences joins the next one
    fixed: list[tuple[int, int]] = []
    for k, (start, end) in enumerate(out):
        start = 0 if k == 0 else fixed[-1][1]
        end = len(line) if k == len(out) - 1 else end
        fixed.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in fixed:
        if merged and _is_lone_abbreviation(line[merged[-1][0]:merged[-1][1]]):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@lru_cache(maxsize=4096)
def _split_cached(text: str) -> tuple[tuple[int, int], ...]:
    out = []
    for m in _LINE.finditer(text):
        for s, e in _segment(m.group()):
            chunk = text[m.start() + s: m.start() + e]
            lead = len(chunk) - len(chunk.lstrip())
            trail = len(chunk) - len(chunk.rstrip())
            a, b = m.start() + s + lead, m.start() + e - trail
            if b > a:
                out.append((a, b))
    return tuple(out)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of the sentences of ``text``, in order, whitespace excluded.

    Every non-space character belongs to exactly one sentence; a line break always ends one.
    Results for recently seen texts are cached (search shows the same documents again and again).
    """
    if not text or not text.strip():
        return []
    return list(_split_cached(text))


def split_clauses(text: str, *, min_words: int = 12) -> list[tuple[int, int]]:
    """Sentences, with those of at least ``min_words`` words cut again after ``;`` and ``:``.

    Human evidence on web passages is often a clause of a long sentence (``X is an enlisted
    medical specialist ...``); short sentences stay whole.
    """
    out = []
    for s, e in split_sentences(text):
        sentence = text[s:e]
        if len(sentence.split()) < min_words:
            out.append((s, e))
            continue
        pos = 0
        for m in _CLAUSE.finditer(sentence):
            piece = sentence[pos:m.start()]
            if piece.strip():
                out.append((s + pos, s + pos + len(piece.rstrip())))
            pos = m.end()
        if sentence[pos:].strip():
            out.append((s + pos, e))
    return out
