"""FGRColBERTRetriever: evidence metadata, filters and filter policy, evidence_only, serialisation, async."""

from __future__ import annotations

import json

import pytest
from haystack import Document, Pipeline
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import FilterPolicy
from haystack.errors import FilterError

from fgr_retriever import evidence_text
from fgr_retriever.evidence.metadata import spans_from_metadata
from haystack_integrations.components.builders.fgr import FGREvidencePromptBuilder
from haystack_integrations.components.generators.fgr import FGRExtractiveAnswerer
from haystack_integrations.components.rankers.fgr import FGRColBERTRanker
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever
from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

CARE = {"field": "meta.category", "operator": "==", "value": "care"}
RECENT = {"field": "meta.year", "operator": ">=", "value": 2024}


def test_run_returns_scored_documents_with_evidence_metadata(filled_store):
    documents = FGRColBERTRetriever(filled_store, top_k=3).run(query="how do I wash cashmere")["documents"]
    assert len(documents) == 3
    assert [d.score for d in documents] == sorted((d.score for d in documents), reverse=True)
    for doc in documents:
        assert doc.meta["relevance_score"] == doc.score
        spans_from_metadata(doc.meta, text=doc.content)  # raises if any span does not match the text
        assert "full_text" not in doc.meta
        json.dumps(doc.meta, allow_nan=False)  # the evidence metadata is plain JSON


def test_top_k_at_init_and_at_run_time(filled_store):
    retriever = FGRColBERTRetriever(filled_store, top_k=2)
    assert len(retriever.run(query="silk")["documents"]) == 2
    assert len(retriever.run(query="silk", top_k=4)["documents"]) == 4
    assert retriever.run(query="silk", top_k=0)["documents"] == []
    with pytest.raises(ValueError, match="top_k"):
        retriever.run(query="silk", top_k=-1)
    with pytest.raises(ValueError, match="top_k"):
        FGRColBERTRetriever(filled_store, top_k=0)


def test_filters_restrict_results(filled_store):
    retriever = FGRColBERTRetriever(filled_store, filters=CARE)
    assert {d.id for d in retriever.run(query="cleaning")["documents"]} == {"silk", "cashmere"}
    with pytest.raises(FilterError):
        retriever.run(query="cleaning", filters={"field": "meta.year", "operator": "in", "value": 2024})


def test_filter_policy_replace_and_merge(filled_store):
    replace = FGRColBERTRetriever(filled_store, filters=CARE, filter_policy=FilterPolicy.REPLACE)
    assert {d.id for d in replace.run(query="anything", filters=RECENT)["documents"]} == {"returns", "cashmere"}
    merge = FGRColBERTRetriever(filled_store, filters=CARE, filter_policy="merge")
    assert merge.filter_policy is FilterPolicy.MERGE
    assert [d.id for d in merge.run(query="anything", filters=RECENT)["documents"]] == ["cashmere"]
    assert {d.id for d in merge.run(query="anything")["documents"]} == {"silk", "cashmere"}


def test_evidence_only_trims_content_and_keeps_full_text(make_store, shop_docs):
    long_text = " ".join(f"Sentence {i} talks about weather and trains." for i in range(30)) + (
        " Cashmere jumpers are washed by hand in cold water.")
    store = make_store(context_words=0)
    store.write_documents([*shop_docs, Document(id="long", content=long_text, meta={"category": "care"})])
    original = {d.id: d.content for d in [*shop_docs, Document(id="long", content=long_text)]}
    # the tiny random model finds "evidence" everywhere; a high threshold keeps a few words
    retriever = FGRColBERTRetriever(store, evidence_only=True, threshold=0.99)
    documents = retriever.run(query="wash cashmere jumpers")["documents"]
    trimmed = [d for d in documents if "full_text" in d.meta]
    assert any(d.id == "long" for d in trimmed)
    for doc in trimmed:
        assert doc.meta["full_text"] == original[doc.id]
        spans = spans_from_metadata(doc.meta, text=doc.meta["full_text"])  # offsets point into the full text
        assert spans
        # the content is exactly the core's evidence string for those spans
        assert doc.content == evidence_text(doc.meta["full_text"], spans, context_words=0)
        json.dumps(doc.meta, allow_nan=False)
    long_doc = next(d for d in trimmed if d.id == "long")
    assert len(long_doc.content) < len(long_text)


