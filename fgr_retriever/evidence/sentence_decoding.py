"""Sentence-level evidence: score every sentence of a text against the query, keep the best ones.

Human evidence on web passages is the sentence (or clause) that answers, not scattered words, and
scattered words are where word-level decoding goes wrong: it marks the words that *repeat* the
query (``Ondine 28 | bag | Weight``) instead of the answer (``Weight: 0.9 kg.``). Here each sentence
gets one score from the stored token vectors, the same cosines ColBERT ranks with:

    score(sentence) = mean over the query's real tokens q_i of  max over the sentence's tokens d_j  cos(q_i, d_j)

i.e. the sentence's MaxSim, normalised by query length. The encoder is trained to rank sentences
this way (a listwise loss inside each passage; see :mod:`fgr_retriever.distill.training`). A Platt
calibration (``sentence_scale``, ``sentence_bias``, fitted on dev splits) turns the score into a
probability; the best sentence is evidence when it reaches ``sentence_threshold``, and so is every
other sentence whose probability is at least ``sentence_ratio`` times the best one's.

>>> import numpy as np
>>> select_units(np.array([0.2, 0.9, 0.85, 0.1]), threshold=0.5, ratio=0.9)
[1, 2]
>>> select_units(np.array([0.2, 0.3]), threshold=0.5, ratio=0.9)
[]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..types import Span
from .sentences import split_clauses, split_sentences

__all__ = ["text_units", "token_units", "unit_scores", "select_units", "unit_spans", "calibrated"]


def text_units(text: str, unit: str) -> list[tuple[int, int]]:
    """The ``[start, end)`` ranges evidence is chosen from: sentences or clauses."""
    return split_clauses(text) if unit == "clause" else split_sentences(text)


def unit_scores(similarities: np.ndarray, offsets: np.ndarray, units: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per unit, the mean over query tokens of the best cosine among the unit's tokens.

    ``similarities [T, Q]`` are the cosines of the text's stored token rows (every window, so a
    token seen twice counts with its better context) with the query's real tokens; ``offsets
    [T, 2]`` their character ranges (``-1`` for specials). A unit without scored tokens (pure
    punctuation) gets ``-inf`` and is never chosen.
    """
    scores = np.full(len(units), -np.inf, dtype=np.float32)
    if similarities.shape[0] == 0 or similarities.shape[1] == 0:
        return scores
    idx = token_units(offsets, units)
    ok = idx >= 0
    if not ok.any():
        return scores
    idx, sims = idx[ok], similarities[ok]
    order = np.argsort(idx, kind="stable")
    idx, sims = idx[order], sims[order]
    present, first = np.unique(idx, return_index=True)
    best = np.maximum.reduceat(sims, first, axis=0)  # [U_present, Q]
    scores[present] = best.mean(axis=1)
    return scores


def token_units(offsets: np.ndarray, units: Sequence[tuple[int, int]]) -> np.ndarray:
    """Per token (``offsets [T, 2]``), the index of the unit it starts in, ``-1`` for specials
    and tokens outside every unit. Training uses the same mapping, so the sentence score it
    teaches is the one decoded here."""
    out = np.full(len(offsets), -1, dtype=np.int64)
    if not len(units) or not len(offsets):
        return out
    starts = np.asarray([s for s, _ in units], dtype=np.int64)
    ends = np.asarray([e for _, e in units], dtype=np.int64)
    tok_start, tok_end = offsets[:, 0].astype(np.int64), offsets[:, 1].astype(np.int64)
    idx = np.searchsorted(starts, tok_start, side="right") - 1
    ok = (tok_start >= 0) & (tok_end > tok_start) & (idx >= 0)
    ok &= tok_start < ends[np.clip(idx, 0, len(units) - 1)]
    out[ok] = idx[ok]
    return out


def calibrated(scores: np.ndarray, *, scale: float, bias: float) -> np.ndarray:
    """Platt-scaled probabilities ``sigmoid(scale * score + bias)`` (``-inf`` scores give 0)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(scale * scores.astype(np.float64) + bias)))


def select_units(probs: np.ndarray, *, threshold: float, ratio: float) -> list[int]:
    """Indices of the evidence units: none when the best is under ``threshold``, else the best
    and every unit within ``ratio`` of it (in text order)."""
    if not len(probs):
        return []
    best = float(np.max(probs))
    if best < threshold or best <= 0.0:
        return []
    return [int(i) for i in np.flatnonzero(probs >= best * ratio)]


def unit_spans(text: str, units: Sequence[tuple[int, int]], probs: np.ndarray, chosen: Sequence[int]) -> list[Span]:
    """:class:`Span` objects for the chosen units; each keeps its calibrated probability."""
    return [Span(start=units[i][0], end=units[i][1], text=text[units[i][0]:units[i][1]],
                 score=round(float(probs[i]), 6)) for i in chosen]
