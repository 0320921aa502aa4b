"""``FGRColBERT.highlight`` end to end on the tiny model: thresholds, odd text, batches, pooling."""

from __future__ import annotations

import pytest
from sample_texts import LONG_TEXT, ODD_TEXTS

from fgr_retriever import InvalidInputError, Span


# ------------------------------------------------------------------ model.highlight
class TestHighlight:
    def test_threshold_zero_covers_all_words(self, tiny_model):
        text = "Cashmere should be washed by hand in cold water"
        spans = tiny_model.highlight("wash wool", text, threshold=0.0)
        assert spans == [Span(start=0, end=len(text), text=text, score=spans[0].score)]

    def test_threshold_zero_covers_every_alphanumeric(self, tiny_model):
        text = "Hello, world! Prices: 1,200 EUR (incl. VAT) - ok?"
        spans = tiny_model.highlight("price", text, threshold=0.0)
        covered = set()
        for s in spans:
            covered.update(range(s.start, s.end))
        assert all(i in covered for i, ch in enumerate(text) if ch.isalnum())

    def test_threshold_one_returns_nothing(self, tiny_model):
        assert tiny_model.highlight("wash wool", LONG_TEXT, threshold=1.0) == []
        assert tiny_model.highlight("wash wool", [LONG_TEXT, "hi"], threshold=1) == [[], []]

    def test_threshold_monotone(self, tiny_model):
        def covered(th):
            return sum(s.end - s.start for s in tiny_model.highlight("cold water wash", LONG_TEXT, threshold=th))

        sizes = [covered(t) for t in (0.0, 0.3, 0.5, 0.7, 0.9, 1.0)]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] > 0 and sizes[-1] == 0

    def test_default_threshold_is_config(self, tiny_model):
        assert tiny_model.highlight("cashmere", LONG_TEXT) == \
            tiny_model.highlight("cashmere", LONG_TEXT, threshold=tiny_model.config.threshold)

    def test_spans_are_consistent_with_token_scores(self, tiny_model):
        text = "Cashmere should be washed by hand in cold water."
        th = 0.6
        tokens = tiny_model.token_scores("cold wash", text)
        spans = tiny_model.highlight("cold wash", text, threshold=th)
        for ts in tokens:
            inside = any(s.start <= ts.start and ts.end <= s.end for s in spans)
            if ts.score >= th:
                assert inside, ts
        for s in spans:
            toks = [t for t in tokens if s.start <= t.start and t.end <= s.end]
            assert toks and s.start == toks[0].start and s.end == toks[-1].end

    @pytest.mark.parametrize("text", ODD_TEXTS)
    @pytest.mark.parametrize("threshold", [0.0, None, 0.7])
    def test_span_text_matches_source(self, tiny_model, text, threshold):
        spans = tiny_model.highlight("café wool 東京", text, threshold=threshold)
        prev_end = -1
        for s in spans:
            assert 0 <= s.start < s.end <= len(text)
            assert s.text == text[s.start:s.end]
            assert s.text == s.text.strip()
            assert s.start > prev_end
            assert 0.0 <= s.score <= 1.0
            prev_end = s.end
        if threshold == 0.0:
            assert spans

    def test_list_input_returns_list_in_order(self, tiny_model):
        texts = ["Cashmere is washed by hand.", "   ", LONG_TEXT, "", "cold water only"]
        out = tiny_model.highlight("wash cashmere", texts, threshold=0.3)
        assert isinstance(out, list) and len(out) == len(texts)
        assert out[1] == [] and out[3] == []
        for text, spans in zip(texts, out):
            assert spans == tiny_model.highlight("wash cashmere", text, threshold=0.3)
        assert tiny_model.highlight("q", [], threshold=0.3) == []

    @pytest.mark.parametrize("text", ["", "   ", "\n\t "])
    def test_empty_text(self, tiny_model, text):
        assert tiny_model.highlight("query", text) == []
        assert tiny_model.token_scores("query", text) == []

    @pytest.mark.parametrize("threshold", [-0.01, 1.01, "0.5", True, float("nan"), [0.5]])
    def test_invalid_threshold(self, tiny_model, threshold):
        with pytest.raises(InvalidInputError):
            tiny_model.highlight("query", "some text", threshold=threshold)

    @pytest.mark.parametrize("text", [5, None, b"bytes", ["ok", 7]])
    def test_non_str_text(self, tiny_model, text):
        with pytest.raises(InvalidInputError):
            tiny_model.highlight("query", text)

    def test_token_scores_non_str(self, tiny_model):
        with pytest.raises(InvalidInputError):
            tiny_model.token_scores("query", ["a list"])  # type: ignore[arg-type]

    @pytest.mark.parametrize("query", ["", "   ", "\n"])
    @pytest.mark.parametrize("text", ["some text", "", ["a", ""]])
    def test_empty_query(self, tiny_model, query, text):
        with pytest.raises(InvalidInputError):
            tiny_model.highlight(query, text)

    @pytest.mark.parametrize("query", [None, 5, b"q"])
    def test_non_str_query(self, tiny_model, query):
        with pytest.raises(InvalidInputError):
            tiny_model.highlight(query, "some text")

    def test_list_query_rejected(self, tiny_model):
        with pytest.raises(InvalidInputError):
            tiny_model.highlight(["first query", "second query"], ["text one", "text two"])

    def test_threshold_zero_covers_trailing_combining_marks(self, tiny_model):
        text = "un cafe\u0301"
        spans = tiny_model.highlight("coffee", text, threshold=0.0)
        covered = set()
        for s in spans:
            covered.update(range(s.start, s.end))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_unknown_pooling_is_rejected(tiny_model):
    from fgr_retriever import InvalidInputError

    with pytest.raises(InvalidInputError):
        tiny_model.highlight("alpha", "alpha beta", pooling="median")
