"""FGRColBERT encoding, relevance probabilities, MaxSim scores and fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgr_retriever import FGRColBERT, InvalidInputError, QueryEncoding, TextEncoding
from fgr_retriever.testing import tiny_model as make_tiny_model

LONG_TEXT = ("Cashmere should be washed by hand in cold water with a mild detergent. Never wring it; roll it in a "
             "towel and dry it flat, away from heat. Silk scarves should be dry-cleaned only. Leather bags need "
             "conditioning twice a year and should be stored stuffed with paper in a dust bag. ") * 2
DOCS = [
    "Cashmere should be washed by hand in cold water.",
    "Returns are accepted within 30 days of delivery.",
    LONG_TEXT,
    "The watch carries a two-year warranty against manufacturing defects.",
]


def manual_vectors(model: FGRColBERT, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Encoder -> projection -> L2 normalisation, computed without the model's own helpers."""
    with torch.no_grad():
        hidden = model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(hidden @ model.projection.weight.T, dim=-1)


# ----------------------------------------------------------------------- encoding
class TestEncodeQueries:
    def test_shapes_and_masks(self, tiny_model):
        cfg = tiny_model.config
        out = tiny_model.encode_queries(["hello world", "cashmere care"])
        assert len(out) == 2 and all(isinstance(q, QueryEncoding) for q in out)
        for q in out:
            assert q.vectors.shape == (cfg.query_maxlen, cfg.dim)
            assert q.vectors.dtype == torch.float32
            assert torch.allclose(q.vectors.norm(dim=1), torch.ones(cfg.query_maxlen), atol=1e-5)
            assert q.relevance_vectors is None
        assert torch.nonzero(out[0].relevance_mask).flatten().tolist() == [2, 3]

    def test_single_string(self, tiny_model):
        out = tiny_model.encode_queries("hello")
        assert len(out) == 1

    def test_matches_manual_forward(self, tiny_model):
        inputs = tiny_model.tokenizer.queries(["hello world"])
        expected = manual_vectors(tiny_model, inputs.input_ids, inputs.attention_mask)[0]
        got = tiny_model.encode_queries("hello world")[0].vectors
        assert torch.allclose(got, expected, atol=1e-5)

    def test_batching_does_not_change_vectors(self, tiny_model):
        qs = ["hello world", "cashmere care", "a much longer query about washing wool by hand"]
        together = tiny_model.encode_queries(qs)
        apart = tiny_model.encode_queries(qs, batch_size=1)
        for a, b in zip(together, apart):
            assert torch.allclose(a.vectors, b.vectors, atol=1e-5)
            assert torch.equal(a.relevance_mask, b.relevance_mask)

    @pytest.mark.parametrize("bad", ["", "   ", ["ok", ""], ["ok", 3], 5, b"bytes"])
    def test_invalid(self, tiny_model, bad):
        with pytest.raises(InvalidInputError):
            tiny_model.encode_queries(bad)


class TestEncodeDocuments:
    def test_matches_manual_forward(self, tiny_model):
        text = "Hello, world! Cashmere care."
        tok = tiny_model.tokenizer
        p = tok.pieces([text])[0]
        w = tok.windows([(p, 0)])
        expected = manual_vectors(tiny_model, w.input_ids, w.attention_mask)[0][w.keep_mask[0]]
        enc = tiny_model.encode_documents(text)[0]
        assert isinstance(enc, TextEncoding)
        assert torch.allclose(enc.vectors, expected, atol=1e-5)
        assert enc.offsets.tolist() == w.offsets[0][w.keep_mask[0]].tolist()
        assert enc.window_lengths == (int(w.keep_mask.sum()),)

    def test_batch_order_and_size_invariance(self, tiny_model):
        a = tiny_model.encode_documents(DOCS)
        b = tiny_model.encode_documents(DOCS, batch_size=1)
        c = tiny_model.encode_documents(list(reversed(DOCS)), batch_size=3)[::-1]
        for x, y, z in zip(a, b, c):
            assert x.window_lengths == y.window_lengths == z.window_lengths
            assert torch.equal(x.offsets, y.offsets) and torch.equal(x.offsets, z.offsets)
            assert torch.allclose(x.vectors, y.vectors, atol=1e-5)
            assert torch.allclose(x.vectors, z.vectors, atol=1e-5)

    def test_long_text_has_several_windows(self, tiny_model):
        enc = tiny_model.encode_documents(LONG_TEXT)[0]
        assert len(enc.window_lengths) > 3
        assert enc.vectors.shape == (sum(enc.window_lengths), tiny_model.dim)

    def test_empty_list(self, tiny_model):
        assert tiny_model.encode_documents([]) == []
        assert tiny_model.score("query", []) == []

    @pytest.mark.parametrize("bad", [None, 3, b"x", ["a", None]])
    def test_invalid(self, tiny_model, bad):
        with pytest.raises(InvalidInputError):
            tiny_model.encode_documents(bad)

    def test_bfloat16_precision_close_to_float32(self):
        model = make_tiny_model()
        ref = model.encode_documents(DOCS[0])[0].vectors
        model.precision = "bfloat16"
        got = model.encode_documents(DOCS[0])[0].vectors
        assert got.dtype == torch.float32
        assert not torch.equal(got, ref)  # really computed in bf16
        assert torch.allclose(got, ref, atol=0.05)


