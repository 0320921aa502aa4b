"""FGRColBERTQdrantDocumentStore against qdrant-client's local mode: Haystack's store test-suite,
filter semantics checked against Haystack's own matcher, search parity with the local store,
serialisation, reopening, errors."""

from __future__ import annotations

import math
import sys

import pytest

pytest.importorskip("qdrant_client")

from haystack import Document, Pipeline  # noqa: E402
from haystack.dataclasses import ByteStream, SparseEmbedding  # noqa: E402
from haystack.document_stores.errors import DuplicateDocumentError  # noqa: E402
from haystack.document_stores.types import DuplicatePolicy  # noqa: E402
from haystack.errors import FilterError  # noqa: E402
from haystack.testing.document_store import CountDocumentsByFilterTest, DocumentStoreBaseExtendedTests  # noqa: E402
from haystack.utils import Secret  # noqa: E402
from haystack.utils.filters import document_matches_filter  # noqa: E402

from fgr_retriever import ModelMismatchError  # noqa: E402
from fgr_retriever.errors import MissingDependencyError  # noqa: E402
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever  # noqa: E402
from haystack_integrations.document_stores.fgr import (  # noqa: E402
    FGRColBERTDocumentStore,
    FGRColBERTQdrantDocumentStore,
)
from haystack_integrations.document_stores.fgr._qdrant_filters import LISTS_KEY  # noqa: E402


def _by_id(documents):
    return sorted(documents, key=lambda d: d.id)


class TestQdrantStoreProtocolSuite(DocumentStoreBaseExtendedTests, CountDocumentsByFilterTest):
    """Haystack's reference tests for document stores, filters included, on a Qdrant store."""

    @pytest.fixture
    def document_store(self, make_qdrant_store):
        return make_qdrant_store()

    @staticmethod
    def assert_documents_are_equal(received, expected):
        # the suite's hook for stores with their own order: Qdrant lists documents by point id
        assert _by_id(received) == _by_id(expected)

    def test_write_documents(self, document_store):
        # the suite leaves the default policy to each store: ours is FAIL, like InMemoryDocumentStore
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


# --------------------------------------------------- filters: Haystack's matcher is the reference
LONG = " ".join(f"Sentence {i} about wool, silk and linen care." for i in range(40))  # several model windows

FILTER_DOCS = [
    Document(id="d1", content="Brush suede gently.",
             meta={"category": "care", "n": 1, "price": 10.5, "date": "2024-01-01T00:00:00", "tags": ["a", "b"],
                   "nested": {"x": 1, "deep": {"y": "z"}}, "flag": True}),
    Document(id="d2", content="Returns within 30 days.",
             meta={"category": "policy", "n": 2, "price": 3, "date": "2023-06-15 12:00:00", "tags": "a",
                   "nested": {"x": 2.0}, "flag": False}),
    Document(id="d3", content="Silk is dry-cleaned.",
             meta={"category": "care", "n": True, "date": "2024-01-01T00:00:00+00:00", "tags": [],
                   "items": [{"name": "q"}], "odd key": 1}),
    Document(id="d4", content="Gift wrapping is free.",
             meta={"category": None, "n": 0, "price": -1, "nested": {}, "flag": None, "tags": [None]}),
    Document(id="d5", content="Wool coats need air.", meta={"n": 1.0, "date": "1999-12-31", "empty": {}, "items": []}),
    Document(id="d6", content=LONG, score=0.5),
    Document(id="d7", content="Shipping takes three days.", meta={"category": "2024-01-01", "n": 10**12}),
]


def _f(field, op, value):
    return {"field": field, "operator": op, "value": value}


