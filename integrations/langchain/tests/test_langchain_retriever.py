"""FGRColBERTRetriever: indexing, per-call options, evidence metadata, persistence, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from fgr_retriever import FGRColBERT, FGRRetriever
from fgr_retriever.errors import (
    DocumentNotFoundError,
    FGRError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from langchain_core.documents import Document

from langchain_fgr import FGRColBERTRetriever

QUERY = "how do I wash a cashmere sweater"


@pytest.fixture
def retriever(tiny_model, corpus):
    return FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                          model=tiny_model)


def _check_spans(doc: Document) -> None:
    """Every span's offsets point at its text inside the full text."""
    full = doc.metadata.get("full_text", doc.page_content)
    for span in doc.metadata["evidence_spans"]:
        assert set(span) == {"start", "end", "text", "score"}
        assert 0 <= span["start"] < span["end"] <= len(full)
        assert full[span["start"]:span["end"]] == span["text"]


# ---------------------------------------------------------------- building
def test_from_texts_returns_documents_with_ids_metadata_and_evidence(retriever, corpus):
    docs = retriever.invoke(QUERY)
    assert len(docs) == 4  # the default k
    by_id = dict(zip(corpus["ids"], zip(corpus["texts"], corpus["metadatas"])))
    scores = []
    for doc in docs:
        text, meta = by_id[doc.id]
        assert doc.page_content == text
        assert {k: v for k, v in doc.metadata.items() if k in meta} == meta
        assert set(doc.metadata) == set(meta) | {"relevance_score", "evidence_spans", "answer_spans"}
        scores.append(doc.metadata["relevance_score"])
        _check_spans(doc)
    assert scores == sorted(scores, reverse=True)
    assert any(doc.metadata["evidence_spans"] for doc in docs)


def test_results_match_the_core_retriever(retriever):
    core = retriever.retriever.search(QUERY, k=3)
    docs = retriever.invoke(QUERY, k=3)
    assert [d.id for d in docs] == [r.id for r in core]
    assert [d.metadata["relevance_score"] for d in docs] == pytest.approx([r.score for r in core])
    assert [d.metadata["evidence_spans"] for d in docs] == [[s.to_dict() for s in r.spans] for r in core]


def test_from_documents_uses_doc_ids_and_explicit_ids_win(tiny_model):
    docs = [Document(page_content="Wool coats are brushed after wear.", id="wool", metadata={"a": 1}),
            Document(page_content="Denim is washed inside out.")]
    retriever = FGRColBERTRetriever.from_documents(docs, model=tiny_model)
    ids = sorted(d.id for d in retriever.invoke("wool", k=5))
    assert "wool" in ids and len(ids) == 2 and all(ids)  # the second got a generated id
    again = FGRColBERTRetriever.from_documents(docs, ids=["x", "y"], model=tiny_model)
    assert sorted(d.id for d in again.invoke("wool")) == ["x", "y"]


def test_constructor_wraps_a_core_retriever_or_starts_an_empty_one(tiny_model, corpus):
    core = FGRRetriever(model=tiny_model)
    core.add_documents(corpus["texts"], ids=corpus["ids"])
    wrapped = FGRColBERTRetriever(retriever=core, k=2)
    assert wrapped.retriever is core and len(wrapped.invoke(QUERY)) == 2
    empty = FGRColBERTRetriever(model=tiny_model)
    assert empty.invoke(QUERY) == []
    assert empty.add_texts(["Velvet is steamed, never ironed."], ids=["velvet"]) == ["velvet"]
    assert [d.id for d in empty.invoke("velvet")] == ["velvet"]


def test_kwargs_split_between_fields_and_core_options(tiny_model, corpus):
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], model=tiny_model, k=1, context_words=1,
                                               batch_size=2, tags=["shop"])
    assert retriever.k == 1 and retriever.tags == ["shop"]
    assert retriever.retriever.context_words == 1 and retriever.retriever.batch_size == 2
    with pytest.raises(TypeError):
        FGRColBERTRetriever.from_texts(corpus["texts"], model=tiny_model, no_such_option=3)


