"""FGREvidencePromptBuilder and FGRExtractiveAnswerer: context, citations, no-LLM answers, serialisation."""

from __future__ import annotations

import pytest
from haystack import Document
from haystack.components.builders import ChatPromptBuilder, PromptBuilder
from haystack.dataclasses import ChatMessage

from fgr_retriever.evidence.extractive import EXTRACTIVE_NOTICE
from fgr_retriever.evidence.prompting import build_context
from haystack_integrations.components.builders.fgr import DEFAULT_RAG_TEMPLATE, FGREvidencePromptBuilder
from haystack_integrations.components.generators.fgr import FGRExtractiveAnswerer

TEXT = "Our boutiques open at ten. Returns are accepted within 30 days of delivery. Gift wrap is free."
SPAN = {"start": 48, "end": 62, "text": "within 30 days", "score": 0.9}


def evidence_doc(doc_id="returns", **meta) -> Document:
    return Document(id=doc_id, content=TEXT, meta={"evidence_spans": [SPAN], "relevance_score": 7.0, **meta})


def test_builder_context_and_citations():
    other = Document(id="silk", content="Silk scarves should be dry-cleaned only.", meta={"evidence_spans": []})
    result = FGREvidencePromptBuilder(context_words=2).run(documents=[evidence_doc(title="Returns policy"), other])
    assert result["context"] == "[1] Returns policy\n… are accepted within 30 days of delivery. …"
    assert result["citations"] == [{"number": 1, "label": "[1]", "id": "returns", "title": "Returns policy",
                                    "spans": [SPAN]}]
    assert [d.id for d in result["documents"]] == ["returns"]
    assert result["omitted"] == ["silk"]  # no evidence: skipped by default


def test_builder_matches_the_core_and_follows_its_defaults():
    builder = FGREvidencePromptBuilder()
    from fgr_retriever.evidence.prompting import EvidenceSource

    source = EvidenceSource.from_fields(id="returns", text=TEXT, metadata=evidence_doc().meta)
    assert builder.run(documents=[evidence_doc()])["context"] == build_context([source]).text


def test_builder_uses_full_text_of_trimmed_documents_and_skips_documents_without_text():
    trimmed = Document(id="returns", content="… within 30 days …",
                       meta={"evidence_spans": [SPAN], "full_text": TEXT})
    result = FGREvidencePromptBuilder(context_words=2).run(documents=[trimmed, Document(id="img", content=None)])
    assert "accepted within 30 days of delivery" in result["context"]
    assert result["omitted"] == ["img"]


def test_builder_full_mode_budget_and_without_evidence():
    docs = [evidence_doc(), Document(id="plain", content="No spans here at all.")]
    full = FGREvidencePromptBuilder(mode="full").run(documents=docs)
    assert TEXT in full["context"] and "No spans here at all." in full["context"]
    kept = FGREvidencePromptBuilder(without_evidence="full").run(documents=docs)
    assert [c["id"] for c in kept["citations"]] == ["returns", "plain"]
    tight = FGREvidencePromptBuilder(mode="full", max_tokens=22).run(documents=docs)
    assert tight["omitted"] == ["plain"]
    with pytest.raises(ValueError, match="mode"):
        FGREvidencePromptBuilder(mode="summary")


def test_builder_context_feeds_haystack_prompt_builders():
    context = FGREvidencePromptBuilder().run(documents=[evidence_doc()])["context"]
    prompt = PromptBuilder(template=DEFAULT_RAG_TEMPLATE).run(context=context, query="How long?")["prompt"]
    assert prompt.startswith("Answer the question using only the numbered evidence below.")
    assert context in prompt and prompt.endswith("Question: How long?\nAnswer:")
    chat = ChatPromptBuilder(template=[ChatMessage.from_user(DEFAULT_RAG_TEMPLATE)])
    assert chat.run(context=context, query="How long?")["prompt"][0].text == prompt


def test_answerer_quotes_evidence_with_citations():
    reply = FGRExtractiveAnswerer().run(documents=[evidence_doc()], query="How long?")["replies"][0]
    assert reply.is_from("assistant")
    assert reply.text.startswith(EXTRACTIVE_NOTICE)
    assert "within 30 days" in reply.text and "[1]" in reply.text
    assert reply.meta["citations"][0]["id"] == "returns"
    assert reply.meta["query"] == "How long?"


def test_answerer_options_reach_the_core():
    long_sentence = "Returns " + "really " * 60 + "are accepted within 30 days of delivery."
    span_start = long_sentence.index("within 30 days")
    doc = Document(id="long", content=long_sentence, meta={"evidence_spans": [
        {"start": span_start, "end": span_start + 14, "text": "within 30 days", "score": 0.9}]})
    whole = FGRExtractiveAnswerer(max_words=100).run(documents=[doc])["replies"][0].text
    assert long_sentence in whole
    narrow = FGRExtractiveAnswerer(max_words=10, context_words=1).run(documents=[doc])["replies"][0].text
    assert "accepted within 30 days of" in narrow and long_sentence not in narrow


def test_answerer_without_documents_or_spans_says_so():
    empty = FGRExtractiveAnswerer().run(documents=[])["replies"][0]
    assert "no document matched" in empty.text
    no_spans = FGRExtractiveAnswerer().run(documents=[Document(id="plain", content="Just text.")])["replies"][0]
    assert "no passage was highlighted" in no_spans.text and "Just text." in no_spans.text
    ignored = FGRExtractiveAnswerer().run(documents=[Document(id="img", content=None), evidence_doc()])["replies"][0]
    assert ignored.meta["citations"][0]["id"] == "returns"


def test_docstring_examples_run_and_print_what_they_say(run_docstring_example):
    run_docstring_example(FGREvidencePromptBuilder)
    run_docstring_example(FGRExtractiveAnswerer)


def test_to_dict_from_dict():
    builder = FGREvidencePromptBuilder(mode="full", context_words=3, max_tokens=100, without_evidence="full")
    data = builder.to_dict()
    assert data == {
        "type": "haystack_integrations.components.builders.fgr.evidence_prompt_builder.FGREvidencePromptBuilder",
        "init_parameters": {"mode": "full", "context_words": 3, "max_tokens": 100, "without_evidence": "full"},
    }
    assert FGREvidencePromptBuilder.from_dict(data).to_dict() == data
    answerer = FGRExtractiveAnswerer(max_quotes=2, context_words=1, max_sources=5, max_words=20)
    data = answerer.to_dict()
    assert data == {
        "type": "haystack_integrations.components.generators.fgr.extractive_answerer.FGRExtractiveAnswerer",
        "init_parameters": {"max_quotes": 2, "max_sources": 5, "context_words": 1, "max_words": 20},
    }
    assert FGRExtractiveAnswerer.from_dict(data).to_dict() == data