FILTERS = [
    _f("meta.category", "==", "care"), _f("meta.category", "!=", "care"), _f("meta.category", "==", None),
    _f("meta.category", "!=", None), _f("meta.category", "in", ["care", "policy"]),
    _f("meta.category", "not in", ["care"]), _f("meta.category", "in", ["care", None]),
    _f("meta.category", "==", "2024-01-01T00:00:00"), _f("meta.category", "in", ["2024-01-01T00:00"]),
    _f("category", "==", "care"),  # a legacy filter's bare meta field
    _f("meta.n", "==", 1), _f("meta.n", "==", True), _f("meta.n", "==", 1.0), _f("meta.n", "!=", 1),
    _f("meta.n", "==", 0), _f("meta.n", "in", [0, 2]), _f("meta.n", "in", [1, "x", None]),
    _f("meta.n", "not in", [2]), _f("meta.n", "==", 10**12), _f("meta.n", "==", math.nan),
    _f("meta.n", "!=", math.nan), _f("meta.n", ">", 0), _f("meta.n", ">=", 1), _f("meta.n", "<", 1),
    _f("meta.n", "<=", 0), _f("meta.n", ">", True), _f("meta.n", ">", math.nan), _f("meta.n", ">", None),
    _f("meta.flag", "==", 0), _f("meta.flag", "==", False), _f("meta.flag", "!=", True), _f("meta.flag", "==", None),
    _f("meta.price", ">", 3), _f("meta.price", ">=", 3), _f("meta.price", "<", 0), _f("meta.price", "<=", 10.5),
    _f("meta.price", "==", 3.0), _f("meta.price", ">", -math.inf), _f("meta.price", "<", math.inf),
    _f("meta.price", ">", math.inf),
    _f("meta.date", ">", "2023-12-31"), _f("meta.date", ">=", "2024-01-01T00:00:00"),
    _f("meta.date", "<", "2000-01-01"), _f("meta.date", "<=", "2023-06-15T12:00:00+00:00"),
    _f("meta.date", "==", "2024-01-01T00:00:00"), _f("meta.date", "==", "2023-06-15T12:00:00"),
    _f("meta.date", "in", ["1999-12-31T00:00:00"]), _f("meta.date", "!=", "2024-01-01"),
    _f("meta.tags", "==", "a"), _f("meta.tags", "in", ["a"]), _f("meta.tags", "!=", "a"),
    _f("meta.tags", "==", None), _f("meta.tags", "!=", None), _f("meta.tags", "not in", ["b"]),
    _f("meta.nested.x", "==", 1), _f("meta.nested.x", ">", 1), _f("meta.nested.deep.y", "==", "z"),
    _f("meta.nested", "==", None), _f("meta.nested", "!=", None), _f("meta.nested.x", "==", None),
    _f("meta.items.name", "==", "q"), _f("meta.items.name", "==", None), _f("meta.items", "==", None),
    _f("meta.empty", "==", None), _f("meta.odd key", "==", 1), _f("meta.missing", "!=", None),
    _f("id", "==", "d1"), _f("id", "in", ["d1", "d2", "nope"]), _f("id", "!=", "d1"),
    _f("score", "==", None), _f("score", ">", 0.1),
    _f("blob.mime_type", "==", None), _f("meta._haystack", "==", None), _f(f"meta.{LISTS_KEY}", "==", None),
    {"operator": "AND", "conditions": []}, {"operator": "OR", "conditions": []}, {"operator": "NOT", "conditions": []},
    {"operator": "NOT", "conditions": [_f("meta.category", "==", "care"), _f("meta.n", "==", 1)]},
    {"operator": "OR", "conditions": [_f("meta.tags", "==", "a"), _f("meta.nested.x", "==", 1)]},
    {"operator": "AND", "conditions": [_f("meta.date", ">", "2023-01-01"),
                                       {"operator": "NOT", "conditions": [_f("meta.category", "==", "care")]}]},
]
CONTENT_FILTERS = [_f("content", "==", "Brush suede gently."), _f("content", "in", ["Brush suede gently.", "x"]),
                   _f("content", "!=", "Brush suede gently.")]


@pytest.fixture(scope="module")
def filter_store(tiny_model_dir, _pinned_tiny_model):
    store = FGRColBERTQdrantDocumentStore(model=tiny_model_dir, location=":memory:")
    store.write_documents(FILTER_DOCS)
    assert len(store._index()._stored(["d6"])["d6"][1].window_lengths) > 1  # the meta is on every window
    yield store
    store.close()


def _expected(flt):
    return {d.id for d in FILTER_DOCS if document_matches_filter(flt, d)}


@pytest.mark.parametrize("flt", FILTERS + CONTENT_FILTERS, ids=repr)
def test_filters_mean_what_haystack_means(filter_store, flt):
    expected = _expected(flt)
    assert {d.id for d in filter_store.filter_documents(flt)} == expected
    assert filter_store.count_documents_by_filter(flt) == len(expected)


@pytest.mark.parametrize("flt", FILTERS[::3], ids=repr)
def test_search_filters_mean_what_haystack_means(filter_store, flt):
    assert {d.id for d in filter_store._search("care", top_k=10, filters=flt)} == _expected(flt)


