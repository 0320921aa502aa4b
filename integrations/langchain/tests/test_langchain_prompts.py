"""Prompt helpers: evidence context with citations, token budgets, chat prompt, extractive fallback."""

from __future__ import annotations

import pytest
from fgr_retriever.errors import InvalidInputError
from fgr_retriever.evidence.extractive import EXTRACTIVE_NOTICE
from fgr_retriever.evidence.text import count_words
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnablePassthrough

import langchain_fgr
from langchain_fgr import (
    FGRColBERTRetriever,
    create_evidence_prompt,
    evidence_context_runnable,
    extractive_answer_runnable,
    format_evidence,
)

QUERY = "how do I wash a cashmere sweater"
LONG = ("Cashmere sweaters are washed by hand in cold water with a few drops of wool shampoo. Press the water "
        "out gently, never wring, and dry them flat on a towel away from the sun. Store them folded, not hung.")


def _doc(doc_id, text, spans, **extra):
    spans = [{"start": text.index(s), "end": text.index(s) + len(s), "text": s, "score": score} for s, score in spans]
    return Document(page_content=text, id=doc_id, metadata={"relevance_score": 5.0, "evidence_spans": spans, **extra})


@pytest.fixture
def documents():
    return [
        _doc("cashmere", LONG, [("by hand in cold water", 0.9), ("dry them flat", 0.7)], title="Cashmere care"),
        Document(page_content="Gift wrapping is free.", id="gifts"),  # from a retriever without evidence
        _doc("silk", "Silk scarves should be dry-cleaned only.", [("dry-cleaned", 0.6)]),
    ]


@pytest.fixture
def retriever(tiny_model, corpus):
    return FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                          model=tiny_model, k=3, threshold=0.99)


def test_citations_map_to_document_ids_and_skip_documents_without_evidence(documents):
    context = format_evidence(documents, context_words=2)
    assert [c.id for c in context.citations] == ["cashmere", "silk"]
    assert context.omitted == ("gifts",)
    assert context.text.startswith("[1] Cashmere care\n")  # a title names the source
    assert "[2] silk\n" in context.text and "by hand in cold water" in context.text
    assert "Store them folded" not in context.text  # evidence mode trims
    assert context.cited_in("Wash by hand [1]; silk is dry-cleaned [2].")[1].id == "silk"
    full = format_evidence(documents, without_evidence="full")
    assert [c.id for c in full.citations] == ["cashmere", "gifts", "silk"] and "Gift wrapping is free." in full.text


def test_full_mode_keeps_whole_documents(documents):
    context = format_evidence(documents, mode="full")
    assert [c.id for c in context.citations] == ["cashmere", "gifts", "silk"]
    assert "Store them folded, not hung." in context.text


@pytest.mark.parametrize("budget", [8, 15, 30])
def test_token_budget_is_respected(documents, budget):
    for mode in ("evidence", "full"):
        context = format_evidence(documents, mode=mode, max_tokens=budget, without_evidence="full")
        assert context.tokens <= budget and count_words(context.text) <= budget
        assert set(context.omitted) | {c.id for c in context.citations} == {"cashmere", "gifts", "silk"}


def test_custom_token_counter(documents):
    chars = len
    context = format_evidence(documents, max_tokens=60, token_counter=chars)
    assert context.tokens <= 60 and context.citations


def test_trimmed_documents_use_their_full_text(retriever):
    docs = retriever.invoke(QUERY, evidence_only=True)
    context = format_evidence(docs, context_words=0)
    assert [c.id for c in context.citations] == [d.id for d in docs if d.metadata["evidence_spans"]]
    for citation, doc in zip(context.citations, [d for d in docs if d.metadata["evidence_spans"]]):
        full = doc.metadata.get("full_text", doc.page_content)
        assert all(full[s.start:s.end] == s.text for s in citation.spans)