# ------------------------------------------------------- add, upsert, delete
def test_add_upserts_and_delete_removes(retriever, corpus):
    n = len(retriever.retriever)
    assert retriever.add_texts(["Cashmere pilling is removed with a comb."], metadatas=[{"category": "care"}],
                               ids=["cashmere"]) == ["cashmere"]
    assert len(retriever.retriever) == n
    (doc,) = retriever.get_by_ids(["cashmere"])
    assert doc.page_content == "Cashmere pilling is removed with a comb." and doc.metadata == {"category": "care"}

    retriever.delete(["cashmere", "silk"])
    assert len(retriever.retriever) == n - 2
    assert {"cashmere", "silk"}.isdisjoint(d.id for d in retriever.invoke(QUERY, k=10))
    retriever.delete("hours")  # one id as a plain string
    assert "hours" not in retriever.retriever


def test_delete_unknown_id_raises_and_deletes_nothing(retriever):
    n = len(retriever.retriever)
    with pytest.raises(DocumentNotFoundError, match="nope"):
        retriever.delete(["silk", "nope"])
    assert len(retriever.retriever) == n and "silk" in retriever.retriever


def test_get_by_ids_skips_unknown_ids_and_returns_copies(retriever, corpus):
    docs = retriever.get_by_ids(["hours", "missing", "returns"])
    assert [d.id for d in docs] == ["hours", "returns"]
    docs[0].metadata["owner"]["team"] = "changed"
    assert retriever.get_by_ids(["hours"])[0].metadata == corpus["metadatas"][2]


def test_documents_with_evidence_metadata_are_indexed_by_full_text(retriever, tiny_model):
    trimmed = retriever.invoke(QUERY, k=2, evidence_only=True, threshold=0.99)
    other = FGRColBERTRetriever(model=tiny_model)
    other.add_documents(trimmed)
    for doc in trimmed:
        (stored,) = other.get_by_ids([doc.id])
        assert stored.page_content == doc.metadata.get("full_text", doc.page_content)
        assert not {"relevance_score", "evidence_spans", "answer_spans", "full_text"} & set(stored.metadata)


# ------------------------------------------------------ per-call overrides
def test_k_and_filter_defaults_and_overrides(tiny_model, corpus):
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                               model=tiny_model, k=2, filter={"category": "care"})
    docs = retriever.invoke(QUERY)
    assert len(docs) == 2 and {d.metadata["category"] for d in docs} == {"care"}
    assert len(retriever.invoke(QUERY, k=3)) == 3
    assert {d.id for d in retriever.invoke(QUERY, k=10)} == {"silk", "cashmere", "leather"}
    policy = retriever.invoke(QUERY, k=10, filter={"category": {"$in": ["policy"]}, "rank": {"$gt": 1}})
    assert [d.id for d in policy] == ["gifts"]
    assert len(retriever.invoke(QUERY, k=10, filter=None)) == 6  # None switches the default off
    nested = retriever.invoke(QUERY, k=10, filter={"owner.team": "service"})
    assert {d.id for d in nested} == {"returns", "gifts"}


def test_callable_filter_sees_langchain_documents(retriever):
    seen = []

    def keep(doc):
        seen.append(doc)
        return doc.id.startswith("c") or "wrapping" in doc.page_content

    docs = retriever.invoke(QUERY, k=10, filter=keep)
    assert {d.id for d in docs} == {"cashmere", "gifts"}
    assert seen and all(isinstance(d, Document) for d in seen)


def test_highlight_and_threshold_overrides(retriever):
    plain = retriever.invoke(QUERY, highlight=False)
    assert [d.id for d in plain] == [d.id for d in retriever.invoke(QUERY)]
    assert all(d.metadata["evidence_spans"] == [] for d in plain)
    assert all(d.metadata["evidence_spans"] == [] for d in retriever.invoke(QUERY, threshold=1.0))
    loose = sum(len(d.metadata["evidence_spans"]) for d in retriever.invoke(QUERY, threshold=0.99))
    assert loose > 0