# -------------------------------------------------------------- token probabilities
class TestTokenProbabilities:
    def test_equals_sigmoid_of_scaled_max_cosine(self, tiny_model):
        q = tiny_model.encode_queries("wash cashmere in cold water")[0]
        enc = tiny_model.encode_documents(LONG_TEXT)[0]
        probs = tiny_model.token_probabilities(q, enc.vectors)
        content = q.vectors[q.relevance_mask]
        assert content.shape[0] == int(q.relevance_mask.sum()) > 0
        best = (enc.vectors @ content.T).max(dim=1).values
        a, b = tiny_model.relevance.scale.item(), tiny_model.relevance.bias.item()
        assert (a, b) == (8.0, -2.0)
        expected = 1.0 / (1.0 + torch.exp(-(a * best + b)))
        assert probs.shape == (enc.vectors.shape[0],)
        assert probs.dtype == torch.float32
        assert torch.allclose(probs, expected, atol=1e-5)
        # masks matter: using all positions instead of content ones gives different numbers
        all_best = (enc.vectors @ q.vectors.T).max(dim=1).values
        assert not torch.allclose(probs, torch.sigmoid(a * all_best + b), atol=1e-4)

    def test_all_query_tokens_mode(self):
        model = make_tiny_model(relevance_query_tokens="all")
        q = model.encode_queries("wash cashmere")[0]
        assert q.relevance_mask.all()
        enc = model.encode_documents(DOCS[0])[0]
        best = (enc.vectors @ q.vectors.T).max(dim=1).values
        assert torch.allclose(model.token_probabilities(q, enc.vectors), torch.sigmoid(8.0 * best - 2.0), atol=1e-5)

    def test_token_scores_match_probabilities(self, tiny_model):
        text = DOCS[0]
        q = tiny_model.encode_queries("cold water")[0]
        enc = tiny_model.encode_documents(text)[0]
        probs = tiny_model.token_probabilities(q, enc.vectors)
        keep = enc.offsets[:, 0] >= 0
        expected = [(int(s), int(e), float(p)) for (s, e), p in zip(enc.offsets[keep].tolist(), probs[keep])]
        got = [(t.start, t.end, t.score) for t in tiny_model.token_scores("cold water", text)]
        assert [g[:2] for g in got] == [e[:2] for e in expected]
        assert np.allclose([g[2] for g in got], [e[2] for e in expected], atol=1e-6)
        for t in tiny_model.token_scores("cold water", text):
            assert t.text == text[t.start:t.end]

    def test_empty_document_rows(self, tiny_model):
        q = tiny_model.encode_queries("x")[0]
        assert tiny_model.token_probabilities(q, torch.zeros(0, tiny_model.dim)).shape == (0,)

    def test_projection_mode_needs_relevance_vectors(self):
        model = make_tiny_model(relevance_mode="projection", relevance_dim=8)
        q = model.encode_queries("cold water")[0]
        enc = model.encode_documents(DOCS[0])[0]
        assert q.relevance_vectors.shape == (model.config.query_maxlen, 8)
        assert enc.relevance_vectors.shape == (enc.vectors.shape[0], 8)
        with pytest.raises(InvalidInputError):
            model.token_probabilities(q, enc.vectors)
        probs = model.token_probabilities(q, enc.vectors, enc.relevance_vectors)
        best = (enc.relevance_vectors @ q.relevance_vectors[q.relevance_mask].T).max(dim=1).values
        a, b = model.relevance.scale.item(), model.relevance.bias.item()
        assert torch.allclose(probs, torch.sigmoid(a * best + b), atol=1e-5)

    def test_residual_ffn_starts_as_shared(self):
        residual = make_tiny_model(relevance_mode="residual_ffn")
        q = residual.encode_queries("cold water")[0]
        enc = residual.encode_documents(DOCS[0])[0]
        # the residual FFN is zero-initialised: relevance vectors equal the retrieval vectors
        assert torch.allclose(enc.relevance_vectors, enc.vectors, atol=1e-5)
        assert torch.allclose(q.relevance_vectors, q.vectors, atol=1e-5)
        p_res = residual.token_probabilities(q, enc.vectors, enc.relevance_vectors)
        best = (enc.vectors @ q.vectors[q.relevance_mask].T).max(dim=1).values
        assert torch.allclose(p_res, torch.sigmoid(8.0 * best - 2.0), atol=1e-5)


