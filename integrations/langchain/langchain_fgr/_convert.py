"""Moving documents between LangChain and the fgr-retriever core.

Two rules hold everywhere in this package:

- a document that already carries the evidence metadata of an earlier pass is treated as its
  *full* text (``full_text`` when it was trimmed) with the stale evidence keys removed, so
  indexing or re-ranking it again neither scores the trimmed text nor duplicates keys;
- returned documents are new objects whose metadata is a deep copy: callers can change them
  without touching the input documents or the stored index.

>>> from langchain_core.documents import Document
>>> trimmed = Document(page_content="within 30 days", id="returns",
...                    metadata={"lang": "en", "relevance_score": 7.5, "evidence_spans": [],
...                              "full_text": "Returns are accepted within 30 days."})
>>> core_input(trimmed)
{'text': 'Returns are accepted within 30 days.', 'id': 'returns', 'metadata': {'lang': 'en'}}
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from fgr_retriever.errors import InvalidInputError
from fgr_retriever.evidence.metadata import evidence_fields, full_text_of, strip_evidence_fields
from fgr_retriever.types import SearchResult
from langchain_core.documents import Document

__all__ = ["check_documents", "core_input", "to_langchain"]


def check_documents(documents: object) -> list[Document]:
    """A list of LangChain documents, or :class:`InvalidInputError` saying what is wrong."""
    if isinstance(documents, (str, bytes, Mapping, Document)) or not isinstance(documents, Sequence):
        raise InvalidInputError(f"documents must be a list of LangChain Documents, got {type(documents).__name__} "
                                "(wrap a single document in [...])")
    docs = list(documents)
    for i, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise InvalidInputError(f"document {i} must be a langchain_core Document, got {type(doc).__name__}")
    return docs


def core_input(doc: Document, doc_id: str | None = None) -> dict[str, Any]:
    """The mapping the core's ``add_documents``/``rerank`` take for one LangChain document.

    ``doc_id`` overrides ``doc.id``; with neither, the core assigns an id.
    """
    metadata = doc.metadata or {}
    return {
        "text": full_text_of(doc.page_content, metadata),
        "id": doc_id if doc_id is not None else doc.id,
        "metadata": strip_evidence_fields(metadata),
    }


def to_langchain(result: SearchResult, *, evidence_only: bool, source: Document | None = None) -> Document:
    """A new LangChain document for one core result, with the shared evidence metadata attached.

    The id and metadata are the result's (the stored ones), or those of ``source``, the document
    a compressor was given (its id is kept even when it is ``None``).
    """
    text, evidence = evidence_fields(result, evidence_only=evidence_only)
    base = result.metadata if source is None else (source.metadata or {})
    meta = copy.deepcopy(strip_evidence_fields(base))
    meta.update(evidence)
    return Document(id=result.id if source is None else source.id, page_content=text, metadata=meta)