def test_documents_without_spans_keep_their_content(filled_store, shop_docs):
    original = {d.id: d.content for d in shop_docs}
    documents = FGRColBERTRetriever(filled_store, evidence_only=True, threshold=1.0).run(query="silk")["documents"]
    for doc in documents:
        assert doc.meta["evidence_spans"] == []
        assert doc.content == original[doc.id] and "full_text" not in doc.meta


def test_results_are_new_objects_and_the_store_is_untouched(filled_store):
    before = filled_store.filter_documents()
    documents = FGRColBERTRetriever(filled_store, evidence_only=True).run(query="returns policy")["documents"]
    documents[0].meta["relevance_score"] = -1
    assert filled_store.filter_documents() == before
    assert all("relevance_score" not in d.meta for d in filled_store.filter_documents())


def test_only_an_fgr_store_is_accepted():
    with pytest.raises(TypeError, match="FGRColBERTDocumentStore"):
        FGRColBERTRetriever(InMemoryDocumentStore())
    with pytest.raises(ValueError, match="threshold"):
        FGRColBERTRetriever(FGRColBERTDocumentStore(), threshold=1.5)


def test_warm_up_loads_the_store(store):
    retriever = FGRColBERTRetriever(store)
    assert store._retriever is None
    retriever.warm_up()
    assert store._retriever is not None


def test_to_dict_from_dict(tiny_model_dir, tmp_path):
    store = FGRColBERTDocumentStore(model=tiny_model_dir, index_path=str(tmp_path / "index"))
    retriever = FGRColBERTRetriever(store, top_k=5, filters=CARE, filter_policy=FilterPolicy.MERGE,
                                    evidence_only=True, threshold=0.4)
    data = retriever.to_dict()
    assert data == {
        "type": "haystack_integrations.components.retrievers.fgr.retriever.FGRColBERTRetriever",
        "init_parameters": {"document_store": store.to_dict(), "top_k": 5, "filters": CARE,
                            "filter_policy": "merge", "evidence_only": True, "threshold": 0.4, "mode": "late"},
    }
    again = FGRColBERTRetriever.from_dict(data)
    assert isinstance(again.document_store, FGRColBERTDocumentStore)
    assert again.document_store.to_dict() == store.to_dict()
    assert again.filter_policy is FilterPolicy.MERGE
    assert again.to_dict() == data


def test_socket_types_are_resolved_despite_postponed_annotations(store, tiny_model_dir):
    # every module uses `from __future__ import annotations`; Haystack must still see real types
    pipeline = Pipeline()
    pipeline.add_component("retriever", FGRColBERTRetriever(store))
    pipeline.add_component("ranker", FGRColBERTRanker(model=tiny_model_dir))
    pipeline.add_component("evidence", FGREvidencePromptBuilder())
    pipeline.add_component("answerer", FGRExtractiveAnswerer())
    inputs = pipeline.inputs(include_components_with_connected_inputs=True)
    assert inputs["retriever"]["query"]["type"] is str
    assert inputs["retriever"]["top_k"]["type"] == (int | None)
    assert inputs["ranker"]["documents"]["type"] == list[Document]
    assert inputs["answerer"]["query"]["type"] == (str | None)
    outputs = pipeline.outputs(include_components_with_connected_outputs=True)
    assert outputs["evidence"]["context"]["type"] is str
    assert outputs["answerer"]["replies"]["type"] == list[ChatMessage]
    # and they connect to each other, which Haystack checks with those types
    pipeline.connect("retriever.documents", "ranker.documents")
    pipeline.connect("ranker.documents", "evidence.documents")
    pipeline.connect("evidence.documents", "answerer.documents")