# --------------------------------------------------------------------------- score
def hand_maxsim(q: torch.Tensor, enc: TextEncoding) -> float:
    best = -float("inf")
    start = 0
    for length in enc.window_lengths:
        d = enc.vectors[start:start + length]
        sim = q @ d.T  # [Lq, Tw]
        best = max(best, float(sim.max(dim=1).values.sum()))
        start += length
    return best


class TestScore:
    def test_equals_hand_computed_sum_of_max(self, tiny_model):
        query = "how do I wash cashmere"
        q = tiny_model.encode_queries(query)[0]
        encs = tiny_model.encode_documents(DOCS)
        expected = [hand_maxsim(q.vectors, enc) for enc in encs]
        got = tiny_model.score(query, DOCS)
        assert len(got) == len(DOCS)
        assert np.allclose(got, expected, atol=1e-4)
        # every query position (including [MASK] expansion) contributes a cosine <= 1
        assert all(s <= tiny_model.config.query_maxlen + 1e-4 for s in got)

    def test_long_text_scores_as_best_window_not_whole(self, tiny_model):
        query = "leather bags conditioning"
        q = tiny_model.encode_queries(query)[0]
        enc = tiny_model.encode_documents(LONG_TEXT)[0]
        whole = float((q.vectors @ enc.vectors.T).max(dim=1).values.sum())
        best_window = hand_maxsim(q.vectors, enc)
        assert best_window <= whole + 1e-5
        assert tiny_model.score(query, LONG_TEXT) == [pytest.approx(best_window, abs=1e-4)]

    def test_single_text_and_batch_size(self, tiny_model):
        one = tiny_model.score("cashmere", DOCS[0])
        assert isinstance(one, list) and len(one) == 1
        assert tiny_model.score("cashmere", DOCS, batch_size=1)[0] == pytest.approx(one[0], abs=1e-5)

    def test_invalid(self, tiny_model):
        with pytest.raises(InvalidInputError):
            tiny_model.score("", DOCS)
        with pytest.raises(InvalidInputError):
            tiny_model.score("q", [None])


# --------------------------------------------------------------------- fingerprint
class TestFingerprint:
    def test_stable_and_deterministic(self, tiny_model):
        a = tiny_model.fingerprint()
        assert a == tiny_model.fingerprint()
        assert isinstance(a, str) and len(a) == 32
        assert make_tiny_model().fingerprint() == a  # same seed, same weights

    def test_ignores_threshold_and_head_but_not_weights_or_config(self):
        model = make_tiny_model()
        base = model.fingerprint()
        model.config = model.config.replace(threshold=0.2)
        assert model.fingerprint() == base
        with torch.no_grad():
            model.relevance.scale.fill_(3.0)
        assert model.fingerprint() == base
        with torch.no_grad():
            model.projection.weight[0, 0] += 0.01
        changed = model.fingerprint()
        assert changed != base
        with torch.no_grad():
            model.encoder.embeddings.word_embeddings.weight[5, 0] += 0.01
        assert model.fingerprint() not in (base, changed)
        assert make_tiny_model(doc_maxlen=32).fingerprint() != base

    def test_properties(self, tiny_model):
        assert tiny_model.dim == 16 and tiny_model.threshold == 0.5
        assert tiny_model.device.type == "cpu"
        assert not tiny_model.training


# ------------------------------------------------------------------ the real model
@pytest.mark.integration
class TestDefaultModel:
    def test_identical_text_outranks_unrelated(self, default_model):
        query = "how do I wash a cashmere sweater"
        scores = default_model.score(query, [
            "The central bank raised interest rates by half a point on Tuesday.",
            query,
            "Cashmere sweaters should be washed by hand in cold water.",
        ])
        assert scores[1] > scores[2] > scores[0]
        assert default_model.dim == 384

    def test_highlights_the_answer_words(self, default_model):
        text = "Our watches carry a two-year warranty against defects. Shipping is free over 100 euros."
        spans = default_model.highlight("How long is the warranty?", text)
        assert spans and all(s.text == text[s.start:s.end] for s in spans)
        assert any("warranty" in s.text for s in spans)
        assert not any("Shipping" in s.text for s in spans)


def test_encoding_progress_counts_tokens_not_finished_texts(tiny_model, capsys):
    # long texts are windowed and run longest window first; the bar must move with that work
    texts = ["wool " * 200, "short text", "cashmere " * 90]
    tiny_model.encode_documents(texts, show_progress_bar=True, batch_size=2)
    err = capsys.readouterr().err
    pieces = tiny_model.tokenizer.pieces(texts)
    tokens = sum(e - s for p in pieces for s, e in p.windows)
    assert f"{tokens}/{tokens}" in err.replace(" ", "") or f"{tokens / 1000:.2f}k/{tokens / 1000:.2f}k" in err
    assert "3/3 texts" in err
