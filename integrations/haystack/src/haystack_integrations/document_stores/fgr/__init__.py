"""Haystack document store for FGR-ColBERT: late-interaction retrieval with word-level evidence."""

from .document_store import RESERVED_META_KEY, FGRColBERTDocumentStore

__all__ = ["FGRColBERTDocumentStore", "RESERVED_META_KEY"]
