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

import importlib
from typing import TYPE_CHECKING, Any

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
from .types import Document, SearchResult, Span, TokenScore

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from .evidence.extractive import ExtractiveAnswer, extractive_answer
    from .evidence.metadata import (
        ANSWER_SPANS_KEY,
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
    from .index import EmbeddedIndex, Index, PersistentIndex, QdrantIndex
    from .index.filters import compile_filter
    from .index.fusion import HybridConfig
    from .model.config import FGRConfig
    from .model.encoder import FGRColBERT, QueryEncoding, TextEncoding
    from .retriever import FGRRetriever

# Imported on first use (PEP 562): the model, the index and the retriever pull in torch and
# transformers, which take seconds to load; `fgr-retriever --help` and the error paths should not.
_LAZY = {
    **dict.fromkeys(("FGRColBERT", "QueryEncoding", "TextEncoding"), "model.encoder"),
    "FGRConfig": "model.config",
    "FGRRetriever": "retriever",
    **dict.fromkeys(("Index", "EmbeddedIndex", "PersistentIndex", "QdrantIndex"), "index"),
    "HybridConfig": "index.fusion",
    "compile_filter": "index.filters",
    "evidence_text": "evidence.text",
    **dict.fromkeys(("render_ansi", "render_html", "render_markdown"), "evidence.rendering"),
    **dict.fromkeys(("RELEVANCE_SCORE_KEY", "EVIDENCE_SPANS_KEY", "ANSWER_SPANS_KEY", "FULL_TEXT_KEY", "evidence_fields",
                     "spans_from_metadata", "full_text_of"), "evidence.metadata"),
    **dict.fromkeys(("EvidenceSource", "EvidenceContext", "Citation", "build_context", "build_prompt"),
                    "evidence.prompting"),
    **dict.fromkeys(("ExtractiveAnswer", "extractive_answer"), "evidence.extractive"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
    "PersistentIndex",
    "QdrantIndex",
    "HybridConfig",
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
    "ANSWER_SPANS_KEY",
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
