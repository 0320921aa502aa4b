"""Index backends: where encoded documents are stored and searched.

Owns: the :class:`Index` protocol every backend implements (``base``), the default in-process
exact backend :class:`EmbeddedIndex` (``embedded``) and metadata filters (``filters``).

May import: the foundation modules, ``fgr_retriever.evidence`` and ``fgr_retriever.model`` (for
the encodings it stores and the MaxSim arithmetic). Never imports ``retriever`` or the tool
packages. A new backend is a module here that satisfies :class:`Index`; see
docs/architecture.md.
"""

from __future__ import annotations

from .base import Index, IndexHit, StoredTokens
from .embedded import EmbeddedIndex

__all__ = ["Index", "IndexHit", "StoredTokens", "EmbeddedIndex"]
