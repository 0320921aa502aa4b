"""Index backends: where encoded documents are stored and searched.

Owns: the :class:`Index` protocol every backend implements (``base``), the in-process exact
backend :class:`EmbeddedIndex` (``embedded``), the durable on-disk :class:`PersistentIndex`
(``persistent``: a SQLite ``catalog`` plus immutable vector ``segments`` and an optional faiss
quantiser, ``ann``), :class:`QdrantIndex` (``qdrant``: a Qdrant collection, MaxSim inside Qdrant;
optional extra) and metadata filters (``filters``).

May import: the foundation modules, ``fgr_retriever.evidence`` and ``fgr_retriever.model`` (for
the encodings it stores and the MaxSim arithmetic). Never imports ``retriever`` or the tool
packages. A new backend is a module here that satisfies :class:`Index`; see
docs/architecture.md.
"""

from __future__ import annotations

from .base import Index, IndexHit, StoredTokens
from .embedded import EmbeddedIndex
from .persistent import PersistentIndex
from .qdrant import QdrantIndex

__all__ = ["Index", "IndexHit", "StoredTokens", "EmbeddedIndex", "PersistentIndex", "QdrantIndex"]
