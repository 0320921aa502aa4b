"""From token probabilities to word-aligned evidence spans.

Tokens arrive with character offsets into the original text (possibly from several overlapping
windows). Pieces of one word (``cash``, ``##mere``) are pooled into a word score, relevant words
that follow each other are merged into one span, and spans keep exact character offsets, so
``span.text == text[span.start:span.end]`` whatever whitespace or Unicode the text holds.
"""

from __future__ import annotations

import string
import unicodedata
from typing import Iterable, Literal, Sequence

import numpy as np

from ..errors import InvalidInputError
from ..types import Span, TokenScore

__all__ = ["combine_windows", "tokens_to_words", "words_to_spans", "spans_from_tokens", "check_pooling", "Word"]

WordPooling = Literal["max", "mean", "first"]
Word = tuple[int, int, float]  # (start, end, score)


def _is_punct(text: str) -> bool:
    return bool(text) and all(ch in string.punctuation or unicodedata.category(ch)[0] in "PZ" for ch in text)


def check_pooling(pooling: object) -> None:
    """:class:`InvalidInputError` unless ``pooling`` is one of the word poolings."""
    if pooling not in ("max", "mean", "first"):
        raise InvalidInputError(f"pooling must be 'max', 'mean' or 'first', got {pooling!r}")


def combine_windows(parts: Iterable[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge ``(offsets [T, 2], probs [T])`` of a text's windows.

    A token seen in two overlapping windows keeps its highest probability (the window with more
    context around it usually knows best, and max is what ColBERT does across windows too).
    Special tokens (offset ``-1``) are dropped. Returns tokens sorted by position.
    """
    best: dict[tuple[int, int], float] = {}
    for offsets, probs in parts:
        for (s, e), p in zip(offsets.tolist(), probs.tolist()):
            if s < 0 or e <= s:
                continue
            key = (s, e)
            if p > best.get(key, -1.0):
                best[key] = p
    if not best:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32)
    keys = sorted(best)
    return np.asarray(keys, dtype=np.int64), np.asarray([best[k] for k in keys], dtype=np.float32)


def token_scores(text: str, offsets: np.ndarray, probs: np.ndarray) -> list[TokenScore]:
    return [TokenScore(start=int(s), end=int(e), text=text[s:e], score=float(p))
            for (s, e), p in zip(offsets.tolist(), probs.tolist())]


def tokens_to_words(text: str, offsets: np.ndarray, probs: np.ndarray, *,
                    pooling: WordPooling = "max") -> list[Word]:
    """Pool wordpieces into words: pieces that touch (no character between them) form one word.

    Punctuation-only tokens are left out, so ``1,200`` gives the words ``1`` and ``200`` and a
    span covering both still includes the comma between them.
    """
    check_pooling(pooling)
    words: list[Word] = []
    cur_start = cur_end = -1
    cur: list[float] = []

    def flush() -> None:
        if cur:
            if pooling == "max":
                score = max(cur)
            elif pooling == "mean":
                score = sum(cur) / len(cur)
            else:
                score = cur[0]
            words.append((cur_start, cur_end, float(score)))

    for (s, e), p in zip(offsets.tolist(), probs.tolist()):
        if _is_punct(text[s:e]):
            flush()
            cur, cur_start, cur_end = [], -1, -1
            continue
        if cur and s == cur_end:
            cur.append(p)
            cur_end = e
            continue
        flush()
        cur, cur_start, cur_end = [p], s, e
    flush()
    return words


def words_to_spans(text: str, words: Sequence[Word], threshold: float) -> list[Span]:
    """Merge runs of consecutive words scoring at least ``threshold`` into spans."""
    spans: list[Span] = []
    run: list[Word] = []

    def flush() -> None:
        if run:
            start, end = run[0][0], run[-1][1]
            while end < len(text) and unicodedata.combining(text[end]):
                end += 1  # keep accents of NFD text with their letter
            score = sum(w[2] for w in run) / len(run)
            spans.append(Span(start=start, end=end, text=text[start:end], score=round(score, 6)))

    for word in words:
        if word[2] >= threshold:
            run.append(word)
        else:
            flush()
            run = []
    flush()
    return spans


def spans_from_tokens(text: str, offsets: np.ndarray, probs: np.ndarray, *, threshold: float,
                      pooling: WordPooling = "max") -> list[Span]:
    return words_to_spans(text, tokens_to_words(text, offsets, probs, pooling=pooling), threshold)
