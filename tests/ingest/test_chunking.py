"""Splitting long documents into sentence-aligned passages with offsets back into the source."""

from __future__ import annotations

import pytest

from fgr_retriever import Document, InvalidInputError
from fgr_retriever.ingest import chunk_documents, estimate_tokens, split_text, wordpiece_counter


def words(text: str) -> int:
    return len(text.split())


SENTENCES = [f"Sentence number {i} has exactly seven words." for i in range(20)]


def test_passages_respect_the_budget_and_end_at_sentences():
    text = " ".join(SENTENCES)
    spans = split_text(text, max_tokens=20, count_tokens=words)
    passages = [text[s:e] for s, e in spans]
    assert all(words(p) <= 20 for p in passages)
    assert all(p.endswith("words.") and p.startswith("Sentence") for p in passages)
    assert " ".join(passages) == text  # no overlap asked: every sentence exactly once
    assert len(passages) == 10


def test_overlap_repeats_trailing_sentences():
    text = " ".join(SENTENCES)
    spans = split_text(text, max_tokens=21, overlap_tokens=7, count_tokens=words)
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 < e1  # the next passage starts inside the previous one
        assert text[s2:e1].count("Sentence") == 1  # one sentence (7 words) carried over
    assert spans[0][0] == 0 and spans[-1][1] == len(text)


def test_paragraph_breaks_end_half_full_passages():
    text = "One two three four five six.\n\nSeven eight nine ten.\nEleven twelve."
    spans = split_text(text, max_tokens=12, count_tokens=words)
    assert [text[s:e] for s, e in spans] == ["One two three four five six.", "Seven eight nine ten.\nEleven twelve."]


def test_a_sentence_longer_than_the_budget_is_cut_between_words():
    text = " ".join(f"w{i}" for i in range(25)) + "."
    spans = split_text(text, max_tokens=10, count_tokens=words)
    assert [words(text[s:e]) for s, e in spans] == [10, 10, 5]
    assert all(not text[s:e].startswith(" ") and " " not in (text[e - 1:e]) for s, e in spans)


def test_bad_budgets_raise():
    for kwargs in ({"max_tokens": 0}, {"max_tokens": 5, "overlap_tokens": 5}, {"max_tokens": True}):
        with pytest.raises(InvalidInputError):
            split_text("text", **kwargs)


def test_chunk_documents_keeps_short_documents_and_maps_offsets(tmp_path):
    long_text = "Intro line.\n\n" + " ".join(SENTENCES)
    docs = [Document(id="short", text="Tiny.", metadata={"source": "a.txt"}),
            Document(id="long", text=long_text, metadata={"source": "b.pdf", "page_starts": [0, 300]})]
    out = chunk_documents(docs, max_tokens=25, count_tokens=words)
    assert out[0] == Document(id="short", text="Tiny.", metadata={"source": "a.txt"})
    parts = out[1:]
    assert [p.id for p in parts] == [f"long#{i}" for i in range(len(parts))] and len(parts) > 3
    for p in parts:
        m = p.metadata
        assert long_text[m["start"]:m["end"]] == p.text  # offsets point back into the source
        assert m["chunks"] == len(parts) and m["source"] == "b.pdf" and "page_starts" not in m
        assert m["page"] == (1 if m["start"] < 300 else 2)


def test_a_pdf_that_stays_whole_keeps_its_pages():
    doc = Document(id="card.pdf", text="Page one.\nPage two.", metadata={"source": "card.pdf", "page_starts": [0, 10]})
    (whole,) = chunk_documents([doc], max_tokens=100, count_tokens=words)
    assert whole.id == "card.pdf" and whole.text == doc.text
    assert whole.metadata == {"source": "card.pdf", "page": 1, "page_starts": [0, 10]}


def test_token_counters():
    assert estimate_tokens("one two three") == 4

    class FakeTokenizer:
        def __call__(self, text, add_special_tokens):
            assert add_special_tokens is False
            return {"input_ids": list(range(len(text)))}

    assert wordpiece_counter(FakeTokenizer())("abcd") == 4
