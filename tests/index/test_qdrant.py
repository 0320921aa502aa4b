"""QdrantIndex against qdrant-client's local mode (no server here): the same client code paths."""

from __future__ import annotations

import pytest

pytest.importorskip("qdrant_client")

from fgr_retriever import (  # noqa: E402
    FGRRetriever,
    IndexStoreError,
    InvalidInputError,
    ModelMismatchError,
)
from fgr_retriever.index import EmbeddedIndex  # noqa: E402
from fgr_retriever.index.filters import compile_filter  # noqa: E402
from fgr_retriever.index.qdrant import QdrantIndex, translate_filter  # noqa: E402
from fgr_retriever.testing import tiny_model  # noqa: E402

TEXTS = ["Suede should be brushed with a crepe brush. Keep it away from rain.",
         "Returns are accepted within 30 days of delivery.",
         "Orders ship from Orléans in 2 days. " * 8,  # several model windows
         "Silk scarves are dry-cleaned only. Never wring silk.",
         "Gift wrapping is free in every boutique."]
IDS = ["care", "returns", "ship", "silk", "gift"]
META = [{"category": "care", "price": 3, "tags": "x"}, {"category": "policy", "price": 10},
        {"category": "policy", "price": 20.5, "region": None}, {"category": "care", "price": 7, "level": {"n": 2}},
        {"category": "service"}]
QUERIES = ["suede brush", "how many days", "silk care", "free gift"]
CANDIDATES = ["pooled", None] + (["muvera"] if __import__("importlib").util.find_spec("fastembed") else [])


@pytest.fixture(scope="module")
def model():
    return tiny_model(evidence_unit="sentence", sentence_threshold=0.0)


def _pair(model, candidate, **kw):
    index = QdrantIndex.for_model(model, location=":memory:", candidate=candidate, **kw)
    ours = FGRRetriever(model=model, index=index)
    reference = FGRRetriever(model=model, index=EmbeddedIndex(dim=model.dim, dtype="float32"))
    for r in (ours, reference):
        r.add_documents(TEXTS, ids=IDS, metadata=META)
    return ours, reference


@pytest.mark.parametrize("candidate", CANDIDATES)
def test_results_equal_the_embedded_index(model, candidate):
    ours, reference = _pair(model, candidate)
    for q in QUERIES:
        got, want = ours.search(q, k=5), reference.search(q, k=5)
        assert [r.id for r in got] == [r.id for r in want]
        assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-4)
        assert [r.spans for r in got] == [r.spans for r in want]  # highlighting from the vectors Qdrant returned
        assert [r.metadata for r in got] == [r.metadata for r in want]


def test_round_trip_counts_and_tokens(pooled_pair):
    ours, reference = pooled_pair
    index = ours.index
    assert len(index) == 5 and sorted(index.ids()) == sorted(IDS) and "ship" in index and "nope" not in index
    assert [d.text for d in index.get(["silk", "care"])] == [TEXTS[3], TEXTS[0]]
    want = reference.index.tokens("ship")
    got = index.tokens("ship")
    assert got.window_lengths == want.window_lengths and len(got.window_lengths) > 1
    assert (got.offsets == want.offsets).all() and (got.vectors - want.vectors.float()).abs().max() < 1e-6
    assert index.count({"category": "policy"}) == 2


@pytest.fixture(scope="module")
def pooled_pair(model):
    return _pair(model, "pooled")


@pytest.mark.parametrize("flt", [
    {"category": "care"}, {"category": {"$ne": "care"}}, {"category": {"$in": ["care", "service"]}},
    {"category": {"$nin": ["care"]}}, {"price": {"$gt": 5, "$lte": 20.5}}, {"price": 20.5},
    {"$or": [{"category": "service"}, {"price": {"$lt": 5}}]}, {"$and": [{"category": "care"}, {"price": 7}]},
    {"tags": {"$exists": True}}, {"price": {"$exists": False}}, {"level.n": 2}, {"region": None},
])
def test_filters_match_the_embedded_index(pooled_pair, flt):
    ours, reference = pooled_pair
    got = {r.id for r in ours.search("care", k=5, filter=flt)}
    assert got == {r.id for r in reference.search("care", k=5, filter=flt)}
    assert ours.index.count(flt) == sum(compile_filter(flt)(m) for m in META)