def test_evidence_only_trims_text_and_keeps_full_text(tiny_model, corpus):
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], ids=corpus["ids"], model=tiny_model,
                                               evidence_only=True, threshold=0.99, context_words=1, k=6)
    core = {r.id: r for r in retriever.retriever.search(QUERY, k=6, threshold=0.99)}
    docs = retriever.invoke(QUERY)
    trimmed = 0
    for doc in docs:
        result = core[doc.id]
        if result.spans:
            assert doc.page_content == result.evidence
            assert doc.metadata["full_text"] == result.text
            trimmed += doc.page_content != result.text
        else:  # nothing highlighted: the full text stays, and there is nothing to point back to
            assert doc.page_content == result.text and "full_text" not in doc.metadata
        _check_spans(doc)
    assert trimmed > 0
    full = retriever.invoke(QUERY, evidence_only=False)
    assert all("full_text" not in d.metadata and d.page_content == core[d.id].text for d in full)


# ------------------------------------------------------------ metadata safety
def test_metadata_preserved_not_mutated_and_json_serialisable(tiny_model, corpus):
    metadatas = copy.deepcopy(corpus["metadatas"])
    docs = [Document(page_content=t, id=i, metadata=m) for t, i, m in zip(corpus["texts"], corpus["ids"], metadatas)]
    snapshot = copy.deepcopy(docs)
    retriever = FGRColBERTRetriever.from_documents(docs, model=tiny_model, k=6)
    assert docs == snapshot and metadatas == corpus["metadatas"]

    first = retriever.invoke(QUERY, evidence_only=True, threshold=0.99)
    for doc in first:
        json.dumps(doc.metadata, allow_nan=False)
        doc.metadata["owner"]["team"] = "mutated"
        doc.metadata["tags"].append("mutated")
        doc.metadata["evidence_spans"].clear()
    second = retriever.invoke(QUERY, evidence_only=True, threshold=0.99)
    originals = dict(zip(corpus["ids"], corpus["metadatas"]))
    for doc in second:
        assert {k: doc.metadata[k] for k in originals[doc.id]} == originals[doc.id]


def test_repr_is_short(retriever):
    text = repr(retriever)
    assert "documents=6" in text and "Returns are accepted" not in text and len(text) < 200


# ------------------------------------------------------------- persistence
def test_index_path_changes_are_durable_and_reload(tmp_path, tiny_model, corpus):
    path = tmp_path / "index"
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                               model=tiny_model, index_path=path, k=3)
    assert (path / "index.json").exists() and retriever.index_path == str(path)
    expected = retriever.invoke(QUERY)

    reopened = FGRColBERTRetriever.from_index(path, model=tiny_model, k=3)
    assert reopened.invoke(QUERY) == expected and reopened.index_path == str(path)

    reopened.add_texts(["Velvet is steamed, never ironed."], ids=["velvet"])
    reopened.delete(["silk"])
    third = FGRColBERTRetriever(index_path=path, model=tiny_model)  # the constructor opens it too
    assert "velvet" in third.retriever and "silk" not in third.retriever
    assert len(third.retriever) == len(corpus["ids"])


def _segment_files(index_path: Path) -> dict[str, tuple[int, int]]:
    return {f.name: (f.stat().st_mtime_ns, f.stat().st_size) for f in (index_path / "segments").iterdir()}


def _version(index_path: Path) -> int:
    return json.loads((index_path / "index.json").read_text())["version"]


def test_changes_are_seen_by_a_second_retriever_without_saving(tmp_path, tiny_model, corpus, monkeypatch):
    def no_save(self, path):
        raise AssertionError("a persistent index must never be rewritten with save()")

    monkeypatch.setattr(FGRRetriever, "save", no_save)
    path = tmp_path / "index"
    writer = FGRColBERTRetriever.from_texts(corpus["texts"][:4], metadatas=corpus["metadatas"][:4],
                                            ids=corpus["ids"][:4], model=tiny_model, index_path=path)
    assert _version(path) == 2
    reader = FGRColBERTRetriever(index_path=path, model=tiny_model)  # same path, same process
    assert [d.id for d in reader.get_by_ids(corpus["ids"])] == corpus["ids"][:4]
    assert reader.get_by_ids(["silk"])[0].metadata == corpus["metadatas"][1]
    # a retriever already open sees later changes made through the other one
    writer.add_documents([Document(page_content=corpus["texts"][4], id="gifts")])
    writer.delete(["silk"])
    assert {d.id for d in reader.invoke(QUERY, k=10)} == {"returns", "hours", "cashmere", "gifts"}
    assert writer.save() == path and reader.save(path) == path  # the live index: nothing to do


