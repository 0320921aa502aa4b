"""ColBERT tokenization: query and document windows, character offsets on odd text, input checks."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest
import torch
from sample_texts import LONG_TEXT, ODD_TEXTS

from fgr_retriever import FGRConfig, InvalidInputError, ModelLoadError
from fgr_retriever.model.tokenization import ColBERTTokenizer, check_texts


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


class TestLongQueries:
    def test_long_query_keeps_its_length_up_to_max_tokens(self, tok, tiny_model):
        L = tiny_model.config.query_maxlen
        long_q, short_q = " ".join(["wool"] * 20), "hello"
        q = tok.queries([long_q, short_q], max_tokens=40)
        n_long = 20 + 3  # [CLS] marker ... [SEP]
        assert q.input_ids.shape[1] == n_long > L
        assert q.input_ids[0, n_long - 1].item() == tok.sep_id and q.attention_mask[0].all()
        assert q.relevance_mask[0].sum().item() == 20
        short = q.input_ids[1].tolist()
        assert short[L - 1] == tok.mask_id  # the short query is augmented to query_maxlen as before ...
        assert set(short[L:]) == {tok.pad_id} and not q.attention_mask[1, L:].any()  # ... then padded

    def test_a_query_cut_short_warns(self, tok):
        with pytest.warns(UserWarning, match=r"query 0 has 53 tokens; only the first 30 are searched"):
            q = tok.queries(["wool " * 50], max_tokens=30)
        assert q.input_ids.shape[1] == 30 and q.input_ids[0, -1].item() == tok.sep_id

    def test_encode_queries_rows_follow_the_query_length(self, tiny_model):
        import warnings

        L = tiny_model.config.query_maxlen
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing is cut below query_max_tokens: no warning
            short, long = tiny_model.encode_queries(["cashmere", " ".join(["wool"] * 30)])
        assert short.vectors.shape[0] == L and long.vectors.shape[0] == 33
        assert long.relevance_mask.shape[0] == 33 and long.relevance_mask.sum().item() == 30
        # the short query encodes exactly as it does alone (the batch's padding is not attended)
        alone = tiny_model.encode_queries(["cashmere"])[0]
        assert torch.allclose(alone.vectors, short.vectors, atol=1e-5)

    def test_query_max_tokens_is_checked_and_not_part_of_the_fingerprint(self):
        from fgr_retriever.testing import tiny_model

        with pytest.raises(InvalidInputError, match="query_max_tokens"):
            FGRConfig(query_max_tokens=0)
        assert FGRConfig(query_maxlen=300, query_max_tokens=256).query_max_tokens == 300  # never below
        # same seeded weights: only the setting differs, and an index built with one opens with the other
        assert tiny_model(query_max_tokens=64).fingerprint() == tiny_model().fingerprint()
        assert tiny_model(doc_maxlen=30).fingerprint() != tiny_model().fingerprint()  # the check can fail
