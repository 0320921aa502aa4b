"""fgr-retriever: ColBERT retrieval that also tells you which words answer the query.

>>> from fgr_retriever import FGRRetriever
>>> retriever = FGRRetriever()                      # bundled default model, offline
>>> retriever.add_documents(["Cashmere should be washed by hand in cold water."], ids=["care"])
['care']
>>> result = retriever.search("how do I wash cashmere", k=1)[0]
>>> result.id, result.text[result.spans[0].start:result.spans[0].end] == result.spans[0].text
('care', True)
"""

from __future__ import annotations

from .errors import (
    DocumentNotFoundError,
    DuplicateIdError,
    FGRError,
    IndexCorruptedError,
    IndexNotFoundError,
    IndexStoreError,
    InvalidInputError,
    ModelLoadError,
    ModelMismatchError,
)
from .evidence.extractive import ExtractiveAnswer, extractive_answer
from .evidence.metadata import (
    EVIDENCE_SPANS_KEY,
    FULL_TEXT_KEY,
    RELEVANCE_SCORE_KEY,
    evidence_fields,
    full_text_of,
    spans_from_metadata,
)
from .evidence.prompting import Citation, EvidenceContext, EvidenceSource, build_context, build_prompt
from .evidence.rendering import render_ansi, render_html, render_markdown
from .evidence.text import evidence_text
from .index import EmbeddedIndex, Index
from .index.filters import compile_filter
from .model.config import FGRConfig
from .model.encoder import FGRColBERT, QueryEncoding, TextEncoding
from .retriever import FGRRetriever
from .types import Document, SearchResult, Span, TokenScore

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # model
    "FGRColBERT",
    "FGRConfig",
    "QueryEncoding",
    "TextEncoding",
    # retrieval
    "FGRRetriever",
    "Index",
    "EmbeddedIndex",
    "compile_filter",
    # results
    "Document",
    "SearchResult",
    "Span",
    "TokenScore",
    # evidence and rendering
    "evidence_text",
    "render_ansi",
    "render_html",
    "render_markdown",
    # evidence metadata schema (shared by the LangChain and Haystack integrations)
    "RELEVANCE_SCORE_KEY",
    "EVIDENCE_SPANS_KEY",
    "FULL_TEXT_KEY",
    "evidence_fields",
    "spans_from_metadata",
    "full_text_of",
    # evidence-trimmed prompts
    "EvidenceSource",
    "EvidenceContext",
    "Citation",
    "build_context",
    "build_prompt",
    "ExtractiveAnswer",
    "extractive_answer",
    # errors
    "FGRError",
    "InvalidInputError",
    "ModelLoadError",
    "ModelMismatchError",
    "IndexStoreError",
    "IndexNotFoundError",
    "IndexCorruptedError",
    "DocumentNotFoundError",
    "DuplicateIdError",
]
