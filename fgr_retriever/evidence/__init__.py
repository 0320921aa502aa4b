"""Evidence: which part of a text answers the query, and what to do with it.

Owns: the fine-grained relevance head (``head``); decoding token scores into words and spans
(``word_decoding``) and into whole sentences or clauses (``sentences`` segments text,
``sentence_decoding`` scores and selects); evidence strings (``text``); rendering for terminals,
HTML and Markdown (``rendering``); evidence-trimmed prompts (``prompting``); the extractive
answerer (``extractive``); the answer tier inside the evidence (``answer``); the metadata schema the integrations share (``metadata``).

May import: the foundation modules (``errors``, ``types``, ``validation``) and torch/numpy. It
never imports ``model``, ``index`` or ``retriever``: decoders work on arrays and offsets, so
the same code serves the encoder, the evaluation harness and the integrations.
"""

from __future__ import annotations

from .extractive import ExtractiveAnswer, extractive_answer
from .metadata import (
    ANSWER_SPANS_KEY,
    EVIDENCE_SPANS_KEY,
    FULL_TEXT_KEY,
    RELEVANCE_SCORE_KEY,
    evidence_fields,
    full_text_of,
    spans_from_metadata,
)
from .prompting import Citation, EvidenceContext, EvidenceSource, build_context, build_prompt
from .rendering import render_ansi, render_html, render_markdown
from .text import answer_in_spans, count_words, evidence_text

__all__ = [
    "evidence_text",
    "count_words",
    "answer_in_spans",
    "render_ansi",
    "render_html",
    "render_markdown",
    "EvidenceSource",
    "EvidenceContext",
    "Citation",
    "build_context",
    "build_prompt",
    "ExtractiveAnswer",
    "extractive_answer",
    "RELEVANCE_SCORE_KEY",
    "EVIDENCE_SPANS_KEY",
    "ANSWER_SPANS_KEY",
    "FULL_TEXT_KEY",
    "evidence_fields",
    "spans_from_metadata",
    "full_text_of",
]
