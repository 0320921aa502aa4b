"""Find LLM-quoted strings in a passage and turn them into ``[start, end)`` character offsets.

A teacher LLM is asked to copy evidence *verbatim*, but it does not always: it changes case,
straightens or curls quotes, collapses whitespace, or makes a small typo. This module places each
quoted string by the first tier that matches and never invents an offset — a string that is not
in the passage (the LLM made it up or paraphrased it beyond recognition) is dropped and reported.

Tiers, tried for all strings before the next tier starts (so an exact match always wins an
occurrence before an approximate match could take it):

``exact``
    the string occurs as is.
``normalized``
    it occurs after Unicode NFKC, case folding, whitespace collapsing and straightening of curly
    quotes and dashes (on both sides). Matches are mapped back to the *original* passage offsets.
``fuzzy``
    it occurs with a Levenshtein edit distance (computed with ``rapidfuzz``) of at most
    ``max_edit_ratio`` of its (normalised) length, for strings of at least ``min_fuzzy_chars``
    characters. The match is snapped to word boundaries so it never cuts a word. The search
    is fast at the default ratio (0.1: about 1.4 ms per quote in a 2,000-character passage);
    its cost grows with the ratio, to about 90 ms per quote at 0.5 (docs/benchmarks.md).

Within a tier, longer strings are placed first. A string goes to its first occurrence that no
other string has taken yet (the same character range), so a phrase quoted twice marks two
places, and a short quote listed beside a longer one that contains it ("Scarlett", "Scarlett
ALIAS") keeps its own first occurrence: listed separately, it usually means a separate mention.
A string quoted more often than it occurs (in any tier) is a duplicate and reuses an occurrence.

>>> loc = locate_spans("The Eiffel Tower is in Paris, France.", ["eiffel tower", "Paris"])
>>> loc.spans, loc.span_texts, loc.tier_counts["normalized"]
([(4, 16), (23, 28)], ['Eiffel Tower', 'Paris'], 1)
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import Levenshtein

__all__ = [
    "TIERS",
    "LocatedSpan",
    "SpanLocation",
    "locate_spans",
    "merge_spans",
    "normalize_with_map",
]

TIERS: tuple[str, ...] = ("exact", "normalized", "fuzzy")

# Characters LLMs (and word processors) swap for each other. Everything maps to its ASCII twin.
_STRAIGHTEN = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
    "\u2026": "...",
}


@dataclass(frozen=True, slots=True)
class LocatedSpan:
    """Where one quoted string was placed: ``text == passage[start:end]``.

    ``quote`` is the string the LLM gave, ``tier`` the tier that matched it, ``distance`` the edit
    distance of a ``fuzzy`` match (0 otherwise).
    """

    quote: str
    start: int
    end: int
    text: str
    tier: str
    distance: int = 0


@dataclass(frozen=True)
class SpanLocation:
    """The result of :func:`locate_spans`.

    ``spans`` are merged, whitespace-stripped, sorted, non-overlapping ``(start, end)`` pairs in
    the highlight-JSONL convention and ``span_texts[i] == passage[start:end]``. ``matches`` keeps
    one :class:`LocatedSpan` per placed string (in input order, before merging); ``tiers`` gives,
    per input string, the tier that placed it or ``None`` (dropped, or empty after stripping).
    ``dropped`` lists the strings that occur nowhere in the passage.

    >>> r = locate_spans("a b", ["zzz"])
    >>> r.spans, r.dropped, r.found_any
    ([], ('zzz',), False)
    """

    spans: list[tuple[int, int]]
    span_texts: list[str]
    matches: tuple[LocatedSpan, ...]
    tiers: tuple[str | None, ...]
    dropped: tuple[str, ...]
    tier_counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))

    @property
    def found_any(self) -> bool:
        """Whether at least one quoted string was placed."""
        return bool(self.matches)


# ----------------------------------------------------------------------------- normalisation
def normalize_with_map(text: str) -> tuple[str, list[int], list[int]]:
    """Normalise ``text`` for matching and say where each output character came from.

    Returns ``(normalized, starts, ends)``: normalised character ``i`` was produced by
    ``text[starts[i]:ends[i]]``, so a match ``normalized[a:b]`` covers ``text[starts[a]:ends[b-1]]``.
    Normalisation works on a base character plus its combining marks at a time (so ``e`` + U+0301
    and the precomposed ``é`` compare equal), applies NFKC and case folding, straightens curly
    quotes and dashes, drops control/format characters (zero-width spaces, soft hyphens, stray C1
    bytes of mojibake) and collapses each whitespace run to one space.

    >>> normalize_with_map("A\u00a0 “B”")[0]
    'a "b"'
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        cluster = text[i:j]
        if cluster.isspace():
            # extend over the whole whitespace run; it becomes one space mapped to the whole run
            while j < n and text[j].isspace():
                j += 1
            if out and out[-1] == " ":
                ends[-1] = j
            else:
                out.append(" ")
                starts.append(i)
                ends.append(j)
            i = j
            continue
        norm = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", cluster).casefold())
        for ch in norm:
            ch = _STRAIGHTEN.get(ch, ch)
            if unicodedata.category(ch[0]) in ("Cc", "Cf"):
                continue
            for c in ch:
                if c.isspace():  # NFKC can produce spaces (e.g. from U+2002); keep them collapsed
                    if out and out[-1] == " ":
                        ends[-1] = j
                        continue
                    c = " "
                out.append(c)
                starts.append(i)
                ends.append(j)
        i = j
    return "".join(out), starts, ends