@pytest.mark.parametrize("flt, message", [
    (lambda doc: True, "predicate"), ({"category": {"$in": ["a", 1]}}, "not a mix"),
    ({"price": {"$gt": "5"}}, "numbers only"), ({"level": {"n": 2}}, "unknown filter operator"),
    ({"level": [1, 2]}, "cannot compare"), ({"$not": {}}, "unknown top-level"), ({"x": {"$regex": "a"}}, "unknown"),
])
def test_untranslatable_filters_are_refused(flt, message):
    with pytest.raises(InvalidInputError, match=message):
        translate_filter(flt)


def test_deletes_upserts_and_stale_windows(model):
    ours, _ = _pair(model, "pooled")
    ours.delete(["care"])
    assert "care" not in ours.index and len(ours) == 4
    assert ours.index.delete_where({"category": "policy"}) == 2
    assert sorted(ours.index.ids()) == ["gift", "silk"]
    ours.add_documents(["A long text. " * 60], ids=["long"])
    ours.add_documents(["Now short."], ids=["long"])  # fewer windows: the old ones must go
    assert ours.index.tokens("long").window_lengths == (ours.index.tokens("long").vectors.shape[0],)
    assert [d.text for d in ours.get(["long"])] == ["Now short."]
    assert {r.id for r in ours.search("short", k=5)} == {"gift", "silk", "long"}


