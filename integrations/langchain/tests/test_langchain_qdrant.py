"""The LangChain retriever over a Qdrant collection (qdrant-client's local mode)."""

from __future__ import annotations

import pytest

pytest.importorskip("qdrant_client")

from langchain_core.documents import Document  # noqa: E402

from fgr_retriever import FGRRetriever, QdrantIndex  # noqa: E402
from fgr_retriever.testing import tiny_model  # noqa: E402
from langchain_fgr import FGRColBERTRetriever  # noqa: E402

DOCS = [Document(page_content="Suede should be brushed with a crepe brush. Keep it away from rain.", id="care",
                 metadata={"category": "care"}),
        Document(page_content="Returns are accepted within 30 days of delivery.", id="returns",
                 metadata={"category": "policy"}),
        Document(page_content="Silk scarves are dry-cleaned only.", id="silk", metadata={"category": "care"})]


def test_langchain_retriever_on_qdrant_matches_the_in_memory_index():
    model = tiny_model(evidence_unit="sentence", sentence_threshold=0.0)
    on_qdrant = FGRColBERTRetriever(retriever=FGRRetriever(
        model=model, index=QdrantIndex.for_model(model, location=":memory:")), k=3)
    in_memory = FGRColBERTRetriever(retriever=FGRRetriever(model=model), k=3)
    for r in (on_qdrant, in_memory):
        assert r.add_documents(DOCS) == ["care", "returns", "silk"]
    got, want = on_qdrant.invoke("suede brush"), in_memory.invoke("suede brush")
    assert [d.id for d in got] == [d.id for d in want]
    assert all(d.metadata["evidence_spans"] for d in got)
    assert {d.id for d in on_qdrant.invoke("care", filter={"category": "care"})} == {"care", "silk"}
    on_qdrant.delete(["care"])
    assert [d.id for d in on_qdrant.get_by_ids(["silk", "care"])] == ["silk"]


def test_hybrid_and_lexical_modes_on_qdrant():
    model = tiny_model(evidence_unit="sentence", sentence_threshold=0.0)
    r = FGRColBERTRetriever(retriever=FGRRetriever(model=model, index=QdrantIndex.for_model(model, location=":memory:")),
                            k=3, mode="hybrid")
    r.add_documents([*DOCS, Document(page_content="A cashmere stole.", id="stole", metadata={"sku": "MV-BRM-ST"})])
    assert r.invoke("is MV-BRM-ST in stock")[0].id == "stole"  # an exact reference ranks first
    assert [d.id for d in r.invoke("silk scarves", mode="lexical")] == ["silk"]  # BM25 alone: word matches only
    assert {d.id for d in r.invoke("silk care", filter={"category": "care"})} <= {"care", "silk"}