def test_a_change_adds_one_segment_and_rewrites_nothing(tmp_path, tiny_model, corpus):
    path = tmp_path / "index"
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"][:3], ids=corpus["ids"][:3], model=tiny_model,
                                               index_path=path)
    retriever.add_texts(corpus["texts"][3:5], ids=corpus["ids"][3:5])
    before = _segment_files(path)
    assert len(before) == 2

    retriever.add_texts(corpus["texts"][5:], ids=corpus["ids"][5:])
    after = _segment_files(path)
    assert {name: after.get(name) for name in before} == before  # every old file there, untouched
    assert len(set(after) - set(before)) == 1
    retriever.delete(["silk"])  # a tombstone in the catalogue: no segment file changes
    assert _segment_files(path) == after
    assert len(FGRColBERTRetriever(index_path=path, model=tiny_model).retriever) == 5


def test_an_index_written_by_the_core_save_is_converted(tmp_path, tiny_model, corpus):
    core = FGRRetriever(model=tiny_model)
    core.add_documents(corpus["texts"], ids=corpus["ids"], metadata=corpus["metadatas"])
    for name, open_it in [("by-constructor", lambda p: FGRColBERTRetriever(index_path=p, model=tiny_model)),
                          ("by-from-index", lambda p: FGRColBERTRetriever.from_index(p, model=tiny_model)),
                          ("by-from-texts", lambda p: FGRColBERTRetriever.from_texts([], model=tiny_model,
                                                                                     index_path=p))]:
        path = core.save(tmp_path / name)
        assert _version(path) == 1
        opened = open_it(path)
        assert _version(path) == 2 and (path / "catalog.sqlite").exists()
        assert opened.index_path == str(path)
        stored = opened.get_by_ids(corpus["ids"])
        assert [d.page_content for d in stored] == corpus["texts"]
        assert [d.metadata for d in stored] == corpus["metadatas"]
        opened.add_texts(["Velvet is steamed, never ironed."], ids=["velvet"])
        assert len(FGRColBERTRetriever.from_index(path, model=tiny_model).retriever) == 7


def test_save_exports_a_portable_copy_of_a_persistent_index(tmp_path, tiny_model, corpus):
    path = tmp_path / "index"
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], ids=corpus["ids"], model=tiny_model,
                                               index_path=path)
    files = _segment_files(path)
    assert retriever.save() == path and retriever.save(str(path)) == path  # no-ops: already on disk
    assert _segment_files(path) == files and _version(path) == 2
    copy_path = retriever.save(tmp_path / "copy")
    assert _version(copy_path) == 1
    assert len(FGRRetriever.load(copy_path, model=tiny_model)) == 6


def test_wrapping_a_core_retriever_and_index_path(tmp_path, tiny_model, retriever):
    core = FGRRetriever.open(tmp_path / "index", model=tiny_model)
    wrapped = FGRColBERTRetriever(retriever=core)
    assert wrapped.index_path == str(tmp_path / "index")  # where its index lives
    assert FGRColBERTRetriever(retriever=core, index_path=tmp_path / "index").retriever is core
    with pytest.raises(InvalidInputError, match="is not where"):
        FGRColBERTRetriever(retriever=core, index_path=tmp_path / "elsewhere")
    with pytest.raises(InvalidInputError, match="in memory"):
        FGRColBERTRetriever(retriever=retriever.retriever, index_path=tmp_path / "other")


def test_from_texts_on_an_existing_index_adds_to_it(tmp_path, tiny_model, corpus):
    path = tmp_path / "index"
    FGRColBERTRetriever.from_texts(corpus["texts"][:3], ids=corpus["ids"][:3], model=tiny_model, index_path=path)
    grown = FGRColBERTRetriever.from_texts(corpus["texts"][3:], ids=corpus["ids"][3:], model=tiny_model,
                                           index_path=path)
    assert len(grown.retriever) == 6
    assert len(FGRColBERTRetriever.from_index(path, model=tiny_model).retriever) == 6