def test_reopening_checks_model_dim_and_layout(tmp_path, model):
    path = str(tmp_path / "qdrant")
    index = QdrantIndex.for_model(model, path=path, candidate="pooled")
    FGRRetriever(model=model, index=index).add_documents(TEXTS, ids=IDS, metadata=META)
    index.close()
    again = QdrantIndex(dim=model.dim, path=path, candidate="pooled")  # no fingerprint given: adopts the stored one
    assert len(again) == 5 and again.model_fingerprint == model.fingerprint()
    other = tiny_model(evidence_unit="sentence", sentence_threshold=0.0, doc_maxlen=20)  # same size, other model
    assert other.dim == model.dim and other.fingerprint() != model.fingerprint()
    with pytest.raises(ModelMismatchError, match="another model"):
        FGRRetriever(model=other, index=again)
    with pytest.raises(ModelMismatchError, match="another model"):
        QdrantIndex.for_model(other, client=again.client, candidate="pooled")
    with pytest.raises(ModelMismatchError):
        QdrantIndex(dim=model.dim + 1, client=again.client, candidate="pooled")
    with pytest.raises(InvalidInputError, match="candidate"):
        QdrantIndex(dim=model.dim, client=again.client, candidate=None)
    from qdrant_client import models

    again.client.create_collection("foreign", vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
    with pytest.raises(IndexStoreError, match="not created by fgr-retriever"):
        QdrantIndex(dim=model.dim, client=again.client, collection="foreign")
    again.close()


def test_constructor_checks():
    with pytest.raises(InvalidInputError, match="exactly one"):
        QdrantIndex(dim=8)
    with pytest.raises(InvalidInputError, match="exactly one"):
        QdrantIndex(dim=8, location=":memory:", path="x")
    with pytest.raises(InvalidInputError, match="candidate"):
        QdrantIndex(dim=8, location=":memory:", candidate="best")
    with pytest.raises(InvalidInputError, match="dim"):
        QdrantIndex(dim=0, location=":memory:")


def test_transient_errors_are_retried_and_others_reported(monkeypatch):
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    index = QdrantIndex(dim=8, location=":memory:", candidate="pooled", retries=2)
    monkeypatch.setattr("time.sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ResponseHandlingException(ConnectionError("reset"))
        return "ok"

    assert index._call(flaky) == "ok" and len(calls) == 3

    def refused():
        raise UnexpectedResponse(status_code=400, reason_phrase="Bad Request", content=b"wrong", headers=None)

    with pytest.raises(IndexStoreError, match="refused the request \\(400\\)"):
        index._call(refused)

    def down():
        raise ResponseHandlingException(ConnectionError("down"))

    with pytest.raises(IndexStoreError, match="did not answer after 3 tries"):
        index._call(down)


def test_save_exports_a_portable_copy(tmp_path, model, pooled_pair):
    ours, reference = pooled_pair
    ours.save(tmp_path / "copy")
    loaded = FGRRetriever.load(tmp_path / "copy", model=model)
    assert [r.id for r in loaded.search("suede brush", k=5)] == [r.id for r in reference.search("suede brush", k=5)]


def test_cli_indexes_into_and_searches_a_collection(tmp_path, model, capsys):
    import json

    from fgr_retriever import cli

    model_dir = model.save_pretrained(tmp_path / "model")
    kb = tmp_path / "kb.jsonl"
    kb.write_text("".join(json.dumps({"id": i, "text": t, "metadata": m}) + "\n" for i, t, m in zip(IDS, TEXTS, META)))
    where = ["--qdrant-path", str(tmp_path / "q"), "--model", str(model_dir)]
    assert cli.main(["index", str(kb), "--collection", "kb", "--quiet", "--no-chunking", *where]) == 0
    assert "collection 'kb' now holds 5" in capsys.readouterr().out
    assert cli.main(["search", "kb", "suede brush", "-k", "2", "--json", *where,
                     "--filter", '{"category": "care"}']) == 0
    hits = json.loads(capsys.readouterr().out)
    assert {h["id"] for h in hits} == {"care", "silk"} and all(h["spans"] for h in hits)
    assert cli.main(["search", "kb", "scarves silk", "-k", "2", "--json", "--mode", "lexical", *where]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)] == ["silk"]  # BM25 inside Qdrant
    assert cli.main(["index", str(kb), "--out", str(tmp_path / "x"), *where]) == 1  # one destination only
    assert "--out DIR, or --qdrant-url" in capsys.readouterr().err


def test_update_metadata_changes_every_window_without_re_encoding(model, monkeypatch):
    ours, _ = _pair(model, "pooled")
    index = ours.index
    before = index.tokens("ship")
    monkeypatch.setattr(model, "encode_documents", lambda *a, **k: pytest.fail("update_metadata re-encoded"))
    index.update_metadata(["ship", "gift", "nope"], {"category": "logistics", "stock": 3, "region": None})
    index.update_metadata(["care"], {"tags": None})  # only nulls: written back whole
    windows = list(index._scroll(index._doc_filter(["ship"])))
    assert len(windows) == len(before.window_lengths) > 1
    for point in windows:  # dict.update on the metadata of every window; null kept, not dropped
        assert point.payload["metadata"] == {"category": "logistics", "price": 20.5, "region": None, "stock": 3}
    assert [d.metadata for d in index.get(["gift", "care"])] == [
        {"category": "logistics", "stock": 3, "region": None}, {"category": "care", "price": 3, "tags": None}]
    after = index.tokens("ship")
    assert (after.vectors == before.vectors).all() and (after.offsets == before.offsets).all()
    assert "nope" not in index  # an unknown id is ignored, not created
    assert {r.id for r in ours.search("days", k=5, filter={"category": "logistics"})} == {"ship", "gift"}
    with pytest.raises(InvalidInputError, match="JSON"):
        index.update_metadata(["ship"], {"bad": float("nan")})
    with pytest.raises(InvalidInputError, match="list of document ids"):
        index.update_metadata("ship", {"a": 1})


def test_a_qdrant_filter_is_passed_through(pooled_pair):
    from qdrant_client import models

    from fgr_retriever.index.qdrant import QdrantFilter

    ours, reference = pooled_pair
    care = QdrantFilter(models.Filter(must=[models.FieldCondition(key="metadata.category",
                                                                  match=models.MatchValue(value="care"))]))
    assert translate_filter(care) is care.filter
    assert ours.index.count(care) == 2
    assert {r.id for r in ours.search("brush", k=5, filter=care)} == {"care", "silk"}
    with pytest.raises(InvalidInputError, match="evaluated by Qdrant"):
        reference.search("brush", k=5, filter=care)  # another index cannot run it
    with pytest.raises(InvalidInputError, match="wraps a qdrant_client.models.Filter"):
        QdrantFilter({"category": "care"})


def test_existing_documents_and_clear(model, monkeypatch):
    ours, _ = _pair(model, "pooled")
    index = ours.index
    ids = index.ids()
    assert index.existing([ids[0], "nope", ids[0]]) == {ids[0]}
    monkeypatch.setattr("fgr_retriever.index.qdrant._CHUNK", 2)  # several requests
    assert index.existing(ids + ["nope"]) == set(ids)
    heads = list(index.documents({"category": "care"}, fields=["doc_id", "metadata"]))
    assert heads and all(set(h) == {"doc_id", "metadata"} and h["metadata"]["category"] == "care" for h in heads)
    index.delete(ids[:3])  # in chunks of 2
    assert index.existing(ids) == set(ids[3:])
    index.clear()
    assert len(index) == 0 and index.ids() == []


# ------------------------------------------------------------------------ BM25 and hybrid
SKU_META = [{**m, "sku": f"MV-{i:02d}X"} for i, m in enumerate(META)]


def _textbook_bm25(texts: dict[str, str], query: str, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """BM25 with the +1 IDF of Lucene and Qdrant, written out, over the stems of the texts and
    of the query's non-stop words, to check what the index computes."""
    import math

    from fgr_retriever.index.lexical import analyse, query_terms

    toks = {i: analyse(t) for i, t in texts.items()}
    avg = sum(map(len, toks.values())) / len(toks)
    out = {}
    for i, doc in toks.items():
        s = 0.0
        for term in dict.fromkeys(analyse(" ".join(query_terms(query)))):
            tf, df = doc.count(term), sum(term in d for d in toks.values())
            if tf:
                idf = math.log((len(toks) - df + 0.5) / (df + 0.5) + 1)
                s += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg))
        if s:
            out[i] = s
    return out


