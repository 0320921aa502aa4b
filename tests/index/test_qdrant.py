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
