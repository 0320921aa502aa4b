"""Haystack document stores for FGR-ColBERT: late-interaction retrieval with word-level evidence.

`FGRColBERTDocumentStore` keeps its index in this process (optionally persisted to a directory);
`FGRColBERTQdrantDocumentStore` keeps everything in a Qdrant collection (needs qdrant-client, which
is imported only when the store is first used).
"""

from .document_store import RESERVED_META_KEY, FGRColBERTDocumentStore
from .qdrant_document_store import FGRColBERTQdrantDocumentStore

__all__ = ["FGRColBERTDocumentStore", "FGRColBERTQdrantDocumentStore", "RESERVED_META_KEY"]
