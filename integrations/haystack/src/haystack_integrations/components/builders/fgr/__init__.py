"""Haystack prompt helpers that put evidence, not whole documents, into the prompt."""

from .evidence_prompt_builder import DEFAULT_RAG_TEMPLATE, FGREvidencePromptBuilder

__all__ = ["FGREvidencePromptBuilder", "DEFAULT_RAG_TEMPLATE"]
