"""The contract every index backend fulfils, so the retriever does not care where vectors live."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import torch

from ..model.encoder import QueryEncoding, TextEncoding
from ..types import Document
from .filters import MetadataFilter

__all__ = ["Index", "IndexHit", "StoredTokens"]


@dataclass(frozen=True)
class IndexHit:
    """One search hit. Backends that read from snapshots also hand over the stored document and
    its token vectors, so the caller highlights exactly what was ranked even if a concurrent
    writer deletes it a moment later."""

    id: str
    score: float
    document: Document | None = field(default=None, compare=False, repr=False)
    tokens: StoredTokens | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class StoredTokens:
    """What highlighting needs of one stored document: its token vectors and character offsets
    (and how its rows split into model windows, so it can be stored elsewhere as it is)."""

    vectors: torch.Tensor  # [T, dim]
    offsets: torch.Tensor  # [T, 2] int32, -1 for special tokens
    relevance_vectors: torch.Tensor | None = None
    window_lengths: tuple[int, ...] = ()  # () for backends that do not record windows: one window

    def encoding(self) -> TextEncoding:
        """These tokens as a :class:`TextEncoding`: copy a document between indexes without re-encoding."""
        return TextEncoding(vectors=self.vectors, offsets=self.offsets, relevance_vectors=self.relevance_vectors,
                            window_lengths=self.window_lengths or (int(self.vectors.shape[0]),))


@runtime_checkable
class Index(Protocol):
    """A store of documents and their token vectors that answers exact or approximate MaxSim.

    Implementations upsert by id, keep documents and metadata next to the vectors, and persist
    to a directory. ``search`` returns hits best first; ``tokens`` serves highlighting of hits.
    """

    backend: str
    dim: int

    def __len__(self) -> int: ...
    def __contains__(self, doc_id: object) -> bool: ...
    def ids(self) -> list[str]: ...
    def add(self, documents: Sequence[Document], encodings: Sequence[TextEncoding]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def get(self, ids: Sequence[str]) -> list[Document]: ...
    def tokens(self, doc_id: str) -> StoredTokens: ...
    def search(self, query: QueryEncoding, k: int, *, filter: MetadataFilter | None = None) -> list[IndexHit]: ...
    def save(self, directory: Path) -> list[str]: ...
