"""FGRColBERTDocumentStore: Haystack's own store test-suite, round trips, persistence, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from haystack import Document
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    CountDocumentsByFilterTest,
    DeleteAllTest,
    DeleteByFilterTest,
    DeleteDocumentsTest,
    DocumentStoreBaseExtendedTests,
    FilterableDocsFixtureMixin,
    UpdateByFilterTest,
    WriteDocumentsTest,
)

from fgr_retriever import FGRRetriever, ModelMismatchError
from haystack_integrations.document_stores.fgr import RESERVED_META_KEY, FGRColBERTDocumentStore


class TestFGRStoreProtocolSuite(DocumentStoreBaseExtendedTests, CountDocumentsByFilterTest):
    """Haystack's reference tests for document stores, run on an in-memory FGR store."""

    @pytest.fixture
    def document_store(self, make_store):
        return make_store()

    def test_write_documents(self, document_store):
        # the suite leaves the default policy to each store: ours is FAIL, like InMemoryDocumentStore
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


class TestFGRStorePersistedSuite(
    WriteDocumentsTest, DeleteDocumentsTest, DeleteAllTest, DeleteByFilterTest, UpdateByFilterTest,
    FilterableDocsFixtureMixin,
):
    """The suite's mutation tests with an index_path, so every change goes to the persistent index.

    (Filtering does not depend on persistence; its tests run once, above.)
    """

    @pytest.fixture
    def document_store(self, make_store, tmp_path):
        return make_store(index_path=str(tmp_path / "index"))

    def test_write_documents(self, document_store):
        doc = Document(content="test doc", meta={"nested": {"a": [1, 2]}})
        assert document_store.write_documents([doc]) == 1
        reopened = FGRColBERTDocumentStore.from_dict(document_store.to_dict())
        self.assert_documents_are_equal(reopened.filter_documents(), [doc])


# ------------------------------------------------------------------ round trips
def test_full_documents_round_trip_exactly_through_disk(make_store, tmp_path):
    docs = [
        Document(id="rich", content="A document with every optional field set.",
                 meta={"lang": "en", "tags": ["a", "b"], "nested": {"x": 1.5, "y": None}},
                 embedding=[0.1, -0.25, 1e-8], sparse_embedding=SparseEmbedding(indices=[3, 17], values=[0.5, 0.25]),
                 blob=ByteStream(data=b"\x00\xffraw bytes", mime_type="application/octet-stream", meta={"k": "v"}),
                 score=0.75),
        Document(content="A plain document."),
    ]
    path = tmp_path / "index"
    store = make_store(index_path=str(path))
    assert store.write_documents(docs) == 2
    assert store.filter_documents() == docs

    reopened = make_store(index_path=str(path))
    assert reopened.filter_documents() == docs
    assert reopened.count_documents() == 2

    # the core index keeps Haystack's extra fields under one reserved, JSON-only metadata key
    core = FGRRetriever.load(path, model=reopened._ready().model)
    stored = {d.id: d for d in core.get(core.index.ids())}
    assert stored["rich"].metadata["lang"] == "en"
    assert set(stored["rich"].metadata[RESERVED_META_KEY]) == {"embedding", "sparse_embedding", "blob", "score"}
    assert RESERVED_META_KEY not in stored[docs[1].id].metadata
    json.dumps([d.to_dict() for d in stored.values()], allow_nan=False)


def test_returned_documents_are_copies(filled_store):
    first = filled_store.filter_documents()[0]
    first.meta["category"] = "changed"
    assert filled_store.filter_documents()[0].meta["category"] == "policy"