def test_reload_with_the_recorded_model_directory(tmp_path, tiny_model_dir, corpus):
    path = tmp_path / "index"
    built = FGRColBERTRetriever.from_texts(corpus["texts"], ids=corpus["ids"], model=str(tiny_model_dir),
                                           index_path=path)
    reopened = FGRColBERTRetriever.from_index(path)  # no model: the recorded directory is loaded
    assert reopened.retriever.model is not built.retriever.model
    assert reopened.invoke(QUERY) == built.invoke(QUERY)
    by_path = FGRColBERTRetriever.from_index(path, model=FGRColBERT.from_pretrained(tiny_model_dir))
    assert by_path.invoke(QUERY) == built.invoke(QUERY)


def test_explicit_save_and_errors(tmp_path, retriever):
    with pytest.raises(InvalidInputError, match="no path"):
        retriever.save()
    saved = retriever.save(tmp_path / "copy")
    assert (saved / "index.json").exists() and retriever.index_path is None
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FGRError):
        retriever.save(tmp_path / "notes")  # the core never replaces someone else's files
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_model_mismatch_and_missing_index(tmp_path, tiny_model, other_tiny_model, corpus):
    path = tmp_path / "index"
    FGRColBERTRetriever.from_texts(corpus["texts"], model=tiny_model, index_path=path)
    with pytest.raises(ModelMismatchError):
        FGRColBERTRetriever.from_index(path, model=other_tiny_model)
    with pytest.raises(ModelMismatchError):
        FGRColBERTRetriever(index_path=path, model=other_tiny_model)
    with pytest.raises(ModelMismatchError):
        FGRColBERTRetriever.from_texts(["more"], model=other_tiny_model, index_path=path)
    with pytest.raises(IndexNotFoundError):
        FGRColBERTRetriever.from_index(tmp_path / "missing", model=tiny_model)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    with pytest.raises(IndexNotFoundError):  # a non-empty folder that is no index is not overwritten
        FGRColBERTRetriever(index_path=tmp_path / "notes", model=tiny_model)


# ---------------------------------------------------------------- bad input
def test_bad_call_input_raises_typed_errors(retriever):
    with pytest.raises(InvalidInputError, match="k must be"):
        retriever.invoke(QUERY, k=0)
    with pytest.raises(InvalidInputError, match="k must be"):
        retriever.invoke(QUERY, k=True)
    with pytest.raises(InvalidInputError, match="query must be str"):
        retriever.invoke(42)
    with pytest.raises(InvalidInputError, match="empty"):
        retriever.invoke("   ")
    with pytest.raises(InvalidInputError, match="unknown filter operator"):
        retriever.invoke(QUERY, filter={"category": {"$regex": "c.*"}})
    with pytest.raises(InvalidInputError, match="threshold"):
        retriever.invoke(QUERY, threshold=1.5)
    with pytest.raises(InvalidInputError, match="evidence_only"):
        retriever.invoke(QUERY, evidence_only="yes")
    with pytest.raises(TypeError, match="top_k"):
        retriever.invoke(QUERY, top_k=2)


def test_bad_documents_raise_and_leave_the_index_unchanged(retriever):
    n = len(retriever.retriever)
    with pytest.raises(InvalidInputError, match="wrap a single"):
        retriever.add_documents(Document(page_content="x"))
    with pytest.raises(InvalidInputError, match="must be a langchain_core Document"):
        retriever.add_documents(["plain string"])
    with pytest.raises(InvalidInputError, match="ids for"):
        retriever.add_documents([Document(page_content="x")], ids=["a", "b"])
    with pytest.raises(InvalidInputError, match="JSON"):
        retriever.add_documents([Document(page_content="ok", id="ok"),
                                 Document(page_content="bad", metadata={"when": object()})])
    with pytest.raises(InvalidInputError, match="empty"):
        retriever.add_texts(["fine", "  "])
    with pytest.raises(InvalidInputError, match="wrap a single"):
        retriever.add_texts("one text")
    assert len(retriever.retriever) == n and "ok" not in retriever.retriever