@pytest.fixture(scope="module")
def sku_retriever(model):
    index = QdrantIndex.for_model(model, location=":memory:")
    retriever = FGRRetriever(model=model, index=index)
    retriever.add_documents(TEXTS, ids=IDS, metadata=SKU_META)
    return retriever


def test_the_bm25_side_is_bm25_over_text_and_twice_the_fields(sku_retriever):
    index = sku_retriever.index
    # what is indexed: the text, then the lexical fields twice (they weigh double)
    texts = {i: f"{t}\n{m['sku']}\n{m['sku']}" for i, t, m in zip(IDS, TEXTS, SKU_META)}
    # stems and folded accents: "brushing" finds "brushed", "orleans" finds "Orléans"
    for query in ["silk brushing", "the days of delivery", "orleans", "mv 03x", "scarf"]:
        want = _textbook_bm25(texts, query)
        assert want or query == "scarf"  # "scarf" and "scarves" differ in Porter's stems too
        got = index.lexical_search(query, 5)
        assert [i for i, _ in got] == sorted(want, key=lambda i: -want[i])
        assert dict(got) == pytest.approx(want)
        assert index.lexical_scores(query, IDS + ["nope"]) == pytest.approx({**dict.fromkeys(IDS + ["nope"], 0.0),
                                                                            **want})
    assert index.lexical_search("the of", 5) == [] and index.lexical_search("silk", 0) == []
    assert index.lexical_search("silk brush", 5, filter={"category": "policy"}) == []
    # "days" eight times in the shipping note: first
    assert [i for i, _ in index.lexical_search("days", 5, filter={"price": {"$gte": 10}})] == ["ship", "returns"]


def test_hybrid_and_lexical_modes_on_qdrant(sku_retriever):
    r = sku_retriever
    # an exact reference ranks its document first, whatever the words around it say
    for i, doc_id in enumerate(IDS):
        for mode in ("hybrid", "lexical"):
            assert r.search(f"is MV-{i:02d}X in stock?", k=3, mode=mode)[0].id == doc_id
    hits = r.search("suede brush", k=5, mode="hybrid")
    assert hits[0].id == "care" and hits[0].spans  # highlighted from the vectors Qdrant returned
    assert {h.id for h in r.search("days", k=5, mode="hybrid", filter={"category": "care"})} <= {"care", "silk"}
    assert r.index.exact_matches("MV-03X please") == ["silk"]
    assert r.index.exact_matches("MV-03X please", filter={"category": "policy"}) == []
    assert r.index.exact_matches("MV-03X please", filter={"category": "care"}) == ["silk"]


