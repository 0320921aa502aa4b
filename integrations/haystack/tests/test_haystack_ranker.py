"""FGRColBERTRanker: new documents, untouched inputs, top_k, thresholds, trimmed inputs, serialisation."""

from __future__ import annotations

import copy
import json

import pytest
from haystack import Document

from fgr_retriever.evidence.metadata import spans_from_metadata
from haystack_integrations.components.rankers.fgr import FGRColBERTRanker
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever


@pytest.fixture
def ranker(tiny_model_dir, _pinned_tiny_model):
    return FGRColBERTRanker(model=tiny_model_dir)


def test_ranks_copies_and_leaves_inputs_untouched(ranker, shop_docs):
    inputs = copy.deepcopy(shop_docs)
    ranked = ranker.run(query="how do I wash cashmere", documents=shop_docs)["documents"]
    assert shop_docs == inputs  # same contents
    assert all(d.score is None and "relevance_score" not in d.meta for d in shop_docs)
    assert sorted(d.id for d in ranked) == sorted(d.id for d in shop_docs)
    assert [d.score for d in ranked] == sorted((d.score for d in ranked), reverse=True)
    by_id = {d.id: d for d in shop_docs}
    for doc in ranked:
        assert doc is not by_id[doc.id]
        assert doc.meta["relevance_score"] == doc.score
        assert doc.meta["category"] == by_id[doc.id].meta["category"]  # the original meta is kept
        spans_from_metadata(doc.meta, text=doc.content)
        json.dumps(doc.meta, allow_nan=False)


def test_top_k_and_score_threshold(ranker, tiny_model_dir, shop_docs):
    assert len(ranker.run(query="silk", documents=shop_docs, top_k=2)["documents"]) == 2
    assert len(FGRColBERTRanker(model=tiny_model_dir, top_k=1).run(query="silk", documents=shop_docs)[
        "documents"]) == 1
    scores = [d.score for d in ranker.run(query="silk", documents=shop_docs)["documents"]]
    cut = FGRColBERTRanker(model=tiny_model_dir, score_threshold=scores[1])
    assert [d.score for d in cut.run(query="silk", documents=shop_docs)["documents"]] == scores[:2]
    with pytest.raises(ValueError, match="top_k"):
        ranker.run(query="silk", documents=shop_docs, top_k=0)
    assert ranker.run(query="silk", documents=[])["documents"] == []


def test_evidence_only_and_re_ranking_trimmed_documents(ranker, tiny_model_dir, shop_docs, filled_store):
    trimmer = FGRColBERTRanker(model=tiny_model_dir, evidence_only=True, threshold=0.99, context_words=0)
    trimmed = trimmer.run(query="wash cashmere by hand", documents=shop_docs)["documents"]
    originals = {d.id: d.content for d in shop_docs}
    for doc in trimmed:
        full = doc.meta.get("full_text", doc.content)
        assert full == originals[doc.id]
        spans_from_metadata(doc.meta, text=full)

    # a second FGR stage ranks the full text again, and its evidence replaces the old one
    again = ranker.run(query="silk care", documents=trimmed)["documents"]
    for doc in again:
        assert doc.content == originals[doc.id] and "full_text" not in doc.meta
        spans_from_metadata(doc.meta, text=doc.content)

    retrieved = FGRColBERTRetriever(filled_store, evidence_only=True).run(query="silk")["documents"]
    assert {d.content for d in ranker.run(query="silk", documents=retrieved)["documents"]} == set(originals.values())


def test_documents_without_text_are_refused_clearly(ranker):
    with pytest.raises(ValueError, match="only rank documents with text.*'picture'"):
        ranker.run(query="silk", documents=[Document(content="Silk."), Document(id="picture", content=None)])
    with pytest.raises(ValueError, match="'blank'"):
        ranker.run(query="silk", documents=[Document(id="blank", content="  ")])


def test_duplicate_ids_are_ranked_once_keeping_the_best_scored_copy(ranker):
    low = Document(id="same", content="Silk scarves are dry-cleaned.", score=0.1, meta={"copy": "low"})
    high = Document(id="same", content="Silk scarves are dry-cleaned.", score=0.9, meta={"copy": "high"})
    ranked = ranker.run(query="silk", documents=[low, high, Document(id="other", content="Cotton.")])["documents"]
    assert sorted(d.id for d in ranked) == ["other", "same"]
    assert next(d for d in ranked if d.id == "same").meta["copy"] == "high"


def test_light_init_and_auto_warm_up(tiny_model_dir):
    ranker = FGRColBERTRanker(model=tiny_model_dir)
    assert ranker._retriever is None
    ranker.run(query="silk", documents=[Document(content="Silk scarves.")])
    assert ranker._retriever is not None


def test_settings_are_checked_at_construction():
    with pytest.raises(ValueError, match="top_k"):
        FGRColBERTRanker(top_k=0)
    with pytest.raises(ValueError, match="threshold"):
        FGRColBERTRanker(threshold=-0.1)
    with pytest.raises(ValueError, match="score_threshold"):
        FGRColBERTRanker(score_threshold="high")


def test_to_dict_from_dict(tiny_model_dir):
    ranker = FGRColBERTRanker(model=tiny_model_dir, top_k=4, evidence_only=True, threshold=0.3, score_threshold=2.5,
                              batch_size=4, context_words=1, evidence_max_tokens=30)
    data = ranker.to_dict()
    assert data == {
        "type": "haystack_integrations.components.rankers.fgr.ranker.FGRColBERTRanker",
        "init_parameters": {"model": tiny_model_dir, "top_k": 4, "evidence_only": True, "threshold": 0.3,
                            "score_threshold": 2.5, "batch_size": 4, "context_words": 1,
                            "evidence_max_tokens": 30, "device": None},
    }
    assert FGRColBERTRanker.from_dict(data).to_dict() == data


@pytest.mark.asyncio
async def test_run_async_matches_run(ranker, shop_docs):
    await ranker.warm_up_async()
    sync = ranker.run(query="wash cashmere", documents=shop_docs, top_k=3)["documents"]
    async_ = (await ranker.run_async(query="wash cashmere", documents=shop_docs, top_k=3))["documents"]
    assert async_ == sync