def test_documents_round_trip_with_their_lists(filter_store):
    assert _by_id(filter_store.filter_documents()) == FILTER_DOCS
    # the list bookkeeping is stored, but never shown as meta
    head = filter_store._index().client.retrieve(filter_store._index().collection,
                                                 [_point("d1")], with_payload=True)[0]
    assert head.payload["metadata"][LISTS_KEY] == ['["tags"]']


def _point(doc_id, window=0):
    from fgr_retriever.index.qdrant import point_id

    return point_id(doc_id, window)


@pytest.mark.parametrize("flt", [
    _f("meta.n", ">", "1"), _f("meta.n", "<", [1]), _f("meta.n", "in", 1), _f("meta.n", "not in", (1,)),
    _f("meta.n", "==", [1]), _f("meta.n", "==", {"a": 1}), _f("meta.n", ">=", "2024-13-45"),
    _f("meta.n", "===", 1), {"operator": "XOR", "conditions": []}, {"conditions": []}, {"operator": "AND"},
    {"operator": "AND", "conditions": [{"operator": "==", "value": 1}]}, _f("embedding", "==", None),
    _f("meta", "==", {}), _f("meta.a..b", "==", 1), _f('meta.a"b', "==", 1), _f(3, "==", 1), "meta.n == 1",
    {"operator": "AND", "conditions": None}, _f("meta.n", "==", 2**70),
], ids=repr)
def test_untranslatable_or_malformed_filters_raise_filter_error(make_qdrant_store, flt):
    store = make_qdrant_store()  # empty: errors do not depend on the stored documents
    with pytest.raises(FilterError):
        store.filter_documents(flt)


def test_a_search_cannot_filter_on_content(filter_store):
    with pytest.raises(FilterError, match="first window"):
        filter_store._search("wool", filters=_f("content", "==", LONG))
    with pytest.raises(FilterError, match="first window"):
        FGRColBERTRetriever(filter_store).run("wool", filters={"operator": "OR", "conditions": [
            _f("meta.n", "==", 1), _f("content", "!=", "x")]})


# ------------------------------------------------ writes and updates, against the local store
def test_updates_and_deletes_match_the_local_store(make_qdrant_store, make_store):
    ours, local = make_qdrant_store(), make_store()
    for store in (ours, local):
        store.write_documents(FILTER_DOCS)
        assert store.update_by_filter(_f("meta.category", "==", "care"), {"tags": "a", "new": [1, 2]}) == 2
        assert store.update_by_filter(_f("meta.tags", "==", "a"), {"flag": None, "nested": {"x": 5}}) == 3
        assert store.update_by_filter(_f("id", "==", "d6"), {"tags": ["long"], "n": 3}) == 1
        assert store.delete_by_filter(_f("meta.n", "==", 0)) == 1
        assert store.update_by_filter(_f("meta.missing", "==", 1), {"x": 1}) == 0
    assert _by_id(ours.filter_documents()) == _by_id(local.filter_documents())
    for flt in [_f("meta.tags", "==", "a"), _f("meta.new", "==", 1), _f("meta.new", "==", None),
                _f("meta.flag", "==", None), _f("meta.nested.x", ">=", 5), _f("meta.tags", "!=", "long"),
                _f("meta.n", "==", 3)]:
        assert {d.id for d in ours.filter_documents(flt)} == {d.id for d in local.filter_documents(flt)}, flt
    # every window of the long document got the new meta (a search ranks any of them), and the
    # key set to None is stored as null
    index = ours._index()
    windows = list(index._scroll(index._doc_filter(["d6"])))
    assert len(windows) > 1
    for point in windows:
        assert point.payload["metadata"]["n"] == 3 and point.payload["metadata"][LISTS_KEY] == ['["tags"]']
    d3 = ours.filter_documents(_f("id", "==", "d3"))[0]
    assert "flag" in d3.meta and d3.meta["flag"] is None
    assert [d.id for d in ours._search("wool linen", top_k=3, filters=_f("meta.n", "==", 3))] == ["d6"]


def test_update_by_filter_does_not_re_encode(make_qdrant_store, shop_docs, monkeypatch):
    store = make_qdrant_store()
    store.write_documents(shop_docs)
    model = store._ready().model

    def no_encoding(*args, **kwargs):
        raise AssertionError("update_by_filter must not re-encode documents")

    monkeypatch.setattr(model, "encode_documents", no_encoding)
    assert store.update_by_filter(_f("meta.category", "==", "care"), {"reviewed": True}) == 2
    assert store.count_documents_by_filter(_f("meta.reviewed", "==", True)) == 2
    with pytest.raises(ValueError, match="reserved"):
        store.update_by_filter(_f("id", "==", "silk"), {LISTS_KEY: 1})
    with pytest.raises(ValueError, match="JSON"):
        store.update_by_filter(_f("id", "==", "silk"), {"x": object()})


