"""Indexing and query pipelines: YAML round trips, persistence between them, async runs."""

from __future__ import annotations

import pytest
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import MockChatGenerator
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ChatMessage
from haystack.document_stores.types import DuplicatePolicy

from haystack_integrations.components.builders.fgr import DEFAULT_RAG_TEMPLATE, FGREvidencePromptBuilder
from haystack_integrations.components.generators.fgr import FGRExtractiveAnswerer
from haystack_integrations.components.rankers.fgr import FGRColBERTRanker
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever
from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

QUERY = "how do I wash cashmere"


def indexing_pipeline(store: FGRColBERTDocumentStore) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("writer", DocumentWriter(document_store=store, policy=DuplicatePolicy.OVERWRITE))
    return pipeline


def query_pipeline(store: FGRColBERTDocumentStore, model_dir: str) -> Pipeline:
    pipeline = Pipeline()
    pipeline.add_component("retriever", FGRColBERTRetriever(store, top_k=3))
    pipeline.add_component("ranker", FGRColBERTRanker(model=model_dir, top_k=2))
    pipeline.add_component("evidence", FGREvidencePromptBuilder(without_evidence="full"))
    pipeline.add_component("prompt_builder", ChatPromptBuilder(template=[ChatMessage.from_user(DEFAULT_RAG_TEMPLATE)],
                                                               required_variables=["context", "query"]))
    pipeline.add_component("llm", MockChatGenerator())  # echoes the prompt: shows what a real LLM would read
    pipeline.add_component("answerer", FGRExtractiveAnswerer())
    pipeline.connect("retriever.documents", "ranker.documents")
    pipeline.connect("ranker.documents", "evidence.documents")
    pipeline.connect("evidence.context", "prompt_builder.context")
    pipeline.connect("prompt_builder.prompt", "llm.messages")
    pipeline.connect("ranker.documents", "answerer.documents")
    return pipeline


def same_pipeline(a: Pipeline, b: Pipeline) -> bool:
    """Equal components and connections (loading may list connections in another order)."""
    da, db = a.to_dict(), b.to_dict()
    order = lambda d: sorted((c["sender"], c["receiver"]) for c in d.pop("connections"))  # noqa: E731
    return order(da) == order(db) and da == db


def query_inputs(query: str = QUERY) -> dict:
    return {"retriever": {"query": query}, "ranker": {"query": query}, "prompt_builder": {"query": query},
            "answerer": {"query": query}}


def test_yaml_round_trips_and_persistence_between_pipelines(make_store, tiny_model_dir, shop_docs, tmp_path):
    index_path = str(tmp_path / "index")

    indexing = indexing_pipeline(make_store(index_path=index_path))
    indexing_yaml = indexing.dumps()
    assert "FGRColBERTDocumentStore" in indexing_yaml and index_path in indexing_yaml
    loaded_indexing = Pipeline.loads(indexing_yaml)
    assert same_pipeline(loaded_indexing, indexing)
    # the loaded indexing pipeline writes to disk ...
    assert loaded_indexing.run({"writer": {"documents": shop_docs}}) == {"writer": {"documents_written": 4}}

    # ... and a query pipeline rebuilt from YAML sees it and gives the same results as the original
    query = query_pipeline(make_store(index_path=index_path), tiny_model_dir)
    loaded_query = Pipeline.loads(query.dumps())
    assert same_pipeline(loaded_query, query)
    first = query.run(query_inputs(), include_outputs_from={"ranker"})
    second = loaded_query.run(query_inputs(), include_outputs_from={"ranker"})
    assert first == second

    ranked = second["ranker"]["documents"]
    assert len(ranked) == 2 and all("evidence_spans" in d.meta for d in ranked)
    assert {c["id"] for c in second["evidence"]["citations"]} == {d.id for d in ranked}
    prompt = second["llm"]["replies"][0].text
    assert prompt.startswith("Answer the question using only the numbered evidence below.")
    assert f"Question: {QUERY}" in prompt and "[1] " in prompt
    answer = second["answerer"]["replies"][0]
    assert answer.meta["citations"] and answer.meta["citations"][0]["id"] in {d.id for d in ranked}


@pytest.mark.asyncio
async def test_query_pipeline_runs_async(make_store, tiny_model_dir, shop_docs):
    store = make_store()
    store.write_documents(shop_docs)
    pipeline = query_pipeline(store, tiny_model_dir)
    sync = pipeline.run(query_inputs())
    async_ = await pipeline.run_async(query_inputs())
    assert async_ == sync
