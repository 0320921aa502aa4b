"""The default backend: exact MaxSim over token vectors held in memory, persisted with safetensors.

Layout: every document's windows are appended back to back into one ``[T, dim]`` matrix in a
16-bit float type, with a small table of window starts and owners. A search multiplies the query
with the matrix chunk by chunk (``[Lq, chunk]`` at a time: no per-query copy of the index) and
reduces each window's rows with a segmented max. Deletes leave tombstones that are compacted away
once they pass a quarter of the rows, and always before saving.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..errors import DocumentNotFoundError, DuplicateIdError, IndexCorruptedError, InvalidInputError, ModelMismatchError
from ..model.encoder import QueryEncoding, TextEncoding
from ..model.scoring import segment_max, similarity
from ..types import Document
from .base import IndexHit, StoredTokens
from .filters import MetadataFilter, compile_document_filter
from .lexical import DEFAULT_LEXICAL_FIELDS, LexicalTable, exact_phrases, lexical_values

__all__ = ["EmbeddedIndex"]

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
VECTORS_FILE = "vectors.safetensors"
DOCUMENTS_FILE = "documents.jsonl"


class _Rows:
    """A 2-D tensor that grows by appending rows with amortised O(1) copies."""

    def __init__(self, width: int, dtype: torch.dtype) -> None:
        self.data = torch.empty((0, width), dtype=dtype)
        self.n = 0

    def append(self, rows: torch.Tensor) -> None:
        need = self.n + rows.shape[0]
        if need > self.data.shape[0]:
            grown = torch.empty((max(need, 2 * self.data.shape[0], 1024), self.data.shape[1]), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n: need] = rows.to(self.data.dtype)
        self.n = need

    def view(self) -> torch.Tensor:
        return self.data[: self.n]

    def replace(self, rows: torch.Tensor) -> None:
        self.data = rows.to(self.data.dtype).contiguous()
        self.n = rows.shape[0]


class EmbeddedIndex:
    """Exact, in-process MaxSim index.

    Args:
        dim: token vector size of the model that fills it.
        relevance_dim: size of the relevance head's own vectors, or ``None`` (the default
            ``shared`` head stores nothing extra).
        dtype: storage type of vectors, ``"bfloat16"`` (default), ``"float16"`` or ``"float32"``.
        chunk_tokens: rows multiplied at once during search; bounds the temporary
            ``[query_len, chunk]`` score matrix.
        lexical_fields: metadata fields indexed for BM25 beside the text (hybrid and lexical
            search, see :mod:`fgr_retriever.index.lexical`). The BM25 table is built in memory
            the first time it is needed and then kept in step with every add and delete.

    >>> index = EmbeddedIndex(dim=128)
    >>> len(index)
    0
    """

    backend = "embedded"

    def __init__(self, *, dim: int, relevance_dim: int | None = None, dtype: str = "bfloat16",
                 chunk_tokens: int = 1 << 18, lexical_fields: Sequence[str] = DEFAULT_LEXICAL_FIELDS) -> None:
        if dtype not in _DTYPES:
            raise InvalidInputError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInputError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.relevance_dim = relevance_dim
        self.dtype = dtype
        self.chunk_tokens = int(chunk_tokens)
        self._vectors = _Rows(dim, _DTYPES[dtype])
        self._offsets = _Rows(2, torch.int32)
        self._relevance = _Rows(relevance_dim, _DTYPES[dtype]) if relevance_dim else None
        self._win_start: list[int] = []
        self._win_len: list[int] = []
        self._win_slot: list[int] = []
        self._docs: list[Document | None] = []  # slot -> document (None once deleted)
        self._slot_windows: list[tuple[int, int]] = []  # slot -> (first window, window count)
        self._slot_of: dict[str, int] = {}
        self._dead_rows = 0
        self._cache: dict[str, object] | None = None
        if isinstance(lexical_fields, str) or not all(isinstance(f, str) for f in lexical_fields):
            raise InvalidInputError("lexical_fields must be a list of metadata field names")
        self.lexical_fields = tuple(lexical_fields)
        self._lexical = LexicalTable()
        self._lex_conn: sqlite3.Connection | None = None  # built on first lexical use
        self._lex_lock = threading.Lock()
        self._lex_row: dict[str, int] = {}  # doc id -> FTS row id
        self._lex_id: dict[int, str] = {}
        self._lex_next = 1

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._slot_of

    def ids(self) -> list[str]:
        return [d.id for d in self._docs if d is not None]

    @property
    def num_tokens(self) -> int:
        return self._vectors.n - self._dead_rows

    def nbytes(self) -> int:
        """Bytes of stored token data (vectors, relevance vectors, offsets), tombstones excluded."""
        per_row = self.dim * self._vectors.data.element_size() + 2 * 4
        if self._relevance is not None:
            per_row += self.relevance_dim * self._relevance.data.element_size()
        return self.num_tokens * per_row

    def get(self, ids: Sequence[str]) -> list[Document]:
        missing = [i for i in ids if i not in self._slot_of]
        if missing:
            raise DocumentNotFoundError(missing)
        # copies: callers must not be able to change stored metadata (and what filters match)
        return [replace(self._docs[self._slot_of[i]], metadata=copy.deepcopy(dict(self._docs[self._slot_of[i]].metadata)))  # type: ignore[union-attr]
                for i in ids]

    # --------------------------------------------------------------- mutation
    def add(self, documents: Sequence[Document], encodings: Sequence[TextEncoding]) -> None:
        """Insert documents, replacing any stored under the same id."""
        if len(documents) != len(encodings):
            raise InvalidInputError(f"{len(documents)} documents but {len(encodings)} encodings")
        for enc in encodings:
            if enc.vectors.ndim != 2 or enc.vectors.shape[1] != self.dim:
                raise ModelMismatchError(f"vectors of size {tuple(enc.vectors.shape)[1:]} do not fit an index of dim {self.dim}")
            if (enc.relevance_vectors is None) != (self._relevance is None):
                raise ModelMismatchError("the model's relevance head and the index disagree on relevance vectors")
        if len({d.id for d in documents}) != len(documents):
            raise DuplicateIdError("the same id appears twice in one add(); ids must be unique")
        replaced = [d.id for d in documents if d.id in self._slot_of]
        if replaced:
            self.delete(replaced)
        for doc, enc in zip(documents, encodings):
            slot = len(self._docs)
            first = len(self._win_start)
            row = self._vectors.n
            for length in enc.window_lengths:
                self._win_start.append(row)
                self._win_len.append(length)
                self._win_slot.append(slot)
                row += length
            self._vectors.append(enc.vectors)
            self._offsets.append(enc.offsets.to(torch.int32))
            if self._relevance is not None:
                self._relevance.append(enc.relevance_vectors)  # type: ignore[arg-type]
            self._docs.append(doc)
            self._slot_windows.append((first, len(enc.window_lengths)))
            self._slot_of[doc.id] = slot
        if self._lex_conn is not None:
            self._lexical_insert(list(documents))
        self._cache = None

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents; unknown ids raise :class:`DocumentNotFoundError` and delete nothing."""
        missing = [i for i in ids if i not in self._slot_of]
        if missing:
            raise DocumentNotFoundError(missing)
        if self._lex_conn is not None:
            self._lexical_remove(list(dict.fromkeys(ids)))
        for doc_id in dict.fromkeys(ids):
            slot = self._slot_of.pop(doc_id)
            self._docs[slot] = None
            first, count = self._slot_windows[slot]
            self._dead_rows += sum(self._win_len[first: first + count])
        self._cache = None
        if self._dead_rows > self._vectors.n // 4:
            self.compact()

    def compact(self) -> None:
        """Drop the rows of deleted documents (order of live documents is kept)."""
        if not self._dead_rows and len(self._docs) == len(self._slot_of):
            return
        keep_rows: list[torch.Tensor] = []
        win_start, win_len, win_slot, slot_windows, docs = [], [], [], [], []
        row = 0
        for slot, doc in enumerate(self._docs):
            if doc is None:
                continue
            first, count = self._slot_windows[slot]
            a = self._win_start[first]
            b = self._win_start[first + count - 1] + self._win_len[first + count - 1]
            keep_rows.append(torch.arange(a, b))
            slot_windows.append((len(win_start), count))
            for w in range(first, first + count):
                win_start.append(row)
                win_len.append(self._win_len[w])
                win_slot.append(len(docs))
                row += self._win_len[w]
            docs.append(doc)
        rows = torch.cat(keep_rows) if keep_rows else torch.zeros(0, dtype=torch.long)
        self._vectors.replace(self._vectors.view()[rows])
        self._offsets.replace(self._offsets.view()[rows])
        if self._relevance is not None:
            self._relevance.replace(self._relevance.view()[rows])
        self._win_start, self._win_len, self._win_slot = win_start, win_len, win_slot
        self._docs, self._slot_windows = docs, slot_windows
        self._slot_of = {d.id: i for i, d in enumerate(docs)}
        self._dead_rows = 0
        self._cache = None

    # ------------------------------------------------------------------ search
    def _arrays(self) -> dict[str, object]:
        if self._cache is None:
            starts = np.asarray(self._win_start, dtype=np.int64)
            lengths = np.asarray(self._win_len, dtype=np.int64)
            ends = starts + lengths
            chunks = []  # (first window, end window, first row, end row), window-aligned
            w0 = 0
            while w0 < len(starts):
                w1 = max(w0 + 1, int(np.searchsorted(ends, starts[w0] + self.chunk_tokens, side="right")))
                chunks.append((w0, w1, int(starts[w0]), int(ends[w1 - 1])))
                w0 = w1
            self._cache = {
                "starts": starts,
                "slots": np.asarray(self._win_slot, dtype=np.int64),
                "alive": np.asarray([d is not None for d in self._docs], dtype=bool),
                "chunks": chunks,
            }
        return self._cache

    def search(self, query: QueryEncoding, k: int, *, filter: MetadataFilter | None = None) -> list[IndexHit]:
        """Top-``k`` documents by exact MaxSim (a long document scores as its best window)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        if query.vectors.shape[-1] != self.dim:
            raise ModelMismatchError(f"query vectors have dim {query.vectors.shape[-1]}, the index has {self.dim}")
        if not self._slot_of:
            return []
        arrays = self._arrays()
        starts = arrays["starts"]
        vectors = self._vectors.view()
        q = query.vectors.detach().to("cpu", vectors.dtype)
        win_scores = np.empty(len(starts), dtype=np.float32)
        with torch.inference_mode():
            for w0, w1, r0, r1 in arrays["chunks"]:  # type: ignore[union-attr]
                sim_t = similarity(q, vectors[r0:r1])
                win_scores[w0:w1] = segment_max(sim_t, starts[w0:w1] - r0).sum(axis=0)
        doc_scores = np.full(len(self._docs), -np.inf, dtype=np.float32)
        np.maximum.at(doc_scores, arrays["slots"], win_scores)
        allowed = arrays["alive"].copy()
        if filter is not None:
            match = compile_document_filter(filter)
            for slot in np.flatnonzero(allowed):
                allowed[slot] = match(self._docs[slot])  # type: ignore[arg-type]
        doc_scores[~allowed] = -np.inf
        n = int(allowed.sum())
        if n == 0:
            return []
        k = min(k, n)
        top = np.argpartition(-doc_scores, k - 1)[:k]
        top = top[np.argsort(-doc_scores[top], kind="stable")]
        return [IndexHit(id=self._docs[s].id, score=float(doc_scores[s])) for s in top]  # type: ignore[union-attr]

    def tokens(self, doc_id: str) -> StoredTokens:
        if doc_id not in self._slot_of:
            raise DocumentNotFoundError([doc_id])
        first, count = self._slot_windows[self._slot_of[doc_id]]
        a = self._win_start[first]
        b = self._win_start[first + count - 1] + self._win_len[first + count - 1]
        return StoredTokens(
            vectors=self._vectors.view()[a:b],
            offsets=self._offsets.view()[a:b],
            relevance_vectors=None if self._relevance is None else self._relevance.view()[a:b],
            window_lengths=tuple(self._win_len[first: first + count]),
        )

    # ----------------------------------------------------------------- lexical
    def _lexical_insert(self, docs: Sequence[Document]) -> None:
        rows = []
        for doc in docs:
            row = self._lex_next
            self._lex_next += 1
            self._lex_row[doc.id], self._lex_id[row] = row, doc.id
            rows.append((row, *lexical_values(doc.text, doc.metadata, self.lexical_fields)))
        LexicalTable.insert(self._lex_conn, rows)  # type: ignore[arg-type]

    def _lexical_remove(self, ids: Sequence[str]) -> None:
        rows = []
        for doc_id in ids:
            row = self._lex_row.pop(doc_id)
            del self._lex_id[row]
            doc = self._docs[self._slot_of[doc_id]]
            rows.append((row, *lexical_values(doc.text, doc.metadata, self.lexical_fields)))  # type: ignore[union-attr]
        LexicalTable.remove(self._lex_conn, rows)  # type: ignore[arg-type]

    def _lexical_conn(self) -> sqlite3.Connection:
        if self._lex_conn is None:
            # one private in-memory database; the lock serialises the threads that share it
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            LexicalTable.create(conn)
            self._lex_conn = conn
            self._lexical_insert([d for d in self._docs if d is not None])
        return self._lex_conn

    def _lexical_ok(self, doc_id: str, match) -> bool:
        return match is None or match(self._docs[self._slot_of[doc_id]])

    def lexical_search(self, query: str, k: int, *, filter: MetadataFilter | None = None) -> list[tuple[str, float]]:
        """The ``k`` best documents for ``query`` by BM25 alone, as ``(id, score)``, best first."""
        match = compile_document_filter(filter) if filter is not None else None
        out: list[tuple[str, float]] = []
        with self._lex_lock, contextlib.closing(  # the statement must not outlive the lock
                self._lexical.iter_search(self._lexical_conn(), query, limit=None if match else k)) as rows:
            for row, score in rows:
                doc_id = self._lex_id.get(row)
                if doc_id is not None and self._lexical_ok(doc_id, match):
                    out.append((doc_id, score))
                    if len(out) >= k:
                        break
        return out

    def lexical_scores(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """BM25 of the given documents for ``query`` (0 for those that match no query word)."""
        with self._lex_lock:
            conn = self._lexical_conn()
            rows = [self._lex_row[i] for i in ids if i in self._lex_row]
            found = self._lexical.scores(conn, query, rows)
        return {i: found.get(self._lex_row.get(i, -1), 0.0) for i in ids}

    def exact_matches(self, query: str, *, max_docs: int = 10, filter: MetadataFilter | None = None) -> list[str]:
        """Documents that contain an identifier or quoted phrase of ``query`` held by at most
        ``max_docs`` documents (see :func:`~fgr_retriever.index.lexical.exact_phrases`)."""
        phrases = exact_phrases(query)
        if not phrases:
            return []
        match = compile_document_filter(filter) if filter is not None else None
        with self._lex_lock:
            found = LexicalTable.exact_matches(self._lexical_conn(), phrases, max_rows=max_docs)
            ids = [self._lex_id[r] for rows in found.values() for r in rows if r in self._lex_id]
            return [i for i in dict.fromkeys(ids) if self._lexical_ok(i, match)]

    # ------------------------------------------------------------- persistence
    def save(self, directory: Path) -> list[str]:
        """Write ``vectors.safetensors`` and ``documents.jsonl`` into ``directory``; returns names."""
        self.compact()
        tensors = {
            "vectors": self._vectors.view().contiguous(),
            "offsets": self._offsets.view().contiguous(),
            "window_lengths": torch.tensor(self._win_len, dtype=torch.int64),
            "window_doc": torch.tensor(self._win_slot, dtype=torch.int64),
        }
        if self._relevance is not None:
            tensors["relevance_vectors"] = self._relevance.view().contiguous()
        save_file(tensors, str(directory / VECTORS_FILE),
                  metadata={"dim": str(self.dim), "dtype": self.dtype, "backend": self.backend,
                            "lexical_fields": json.dumps(list(self.lexical_fields))})
        with open(directory / DOCUMENTS_FILE, "w", encoding="utf-8") as fh:
            for doc in self._docs:
                fh.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")  # type: ignore[union-attr]
        return [VECTORS_FILE, DOCUMENTS_FILE]

    @classmethod
    def load(cls, directory: Path, *, chunk_tokens: int = 1 << 18) -> EmbeddedIndex:
        """Read an index written by :meth:`save`, checking that its parts agree with each other."""
        path = directory / VECTORS_FILE
        try:
            tensors = load_file(str(path))
        except FileNotFoundError:
            raise IndexCorruptedError(f"{path} is missing") from None
        except (SafetensorError, OSError, ValueError) as exc:
            raise IndexCorruptedError(f"{path} is unreadable: {exc}") from None
        docs: list[Document] = []
        try:
            with open(directory / DOCUMENTS_FILE, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    try:
                        docs.append(Document.from_dict(json.loads(line)))
                    except (ValueError, KeyError, TypeError, AttributeError) as exc:
                        raise IndexCorruptedError(f"{directory / DOCUMENTS_FILE} line {n} is damaged: {exc}") from None
        except FileNotFoundError:
            raise IndexCorruptedError(f"{directory / DOCUMENTS_FILE} is missing") from None
        except UnicodeDecodeError as exc:
            raise IndexCorruptedError(f"{directory / DOCUMENTS_FILE} is not UTF-8: {exc}") from None
        need = {"vectors", "offsets", "window_lengths", "window_doc"}
        if not need <= set(tensors):
            raise IndexCorruptedError(f"{path} lacks {sorted(need - set(tensors))}")
        vectors, offsets = tensors["vectors"], tensors["offsets"]
        lengths, owner = tensors["window_lengths"], tensors["window_doc"]
        problems = []
        if vectors.ndim != 2 or offsets.shape != (vectors.shape[0], 2):
            problems.append("vectors and offsets disagree")
        if int(lengths.sum()) != vectors.shape[0] or (lengths < 1).any():
            problems.append("window lengths do not add up to the stored rows")
        if owner.shape != lengths.shape or (owner.numel() and (owner.diff() < 0).any()):
            problems.append("window owners are not in document order")
        if owner.numel() and (int(owner.max()) >= len(docs) or int(owner.min()) < 0):
            problems.append("windows point at documents that are not in documents.jsonl")
        if len(set(owner.tolist())) != len(docs):
            problems.append("some documents have no vectors")
        if len({d.id for d in docs}) != len(docs):
            problems.append("duplicate document ids")
        if problems:
            raise IndexCorruptedError(f"{directory}: " + "; ".join(problems))
        dtype = next((name for name, t in _DTYPES.items() if t == vectors.dtype), None)
        if dtype is None:
            raise IndexCorruptedError(f"{path}: unsupported vector dtype {vectors.dtype}")
        rel = tensors.get("relevance_vectors")
        with safe_open(str(path), "pt") as fh:  # files saved before hybrid search have no lexical_fields
            header = fh.metadata() or {}
        try:
            fields = json.loads(header["lexical_fields"]) if "lexical_fields" in header else DEFAULT_LEXICAL_FIELDS
        except json.JSONDecodeError:
            raise IndexCorruptedError(f"{path}: damaged lexical_fields in the header") from None
        index = cls(dim=int(vectors.shape[1]), relevance_dim=None if rel is None else int(rel.shape[1]),
                    dtype=dtype, chunk_tokens=chunk_tokens, lexical_fields=fields)
        index._vectors.replace(vectors)
        index._offsets.replace(offsets)
        if rel is not None:
            index._relevance.replace(rel)  # type: ignore[union-attr]
        lens = lengths.tolist()
        index._win_len = lens
        index._win_start = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64).tolist() if lens else []
        index._win_slot = owner.tolist()
        index._docs = list(docs)
        counts = np.bincount(owner.numpy(), minlength=len(docs)) if lens else np.zeros(len(docs), dtype=np.int64)
        firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(docs) else []
        index._slot_windows = [(int(f), int(c)) for f, c in zip(firsts, counts)]
        index._slot_of = {d.id: i for i, d in enumerate(docs)}
        return index
