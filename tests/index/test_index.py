"""EmbeddedIndex: exact MaxSim search, upserts, deletes/compaction and persistence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from fgr_retriever import (
    Document,
    DocumentNotFoundError,
    DuplicateIdError,
    EmbeddedIndex,
    Index,
    IndexCorruptedError,
    InvalidInputError,
    ModelMismatchError,
)
from fgr_retriever.testing import tiny_model as make_tiny_model

LONG = ("Leather bags need conditioning twice a year and should be stored stuffed with paper in a dust bag. "
        "Never leave them in direct sunlight, which dries the hide and fades the colour. ") * 3
TEXTS = {
    "cashmere": "Cashmere should be washed by hand in cold water with a mild detergent.",
    "returns": "Returns are accepted within 30 days of delivery with the original receipt.",
    "warranty": "Our watches carry a two-year warranty against manufacturing defects.",
    "shipping": "Shipping is free for orders over 100 euros within the European Union.",
    "silk": "Silk scarves should be dry-cleaned only; do not iron them on high heat.",
    "leather": LONG,
    "gold": "Gold jewellery can be cleaned with warm soapy water and a soft brush.",
    "sizes": "Our shoe sizes follow the European system; see the conversion chart.",
    "payment": "We accept credit cards, PayPal and bank transfers for all orders.",
    "store": "Our flagship store in Milan is open from ten to seven, Monday to Saturday.",
}
METADATA = {
    "cashmere": {"category": "care", "lang": "en", "price": 10},
    "returns": {"category": "policy", "lang": "en"},
    "warranty": {"category": "policy", "lang": "en", "years": 2},
    "shipping": {"category": "policy", "lang": "en"},
    "silk": {"category": "care", "lang": "en", "price": 30},
    "leather": {"category": "care", "lang": "en", "price": 50},
    "gold": {"category": "care", "lang": "it"},
    "sizes": {"category": "product", "lang": "en"},
    "payment": {"category": "policy", "lang": "it"},
    "store": {"category": "info", "lang": "it"},
}
QUERIES = ["how do I wash cashmere", "how many days to return an item", "leather bag care in the sun",
           "is shipping free"]


@pytest.fixture(scope="module")
def corpus(tiny_model):
    ids = list(TEXTS)
    docs = [Document(id=i, text=TEXTS[i], metadata=METADATA[i]) for i in ids]
    encs = tiny_model.encode_documents([d.text for d in docs])
    assert len(encs[ids.index("leather")].window_lengths) > 1  # a multi-window document is part of the corpus
    return docs, encs


@pytest.fixture(scope="module")
def queries(tiny_model):
    return tiny_model.encode_queries(QUERIES)


def build(corpus, **kwargs) -> EmbeddedIndex:
    docs, encs = corpus
    index = EmbeddedIndex(dim=16, **kwargs)
    index.add(docs, encs)
    return index


def brute_force(q: torch.Tensor, enc, round_to: torch.dtype | None = None) -> float:
    vectors = enc.vectors
    if round_to is not None:
        vectors = vectors.to(round_to).float()
        q = q.to(round_to).float()
    best, start = -np.inf, 0
    for length in enc.window_lengths:
        best = max(best, float((q @ vectors[start:start + length].T).max(dim=1).values.sum()))
        start += length
    return best


def ranking(hits):
    return [h.id for h in hits]


def scores(hits):
    return {h.id: h.score for h in hits}


# ------------------------------------------------------------------------ basics
class TestBasics:
    def test_empty(self, queries):
        index = EmbeddedIndex(dim=16)
        assert len(index) == 0 and index.ids() == [] and index.num_tokens == 0 and index.nbytes() == 0
        assert index.search(queries[0], 5) == []
        assert "x" not in index
        assert isinstance(index, Index)

    @pytest.mark.parametrize("kwargs", [dict(dim=0), dict(dim=-3), dict(dim="16"), dict(dim=16, dtype="int8"),
                                        dict(dim=16, dtype="float64")])
    def test_invalid_construction(self, kwargs):
        with pytest.raises(InvalidInputError):
            EmbeddedIndex(**kwargs)

    def test_add_and_get(self, corpus):
        docs, encs = corpus
        index = build(corpus)
        assert len(index) == len(docs)
        assert index.ids() == [d.id for d in docs]
        assert all(d.id in index for d in docs)
        assert index.get(["silk", "cashmere"]) == [docs[4], docs[0]]
        assert index.num_tokens == sum(e.vectors.shape[0] for e in encs)
        assert index.nbytes() == index.num_tokens * (16 * 2 + 8)  # bf16 vectors + int32 offsets
        with pytest.raises(DocumentNotFoundError) as info:
            index.get(["silk", "nope"])
        assert info.value.missing == ["nope"]

    def test_tokens_round_trip(self, corpus):
        docs, encs = corpus
        index = build(corpus, dtype="float32")
        for doc, enc in zip(docs, encs):
            toks = index.tokens(doc.id)
            assert torch.equal(toks.vectors, enc.vectors)
            assert torch.equal(toks.offsets, enc.offsets.to(torch.int32))
            assert toks.relevance_vectors is None
        with pytest.raises(DocumentNotFoundError):
            index.tokens("missing")

    def test_add_length_mismatch(self, corpus):
        docs, encs = corpus
        index = EmbeddedIndex(dim=16)
        with pytest.raises(InvalidInputError):
            index.add(docs, encs[:-1])
        assert len(index) == 0

    def test_add_wrong_dim(self, corpus):
        docs, encs = corpus
        index = EmbeddedIndex(dim=8)
        with pytest.raises(ModelMismatchError):
            index.add(docs[:1], encs[:1])
        assert len(index) == 0 and index.num_tokens == 0

    def test_relevance_vectors_mismatch(self, corpus):
        docs, encs = corpus
        index = EmbeddedIndex(dim=16, relevance_dim=8)
        with pytest.raises(ModelMismatchError):
            index.add(docs[:1], encs[:1])
        assert len(index) == 0

    def test_relevance_vectors_stored(self):
        model = make_tiny_model(relevance_mode="projection", relevance_dim=8)
        enc = model.encode_documents(TEXTS["leather"])
        index = EmbeddedIndex(dim=16, relevance_dim=8, dtype="float32")
        index.add([Document(id="l", text=TEXTS["leather"])], enc)
        assert torch.equal(index.tokens("l").relevance_vectors, enc[0].relevance_vectors)
        assert index.nbytes() == index.num_tokens * (16 * 4 + 8 * 4 + 8)


# ------------------------------------------------------------------------ search
class TestSearch:
    def test_float32_equals_brute_force(self, corpus, queries):
        docs, encs = corpus
        index = build(corpus, dtype="float32")
        for q in queries:
            hits = index.search(q, len(docs))
            expected = {d.id: brute_force(q.vectors, e) for d, e in zip(docs, encs)}
            assert sorted(ranking(hits)) == sorted(expected)
            for h in hits:
                assert h.score == pytest.approx(expected[h.id], abs=1e-5)
            assert ranking(hits) == sorted(expected, key=lambda i: -expected[i])
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    @pytest.mark.parametrize("dtype, store", [("bfloat16", torch.bfloat16), ("float16", torch.float16)])
    def test_16bit_close_to_brute_force(self, corpus, queries, dtype, store):
        docs, encs = corpus
        index = build(corpus, dtype=dtype)
        for q in queries:
            hits = index.search(q, len(docs))
            exact = {d.id: brute_force(q.vectors, e) for d, e in zip(docs, encs)}
            rounded = {d.id: brute_force(q.vectors, e, round_to=store) for d, e in zip(docs, encs)}
            for h in hits:
                assert h.score == pytest.approx(rounded[h.id], abs=0.03)
                assert h.score == pytest.approx(exact[h.id], abs=0.06)
            order = ranking(hits)
            # pairs that the exact scores separate clearly keep their order
            for a in range(len(order)):
                for b in range(a + 1, len(order)):
                    assert exact[order[a]] > exact[order[b]] - 0.12

    def test_top_k(self, corpus, queries):
        index = build(corpus, dtype="float32")
        full = index.search(queries[1], 100)
        assert len(full) == len(TEXTS)
        for k in (1, 3, 7):
            assert ranking(index.search(queries[1], k)) == ranking(full)[:k]

    @pytest.mark.parametrize("k", [0, -1, 1.5, True, "3", None])
    def test_invalid_k(self, corpus, queries, k):
        index = build(corpus)
        with pytest.raises(InvalidInputError):
            index.search(queries[0], k)

    def test_query_dim_mismatch(self, corpus):
        index = build(corpus)
        q = make_tiny_model(dim=8).encode_queries("hello")[0]
        with pytest.raises(ModelMismatchError):
            index.search(q, 3)

    def test_filter(self, corpus, queries):
        index = build(corpus, dtype="float32")
        full = scores(index.search(queries[0], 100))
        hits = index.search(queries[0], 100, filter={"category": "care"})
        assert set(ranking(hits)) == {"cashmere", "silk", "leather", "gold"}
        for h in hits:
            assert h.score == pytest.approx(full[h.id])
        hits = index.search(queries[0], 2, filter={"category": "care", "lang": "en"})
        expected = sorted(["cashmere", "silk", "leather"], key=lambda i: -full[i])[:2]
        assert ranking(hits) == expected
        assert index.search(queries[0], 5, filter={"category": "nothing"}) == []
        with pytest.raises(InvalidInputError):
            index.search(queries[0], 5, filter={"category": {"$regex": "c.*"}})

    @pytest.mark.parametrize("chunk", [1, 7, 30])
    def test_small_chunks_give_same_scores(self, corpus, queries, chunk):
        big = build(corpus, dtype="float32")
        small = build(corpus, dtype="float32", chunk_tokens=chunk)
        assert len(small._arrays()["chunks"]) > len(big._arrays()["chunks"]) == 1
        for q in queries:
            a, b = big.search(q, 100), small.search(q, 100)
            assert ranking(a) == ranking(b)
            assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)

    def test_ties_are_stable(self, tiny_model):
        enc = tiny_model.encode_documents("identical text")[0]
        index = EmbeddedIndex(dim=16, dtype="float32")
        index.add([Document(id=f"d{i}", text="identical text") for i in range(5)], [enc] * 5)
        q = tiny_model.encode_queries("text")[0]
        hits = index.search(q, 5)
        assert ranking(hits) == ["d0", "d1", "d2", "d3", "d4"]
        assert len({h.score for h in hits}) == 1


# ------------------------------------------------------------------ upsert/delete
class TestMutation:
    def test_upsert_replaces(self, corpus, queries, tiny_model):
        index = build(corpus, dtype="float32")
        new_text = "Cashmere must never be put in a washing machine."
        enc = tiny_model.encode_documents(new_text)[0]
        index.add([Document(id="cashmere", text=new_text, metadata={"v": 2})], [enc])
        assert len(index) == len(TEXTS)
        assert index.ids().count("cashmere") == 1
        assert index.get(["cashmere"])[0] == Document(id="cashmere", text=new_text, metadata={"v": 2})
        assert torch.equal(index.tokens("cashmere").vectors, enc.vectors)
        hit = scores(index.search(queries[0], 100))["cashmere"]
        assert hit == pytest.approx(brute_force(queries[0].vectors, enc), abs=1e-5)
        assert index.search(queries[0], 100, filter={"v": 2})[0].id == "cashmere"
        assert index.search(queries[0], 100, filter={"category": "care", "price": 10}) == []

    def test_delete(self, corpus, queries):
        index = build(corpus, dtype="float32")
        before = scores(index.search(queries[0], 100))
        index.delete(["silk", "gold", "silk"])
        assert len(index) == len(TEXTS) - 2
        assert "silk" not in index and "gold" not in index
        hits = index.search(queries[0], 100)
        assert set(ranking(hits)) == set(TEXTS) - {"silk", "gold"}
        for h in hits:
            assert h.score == pytest.approx(before[h.id])
        with pytest.raises(DocumentNotFoundError):
            index.get(["silk"])

    def test_delete_unknown_deletes_nothing(self, corpus, queries):
        index = build(corpus)
        before = ranking(index.search(queries[0], 100))
        with pytest.raises(DocumentNotFoundError) as info:
            index.delete(["cashmere", "nope", "silk", "also-nope"])
        assert info.value.missing == ["nope", "also-nope"]
        assert isinstance(info.value, KeyError)
        assert len(index) == len(TEXTS) and "cashmere" in index and "silk" in index
        assert ranking(index.search(queries[0], 100)) == before

    def test_compaction_keeps_results(self, corpus, queries):
        index = build(corpus, dtype="float32")
        index.delete(["gold"])  # small: below the auto-compaction threshold
        assert index._dead_rows > 0
        rows_before = index._vectors.n
        tokens_before = index.num_tokens
        before = [index.search(q, 100) for q in queries]
        index.compact()
        assert index._dead_rows == 0 and index._vectors.n < rows_before
        assert index.num_tokens == tokens_before
        after = [index.search(q, 100) for q in queries]
        for a, b in zip(before, after):
            assert ranking(a) == ranking(b)
            assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-6)
        docs, encs = corpus
        for doc, enc in zip(docs, encs):
            if doc.id != "gold":
                assert torch.equal(index.tokens(doc.id).vectors, enc.vectors)
                assert index.get([doc.id])[0] == doc

    def test_auto_compaction_after_many_deletes(self, corpus, queries):
        index = build(corpus, dtype="float32")
        index.delete(["leather", "cashmere", "returns", "warranty"])
        assert index._dead_rows == 0  # more than a quarter of the rows died: compacted
        assert index._vectors.n == index.num_tokens
        assert set(index.ids()) == set(TEXTS) - {"leather", "cashmere", "returns", "warranty"}
        assert len(index.search(queries[0], 100)) == len(TEXTS) - 4

    def test_delete_everything_then_add(self, corpus, queries, tiny_model):
        index = build(corpus)
        index.delete(list(TEXTS))
        assert len(index) == 0 and index.num_tokens == 0
        assert index.search(queries[0], 3) == []
        enc = tiny_model.encode_documents("fresh start")[0]
        index.add([Document(id="new", text="fresh start")], [enc])
        assert ranking(index.search(queries[0], 3)) == ["new"]

    def test_duplicate_ids_in_one_add(self, tiny_model):
        encs = tiny_model.encode_documents(["alpha beta", "gamma delta"])
        index = EmbeddedIndex(dim=16)
        with pytest.raises(DuplicateIdError):
            index.add([Document(id="a", text="alpha beta"), Document(id="a", text="gamma delta")], encs)
        assert index.ids() == [] and index.num_tokens == 0


# ------------------------------------------------------------------- persistence
class TestPersistence:
    @pytest.fixture()
    def saved(self, corpus, tmp_path) -> Path:
        index = build(corpus)
        index.delete(["gold"])
        names = index.save(tmp_path)
        assert names == ["vectors.safetensors", "documents.jsonl"]
        return tmp_path

    def test_round_trip(self, corpus, queries, saved):
        original = build(corpus)
        original.delete(["gold"])
        loaded = EmbeddedIndex.load(saved)
        assert loaded.dim == 16 and loaded.dtype == "bfloat16"
        assert loaded.ids() == original.ids()
        assert loaded.get(loaded.ids()) == original.get(original.ids())
        assert loaded.num_tokens == original.num_tokens
        for q in queries:
            a, b = original.search(q, 100), loaded.search(q, 100)
            assert ranking(a) == ranking(b)
            assert [h.score for h in a] == [h.score for h in b]
        for doc_id in loaded.ids():
            assert torch.equal(loaded.tokens(doc_id).vectors, original.tokens(doc_id).vectors)
            assert torch.equal(loaded.tokens(doc_id).offsets, original.tokens(doc_id).offsets)

    def test_loaded_index_is_mutable(self, saved, tiny_model, queries):
        loaded = EmbeddedIndex.load(saved)
        enc = tiny_model.encode_documents("Cashmere is washed in cold water")[0]
        loaded.add([Document(id="cashmere", text="Cashmere is washed in cold water")], [enc])
        loaded.delete(["store"])
        assert len(loaded) == len(TEXTS) - 2
        assert loaded.get(["cashmere"])[0].text == "Cashmere is washed in cold water"
        assert "store" not in ranking(loaded.search(queries[0], 100))

    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_dtype_preserved(self, corpus, tmp_path, dtype):
        index = build(corpus, dtype=dtype)
        index.save(tmp_path)
        loaded = EmbeddedIndex.load(tmp_path)
        assert loaded.dtype == dtype
        assert torch.equal(loaded.tokens("leather").vectors, index.tokens("leather").vectors)

    def test_relevance_vectors_persist(self, tmp_path):
        model = make_tiny_model(relevance_mode="projection", relevance_dim=8)
        enc = model.encode_documents(["one doc", "two docs"])
        index = EmbeddedIndex(dim=16, relevance_dim=8)
        index.add([Document(id="1", text="one doc"), Document(id="2", text="two docs")], enc)
        index.save(tmp_path)
        loaded = EmbeddedIndex.load(tmp_path)
        assert loaded.relevance_dim == 8
        assert torch.equal(loaded.tokens("2").relevance_vectors, index.tokens("2").relevance_vectors)

    def test_empty_index_round_trip(self, tmp_path, queries):
        EmbeddedIndex(dim=16).save(tmp_path)
        loaded = EmbeddedIndex.load(tmp_path)
        assert len(loaded) == 0 and loaded.dim == 16
        assert loaded.search(queries[0], 3) == []

    def test_unicode_documents_round_trip(self, tmp_path, tiny_model):
        text = "Crème brûlée 😀 東京\n\ttabs"
        enc = tiny_model.encode_documents(text)
        index = EmbeddedIndex(dim=16)
        index.add([Document(id="ü-1", text=text, metadata={"note": "naïve ✓", "n": None})], enc)
        index.save(tmp_path)
        assert EmbeddedIndex.load(tmp_path).get(["ü-1"])[0] == Document(
            id="ü-1", text=text, metadata={"note": "naïve ✓", "n": None})

    # --- corruption -----------------------------------------------------------
    def test_missing_files(self, saved):
        shutil.copytree(saved, saved.parent / "b")
        (saved / "vectors.safetensors").unlink()
        with pytest.raises(IndexCorruptedError, match="missing"):
            EmbeddedIndex.load(saved)
        other = saved.parent / "b"
        (other / "documents.jsonl").unlink()
        with pytest.raises(IndexCorruptedError, match="missing"):
            EmbeddedIndex.load(other)

    @pytest.mark.parametrize("cut", [1, 100, 0.5])
    def test_truncated_vectors(self, saved, cut):
        path = saved / "vectors.safetensors"
        data = path.read_bytes()
        keep = int(len(data) * cut) if isinstance(cut, float) else len(data) - cut
        path.write_bytes(data[:keep])
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    def test_garbage_vectors(self, saved):
        (saved / "vectors.safetensors").write_bytes(b"\x00garbage" * 10)
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    def test_truncated_documents(self, saved):
        path = saved / "documents.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(lines[:-1]), encoding="utf-8")
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    def test_documents_cut_mid_line(self, saved):
        path = saved / "documents.jsonl"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 15])
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    @pytest.mark.parametrize("bad_line", ["{not json", "[1, 2]", '"just a string"', "null", '{"id": "x"}', ""])
    def test_damaged_document_line(self, saved, bad_line):
        path = saved / "documents.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[2] = bad_line
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    def test_extra_document_line(self, saved):
        path = saved / "documents.jsonl"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": "ghost", "text": "no vectors"}) + "\n")
        with pytest.raises(IndexCorruptedError, match="no vectors"):
            EmbeddedIndex.load(saved)

    def test_duplicate_ids(self, saved):
        path = saved / "documents.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        first = json.loads(lines[0])
        second = json.loads(lines[1])
        second["id"] = first["id"]
        lines[1] = json.dumps(second)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(IndexCorruptedError, match="duplicate"):
            EmbeddedIndex.load(saved)

    def test_not_utf8(self, saved):
        path = saved / "documents.jsonl"
        path.write_bytes(b'{"id": "\xff\xfe", "text": "x"}\n' + path.read_bytes())
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    @pytest.mark.parametrize("tamper", ["lengths", "owner_order", "owner_range", "offsets_shape", "missing_key",
                                        "dtype"])
    def test_inconsistent_tensors(self, saved, tamper):
        path = saved / "vectors.safetensors"
        t = load_file(str(path))
        if tamper == "lengths":
            t["window_lengths"] = t["window_lengths"].clone()
            t["window_lengths"][0] += 1
        elif tamper == "owner_order":
            t["window_doc"] = t["window_doc"].flip(0).contiguous()
        elif tamper == "owner_range":
            t["window_doc"] = t["window_doc"].clone()
            t["window_doc"][-1] = 99
        elif tamper == "offsets_shape":
            t["offsets"] = t["offsets"][:-1].contiguous()
        elif tamper == "missing_key":
            del t["window_doc"]
        elif tamper == "dtype":
            t["vectors"] = t["vectors"].to(torch.float64)
        save_file(t, str(path))
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)

    def test_string_metadata_is_corruption(self, saved):
        path = saved / "documents.jsonl"
        lines = path.read_text(encoding="utf-8").splitlines()
        row = json.loads(lines[0])
        row["metadata"] = "oops"
        lines[0] = json.dumps(row)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(IndexCorruptedError):
            EmbeddedIndex.load(saved)
