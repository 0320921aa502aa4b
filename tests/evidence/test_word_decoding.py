"""Word decoding: token scores to words (pooling) and words to spans (threshold, merging)."""

from __future__ import annotations

import numpy as np
import pytest

from fgr_retriever import Span
from fgr_retriever.evidence.word_decoding import combine_windows, spans_from_tokens, tokens_to_words, words_to_spans


# ----------------------------------------------------------------- highlighting units
class TestHighlightingUnits:
    def test_combine_windows_keeps_max_and_drops_specials(self):
        a = (np.array([[-1, -1], [0, 4], [5, 9]]), np.array([0.9, 0.2, 0.4]))
        b = (np.array([[5, 9], [10, 12], [-1, -1], [3, 3]]), np.array([0.7, 0.1, 0.99, 0.99]))
        offsets, probs = combine_windows([a, b])
        assert offsets.tolist() == [[0, 4], [5, 9], [10, 12]]
        assert probs.tolist() == pytest.approx([0.2, 0.7, 0.1])
        assert probs.dtype == np.float32

    def test_combine_windows_empty(self):
        offsets, probs = combine_windows([(np.array([[-1, -1]]), np.array([0.5]))])
        assert offsets.shape == (0, 2) and probs.shape == (0,)

    def test_tokens_to_words_pooling(self):
        text = "cashmere wool"
        offsets = np.array([[0, 4], [4, 8], [9, 13]])
        probs = np.array([0.2, 0.8, 0.6])
        assert tokens_to_words(text, offsets, probs, pooling="max") == [(0, 8, pytest.approx(0.8)), (9, 13, pytest.approx(0.6))]
        assert tokens_to_words(text, offsets, probs, pooling="mean")[0] == (0, 8, pytest.approx(0.5))
        assert tokens_to_words(text, offsets, probs, pooling="first")[0] == (0, 8, pytest.approx(0.2))

    def test_tokens_to_words_punctuation_splits_words(self):
        text = "1,200 kg."
        offsets = np.array([[0, 1], [1, 2], [2, 5], [6, 8], [8, 9]])
        probs = np.array([0.9, 0.99, 0.8, 0.7, 0.99])
        assert tokens_to_words(text, offsets, probs) == [(0, 1, pytest.approx(0.9)), (2, 5, pytest.approx(0.8)),
                                                          (6, 8, pytest.approx(0.7))]

    def test_words_to_spans_merges_runs(self):
        text = "one two three four five"
        words = [(0, 3, 0.9), (4, 7, 0.7), (8, 13, 0.2), (14, 18, 0.6), (19, 23, 0.5)]
        spans = words_to_spans(text, words, 0.5)
        assert spans == [Span(start=0, end=7, text="one two", score=0.8),
                         Span(start=14, end=23, text="four five", score=0.55)]
        assert words_to_spans(text, words, 0.95) == []
        assert len(words_to_spans(text, words, 0.0)) == 1

    def test_threshold_is_inclusive(self):
        spans = words_to_spans("ab cd", [(0, 2, 0.5), (3, 5, 0.49)], 0.5)
        assert [s.text for s in spans] == ["ab"]

    def test_span_across_punctuation_keeps_comma(self):
        text = "1,200 kg"
        spans = spans_from_tokens(text, np.array([[0, 1], [1, 2], [2, 5]]), np.array([0.9, 0.0, 0.9]),
                                  threshold=0.5)
        assert spans == [Span(start=0, end=5, text="1,200", score=0.9)]