def test_store_opens_an_index_built_with_the_core_library(tiny_model_dir, make_store, tmp_path, _pinned_tiny_model):
    # FGRRetriever.save() writes the portable (version 1) format: the store converts it in place, once
    core = FGRRetriever(model=_pinned_tiny_model)
    core.add_documents(["Dry suede with a soft brush.", "Air wool coats after wearing them."], ids=["suede", "wool"],
                       metadata=[{"category": "care"}, {"category": "care", "nested": {"a": [1, 2]}}])
    core.save(tmp_path / "index")
    assert json.loads((tmp_path / "index" / "index.json").read_text())["version"] == 1
    store = make_store(index_path=str(tmp_path / "index"))
    expected = [Document(id="suede", content="Dry suede with a soft brush.", meta={"category": "care"}),
                Document(id="wool", content="Air wool coats after wearing them.",
                         meta={"category": "care", "nested": {"a": [1, 2]}})]
    assert store.filter_documents() == expected
    assert json.loads((tmp_path / "index" / "index.json").read_text())["version"] == 2
    assert (tmp_path / "index" / "catalog.sqlite").exists() and list((tmp_path / "index" / "segments").iterdir())

    # the converted index is a persistent one: changes land in it and a new store sees them
    store.write_documents([Document(id="linen", content="Iron linen while it is still damp.")])
    store.delete_documents(["suede"])
    assert [d.id for d in make_store(index_path=str(tmp_path / "index")).filter_documents()] == ["wool", "linen"]


# ------------------------------------------------------------------ write policies
def test_fail_policy_checks_the_whole_batch_before_writing(store):
    store.write_documents([Document(id="a", content="first")])
    with pytest.raises(DuplicateDocumentError, match="already stored"):
        store.write_documents([Document(id="b", content="new"), Document(id="a", content="again")])
    with pytest.raises(DuplicateDocumentError, match="twice in this batch"):
        store.write_documents([Document(id="c", content="one"), Document(id="c", content="two")],
                              policy=DuplicatePolicy.FAIL)
    assert [d.id for d in store.filter_documents()] == ["a"]


def test_skip_and_overwrite_policies_count_what_they_write(store):
    store.write_documents([Document(id="a", content="first"), Document(id="b", content="second")])
    batch = [Document(id="a", content="replaced"), Document(id="c", content="third"), Document(id="c", content="dup")]
    assert store.write_documents(batch, policy=DuplicatePolicy.SKIP) == 1
    assert {d.id: d.content for d in store.filter_documents()} == {"a": "first", "b": "second", "c": "third"}
    assert store.write_documents(batch, policy=DuplicatePolicy.OVERWRITE) == 3
    # an overwritten id moves to the end; within one batch the last copy wins
    assert [(d.id, d.content) for d in store.filter_documents()] == [("b", "second"), ("a", "replaced"), ("c", "dup")]


def test_documents_without_text_or_with_bad_meta_are_refused_clearly(store):
    with pytest.raises(ValueError, match="has no text"):
        store.write_documents([Document(blob=ByteStream(data=b"png bytes"))])
    with pytest.raises(ValueError, match="empty content"):
        store.write_documents([Document(content="   ")])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.write_documents([Document(content="text", meta={"when": object()})])
    with pytest.raises(ValueError, match="reserved"):
        store.write_documents([Document(content="text", meta={RESERVED_META_KEY: 1})])
    with pytest.raises(ValueError, match="item 1"):
        store.write_documents([Document(content="ok"), "not a document"])
    assert store.count_documents() == 0


def test_tuples_in_meta_are_stored_as_lists(store):
    store.write_documents([Document(id="t", content="text", meta={"pair": (1, 2)})])
    assert store.filter_documents()[0].meta == {"pair": [1, 2]}


def test_invalid_filters_raise_filter_error_even_on_an_empty_store(store):
    with pytest.raises(FilterError):
        store.filter_documents({"conditions": []})
    with pytest.raises(FilterError):
        store.filter_documents({"field": "meta.a", "operator": "in", "value": "not a list"})
    with pytest.raises(FilterError):
        store.filter_documents("meta.a == 1")
    with pytest.raises(FilterError):
        store.filter_documents({"operator": "AND", "conditions": None})