def _normalize(text: str) -> str:
    return normalize_with_map(text)[0].strip()


# ----------------------------------------------------------------------------------- merging
def merge_spans(passage: str, spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Strip whitespace from each span, drop empty ones, sort, and merge overlapping/touching ones.

    Touching means one ends exactly where the next starts; two spans separated by a space stay two.

    >>> merge_spans("ab cd", [(3, 5), (0, 2), (1, 2)])
    [(0, 2), (3, 5)]
    >>> merge_spans("abcd", [(0, 2), (2, 4)])
    [(0, 4)]
    """
    cleaned = []
    for s, e in spans:
        s, e = max(0, int(s)), min(len(passage), int(e))
        while s < e and passage[s].isspace():
            s += 1
        while e > s and passage[e - 1].isspace():
            e -= 1
        if s < e:
            cleaned.append((s, e))
    merged: list[tuple[int, int]] = []
    for s, e in sorted(cleaned):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


# ------------------------------------------------------------------------------ fuzzy search
# Edit distances come from rapidfuzz, a maintained C++ (bit-parallel) Levenshtein implementation,
# rather than a dynamic programme of our own; this module only decides which substrings to measure.
def _distances(pattern: str, text: str, starts: np.ndarray, ends: np.ndarray, cutoff: int) -> np.ndarray:
    """Levenshtein distance of ``pattern`` to each ``text[starts[i]:ends[i]]`` (``cutoff + 1`` if above)."""
    if not len(starts):
        return np.empty(0, dtype=np.int64)
    windows = [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    return process.cdist([pattern], windows, scorer=Levenshtein.distance, score_cutoff=cutoff,
                         dtype=np.int64)[0]


def _fuzzy_candidates(pattern: str, text: str, max_dist: int) -> list[tuple[int, int, int]]:
    """``(distance, start, end)`` of the best approximate occurrences of ``pattern`` in ``text``.

    Each end of ``text`` has a best distance: that of the best substring ending there (semi-global
    alignment). The ends whose best is within ``k = max_dist`` form runs, one per occurrence; each
    run keeps its first end with the run's best distance, and that end the best-distance start
    whose length is closest to the pattern's (on a tie, the shorter span). Sorted best first.

    Exact, but rapidfuzz only measures the ``(start, end)`` pairs that can change the result. A
    match is ``len(pattern) ± k`` characters long, and moving one end of a substring by one
    character changes its distance by at most one. (1) Cut into ``k + 1`` pieces, the pattern
    keeps one piece intact in a match, which starts within ``k`` of where that piece puts it: only
    text near exact occurrences of a piece is searched. (2) There, the distances of the
    ``len(pattern)``-character windows bound every pair's distance from below and every end's
    best from above. (3) For the ends not already known to be within ``k``, every pair that can
    be is measured, which settles the runs; then, in each run, only the pairs that can reach the
    run's best.
    """
    m, n, k = len(pattern), len(text), max_dist
    shortest = max(0, m - k)
    if n < shortest:
        return []
    width = n - shortest + 1  # possible starts
    # (1) where an intact piece puts the start of a match; keep windows within 2k of it, which
    # covers the windows at the starts (within k) and at the ends (within k more) of matches
    cuts = [i * m // (k + 1) for i in range(k + 2)]
    anchors = np.array([x - a for a, b in zip(cuts, cuts[1:])
                        for x in _all_occurrences(text, pattern[a:b])], dtype=np.int64)
    if not len(anchors):
        return []
    cover = np.zeros(width + 1, dtype=np.int64)
    np.add.at(cover, np.clip(anchors - 2 * k, 0, width), 1)
    np.add.at(cover, np.clip(anchors + 2 * k + 1, 0, width), -1)
    searched = np.flatnonzero(np.cumsum(cover)[:-1] > 0)
    # (2) near[s]: distance of the len(pattern)-character window at s (cut short by the text's
    # end), capped at 2k + 1, which windows outside the searched text keep: they can neither
    # start nor end a match
    near = np.full(width, 2 * k + 1, dtype=np.int64)
    near[searched] = _distances(pattern, text, searched, searched + m, 2 * k)
    cand = np.flatnonzero(near <= 2 * k)
    if not len(cand):
        return []
    lengths = np.arange(shortest, m + k + 1)
    starts = np.repeat(cand, len(lengths))
    ends = starts + np.tile(lengths, len(cand))
    off = np.abs(ends - starts - m)
    own = ends - m  # start of the len(pattern) window ending where the pair ends
    own_near = np.where(own < 0, 0, near[np.clip(own, 0, width - 1)])
    low = np.maximum(off, np.maximum(near[starts], own_near) - off)  # <= the pair's distance
    keep = (ends <= n) & (low <= k)
    starts, ends, low = starts[keep], ends[keep], low[keep]
    # upper bound of each end's best: a window's distance, plus one per character moved
    pos = np.arange(n + 1)
    big = n + m + k + 2
    ub = np.full(n + 1, big, dtype=np.int64)
    if n >= m:
        ub[m:] = np.where(near[:n - m + 1] <= k, near[:n - m + 1], big)
    ub = np.minimum(np.minimum.accumulate(ub - pos) + pos,
                    np.minimum.accumulate((ub + pos)[::-1])[::-1] - pos)
    # (3) ends not known to be within k: measure every pair that can be
    d = np.full(len(ends), k + 1, dtype=np.int64)
    first = ub[ends] > k
    d[first] = _distances(pattern, text, starts[first], ends[first], k)
    inside = ub <= k
    inside[ends[first & (d <= k)]] = True
    run = np.cumsum(inside & ~np.r_[False, inside[:-1]])  # run number of each inside end
    best = np.where(inside, ub, big)
    np.minimum.at(best, ends[first], d[first])
    run_best = np.full(run[-1] + 1, big, dtype=np.int64)
    np.minimum.at(run_best, run[inside], best[inside])
    # ... and the pairs that can reach their run's best
    second = ~first & inside[ends] & (low <= run_best[run[ends]])
    d[second] = _distances(pattern, text, starts[second], ends[second], k)
    ok = d <= k
    if not ok.any():
        return []
    starts, ends, d = starts[ok], ends[ok], d[ok]
    size = ends - starts
    # per end: the best distance, then the length closest to the pattern's, then the shorter one
    order = np.lexsort((size, np.abs(size - m), d, ends))
    pick = order[np.r_[True, ends[order][1:] != ends[order][:-1]]]  # one per end, ascending
    ends, d, size = ends[pick], d[pick], size[pick]
    # per run (occurrence): the first end with the run's best distance
    runs = run[ends]
    order = np.lexsort((ends, d, runs))
    pick = order[np.r_[True, runs[order][1:] != runs[order][:-1]]]
    out = [(int(d[i]), int(ends[i] - size[i]), int(ends[i])) for i in pick]
    out.sort()
    return out


def _is_word(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch) == "Mn"


def _word_around(passage: str, pos: int) -> tuple[int, int]:
    """The ``[start, end)`` of the word that ``pos`` falls inside."""
    ws = we = pos
    while ws > 0 and _is_word(passage[ws - 1]):
        ws -= 1
    while we < len(passage) and _is_word(passage[we]):
        we += 1
    return ws, we


def _inside_word(passage: str, pos: int) -> bool:
    return 0 < pos < len(passage) and _is_word(passage[pos - 1]) and _is_word(passage[pos])


def _snap_to_words(passage: str, start: int, end: int) -> tuple[int, int]:
    """Move ``start``/``end`` off the middle of a word: to the side holding more of that word."""
    if _inside_word(passage, start):
        ws, we = _word_around(passage, start)
        start = ws if (we - start) >= (start - ws) else we
    if _inside_word(passage, end):
        ws, we = _word_around(passage, end)
        end = we if (end - ws) >= (we - end) else ws
    while start < end and passage[start].isspace():
        start += 1
    while end > start and passage[end - 1].isspace():
        end -= 1
    return start, end


# ---------------------------------------------------------------------------------- locating
class _Placer:
    """Bookkeeping shared by the tiers: which occurrences (character ranges) are taken."""

    def __init__(self) -> None:
        self.used: set[tuple[int, int]] = set()

    def choose(self, candidates: Sequence[tuple[int, int]]) -> tuple[int, int] | None:
        return next((c for c in candidates if c not in self.used), None)

    def take(self, span: tuple[int, int]) -> None:
        self.used.add(span)


def _all_occurrences(haystack: str, needle: str) -> list[int]:
    found, pos = [], haystack.find(needle)
    while pos != -1:
        found.append(pos)
        pos = haystack.find(needle, pos + 1)
    return found


def locate_spans(
    passage: str,
    quotes: Iterable[str],
    *,
    normalized: bool = True,
    fuzzy: bool = True,
    max_edit_ratio: float = 0.1,
    min_fuzzy_chars: int = 8,
) -> SpanLocation:
    """Place each quoted string in ``passage`` (see the module docstring for the tiers).

    Empty (or whitespace-only) strings are ignored: they are neither placed nor dropped.

    >>> r = locate_spans("Colour: the sky is blue.", ["the sky iz blue", "green"])
    >>> r.span_texts, r.tiers, r.dropped
    (['the sky is blue'], ('fuzzy', None), ('green',))
    """
    if not isinstance(passage, str):
        raise TypeError(f"passage must be a str, got {type(passage).__name__}")
    if not 0 <= max_edit_ratio < 1:
        raise ValueError("max_edit_ratio must be in [0, 1)")
    quotes = [str(q) for q in quotes]
    stripped = [q.strip() for q in quotes]
    # longer strings first; ties keep input order (sorted is stable)
    order = sorted((i for i, q in enumerate(stripped) if q), key=lambda i: -len(stripped[i]))
    result: dict[int, LocatedSpan] = {}
    placer = _Placer()
    # first candidate seen per string whose occurrences were all taken: if no later tier finds a
    # free one, the string was quoted more often than it occurs (a duplicate, not an invention)
    fallback: dict[int, tuple[tuple[int, int], str, int]] = {}

    def place(i: int, span: tuple[int, int], tier: str, distance: int = 0) -> None:
        placer.take(span)
        result[i] = LocatedSpan(quote=quotes[i], start=span[0], end=span[1],
                                text=passage[span[0]:span[1]], tier=tier, distance=distance)

    for i in order:
        q = stripped[i]
        cands = [(s, s + len(q)) for s in _all_occurrences(passage, q)]
        span = placer.choose(cands)
        if span is not None:
            place(i, span, "exact")
        elif cands:
            fallback[i] = (cands[0], "exact", 0)

    pending = [i for i in order if i not in result]
    if pending and (normalized or fuzzy):
        norm, starts, ends = normalize_with_map(passage)

        def back(a: int, b: int) -> tuple[int, int]:
            return starts[a], ends[b - 1]

        if normalized:
            for i in pending:
                nq = _normalize(stripped[i])
                if not nq:
                    continue
                cands = [back(s, s + len(nq)) for s in _all_occurrences(norm, nq)]
                span = placer.choose(cands)
                if span is not None:
                    place(i, span, "normalized")
                elif cands:
                    fallback.setdefault(i, (cands[0], "normalized", 0))
        if fuzzy and max_edit_ratio > 0:
            for i in [i for i in pending if i not in result]:
                nq = _normalize(stripped[i])
                max_dist = int(max_edit_ratio * len(nq))
                if len(nq) < min_fuzzy_chars or max_dist < 1 or not norm:
                    continue
                cands, dists = [], {}
                for d, a, b in _fuzzy_candidates(nq, norm, max_dist):
                    s, e = _snap_to_words(passage, *back(a, b))
                    if s < e and (s, e) not in dists:
                        cands.append((s, e))
                        dists[(s, e)] = d
                # only the best distance competes; among those, usual occurrence preference
                best = min(dists.values(), default=None)
                best_cands = [c for c in cands if dists[c] == best]
                span = placer.choose(best_cands)
                if span is not None:
                    place(i, span, "fuzzy", dists[span])
                elif best_cands:
                    fallback.setdefault(i, (best_cands[0], "fuzzy", dists[best_cands[0]]))
    for i in order:
        if i not in result and i in fallback:
            place(i, *fallback[i])

    tiers = tuple(result[i].tier if i in result else None for i in range(len(quotes)))
    dropped = tuple(quotes[i] for i in range(len(quotes)) if stripped[i] and i not in result)
    counts = dict.fromkeys(TIERS, 0)
    for m in result.values():
        counts[m.tier] += 1
    merged = merge_spans(passage, [(m.start, m.end) for m in result.values()])
    return SpanLocation(
        spans=merged,
        span_texts=[passage[s:e] for s, e in merged],
        matches=tuple(result[i] for i in sorted(result)),
        tiers=tiers,
        dropped=dropped,
        tier_counts=counts,
    )
