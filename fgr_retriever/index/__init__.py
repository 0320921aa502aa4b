"""Index backends: the :class:`Index` protocol and the default in-process :class:`EmbeddedIndex`."""

from __future__ import annotations

from .base import Index, IndexHit, StoredTokens
from .embedded import EmbeddedIndex

__all__ = ["Index", "IndexHit", "StoredTokens", "EmbeddedIndex"]