def test_delete_ignores_unknown_ids_and_accepts_a_single_id(filled_store):
    filled_store.delete_documents(["nope"])
    filled_store.delete_documents("silk")
    assert filled_store.count_documents() == 3


# ------------------------------------------------------------------ persistence
def test_changes_are_persisted_and_seen_by_a_new_store(make_store, tmp_path, shop_docs):
    path = str(tmp_path / "index")
    writer = make_store(index_path=path)
    writer.write_documents(shop_docs)
    writer.delete_documents(["silk"])
    writer.update_by_filter({"field": "id", "operator": "==", "value": "returns"}, {"reviewed": True})

    reader = make_store(index_path=path)
    assert reader.count_documents() == 3
    assert reader.filter_documents({"field": "meta.reviewed", "operator": "==", "value": True})[0].id == "returns"
    reader.delete_all_documents()
    assert make_store(index_path=path).count_documents() == 0


def _segment_files(index_path: Path) -> dict[str, tuple[int, int]]:
    return {f.name: (f.stat().st_mtime_ns, f.stat().st_size) for f in (index_path / "segments").iterdir()}


def test_writes_are_durable_without_saving(make_store, tmp_path, shop_docs, monkeypatch):
    def no_save(self, path):
        raise AssertionError("a persistent store must never rewrite its index with save()")

    monkeypatch.setattr(FGRRetriever, "save", no_save)
    path = str(tmp_path / "index")
    writer = make_store(index_path=path)
    assert writer.write_documents(shop_docs[:3]) == 3
    assert json.loads((tmp_path / "index" / "index.json").read_text())["version"] == 2

    reader = make_store(index_path=path)  # another store on the same path, same process
    assert reader.filter_documents() == shop_docs[:3]
    # a store that is already open sees later changes made through another store at its next call
    writer.write_documents(shop_docs[3:])
    writer.delete_documents(["silk"])
    assert [d.id for d in reader.filter_documents()] == ["returns", "cashmere", "shipping"]
    assert {d.id for d in reader._search("how do I wash cashmere", top_k=10)} == {"returns", "cashmere", "shipping"}
    care = {"field": "meta.category", "operator": "==", "value": "care"}
    assert [d.id for d in reader._search("wash", top_k=10, filters=care)] == ["cashmere"]
    # and changes made through the reader reach the writer the same way
    reader.write_documents([Document(id="linen", content="Iron linen while it is still damp.")])
    assert writer.count_documents() == 4 and writer.filter_documents()[-1].id == "linen"


def test_a_write_adds_one_segment_and_rewrites_nothing(make_store, tmp_path, shop_docs):
    path = tmp_path / "index"
    store = make_store(index_path=str(path))
    store.write_documents(shop_docs[:2])
    store.write_documents(shop_docs[2:3])
    before = _segment_files(path)
    assert len(before) == 2

    store.write_documents(shop_docs[3:])
    after = _segment_files(path)
    assert {name: after.get(name) for name in before} == before  # every old file there, untouched
    assert len(set(after) - set(before)) == 1
    # a delete is a tombstone in the catalogue: no segment file changes
    store.delete_documents(["silk"])
    assert _segment_files(path) == after
    assert make_store(index_path=str(path)).count_documents() == 3


def test_delete_all_documents_empties_the_persistent_index(make_store, tmp_path, shop_docs):
    path = str(tmp_path / "index")
    store = make_store(index_path=path)
    store.write_documents(shop_docs)
    other = make_store(index_path=path)
    assert other.count_documents() == 4
    store.delete_all_documents()
    assert store.count_documents() == 0 and other.count_documents() == 0
    assert make_store(index_path=path).count_documents() == 0
    # the store still writes to the same index afterwards
    store.write_documents(shop_docs[:1])
    assert [d.id for d in other.filter_documents()] == ["returns"]
    store.delete_all_documents()
    store.delete_all_documents()  # nothing left: a no-op
    assert make_store(index_path=path).count_documents() == 0