def test_bad_constructor_arguments(tiny_model, retriever):
    with pytest.raises(ValueError, match="k must be"):
        FGRColBERTRetriever(retriever=retriever.retriever, k=0)
    with pytest.raises(ValueError, match="threshold"):
        FGRColBERTRetriever(retriever=retriever.retriever, threshold=-0.1)
    with pytest.raises(ValueError, match="unknown filter operator"):
        FGRColBERTRetriever(retriever=retriever.retriever, filter={"a": {"$nope": 1}})
    with pytest.raises(ValueError):
        FGRColBERTRetriever(retriever=retriever.retriever, no_such_field=1)
    with pytest.raises(InvalidInputError, match="not both"):
        FGRColBERTRetriever(retriever=retriever.retriever, model=tiny_model)
    with pytest.raises(InvalidInputError, match="model must be"):
        FGRColBERTRetriever(model=3.14)


# ------------------------------------------------------------ real model
@pytest.mark.integration
def test_default_model_finds_and_highlights_the_answer(default_model, corpus):
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                               model=default_model, k=2, evidence_only=True)
    best = retriever.invoke("How many days do I have to send an order back?")[0]
    assert best.id == "returns" and best.metadata["category"] == "policy"
    spans = best.metadata["evidence_spans"]
    assert any("30 days" in s["text"] for s in spans)  # the answering sentence
    # the text is one sentence, so its evidence (the sentence) is the whole text
    assert "30 days" in best.page_content
    assert best.metadata.get("full_text", best.page_content) == corpus["texts"][corpus["ids"].index("returns")]
    _check_spans(best)
    care = retriever.invoke("how should silk be cleaned", filter={"category": "care"})
    assert care[0].id == "silk"


# ------------------------------------------------------------ sentence evidence
def test_sentence_evidence_reaches_langchain_documents(corpus):
    """With a sentence-evidence model (every bundled model since issue 9) the spans are whole
    sentences of the page content, and evidence_only keeps just those sentences."""
    from fgr_retriever.evidence.sentences import split_sentences
    from fgr_retriever.testing import tiny_model

    model = tiny_model(evidence_unit="sentence", sentence_threshold=0.0, sentence_ratio=1.0)
    texts = [t + " Ask any boutique for help." for t in corpus["texts"]]
    retriever = FGRColBERTRetriever.from_texts(texts, ids=corpus["ids"], model=model, k=3, evidence_only=True,
                                               context_words=0)
    for doc in retriever.invoke(QUERY):
        full = doc.metadata.get("full_text", doc.page_content)
        sentences = {full[s:e] for s, e in split_sentences(full)}
        assert doc.metadata["evidence_spans"]
        assert all(span["text"] in sentences for span in doc.metadata["evidence_spans"])
        _check_spans(doc)
        assert doc.page_content in sentences or "…" in doc.page_content


def test_mode_default_and_per_call_match_the_core(tiny_model):
    texts = ["Brume cashmere stole. Reference: MV-BRM-ST.", "Brume cashmere crewneck. Reference: MV-BRM-CN.",
             "Brush suede after each use."]
    retriever = FGRColBERTRetriever.from_texts(texts, ids=["stole", "crew", "suede"], model=tiny_model,
                                               mode="hybrid", k=3)
    core = retriever.retriever
    assert [d.id for d in retriever.invoke("MV-BRM-CN")] == [r.id for r in core.search("MV-BRM-CN", k=3, mode="hybrid")]
    assert retriever.invoke("MV-BRM-CN")[0].id == "crew"  # the exact reference ranks first
    lexical = retriever.invoke("suede brush", mode="lexical")
    assert [d.id for d in lexical] == ["suede"]
    assert [d.id for d in retriever.invoke("suede", mode="late")] == [r.id for r in core.search("suede", k=3)]
    with pytest.raises(InvalidInputError, match="mode"):
        retriever.invoke("suede", mode="bm25")
    with pytest.raises(Exception, match="mode"):
        FGRColBERTRetriever(retriever=core, mode="dense")


async def test_mode_in_async_calls(tiny_model):
    retriever = FGRColBERTRetriever.from_texts(["Brush suede after each use.", "Silk is dry-cleaned."],
                                               ids=["suede", "silk"], model=tiny_model)
    docs = await retriever.ainvoke("silk", mode="lexical")
    assert [d.id for d in docs] == ["silk"]