def test_documents_without_ids_are_named_by_position():
    docs = [Document(page_content="Linen creases.", metadata={"evidence_spans": [
        {"start": 6, "end": 13, "text": "creases", "score": 0.8}]})]
    assert format_evidence(docs).citations[0].id == "0"


def test_spans_that_do_not_match_the_text_are_refused():
    bad = Document(page_content="Linen creases.", id="x", metadata={"evidence_spans": [
        {"start": 0, "end": 5, "text": "Silk!", "score": 0.8}]})
    with pytest.raises(InvalidInputError, match="does not match"):
        format_evidence([bad])


def test_context_runnable_matches_format_evidence(documents):
    runnable = evidence_context_runnable(context_words=1, max_tokens=20)
    assert runnable.invoke(documents) == format_evidence(documents, context_words=1, max_tokens=20).text
    with pytest.raises(InvalidInputError, match="mode"):
        evidence_context_runnable(mode="summary")
    with pytest.raises(InvalidInputError, match="max_tokens"):
        evidence_context_runnable(max_tokens=0)


def test_evidence_prompt_variables_and_messages():
    prompt = create_evidence_prompt()
    assert sorted(prompt.input_variables) == ["context", "question"]
    messages = prompt.invoke({"context": "[1] a\nbody", "question": "Why?"}).to_messages()
    assert [m.type for m in messages] == ["system", "human"]
    assert "[1] a\nbody" in messages[1].content and "Question: Why?" in messages[1].content
    assert "[2]" in messages[0].content  # it asks for bracketed citations
    bare = create_evidence_prompt(system_message="Use {braces} literally.", template="{context} // {question}")
    out = bare.invoke({"context": "C", "question": "Q"}).to_messages()
    assert out[0].content == "Use {braces} literally." and out[1].content == "C // Q"
    assert len(create_evidence_prompt(system_message=None).messages) == 1
    with pytest.raises(InvalidInputError, match="context"):
        create_evidence_prompt(template="{question} only")


def test_extractive_answer_runnable(documents):
    runnable = extractive_answer_runnable()
    answer = runnable.invoke({"question": "How to wash cashmere?", "documents": documents})
    assert answer.startswith(EXTRACTIVE_NOTICE) and "(Cashmere care)" in answer and "(silk)" in answer
    assert runnable.invoke(documents) == answer
    assert "no document matched" in runnable.invoke([])
    with pytest.raises(InvalidInputError, match="documents"):
        runnable.invoke({"question": "q", "docs": documents})
    with pytest.raises(InvalidInputError):
        extractive_answer_runnable(max_quotes=0)


def test_rag_chain_with_a_chat_model_and_the_extractive_fallback(retriever):
    llm = FakeListChatModel(responses=["Wash it by hand [1]."])
    to_context = evidence_context_runnable(without_evidence="full")
    chain = ({"context": retriever | to_context, "question": RunnablePassthrough()}
             | create_evidence_prompt() | llm | StrOutputParser())
    assert chain.invoke(QUERY) == "Wash it by hand [1]."
    docs = retriever.invoke(QUERY)
    context = format_evidence(docs, without_evidence="full")
    assert context.cited_in("Wash it by hand [1].")[0].id == docs[0].id

    fallback = {"documents": retriever, "question": RunnablePassthrough()} | extractive_answer_runnable()
    answer = fallback.invoke(QUERY)
    assert isinstance(answer, str) and answer.startswith("(No language model is configured")


def test_package_exports_are_lazy_and_curated():
    assert set(langchain_fgr.__all__) == {"__version__", "FGRColBERTRetriever", "FGREvidenceCompressor",
                                          "format_evidence", "evidence_context_runnable", "create_evidence_prompt",
                                          "extractive_answer_runnable"}
    assert all(getattr(langchain_fgr, name) is not None for name in langchain_fgr.__all__)
    assert set(langchain_fgr.__all__) <= set(dir(langchain_fgr))
    with pytest.raises(AttributeError):
        langchain_fgr.NotAThing  # noqa: B018
