"""FGREvidenceCompressor: re-ranking documents from anywhere, copies only, stable re-runs."""

from __future__ import annotations

import copy
import json

import pytest
from fgr_retriever.errors import InvalidInputError
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever

from langchain_fgr import FGRColBERTRetriever, FGREvidenceCompressor

QUERY = "how do I wash a cashmere sweater"
EVIDENCE_KEYS = {"relevance_score", "evidence_spans", "answer_spans", "full_text"}


@pytest.fixture
def documents(corpus):
    """Documents as another retriever would return them: some ids missing, nested metadata."""
    return [Document(page_content=text, id=doc_id if i % 2 else None, metadata=meta)
            for i, (text, doc_id, meta) in enumerate(zip(corpus["texts"], corpus["ids"], corpus["metadatas"]))]


@pytest.fixture
def compressor(tiny_model):
    return FGREvidenceCompressor(model=tiny_model)


def _identity(doc: Document):
    """What identifies an input document in the output: its text and user metadata."""
    full = doc.metadata.get("full_text", doc.page_content)
    return full, json.dumps({k: v for k, v in doc.metadata.items() if k not in EVIDENCE_KEYS}, sort_keys=True)


def test_reranks_copies_and_never_mutates(compressor, documents):
    snapshot = copy.deepcopy(documents)
    out = compressor.compress_documents(documents, QUERY)
    assert documents == snapshot
    assert len(out) == len(documents)
    assert all(o is not d for o in out for d in documents)
    assert sorted(map(_identity, out)) == sorted(map(_identity, documents))
    scores = [d.metadata["relevance_score"] for d in out]
    assert scores == sorted(scores, reverse=True)
    by_text = {d.page_content: d for d in documents}
    for doc in out:
        source = by_text[doc.page_content]
        assert doc.id == source.id  # None stays None
        assert {k: doc.metadata[k] for k in source.metadata} == source.metadata
        json.dumps(doc.metadata, allow_nan=False)
    out[0].metadata["owner"]["team"] = "changed"
    assert documents == snapshot  # deep copies: nested values are not shared


def test_order_and_spans_match_the_core_rerank(compressor, documents):
    core = compressor._core.rerank(QUERY, [d.page_content for d in documents])
    out = compressor.compress_documents(documents, QUERY)
    assert [d.page_content for d in out] == [r.text for r in core]
    assert [d.metadata["evidence_spans"] for d in out] == [[s.to_dict() for s in r.spans] for r in core]


def test_top_n_evidence_only_and_threshold(tiny_model, documents):
    out = FGREvidenceCompressor(model=tiny_model, top_n=2, evidence_only=True, threshold=0.99,
                                context_words=1).compress_documents(documents, QUERY)
    assert len(out) == 2
    for doc in out:
        if doc.metadata["evidence_spans"]:
            full = doc.metadata["full_text"]
            assert doc.page_content != full
            assert all(full[s["start"]:s["end"]] == s["text"] for s in doc.metadata["evidence_spans"])
        else:
            assert "full_text" not in doc.metadata


def test_drop_without_evidence(tiny_model, documents):
    none = FGREvidenceCompressor(model=tiny_model, threshold=1.0, drop_without_evidence=True)
    assert none.compress_documents(documents, QUERY) == []
    kept = FGREvidenceCompressor(model=tiny_model, threshold=1.0)
    assert len(kept.compress_documents(documents, QUERY)) == len(documents)
    some = FGREvidenceCompressor(model=tiny_model, threshold=0.99, drop_without_evidence=True)
    out = some.compress_documents(documents, QUERY)
    assert 0 < len(out) <= len(documents) and all(d.metadata["evidence_spans"] for d in out)


@pytest.mark.parametrize("evidence_only", [False, True])
def test_rerunning_on_its_own_output_is_idempotent(tiny_model, documents, evidence_only):
    compressor = FGREvidenceCompressor(model=tiny_model, evidence_only=evidence_only, threshold=0.99, context_words=1)
    once = compressor.compress_documents(documents, QUERY)
    twice = compressor.compress_documents(once, QUERY)
    assert twice == once
    assert all(list(d.metadata).count("evidence_spans") == 1 for d in twice)
    # a later pass with different settings replaces the keys instead of keeping stale ones
    loose = FGREvidenceCompressor(model=tiny_model, threshold=1.0).compress_documents(once, QUERY)
    assert all(d.metadata["evidence_spans"] == [] and "full_text" not in d.metadata for d in loose)
    assert sorted(map(_identity, loose)) == sorted(map(_identity, documents))


