"""The real bundled default model (offline) behind the Haystack components: relevant documents first, with evidence."""

from __future__ import annotations

import pytest
from haystack import Document

from fgr_retriever.evidence.metadata import spans_from_metadata
from haystack_integrations.components.rankers.fgr import FGRColBERTRanker
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever
from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

pytestmark = pytest.mark.integration

KNOWLEDGE = [
    Document(id="returns", content="Items can be returned within 30 days of delivery if they are unworn and tagged.",
             meta={"category": "policy"}),
    Document(id="cashmere", content="Hand-wash cashmere in cold water with a mild detergent and dry it flat.",
             meta={"category": "care"}),
    Document(id="shipping", content="Standard delivery in Europe takes three to five working days.",
             meta={"category": "policy"}),
    Document(id="boutiques", content="Our Paris boutique on Rue Saint-Honoré opens at ten every morning.",
             meta={"category": "stores"}),
]
QUESTIONS = {
    "How many days do I have to send an item back?": "returns",
    "How should I wash a cashmere sweater?": "cashmere",
    "What time does the Paris store open?": "boutiques",
}


def test_relevant_document_ranks_first_with_evidence(tmp_path):
    store = FGRColBERTDocumentStore(index_path=str(tmp_path / "index"))
    store.write_documents(KNOWLEDGE)
    retriever = FGRColBERTRetriever(FGRColBERTDocumentStore(index_path=str(tmp_path / "index")), top_k=2)
    ranker = FGRColBERTRanker(top_k=2, evidence_only=True)
    for question, expected in QUESTIONS.items():
        best = retriever.run(query=question)["documents"][0]
        assert best.id == expected, question
        spans = spans_from_metadata(best.meta, text=best.content)
        assert spans, question

        reranked = ranker.run(query=question, documents=KNOWLEDGE)["documents"][0]
        assert reranked.id == expected, question
        assert spans_from_metadata(reranked.meta, text=reranked.meta.get("full_text", reranked.content))


def test_docstring_examples_run_and_print_what_they_say(run_docstring_example):
    for component_cls in (FGRColBERTDocumentStore, FGRColBERTRetriever, FGRColBERTRanker):
        run_docstring_example(component_cls)