def test_hybrid_scores_the_bm25_only_candidates_in_one_call(sku_retriever, monkeypatch):
    index = sku_retriever.index
    calls = []
    monkeypatch.setattr(index, "tokens", lambda d: calls.append(d))  # the one-by-one path must not run
    real = index.tokens_of
    monkeypatch.setattr(index, "tokens_of", lambda ids: calls.append(list(ids)) or real(ids))
    monkeypatch.setattr(index, "search", lambda *a, **kw: [])  # every candidate comes from BM25 alone
    hits = sku_retriever.search("days delivery silk", k=5, mode="hybrid")
    assert calls == [["returns", "ship", "silk"]] or sorted(calls[0]) == ["returns", "ship", "silk"]
    assert len(calls) == 1 and {h.id for h in hits} == {"returns", "ship", "silk"}


def test_bm25_follows_upserts_metadata_updates_and_deletes(model):
    index = QdrantIndex.for_model(model, location=":memory:")
    r = FGRRetriever(model=model, index=index)
    r.add_documents(TEXTS, ids=IDS, metadata=SKU_META)
    assert index.exact_matches("ZZ-9") == []
    index.update_metadata(["gift"], {"sku": "ZZ-9"})
    assert index.exact_matches("ZZ-9") == ["gift"] and index.exact_matches("MV-04X") == []
    index.update_metadata(["gift"], {"price": 1})  # not a lexical field: BM25 untouched
    assert index.exact_matches("ZZ-9") == ["gift"]
    r.add_documents(["Wrapping paper is recycled."], ids=["gift"], metadata=[{"sku": "ZZ-9"}])  # upsert
    assert [i for i, _ in index.lexical_search("recycled", 5)] == ["gift"]
    assert index.lexical_search("boutique", 5) == []
    r.delete(["gift"])
    assert index.lexical_search("recycled", 5) == [] and index.exact_matches("ZZ-9") == []


def test_a_collection_from_before_hybrid_gets_bm25_from_build_lexical(model):
    from qdrant_client import models

    index = QdrantIndex.for_model(model, location=":memory:", collection="old")
    FGRRetriever(model=model, index=index).add_documents(TEXTS, ids=IDS, metadata=SKU_META)
    client = index.client  # made to look like a collection of the previous layout
    client.update_collection("old", metadata={"fgr_lexical_fields": None})
    client.delete_payload("old", keys=["lexical"], points=models.FilterSelector(filter=models.Filter()))
    client.delete_payload_index("old", "lexical")
    reopened = QdrantIndex.for_model(model, client=client, collection="old")
    r = FGRRetriever(model=model, index=reopened)
    assert r.search("silk", k=1)[0].id == "silk"  # late interaction needs nothing new
    with pytest.raises(InvalidInputError, match="build_lexical"):
        r.search("silk", k=1, mode="hybrid")
    assert reopened.build_lexical(lexical_fields=["sku", "category"]) == len(IDS)
    assert r.search("silk", k=1, mode="lexical")[0].id == "silk"
    assert reopened.exact_matches("MV-02X") == ["ship"]
    assert [i for i, _ in reopened.lexical_search("service", 5)] == ["gift"]  # a field now indexed
    again = QdrantIndex.for_model(model, client=client, collection="old")
    assert again.lexical_fields == ("sku", "category")  # recorded in the collection
    with pytest.raises(InvalidInputError, match="indexes the fields"):
        QdrantIndex.for_model(model, client=client, collection="old", lexical_fields=["title"])


def test_bm25_survives_reopening_a_path_collection(model, tmp_path):
    index = QdrantIndex.for_model(model, path=str(tmp_path / "q"), lexical_fields=["sku"])
    FGRRetriever(model=model, index=index).add_documents(TEXTS, ids=IDS, metadata=SKU_META)
    index.close()
    again = QdrantIndex.for_model(model, path=str(tmp_path / "q"))
    assert again.lexical_fields == ("sku",)
    assert [i for i, _ in again.lexical_search("scarves", 5)] == ["silk"]
    assert FGRRetriever(model=model, index=again).search("MV-01X", k=1, mode="hybrid")[0].id == "returns"
    again.close()