def test_blank_documents_come_last_unscored(compressor):
    docs = [Document(page_content="   ", id="blank"), Document(page_content="Wool is aired.", id="wool")]
    out = compressor.compress_documents(docs, QUERY)
    assert [d.id for d in out] == ["wool", "blank"]
    assert out[1].metadata == {"relevance_score": None, "evidence_spans": [], "answer_spans": []}
    assert compressor.compress_documents([], QUERY) == []


def test_bad_input(compressor, tiny_model):
    with pytest.raises(InvalidInputError):
        compressor.compress_documents([Document(page_content="x")], "")
    with pytest.raises(InvalidInputError):
        compressor.compress_documents(Document(page_content="x"), QUERY)
    with pytest.raises(InvalidInputError):
        compressor.compress_documents(["text"], QUERY)
    with pytest.raises(ValueError, match="top_n"):
        FGREvidenceCompressor(model=tiny_model, top_n=0)
    with pytest.raises(ValueError, match="threshold"):
        FGREvidenceCompressor(model=tiny_model, threshold=2.0)
    with pytest.raises(InvalidInputError, match="model must be"):
        FGREvidenceCompressor(model=42)
    with pytest.raises(InvalidInputError):
        FGREvidenceCompressor.from_retriever(object())


def test_model_loads_from_a_directory(tiny_model_dir, tiny_model, documents):
    by_path = FGREvidenceCompressor(model=str(tiny_model_dir))
    assert by_path.model.fingerprint() == tiny_model.fingerprint()
    assert by_path.compress_documents(documents, QUERY) == FGREvidenceCompressor(
        model=tiny_model).compress_documents(documents, QUERY)


async def test_acompress_matches_compress(compressor, documents):
    assert await compressor.acompress_documents(documents, QUERY) == compressor.compress_documents(documents, QUERY)


def test_from_retriever_shares_model_and_settings(tiny_model, corpus):
    # float32 storage: the index keeps the vectors exactly as a fresh re-rank computes them
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], model=tiny_model, context_words=1,
                                               evidence_only=True, threshold=0.99, storage_dtype="float32")
    compressor = FGREvidenceCompressor.from_retriever(retriever, top_n=2)
    assert compressor.model is tiny_model
    assert (compressor.context_words, compressor.evidence_only, compressor.threshold, compressor.top_n) == (
        1, True, 0.99, 2)
    # re-ranking the retriever's own results reproduces its scores and spans
    docs = retriever.invoke(QUERY)
    out = compressor.compress_documents(docs, QUERY)
    assert [d.id for d in out] == [d.id for d in docs][:2]
    for got, want in zip(out, docs):
        assert got.metadata["relevance_score"] == pytest.approx(want.metadata["relevance_score"], rel=1e-4)
        texts = [[s["text"] for s in d.metadata["evidence_spans"]] for d in (got, want)]
        assert texts[0] == texts[1]
        assert got.page_content == want.page_content


class _ListRetriever(BaseRetriever):
    """Any other retriever: returns its documents, no evidence metadata."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return list(self.documents)


class _Compressing(BaseRetriever):
    """The composition ContextualCompressionRetriever performs: base retriever, then compressor."""

    base_retriever: BaseRetriever
    base_compressor: BaseDocumentCompressor

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()})
        return list(self.base_compressor.compress_documents(docs, query, callbacks=run_manager.get_child()))


def test_composes_behind_another_retriever(tiny_model, documents):
    compressor = FGREvidenceCompressor(model=tiny_model, top_n=3)
    pipeline = _Compressing(base_retriever=_ListRetriever(documents=documents), base_compressor=compressor)
    out = pipeline.invoke(QUERY)
    assert len(out) == 3 and all(EVIDENCE_KEYS - {"full_text"} <= set(d.metadata) for d in out)
    assert out == compressor.compress_documents(documents, QUERY)[:3]


def test_inside_contextual_compression_retriever_when_installed(tiny_model, documents):
    try:
        from langchain_classic.retrievers import ContextualCompressionRetriever
    except ImportError:
        try:
            from langchain.retrievers import ContextualCompressionRetriever
        except ImportError:
            pytest.skip("neither langchain-classic nor langchain is installed")
    pipeline = ContextualCompressionRetriever(base_compressor=FGREvidenceCompressor(model=tiny_model, top_n=2),
                                              base_retriever=_ListRetriever(documents=documents))
    out = pipeline.invoke(QUERY)
    assert len(out) == 2 and all("evidence_spans" in d.metadata for d in out)