def test_full_documents_round_trip_exactly(make_qdrant_store):
    docs = [
        Document(id="rich", content="A document with every optional field set.",
                 meta={"lang": "en", "tags": ["a", "b"], "nested": {"x": 1.5, "y": None}},
                 embedding=[0.1, -0.25, 1e-8], sparse_embedding=SparseEmbedding(indices=[3, 17], values=[0.5, 0.25]),
                 blob=ByteStream(data=b"\x00\xffraw bytes", mime_type="application/octet-stream", meta={"k": "v"}),
                 score=0.75),
        Document(content="A plain document."),
    ]
    store = make_qdrant_store()
    assert store.write_documents(docs) == 2
    assert _by_id(store.filter_documents()) == _by_id(docs)
    with pytest.raises(ValueError, match="reserved"):
        store.write_documents([Document(content="text", meta={LISTS_KEY: []})])


def test_write_policies(make_qdrant_store):
    store = make_qdrant_store()
    store.write_documents([Document(id="a", content="first"), Document(id="b", content="second")])
    with pytest.raises(DuplicateDocumentError, match="already stored"):
        store.write_documents([Document(id="c", content="new"), Document(id="a", content="again")])
    with pytest.raises(DuplicateDocumentError, match="twice in this batch"):
        store.write_documents([Document(id="d", content="one"), Document(id="d", content="two")])
    with pytest.raises(ValueError, match="empty content"):
        store.write_documents([Document(id="e", content="fine"), Document(content="  ")],
                              policy=DuplicatePolicy.OVERWRITE)
    assert store.count_documents() == 2  # every failing call above wrote nothing
    batch = [Document(id="a", content="replaced"), Document(id="c", content="third"), Document(id="c", content="dup")]
    assert store.write_documents(batch, policy=DuplicatePolicy.SKIP) == 1
    assert {d.id: d.content for d in store.filter_documents()} == {"a": "first", "b": "second", "c": "third"}
    assert store.write_documents(batch, policy=DuplicatePolicy.OVERWRITE) == 3
    assert {d.id: d.content for d in store.filter_documents()} == {"a": "replaced", "b": "second", "c": "dup"}
    store.delete_documents("b")
    store.delete_documents(["nope", "c", "c"])
    assert [d.id for d in store.filter_documents()] == ["a"]


# ------------------------------------------------------------ search parity with the local store
def _comparable(doc):
    meta = dict(doc.meta)
    spans = {key: [(s["start"], s["end"], s["text"]) for s in meta.pop(key)] for key in ("evidence_spans",
                                                                                         "answer_spans")}
    return doc.id, doc.content, spans, meta.pop("relevance_score"), meta


@pytest.mark.parametrize("evidence_only", [False, True])
def test_search_equals_the_local_store(make_qdrant_store, make_store, shop_docs, evidence_only):
    ours, local = make_qdrant_store(), make_store(storage_dtype="float32")
    ours.write_documents(shop_docs)
    local.write_documents(shop_docs)
    for query, filters in [("how do I wash cashmere", None), ("returns within 30 days", None),
                           ("how long does shipping take", _f("meta.category", "==", "policy")),
                           ("silk care", _f("meta.year", ">=", 2024))]:
        got = FGRColBERTRetriever(ours, top_k=4, evidence_only=evidence_only).run(query, filters=filters)["documents"]
        want = FGRColBERTRetriever(local, top_k=4, evidence_only=evidence_only).run(query, filters=filters)["documents"]
        assert [d.id for d in got] == [d.id for d in want]
        assert [d.score for d in got] == pytest.approx([d.score for d in want], abs=1e-4)
        for g, w in zip(got, want):
            assert _comparable(g)[:3] == _comparable(w)[:3]  # id, content, spans
            assert _comparable(g)[3] == pytest.approx(_comparable(w)[3], abs=1e-4)
            assert _comparable(g)[4] == _comparable(w)[4]  # the stored meta (and full_text)
            assert [s["score"] for s in g.meta["evidence_spans"]] == pytest.approx(
                [s["score"] for s in w.meta["evidence_spans"]], abs=1e-3)
    assert ours._search("anything", top_k=0) == []
    assert ours._search("anything", filters=_f("meta.year", ">", None)) == []


