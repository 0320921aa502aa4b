"""FGRRetriever: documents in, ranked and highlighted results out, persisted safely."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fgr_retriever.testing import tiny_model as make_tiny_model
from fgr_retriever import (
    Document,
    DocumentNotFoundError,
    DuplicateIdError,
    EmbeddedIndex,
    FGRColBERT,
    FGRError,
    FGRRetriever,
    IndexCorruptedError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
    SearchResult,
    evidence_text,
)

CORPUS = [
    {"id": "cashmere", "text": "Cashmere should be washed by hand in cold water with a mild detergent.",
     "metadata": {"category": "care", "material": {"name": "cashmere", "level": 2}}},
    {"id": "returns", "text": "Returns are accepted within 30 days of delivery with the original receipt.",
     "metadata": {"category": "policy"}},
    {"id": "warranty", "text": "Our watches carry a two-year warranty against manufacturing defects.",
     "metadata": {"category": "policy", "years": 2}},
    {"id": "silk", "text": "Silk scarves should be dry-cleaned only; never iron them on high heat.",
     "metadata": {"category": "care", "material": {"name": "silk", "level": 3}}},
    {"id": "leather", "text": ("Leather bags need conditioning twice a year and should be stored stuffed with "
                               "paper in a dust bag, away from direct sunlight. ") * 3,
     "metadata": {"category": "care", "material": {"name": "leather", "level": 1}}},
    {"id": "shipping", "text": "Shipping is free for orders over 100 euros within the European Union.",
     "metadata": {"category": "policy"}},
    {"id": "store", "text": "Our flagship store in Milan is open from ten to seven, Monday to Saturday.",
     "metadata": {"category": "info"}},
]
QUERIES = ["how do I wash cashmere", "how many days to return an item", "leather bag care"]


def make_retriever(model, **kwargs) -> FGRRetriever:
    kwargs.setdefault("storage_dtype", "float32")
    retriever = FGRRetriever(model=model, **kwargs)
    retriever.add_documents(CORPUS)
    return retriever


@pytest.fixture()
def retriever(tiny_model) -> FGRRetriever:
    return make_retriever(tiny_model)


def snapshot(retriever: FGRRetriever):
    return (len(retriever), retriever.index.ids(), retriever.index.num_tokens,
            [(r.id, r.score) for r in retriever.search(QUERIES[0], k=100, highlight=False)])


# ------------------------------------------------------------------ construction
class TestConstruction:
    def test_rejects_non_model(self):
        with pytest.raises(InvalidInputError):
            FGRRetriever(model="not a model")  # type: ignore[arg-type]

    def test_rejects_index_of_other_dim(self, tiny_model):
        with pytest.raises(ModelMismatchError):
            FGRRetriever(model=tiny_model, index=EmbeddedIndex(dim=8))

    def test_default_index(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        assert isinstance(r.index, EmbeddedIndex) and r.index.dim == 16 and r.index.dtype == "bfloat16"
        assert len(r) == 0 and r.search("anything") == []


# --------------------------------------------------------------------- documents
class TestAddDocuments:
    def test_input_kinds(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        ids = r.add_documents([
            "plain string document",
            Document(id="doc", text="a Document object", metadata={"a": 1}),
            {"id": "map", "text": "a mapping document", "metadata": {"b": 2}, "title": "Mapped"},
            {"text": "mapping without id"},
        ])
        assert len(ids) == 4 and ids[1:3] == ["doc", "map"]
        assert len(ids[0]) == 32 and len(ids[3]) == 32 and ids[0] != ids[3]  # generated uuid4 hex ids
        assert len(r) == 4 and all(i in r for i in ids)
        got = dict(zip(ids, r.get(ids)))
        assert got[ids[0]] == Document(id=ids[0], text="plain string document", metadata={})
        assert got["doc"] == Document(id="doc", text="a Document object", metadata={"a": 1})
        assert got["map"].metadata == {"b": 2, "title": "Mapped"}
        assert got["map"].text == "a mapping document"

    def test_ids_and_metadata_arguments(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        ids = r.add_documents(["first", Document(id="ignored", text="second", metadata={"x": 1, "y": 1})],
                              ids=["a", "b"], metadata=[{"k": "v"}, {"y": 2}])
        assert ids == ["a", "b"]
        assert "ignored" not in r
        assert r.get(["a"])[0].metadata == {"k": "v"}
        assert r.get(["b"])[0].metadata == {"x": 1, "y": 2}  # argument metadata is merged over the document's

    def test_metadata_none_entries(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        r.add_documents([{"text": "x", "id": "x", "metadata": {"m": 1}}], metadata=[None])
        assert r.get(["x"])[0].metadata == {"m": 1}

    def test_empty_list(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        assert r.add_documents([]) == []
        assert len(r) == 0

    def test_upsert(self, retriever):
        n = len(retriever)
        retriever.add_documents([{"id": "cashmere", "text": "Cashmere must never go in a washing machine.",
                                  "metadata": {"category": "warning"}}])
        assert len(retriever) == n
        assert retriever.get(["cashmere"])[0].text == "Cashmere must never go in a washing machine."
        assert [r.id for r in retriever.search(QUERIES[0], k=10, filter={"category": "warning"})] == ["cashmere"]

    @pytest.mark.parametrize("docs, kwargs", [
        (["a", "b"], dict(ids=["same", "same"])),
        ([Document(id="x", text="a"), {"id": "x", "text": "b"}], {}),
        ([Document(id="cashmere", text="a"), "b"], dict(ids=["y", "y"])),
    ])
    def test_duplicate_ids_leave_index_unchanged(self, retriever, docs, kwargs):
        before = snapshot(retriever)
        with pytest.raises(DuplicateIdError):
            retriever.add_documents(docs, **kwargs)
        assert snapshot(retriever) == before

    @pytest.mark.parametrize("docs, kwargs", [
        (["fine", ""], {}),
        (["fine", "   \n\t"], {}),
        (["fine", 42], {}),
        (["fine", None], {}),
        (["fine", b"bytes"], {}),
        (["fine", {"text": 5}], {}),
        (["fine", {"id": "no-text"}], {}),
        (["fine", {"text": "ok", "metadata": {"when": object()}}], {}),
        (["fine", {"text": "ok", "metadata": {"nan": float("nan")}}], {}),
        (["fine", {"text": "ok", "metadata": {"s": {1, 2}}}], {}),
        (["fine", "ok"], dict(metadata=[None, {"bad": object()}])),
        (["fine", "ok"], dict(metadata=[None, "not a mapping"])),
        (["fine", "ok"], dict(ids=["a"])),
        (["fine", "ok"], dict(metadata=[{}])),
        (["fine", "ok"], dict(ids=["a", ""])),
        (["fine", "ok"], dict(ids=["a", 7])),
        (["fine", Document(id="", text="x")], {}),
        ("a single string", {}),
        ({"text": "a single mapping"}, {}),
        (Document(id="d", text="a single document"), {}),
    ])
    def test_invalid_input_adds_nothing(self, retriever, docs, kwargs):
        before = snapshot(retriever)
        with pytest.raises(InvalidInputError):
            retriever.add_documents(docs, **kwargs)
        assert snapshot(retriever) == before

    def test_max_document_chars(self, tiny_model):
        r = FGRRetriever(model=tiny_model, max_document_chars=50)
        r.add_documents(["x" * 50], ids=["ok"])
        with pytest.raises(InvalidInputError, match="max_document_chars"):
            r.add_documents(["short", "y" * 51], ids=["s", "long"])
        assert r.index.ids() == ["ok"]


class TestDeleteGet:
    def test_delete(self, retriever):
        retriever.delete("silk")
        retriever.delete(["store", "returns"])
        assert len(retriever) == len(CORPUS) - 3
        assert "silk" not in retriever
        found = {r.id for r in retriever.search(QUERIES[0], k=100)}
        assert found == {"cashmere", "warranty", "leather", "shipping"}

    def test_delete_unknown_deletes_nothing(self, retriever):
        before = snapshot(retriever)
        with pytest.raises(DocumentNotFoundError) as info:
            retriever.delete(["silk", "unknown"])
        assert info.value.missing == ["unknown"]
        assert snapshot(retriever) == before

    def test_get(self, retriever):
        docs = retriever.get(["warranty", "cashmere"])
        assert [d.id for d in docs] == ["warranty", "cashmere"]
        assert docs[0].metadata == {"category": "policy", "years": 2}
        with pytest.raises(DocumentNotFoundError):
            retriever.get(["nope"])


# ------------------------------------------------------------------------ search
class TestSearch:
    def test_results_shape_and_scores(self, retriever, tiny_model):
        results = retriever.search(QUERIES[0], k=4)
        assert len(results) == 4 and all(isinstance(r, SearchResult) for r in results)
        assert [r.rank for r in results] == [1, 2, 3, 4]
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
        texts = {d["id"]: d["text"] for d in CORPUS}
        all_scores = dict(zip(texts, tiny_model.score(QUERIES[0], list(texts.values()))))
        assert [r.id for r in results] == sorted(all_scores, key=lambda i: -all_scores[i])[:4]
        for r in results:
            assert r.score == pytest.approx(all_scores[r.id], abs=1e-4)
            assert r.text == texts[r.id]
            assert r.metadata == next(d["metadata"] for d in CORPUS if d["id"] == r.id)

    def test_spans_match_model_highlight(self, retriever, tiny_model):
        for query in QUERIES:
            for r in retriever.search(query, k=3, threshold=0.45):
                assert list(r.spans) == tiny_model.highlight(query, r.text, threshold=0.45)
                for s in r.spans:
                    assert s.text == r.text[s.start:s.end]
                if r.spans:
                    assert r.evidence == evidence_text(r.text, r.spans, context_words=3)
                else:
                    assert r.evidence == ""

    def test_bfloat16_storage_same_ranking_within_tolerance(self, tiny_model, retriever):
        r16 = make_retriever(tiny_model, storage_dtype="bfloat16")
        for q in QUERIES:
            exact = {r.id: r.score for r in retriever.search(q, k=100, highlight=False)}
            for r in r16.search(q, k=100, highlight=False):
                assert r.score == pytest.approx(exact[r.id], abs=0.06)

    def test_highlight_false(self, retriever):
        for q in QUERIES:
            on = retriever.search(q, k=5, threshold=0.0)
            off = retriever.search(q, k=5, highlight=False)
            assert [(r.id, r.score, r.rank) for r in on] == [(r.id, r.score, r.rank) for r in off]
            assert all(r.spans for r in on)
            assert all(r.spans == () and r.evidence == "" for r in off)

    def test_threshold_extremes(self, retriever):
        assert all(r.spans == () and r.evidence == "" for r in retriever.search(QUERIES[0], threshold=1.0))
        for r in retriever.search(QUERIES[0], threshold=0.0):
            assert len(r.spans) >= 1 and r.evidence

    def test_evidence_options(self, tiny_model):
        r = make_retriever(tiny_model, context_words=0, evidence_max_tokens=2)
        for res in r.search(QUERIES[2], k=3, threshold=0.0):
            assert res.evidence == evidence_text(res.text, res.spans, context_words=0, max_tokens=2)
            assert len(res.evidence.replace("…", " ").split()) <= 2

    def test_filter_equality(self, retriever):
        results = retriever.search(QUERIES[0], k=10, filter={"category": "policy"})
        assert {r.id for r in results} == {"returns", "warranty", "shipping"}
        assert [r.rank for r in results] == [1, 2, 3]

    def test_filter_in_and_dotted(self, retriever):
        results = retriever.search(QUERIES[0], k=10, filter={"category": {"$in": ["info", "care"]}})
        assert {r.id for r in results} == {"cashmere", "silk", "leather", "store"}
        results = retriever.search(QUERIES[0], k=10, filter={"material.level": {"$gte": 2}})
        assert {r.id for r in results} == {"cashmere", "silk"}
        results = retriever.search(QUERIES[0], k=1, filter={"material.name": "silk"})
        assert [r.id for r in results] == ["silk"]
        assert retriever.search(QUERIES[0], filter={"category": "none"}) == []

    def test_filter_keeps_order_of_unfiltered(self, retriever):
        full = [r.id for r in retriever.search(QUERIES[1], k=100, highlight=False)]
        filtered = [r.id for r in retriever.search(QUERIES[1], k=100, highlight=False,
                                                   filter={"category": {"$ne": "care"}})]
        assert filtered == [i for i in full if i in filtered]

    @pytest.mark.parametrize("kwargs", [dict(k=0), dict(k=-2), dict(k=2.5), dict(k=True), dict(threshold=2.0),
                                        dict(threshold="high"), dict(filter={"$nor": []}), dict(filter=["x"]),
                                        dict(filter={"a": {"$bad": 1}})])
    def test_invalid_arguments(self, retriever, kwargs):
        with pytest.raises(InvalidInputError):
            retriever.search(QUERIES[0], **kwargs)

    @pytest.mark.parametrize("query", ["", "   ", None, 3, ["a list"]])
    def test_invalid_query(self, retriever, query):
        with pytest.raises(InvalidInputError):
            retriever.search(query)

    def test_k_larger_than_index(self, retriever):
        assert len(retriever.search(QUERIES[0], k=1000)) == len(CORPUS)

    def test_search_batch_equals_search(self, retriever):
        batch = retriever.search_batch(QUERIES, k=3, threshold=0.4)
        assert len(batch) == len(QUERIES)
        for q, results in zip(QUERIES, batch):
            single = retriever.search(q, k=3, threshold=0.4)
            assert [r.id for r in results] == [r.id for r in single]
            assert np.allclose([r.score for r in results], [r.score for r in single], atol=1e-5)
            assert [r.spans for r in results] == [r.spans for r in single]
        assert retriever.search_batch([]) == []
        with pytest.raises(InvalidInputError):
            retriever.search_batch("a single string")
        with pytest.raises(InvalidInputError):
            retriever.search_batch(["ok", ""])

    def test_search_batch_with_filter(self, retriever):
        batch = retriever.search_batch(QUERIES, k=5, filter={"category": "care"})
        for results in batch:
            assert {r.id for r in results} <= {"cashmere", "silk", "leather"}

    def test_result_metadata_is_not_live_index_state(self, retriever):
        res = retriever.search(QUERIES[0], k=1, filter={"category": "care"})[0]
        res.metadata["category"] = "hacked"  # type: ignore[index]
        assert retriever.get([res.id])[0].metadata["category"] == "care"


# ------------------------------------------------------------------------ rerank
class TestRerank:
    TEXTS = [d["text"] for d in CORPUS]

    def test_ids_by_position_and_order(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        results = r.rerank(QUERIES[0], self.TEXTS)
        scores = tiny_model.score(QUERIES[0], self.TEXTS)
        assert len(results) == len(self.TEXTS)
        assert [res.id for res in results] == [str(i) for i in np.argsort(-np.asarray(scores), kind="stable")]
        for res in results:
            assert res.score == pytest.approx(scores[int(res.id)], abs=1e-5)
            assert res.text == self.TEXTS[int(res.id)]
        assert [res.rank for res in results] == list(range(1, len(self.TEXTS) + 1))
        assert len(r) == 0  # rerank does not touch the index

    def test_k(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        full = r.rerank(QUERIES[1], self.TEXTS)
        top = r.rerank(QUERIES[1], self.TEXTS, k=2)
        assert [x.id for x in top] == [x.id for x in full[:2]]
        with pytest.raises(InvalidInputError):
            r.rerank(QUERIES[1], self.TEXTS, k=0)

    def test_spans_match_highlight(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        for res in r.rerank(QUERIES[2], self.TEXTS, threshold=0.4):
            assert list(res.spans) == tiny_model.highlight(QUERIES[2], res.text, threshold=0.4)
        assert all(res.spans == () for res in r.rerank(QUERIES[2], self.TEXTS, highlight=False))

    def test_mixed_inputs_keep_given_ids(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        docs = [Document(id="d", text=self.TEXTS[0], metadata={"m": 1}), {"id": "mapped", "text": self.TEXTS[1]},
                {"text": self.TEXTS[2]}, self.TEXTS[3]]
        results = r.rerank(QUERIES[0], docs)
        assert {x.id for x in results} == {"d", "mapped", "2", "3"}
        assert next(x for x in results if x.id == "d").metadata == {"m": 1}

    def test_invalid(self, tiny_model):
        r = FGRRetriever(model=tiny_model)
        assert r.rerank("q", []) == []
        with pytest.raises(InvalidInputError):
            r.rerank("q", "a single string")
        with pytest.raises(InvalidInputError):
            r.rerank("", ["text"])
        with pytest.raises(InvalidInputError):
            r.rerank("q", ["text", ""])
        with pytest.raises(DuplicateIdError):
            r.rerank("q", [Document(id="x", text="a"), Document(id="x", text="b")])


# ------------------------------------------------------------------- persistence
class TestPersistence:
    @pytest.fixture()
    def saved(self, retriever, tmp_path) -> Path:
        retriever.delete(["store"])  # exercise tombstones before saving
        path = retriever.save(tmp_path / "idx")
        assert path == tmp_path / "idx"
        return path

    def test_layout_and_manifest(self, saved, tiny_model):
        assert sorted(p.name for p in saved.iterdir()) == ["documents.jsonl", "index.json", "vectors.safetensors"]
        manifest = json.loads((saved / "index.json").read_text())
        assert manifest["format"] == "fgr-retriever-index" and manifest["documents"] == len(CORPUS) - 1
        assert manifest["model"]["fingerprint"] == tiny_model.fingerprint()
        assert manifest["model"]["dim"] == 16
        assert set(manifest["files"]) == {"documents.jsonl", "vectors.safetensors"}
        assert FGRRetriever.read_manifest(saved) == manifest

    def test_round_trip(self, retriever, saved, tiny_model):
        loaded = FGRRetriever.load(saved, model=tiny_model)
        assert len(loaded) == len(retriever) == len(CORPUS) - 1
        assert loaded.index.dtype == "float32"
        for q in QUERIES:
            a = retriever.search(q, k=10, threshold=0.4)
            b = loaded.search(q, k=10, threshold=0.4)
            assert [x.to_dict() for x in a] == [x.to_dict() for x in b]
        assert loaded.get(["cashmere"]) == retriever.get(["cashmere"])

    def test_load_passes_options(self, saved, tiny_model):
        loaded = FGRRetriever.load(saved, model=tiny_model, context_words=0, batch_size=4)
        assert loaded.context_words == 0 and loaded.batch_size == 4

    def test_resave_over_own_index(self, retriever, saved, tiny_model):
        retriever.add_documents(["a brand new document"], ids=["new"])
        retriever.save(saved)
        loaded = FGRRetriever.load(saved, model=tiny_model)
        assert "new" in loaded and len(loaded) == len(CORPUS)

    def test_threshold_change_still_loads(self, saved):
        model = make_tiny_model(threshold=0.3)
        assert FGRRetriever.load(saved, model=model).model.threshold == 0.3

    def test_missing_directory(self, tmp_path, tiny_model):
        with pytest.raises(IndexNotFoundError):
            FGRRetriever.load(tmp_path / "nope", model=tiny_model)
        (tmp_path / "empty").mkdir()
        with pytest.raises(IndexNotFoundError):
            FGRRetriever.load(tmp_path / "empty", model=tiny_model)
        (tmp_path / "file").write_text("x")
        with pytest.raises(IndexNotFoundError):
            FGRRetriever.load(tmp_path / "file", model=tiny_model)

    @pytest.mark.parametrize("edit", ["invalid_json", "not_object", "format", "version", "documents", "backend",
                                      "empty"])
    def test_edited_manifest(self, saved, tiny_model, edit):
        path = saved / "index.json"
        manifest = json.loads(path.read_text())
        if edit == "invalid_json":
            text = path.read_text()[:-5]
        elif edit == "not_object":
            text = json.dumps([manifest])
        elif edit == "empty":
            text = ""
        else:
            manifest[edit] = {"format": "something-else", "version": 2, "documents": 99, "backend": "qdrant"}[edit]
            text = json.dumps(manifest)
        path.write_text(text)
        with pytest.raises(IndexCorruptedError):
            FGRRetriever.load(saved, model=tiny_model)

    @pytest.mark.parametrize("field, value", [("files", ["vectors.safetensors"]), ("model", "a-model-name")])
    def test_manifest_with_wrong_types(self, saved, tiny_model, field, value):
        manifest = json.loads((saved / "index.json").read_text())
        manifest[field] = value
        (saved / "index.json").write_text(json.dumps(manifest))
        with pytest.raises(IndexCorruptedError):
            FGRRetriever.load(saved, model=tiny_model)

    def test_tampered_vectors_checksum(self, saved, tiny_model):
        path = saved / "vectors.safetensors"
        data = bytearray(path.read_bytes())
        header_len = int.from_bytes(data[:8], "little")
        begin, end = json.loads(data[8:8 + header_len])["vectors"]["data_offsets"]
        data[8 + header_len + (begin + end) // 2] ^= 0x01  # one bit of one vector: still a valid file
        path.write_bytes(bytes(data))
        with pytest.raises(IndexCorruptedError, match="checksum"):
            FGRRetriever.load(saved, model=tiny_model)
        # without verification the file itself is readable
        assert len(FGRRetriever.load(saved, model=tiny_model, verify=False)) == len(CORPUS) - 1

    def test_tampered_documents_checksum(self, saved, tiny_model):
        path = saved / "documents.jsonl"
        path.write_text(path.read_text().replace("Cashmere", "Cashmerf"))
        with pytest.raises(IndexCorruptedError, match="checksum"):
            FGRRetriever.load(saved, model=tiny_model)

    def test_truncated_vectors_without_verify(self, saved, tiny_model):
        path = saved / "vectors.safetensors"
        path.write_bytes(path.read_bytes()[:-40])
        with pytest.raises(IndexCorruptedError):
            FGRRetriever.load(saved, model=tiny_model, verify=False)
        with pytest.raises(IndexCorruptedError):
            FGRRetriever.load(saved, model=tiny_model)

    def test_missing_listed_file(self, saved, tiny_model):
        (saved / "documents.jsonl").unlink()
        with pytest.raises(IndexCorruptedError, match="missing"):
            FGRRetriever.load(saved, model=tiny_model)

    def test_other_dim_model(self, saved):
        with pytest.raises(ModelMismatchError):
            FGRRetriever.load(saved, model=make_tiny_model(dim=8))

    def test_other_weights_model(self, saved):
        other = make_tiny_model()
        with torch.no_grad():
            other.projection.weight.mul_(1.01)
        with pytest.raises(ModelMismatchError, match="different model"):
            FGRRetriever.load(saved, model=other)

    def test_other_config_model(self, saved):
        with pytest.raises(ModelMismatchError):
            FGRRetriever.load(saved, model=make_tiny_model(doc_maxlen=32))

    def test_refuses_foreign_directory(self, retriever, tmp_path):
        target = tmp_path / "docs"
        target.mkdir()
        (target / "thesis.tex").write_text("do not delete")
        with pytest.raises(FGRError, match="refusing"):
            retriever.save(target)
        assert [p.name for p in target.iterdir()] == ["thesis.tex"]
        assert (target / "thesis.tex").read_text() == "do not delete"
        assert [p.name for p in tmp_path.iterdir()] == ["docs"]

    def test_refuses_model_directory(self, retriever, tiny_model, tmp_path):
        tiny_model.save_pretrained(tmp_path / "model")
        before = sorted(p.name for p in (tmp_path / "model").iterdir())
        with pytest.raises(FGRError):
            retriever.save(tmp_path / "model")
        assert sorted(p.name for p in (tmp_path / "model").iterdir()) == before

    def test_empty_retriever_round_trip(self, tiny_model, tmp_path):
        FGRRetriever(model=tiny_model).save(tmp_path / "e")
        loaded = FGRRetriever.load(tmp_path / "e", model=tiny_model)
        assert len(loaded) == 0 and loaded.search("anything") == []

    def test_model_from_directory_recorded(self, saved_model_retriever):
        retriever, path, model_dir = saved_model_retriever
        manifest = json.loads((path / "index.json").read_text())
        assert manifest["model"]["name_or_path"] == str(model_dir.resolve())

    def test_load_without_model_uses_recorded_directory(self, saved_model_retriever):
        retriever, path, _ = saved_model_retriever
        loaded = FGRRetriever.load(path)
        assert [r.id for r in loaded.search(QUERIES[0])] == [r.id for r in retriever.search(QUERIES[0])]

    @pytest.fixture()
    def saved_model_retriever(self, tiny_model, tmp_path):
        model_dir = tmp_path / "model"
        tiny_model.save_pretrained(model_dir)
        model = FGRColBERT.from_pretrained(model_dir)
        retriever = make_retriever(model)
        path = retriever.save(tmp_path / "idx")
        return retriever, path, model_dir


# ---------------------------------------------------------------- relevance modes
def test_projection_head_retriever(tmp_path):
    model = make_tiny_model(relevance_mode="projection", relevance_dim=8)
    retriever = make_retriever(model)
    assert retriever.index.relevance_dim == 8
    for res in retriever.search(QUERIES[0], k=3, threshold=0.3):
        assert list(res.spans) == model.highlight(QUERIES[0], res.text, threshold=0.3)
    retriever.save(tmp_path / "idx")
    loaded = FGRRetriever.load(tmp_path / "idx", model=model)
    assert [r.to_dict() for r in loaded.search(QUERIES[0], k=3, threshold=0.3)] == \
        [r.to_dict() for r in retriever.search(QUERIES[0], k=3, threshold=0.3)]


# ------------------------------------------------------------------ the real model
@pytest.mark.integration
def test_default_model_finds_the_answer(default_model, tmp_path):
    retriever = FGRRetriever(model=default_model)
    retriever.add_documents(["Returns are accepted within 30 days of delivery.",
                             "Silk scarves should be dry-cleaned only.",
                             "Cashmere should be washed by hand in cold water."], ids=["returns", "silk", "care"])
    best = retriever.search("How many days do I have to send something back?", k=1)[0]
    assert best.id == "returns"
    care = retriever.search("how do I wash cashmere", k=1)[0]
    assert care.id == "care" and care.spans
    assert all(s.text == care.text[s.start:s.end] for s in care.spans)
    assert math.isfinite(care.score)
    retriever.save(tmp_path / "idx")
    loaded = FGRRetriever.load(tmp_path / "idx")  # records no model: reloads the bundled default
    assert loaded.search("how do I wash cashmere", k=1)[0].id == "care"