@pytest.mark.asyncio
async def test_run_async_matches_run(filled_store):
    retriever = FGRColBERTRetriever(filled_store, top_k=3, filters=RECENT)
    await retriever.warm_up_async()
    sync = retriever.run(query="how do I wash cashmere")["documents"]
    async_ = (await retriever.run_async(query="how do I wash cashmere"))["documents"]
    assert async_ == sync


def test_sentence_evidence_reaches_haystack_documents(tmp_path, shop_docs):
    """With a sentence-evidence model (every bundled model since issue 9) each evidence span is a
    whole sentence of the document, and evidence_only keeps just that sentence."""
    from fgr_retriever.evidence.sentences import split_sentences
    from fgr_retriever.testing import tiny_model
    from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

    path = tmp_path / "sentence-model"
    tiny_model(evidence_unit="sentence", sentence_threshold=0.0, sentence_ratio=1.0).save_pretrained(path)
    store = FGRColBERTDocumentStore(model=str(path), context_words=0)
    store.write_documents([Document(id=d.id, content=d.content + " Ask any boutique for help.", meta=d.meta)
                           for d in shop_docs])
    documents = FGRColBERTRetriever(store, evidence_only=True, top_k=4).run(query="wash cashmere")["documents"]
    assert len(documents) == 4
    for doc in documents:
        full = doc.meta["full_text"]
        sentences = [full[s:e] for s, e in split_sentences(full)]
        spans = doc.meta["evidence_spans"]
        assert len(spans) == 1 and spans[0]["text"] in sentences
        assert doc.content.strip(" …") == spans[0]["text"]  # "…" marks the text left out


def test_modes_at_init_and_run_time(filled_store):
    filled_store.write_documents([Document(id="crew", content="Brume cashmere crewneck. Reference: MV-BRM-CN.",
                                           meta={"category": "product", "year": 2024})])
    retriever = FGRColBERTRetriever(filled_store, top_k=3, mode="hybrid")
    hybrid = retriever.run(query="Is MV-BRM-CN available?")["documents"]
    assert hybrid[0].id == "crew"  # the exact reference ranks first
    spans_from_metadata(hybrid[0].meta, text=hybrid[0].content)  # evidence from the stored vectors
    lexical = retriever.run(query="scarves", mode="lexical")["documents"]
    assert [d.id for d in lexical] == ["silk"]
    filtered = retriever.run(query="cashmere", mode="lexical", filters=CARE)["documents"]
    assert [d.id for d in filtered] == ["cashmere"]
    late = FGRColBERTRetriever(filled_store, top_k=3).run(query="silk")["documents"]
    assert [d.id for d in retriever.run(query="silk", mode="late")["documents"]] == [d.id for d in late]
    with pytest.raises(ValueError, match="mode"):
        retriever.run(query="silk", mode="bm25")
    with pytest.raises(ValueError, match="mode"):
        FGRColBERTRetriever(filled_store, mode="dense")
    again = FGRColBERTRetriever.from_dict(retriever.to_dict())
    assert again.mode == "hybrid"


@pytest.mark.asyncio
async def test_mode_in_run_async(filled_store):
    documents = (await FGRColBERTRetriever(filled_store, top_k=2).run_async(query="scarves", mode="lexical"))["documents"]
    assert [d.id for d in documents] == ["silk"]


def test_run_time_mode_on_the_qdrant_store(make_qdrant_store, shop_docs):
    store = make_qdrant_store()
    store.write_documents(shop_docs)
    retriever = FGRColBERTRetriever(store, top_k=4)  # late interaction unless run() says otherwise
    assert len(retriever.run(query="scarves")["documents"]) == 4
    lexical = retriever.run(query="scarves", mode="lexical")["documents"]
    assert [d.id for d in lexical] == ["silk"]  # only the document holding the word
    assert retriever.run(query="scarves", mode="hybrid")["documents"][0].id == "silk"