def test_hybrid_and_lexical_search_on_qdrant(make_qdrant_store, shop_docs):
    store = make_qdrant_store()
    store.write_documents([*shop_docs, Document(id="stole", content="A cashmere stole woven in Italy.",
                                                meta={"category": "product", "year": 2024, "sku": "MV-BRM-ST"})])
    lexical = FGRColBERTRetriever(store, top_k=5, mode="lexical").run("cashmere")["documents"]
    assert sorted(d.id for d in lexical) == ["cashmere", "stole"]  # only documents holding the word
    hybrid = FGRColBERTRetriever(store, top_k=5, mode="hybrid")
    assert hybrid.run("Do you have MV-BRM-ST?")["documents"][0].id == "stole"  # the reference, first
    found = hybrid.run("cashmere care", filters=_f("meta.category", "==", "care"))["documents"]
    assert sorted(d.id for d in found) == ["cashmere", "silk"]  # the filter holds in both sides' candidates
    lexical = FGRColBERTRetriever(store, top_k=5, mode="lexical").run("cashmere", filters=_f("meta.year", "==", 2024))
    assert sorted(d.id for d in lexical["documents"]) == ["cashmere", "stole"]
    assert all(d.meta["evidence_spans"] is not None for d in found)
    # the store's BM25 follows metadata updates: a new reference is found at once
    store.update_by_filter(_f("id", "==", "silk"), {"sku": "MV-SLK-01"})
    assert hybrid.run("MV-SLK-01 care")["documents"][0].id == "silk"


# ------------------------------------------------------------------ persistence and models
def test_a_path_collection_is_seen_by_another_store(make_qdrant_store, shop_docs, tmp_path, other_model_dir):
    path = str(tmp_path / "qdrant")
    writer = make_qdrant_store(path=path, collection="shop")
    writer.write_documents(shop_docs)
    writer.update_by_filter(_f("id", "==", "returns"), {"reviewed": True})
    writer.delete_documents(["silk"])
    writer.close()  # local mode locks its folder to one client at a time

    reader = make_qdrant_store(path=path, collection="shop")
    assert reader.count_documents() == 3
    assert [d.id for d in reader.filter_documents(_f("meta.reviewed", "==", True))] == ["returns"]
    assert reader._search("wash cashmere by hand", top_k=1)[0].id == "cashmere"
    assert make_qdrant_store(path=str(tmp_path / "other"), collection="shop").count_documents() == 0
    reader.close()

    other = make_qdrant_store(model=other_model_dir, path=path, collection="shop")
    with pytest.raises(ModelMismatchError, match="collection 'shop' .*different model"):
        other.warm_up()


def test_delete_all_documents_keeps_the_collection(make_qdrant_store, shop_docs):
    store = make_qdrant_store(index_fields={"meta.category": "keyword", "year": "integer"})
    store.write_documents(shop_docs)
    store.delete_all_documents()
    assert store.count_documents() == 0 and store.filter_documents() == []
    store.write_documents(shop_docs[:1])
    assert [d.id for d in store._search("returns", top_k=5)] == ["returns"]


@pytest.mark.asyncio
async def test_async_methods(make_qdrant_store, shop_docs):
    store = make_qdrant_store()
    await store.warm_up_async()
    assert await store.write_documents_async(shop_docs) == 4
    assert await store.count_documents_async() == 4
    care = await store.filter_documents_async(_f("meta.category", "==", "care"))
    assert {d.id for d in care} == {"silk", "cashmere"}
    assert await store.count_documents_by_filter_async(_f("meta.year", ">=", 2024)) == 2
    assert await store.update_by_filter_async(_f("id", "==", "silk"), {"x": 1}) == 1
    assert len(await store._search_async("silk care", top_k=3)) == 3
    await store.delete_documents_async(["silk"])
    assert await store.delete_by_filter_async(_f("meta.category", "==", "policy")) == 2
    await store.delete_all_documents_async()
    assert await store.count_documents_async() == 0