def test_an_empty_directory_becomes_an_index(make_store, tmp_path, shop_docs):
    path = tmp_path / "empty"
    path.mkdir()
    make_store(index_path=str(path)).write_documents(shop_docs[:1])
    assert make_store(index_path=str(path)).filter_documents() == shop_docs[:1]
    assert set(os.listdir(path)) >= {"catalog.sqlite", "index.json", "segments"}


def test_construction_is_lazy(tmp_path):
    # neither the (missing) model nor the index is touched until the store is used
    store = FGRColBERTDocumentStore(model=str(tmp_path / "no-model-here"), index_path=str(tmp_path / "idx"))
    assert store._retriever is None
    with pytest.raises(OSError):
        store.count_documents()


def test_an_index_built_with_another_model_raises_model_mismatch(make_store, other_model_dir, tmp_path):
    path = str(tmp_path / "index")
    make_store(index_path=path).write_documents([Document(content="Built with the tiny model.")])
    other = make_store(model=other_model_dir, index_path=path)
    with pytest.raises(ModelMismatchError, match="index_path=.*different model"):
        other.warm_up()


def test_an_index_path_holding_other_files_is_refused(make_store, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no FGR index"):
        make_store(index_path=str(tmp_path)).count_documents()


def test_settings_are_checked_at_construction():
    with pytest.raises(ValueError, match="storage_dtype"):
        FGRColBERTDocumentStore(storage_dtype="int8")
    with pytest.raises(ValueError, match="batch_size"):
        FGRColBERTDocumentStore(batch_size=0)
    with pytest.raises(TypeError, match="save_pretrained"):
        FGRColBERTDocumentStore(model=object())


def test_to_dict_from_dict(tiny_model_dir, tmp_path):
    store = FGRColBERTDocumentStore(model=tiny_model_dir, index_path=str(tmp_path / "i"), storage_dtype="float32",
                                    batch_size=8, context_words=2, evidence_max_tokens=40)
    data = store.to_dict()
    assert data == {
        "type": "haystack_integrations.document_stores.fgr.document_store.FGRColBERTDocumentStore",
        "init_parameters": {"model": tiny_model_dir, "index_path": str(tmp_path / "i"), "storage_dtype": "float32",
                            "batch_size": 8, "context_words": 2, "evidence_max_tokens": 40, "device": None},
    }
    again = FGRColBERTDocumentStore.from_dict(data)
    assert again.to_dict() == data


# ------------------------------------------------------------------ search and async
def test_search_returns_new_documents_with_evidence(filled_store):
    stored_before = filled_store.filter_documents()
    hits = filled_store._search("how do I wash cashmere", top_k=2)
    assert len(hits) == 2 and hits[0].score >= hits[1].score
    for hit in hits:
        assert hit.meta["relevance_score"] == hit.score
        assert isinstance(hit.meta["evidence_spans"], list)
    assert filled_store.filter_documents() == stored_before  # the store was not touched
    assert filled_store._search("anything", top_k=0) == []


@pytest.mark.asyncio
async def test_async_methods(store, shop_docs):
    assert await store.write_documents_async(shop_docs) == 4
    assert await store.count_documents_async() == 4
    care = await store.filter_documents_async({"field": "meta.category", "operator": "==", "value": "care"})
    assert {d.id for d in care} == {"silk", "cashmere"}
    assert await store.count_documents_by_filter_async({"field": "meta.year", "operator": ">=", "value": 2024}) == 2
    assert await store.update_by_filter_async({"field": "id", "operator": "==", "value": "silk"}, {"x": 1}) == 1
    assert len(await store._search_async("silk care", top_k=3)) == 3
    await store.delete_documents_async(["silk"])
    assert await store.delete_by_filter_async({"field": "meta.category", "operator": "==", "value": "policy"}) == 2
    await store.delete_all_documents_async()
    assert await store.count_documents_async() == 0
