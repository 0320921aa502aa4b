"""ColBERT input building (queries, document windows, offsets) and word/span highlighting."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import torch

from fgr_retriever import FGRConfig, InvalidInputError, ModelLoadError, Span
from fgr_retriever.evidence.word_decoding import combine_windows, spans_from_tokens, tokens_to_words, words_to_spans
from fgr_retriever.model.tokenization import ColBERTTokenizer, check_texts

LONG_TEXT = " ".join(
    ["Cashmere unbelievably antidisestablishmentarianism weatherproofing, 1,200 kilograms of wool."] * 6
)

ODD_TEXTS = [
    "  Café crème brûlée 😀 naïve 東京タワー\tnew\nline  ",
    "\n\tLeading tabs and trailing newlines\n\n",
    "Emoji-only words 🙂🙂 and 👩‍👩‍👧 family, ok?",
    "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ and ligature ﬁsh, İstanbul ß",
    "中文没有空格的句子也应该可以高亮显示",
    "Zero\u200bwidth and\u00a0no-break spaces",
    "A cafe\u0301 with combining accents: e\u0301te\u0301 and x\u0301\u0302y",
    "Tabs\tbetween\twords and   many    spaces",
]


@pytest.fixture(scope="module")
def tok(tiny_model) -> ColBERTTokenizer:
    return tiny_model.tokenizer


def hf_tokens(tok: ColBERTTokenizer, ids) -> list[str]:
    return tok.hf.convert_ids_to_tokens(list(ids))


# ------------------------------------------------------------------------- queries
class TestQueries:
    def test_shape_markers_and_mask_padding(self, tok, tiny_model):
        cfg = tiny_model.config
        q = tok.queries(["hello world", "cashmere"])
        assert q.input_ids.shape == (2, cfg.query_maxlen)
        assert q.attention_mask.shape == q.relevance_mask.shape == (2, cfg.query_maxlen)
        vocab = tok.hf.get_vocab()
        row = q.input_ids[0].tolist()
        assert hf_tokens(tok, row[:5]) == ["[CLS]", "[unused0]", "hello", "world", "[SEP]"]
        assert row[1] == vocab["[unused0]"] == tok.query_marker_id
        assert row[5:] == [vocab["[MASK]"]] * (cfg.query_maxlen - 5)
        # [MASK] expansion is not attended by default
        assert q.attention_mask[0].tolist() == [1] * 5 + [0] * (cfg.query_maxlen - 5)

    def test_relevance_mask_only_on_content_tokens(self, tok, tiny_model):
        q = tok.queries(["hello world", "cashmere"])
        assert q.relevance_mask.dtype == torch.bool
        assert torch.nonzero(q.relevance_mask[0]).flatten().tolist() == [2, 3]
        n = len(tok.hf("cashmere", add_special_tokens=False)["input_ids"])
        assert torch.nonzero(q.relevance_mask[1]).flatten().tolist() == list(range(2, 2 + n))
        # never on [CLS], marker, [SEP] or [MASK]
        ids = q.input_ids[q.relevance_mask]
        specials = {tok.cls_id, tok.sep_id, tok.mask_id, tok.query_marker_id}
        assert not set(ids.tolist()) & specials

    def test_long_query_truncated_to_maxlen(self, tok, tiny_model):
        L = tiny_model.config.query_maxlen
        q = tok.queries(["wool " * 50])
        row = q.input_ids[0].tolist()
        assert len(row) == L
        assert row[0] == tok.cls_id and row[1] == tok.query_marker_id and row[-1] == tok.sep_id
        assert tok.mask_id not in row
        assert q.attention_mask[0].all()
        assert torch.nonzero(q.relevance_mask[0]).flatten().tolist() == list(range(2, L - 1))

    def test_query_exactly_filling_room_has_no_mask(self, tok, tiny_model):
        L = tiny_model.config.query_maxlen
        q = tok.queries([" ".join(["wool"] * (L - 3))])
        assert tok.mask_id not in q.input_ids[0].tolist()
        assert q.input_ids[0, -1].item() == tok.sep_id

    def test_relevance_all_mode(self, tok):
        cfg = FGRConfig(query_maxlen=10, doc_maxlen=24, doc_window_overlap=4, relevance_query_tokens="all")
        q = ColBERTTokenizer(tok.hf, cfg).queries(["hello"])
        assert q.relevance_mask.all()
        assert q.input_ids.shape == (1, 10)

    def test_attend_to_expansion_tokens(self, tok):
        cfg = FGRConfig(query_maxlen=10, doc_maxlen=24, doc_window_overlap=4, attend_to_expansion_tokens=True)
        q = ColBERTTokenizer(tok.hf, cfg).queries(["hello"])
        assert q.attention_mask.all()
        assert q.input_ids[0, 4:].tolist() == [tok.mask_id] * 6
        # relevance mask still only on content
        assert torch.nonzero(q.relevance_mask[0]).flatten().tolist() == [2]

    def test_no_query_marker(self, tok):
        cfg = FGRConfig(query_maxlen=8, doc_maxlen=24, doc_window_overlap=4, query_marker=None)
        ct = ColBERTTokenizer(tok.hf, cfg)
        q = ct.queries(["hello world"])
        assert hf_tokens(ct, q.input_ids[0, :4].tolist()) == ["[CLS]", "hello", "world", "[SEP]"]
        assert torch.nonzero(q.relevance_mask[0]).flatten().tolist() == [1, 2]

    def test_unknown_marker_is_a_load_error(self, tok):
        cfg = FGRConfig(query_marker="[NOT-A-TOKEN]")
        with pytest.raises(ModelLoadError, match="NOT-A-TOKEN"):
            ColBERTTokenizer(tok.hf, cfg)

    def test_slow_tokenizer_refused(self, tok):
        class Slow:
            is_fast = False

        with pytest.raises(ModelLoadError, match="fast"):
            ColBERTTokenizer(Slow(), FGRConfig())


# ------------------------------------------------------------------------ documents
class TestDocumentWindows:
    def test_short_text_single_window(self, tok):
        p = tok.pieces(["Hello world"])[0]
        assert p.windows == [(0, len(p.ids))]

    def test_long_text_windows_overlap_and_respect_words(self, tok, tiny_model):
        cfg = tiny_model.config
        p = tok.pieces([LONG_TEXT])[0]
        toks = hf_tokens(tok, p.ids)
        n = len(toks)
        assert any(t.startswith("##") for t in toks)  # the text really has multi-piece words
        windows = p.windows
        assert len(windows) >= 3
        assert windows[0][0] == 0 and windows[-1][1] == n
        for a, b in windows:
            assert 0 < b - a <= cfg.doc_window_content
            assert not toks[a].startswith("##"), f"window starts inside a word at {a}: {toks[a]}"
            if b < n:
                assert not toks[b].startswith("##"), f"window ends inside a word at {b}: {toks[b]}"
        for (a1, b1), (a2, b2) in zip(windows, windows[1:]):
            assert a1 < a2 < b1 < b2
            assert b1 - a2 >= cfg.doc_window_overlap  # at least the configured overlap is shared
        covered = set()
        for a, b in windows:
            covered.update(range(a, b))
        assert covered == set(range(n))

    def test_zero_overlap_windows_tile_the_text(self, tok):
        cfg = FGRConfig(query_maxlen=8, doc_maxlen=20, doc_window_overlap=0)
        p = ColBERTTokenizer(tok.hf, cfg).pieces([LONG_TEXT])[0]
        for (a1, b1), (a2, b2) in zip(p.windows, p.windows[1:]):
            assert a2 == b1
        assert sum(b - a for a, b in p.windows) == len(p.ids)

    def test_window_inputs_layout(self, tok):
        p = tok.pieces(["Hello, world!"])[0]
        w = tok.windows([(p, 0)])
        assert hf_tokens(tok, w.input_ids[0].tolist()) == ["[CLS]", "[unused1]", "hello", ",", "world", "!", "[SEP]"]
        assert w.offsets[0].tolist() == [[-1, -1], [-1, -1], [0, 5], [5, 6], [7, 12], [12, 13], [-1, -1]]
        # punctuation is dropped from scoring (skiplist); specials are kept
        assert w.keep_mask[0].tolist() == [True, True, True, False, True, False, True]

    def test_window_batch_padding(self, tok):
        short, long = tok.pieces(["hi", "hello there my friend"])
        w = tok.windows([(short, 0), (long, 0)])
        assert w.input_ids.shape[0] == 2
        n_short = 2 + len(short.ids) + 1
        assert w.attention_mask[0].tolist() == [1] * n_short + [0] * (w.input_ids.shape[1] - n_short)
        assert not w.keep_mask[0, n_short:].any()
        assert (w.offsets[0, n_short:] == -1).all()

    def test_mask_punctuation_off_keeps_punctuation(self, tok):
        cfg = FGRConfig(query_maxlen=8, doc_maxlen=24, doc_window_overlap=4, mask_punctuation=False)
        ct = ColBERTTokenizer(tok.hf, cfg)
        p = ct.pieces(["Hello, world!"])[0]
        assert ct.windows([(p, 0)]).keep_mask.all()

    def test_encode_documents_windows_and_offsets(self, tiny_model):
        enc = tiny_model.encode_documents(LONG_TEXT)[0]
        assert len(enc.window_lengths) >= 3
        assert sum(enc.window_lengths) == enc.vectors.shape[0] == enc.offsets.shape[0]
        assert enc.vectors.shape[1] == tiny_model.dim
        assert enc.window_starts.tolist() == np.concatenate([[0], np.cumsum(enc.window_lengths)[:-1]]).tolist()
        # each window: [CLS], [D], text tokens ..., [SEP] (punctuation dropped)
        start = 0
        for length in enc.window_lengths:
            offs = enc.offsets[start: start + length].tolist()
            assert offs[0] == [-1, -1] and offs[1] == [-1, -1] and offs[-1] == [-1, -1]
            inner = offs[2:-1]
            assert inner == sorted(inner)
            for s, e in inner:
                piece = LONG_TEXT[s:e]
                assert 0 <= s < e <= len(LONG_TEXT) and piece.strip() == piece
                assert any(ch.isalnum() for ch in piece)  # punctuation is not stored
            start += length
        # vectors are L2-normalised
        assert torch.allclose(enc.vectors.norm(dim=1), torch.ones(enc.vectors.shape[0]), atol=1e-5)

    @pytest.mark.parametrize("text", ODD_TEXTS)
    def test_offsets_map_into_original_text(self, tok, text):
        p = tok.pieces([text])[0]
        toks = hf_tokens(tok, p.ids)
        prev_end = 0
        for t, (s, e) in zip(toks, p.offsets):
            assert 0 <= s < e <= len(text)
            assert s >= prev_end  # in order, non-overlapping
            prev_end = e
            piece = text[s:e]
            assert not any(ch.isspace() for ch in piece)
            if t != "[UNK]":
                core = t[2:] if t.startswith("##") else t
                # the uncased tokenizer lowercases and strips accents; undo that on the source side
                norm = "".join(c for c in unicodedata.normalize("NFD", piece.lower())
                               if not unicodedata.combining(c))
                assert unicodedata.normalize("NFKC", norm) == unicodedata.normalize("NFKC", core) or core in norm \
                    or norm in core, (t, piece)

    def test_batch_pieces_equal_single(self, tok):
        batch = tok.pieces(ODD_TEXTS)
        for text, p in zip(ODD_TEXTS, batch):
            single = tok.pieces([text])[0]
            assert (p.ids, p.offsets, p.windows) == (single.ids, single.offsets, single.windows)


class TestCheckTexts:
    def test_accepts_str_and_sequences(self):
        assert check_texts("a") == ["a"]
        assert check_texts(("a", "b")) == ["a", "b"]
        assert check_texts(iter(["x"])) == ["x"]

    @pytest.mark.parametrize("bad", [b"bytes", bytearray(b"x"), 5, None, ["ok", 3], [None]])
    def test_rejects(self, bad):
        with pytest.raises(InvalidInputError):
            check_texts(bad)


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