# ------------------------------------------------------------ construction and serialisation
def test_constructor_checks_and_laziness(tmp_path):
    with pytest.raises(ValueError, match="exactly one of url="):
        FGRColBERTQdrantDocumentStore()
    with pytest.raises(ValueError, match="exactly one of url="):
        FGRColBERTQdrantDocumentStore(location=":memory:", path=str(tmp_path))
    with pytest.raises(ValueError, match="candidate"):
        FGRColBERTQdrantDocumentStore(location=":memory:", candidate="best")
    with pytest.raises(TypeError, match="Secret"):
        FGRColBERTQdrantDocumentStore(url="http://qdrant:6333", api_key="plain text")
    with pytest.raises(ValueError, match="index_fields"):
        FGRColBERTQdrantDocumentStore(location=":memory:", index_fields=["category"])
    with pytest.raises(ValueError, match="candidates"):
        FGRColBERTQdrantDocumentStore(location=":memory:", candidates=0)
    # neither the (missing) model nor the (unreachable) server is touched until first use
    store = FGRColBERTQdrantDocumentStore(model=str(tmp_path / "no-model"), url="http://qdrant.invalid:6333")
    assert store._retriever is None
    assert isinstance(store, FGRColBERTDocumentStore) and not hasattr(store, "_documents")
    with pytest.raises(OSError):
        store.count_documents()


def test_a_missing_qdrant_client_is_reported_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "qdrant_client", None)  # makes `import qdrant_client` fail
    store = FGRColBERTQdrantDocumentStore(location=":memory:")
    with pytest.raises(MissingDependencyError, match=r"pip install 'fgr-retriever\[qdrant\]'"):
        store.warm_up()
    with pytest.raises(MissingDependencyError, match="qdrant"):
        store.filter_documents(_f("meta.a", "==", 1))


def test_to_dict_from_dict_and_secrets(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "very-secret-key")
    store = FGRColBERTQdrantDocumentStore(model=tiny_model_dir, url="http://qdrant:6333", collection="kb",
                                          candidate=None, candidates=50, index_fields={"category": "keyword"},
                                          shard_number=2, replication_factor=2, timeout=5, batch_size=8,
                                          context_words=2, evidence_max_tokens=40)
    data = store.to_dict()
    assert data["type"] == ("haystack_integrations.document_stores.fgr.qdrant_document_store."
                            "FGRColBERTQdrantDocumentStore")
    assert data["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["QDRANT_API_KEY"], "strict": False}
    assert "very-secret-key" not in repr(data)
    again = FGRColBERTQdrantDocumentStore.from_dict(data)
    assert again.to_dict() == data and again.api_key.resolve_value() == "very-secret-key"
    with pytest.raises(ValueError, match="token"):
        FGRColBERTQdrantDocumentStore(url="http://qdrant:6333", api_key=Secret.from_token("tok")).to_dict()
    without = FGRColBERTQdrantDocumentStore(location=":memory:", api_key=None)
    assert FGRColBERTQdrantDocumentStore.from_dict(without.to_dict()).api_key is None


def test_a_pipeline_with_the_qdrant_store_round_trips(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("QDRANT_API_KEY", "very-secret-key")
    store = FGRColBERTQdrantDocumentStore(model=tiny_model_dir, url="http://qdrant:6333", collection="kb")
    pipeline = Pipeline()
    pipeline.add_component("retriever", FGRColBERTRetriever(store, top_k=3, filters=_f("meta.a", "==", 1)))
    yaml_text = pipeline.dumps()
    assert "very-secret-key" not in yaml_text and "QDRANT_API_KEY" in yaml_text
    loaded = Pipeline.loads(yaml_text).get_component("retriever")
    assert type(loaded.document_store) is FGRColBERTQdrantDocumentStore
    assert loaded.document_store.to_dict() == store.to_dict() and loaded.document_store._retriever is None
    assert loaded.to_dict() == pipeline.get_component("retriever").to_dict()
    # the local store still comes back as itself
    local = FGRColBERTRetriever(FGRColBERTDocumentStore(model=tiny_model_dir))
    assert type(FGRColBERTRetriever.from_dict(local.to_dict()).document_store) is FGRColBERTDocumentStore


def test_a_retriever_refuses_a_serialised_store_of_another_kind(tiny_model_dir):
    from haystack import DeserializationError

    data = FGRColBERTRetriever(FGRColBERTDocumentStore(model=tiny_model_dir)).to_dict()
    data["init_parameters"]["document_store"]["type"] = (
        "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore")
    with pytest.raises(DeserializationError, match="not an FGRColBERTDocumentStore"):
        FGRColBERTRetriever.from_dict(data)


@pytest.mark.integration
def test_the_docstring_example_runs_and_prints_what_it_says(run_docstring_example):
    run_docstring_example(FGRColBERTQdrantDocumentStore)  # the real bundled default model, offline
