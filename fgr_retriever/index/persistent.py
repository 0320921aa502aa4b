"""``PersistentIndex``: a durable on-disk index with incremental writes, snapshot reads and
approximate MaxSim search.

Layout of an index directory::

    index.json            what the directory is and which model built it (written once)
    catalog.sqlite        documents, versions, segments, quantiser parts (SQLite, WAL)
    write.lock            held by the one writer (``flock``), across threads and processes
    segments/seg-*.safetensors   immutable token vectors of each write, memory-mapped
    ann/template-*.faiss, ann/part-*.faiss   trained quantiser and its code parts (optional)

Guarantees are stated in docs/index-engine.md. In short: a write (add, delete, optimize) is one
SQLite transaction naming files that are already durable, so a crash at any instant leaves the
previous or the new state; readers see the last committed generation and never block the
writer; files no transaction names are removed the next time a writer is free.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .._io import _as_if_created_normally, _fsync_dir, atomic_write_text
from ..errors import (
    DocumentNotFoundError,
    DuplicateIdError,
    FGRError,
    IndexCorruptedError,
    IndexNotFoundError,
    IndexStoreError,
    InvalidInputError,
    ModelMismatchError,
)
from ..model.encoder import QueryEncoding, TextEncoding
from ..model.scoring import segment_max, similarity
from ..types import Document
from ..validation import check_encodable
from . import ann as quantiser
from .base import IndexHit, StoredTokens
from .catalog import CATALOG_FILE, SCHEMA_VERSION, chunks, connect, create_schema, read_meta
from .lexical import DEFAULT_LEXICAL_FIELDS, LexicalTable, exact_phrases, lexical_values
from .filters import MetadataFilter, compile_document_filter
from .segments import Segment, check_file_name, write_segment

try:  # the writer lock; POSIX only (Linux, macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PersistentIndex", "INDEX_MANIFEST", "PERSISTENT_VERSION"]

INDEX_MANIFEST = "index.json"
PERSISTENT_VERSION = 2
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "int8": torch.int8}
_LOCK_FILE = "write.lock"
_SEGMENTS = "segments"
_ANN = "ann"
_SEGMENT_MAX_ROWS = 1 << 21  # merged segments stay ~1.6 GB at 384-d bf16


def _try_flock(fd: int) -> bool:
    """Take the exclusive writer lock without waiting; ``False`` when another holder has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class _Stale(Exception):
    """The snapshot a search started from was reorganised underneath it; search again."""


@dataclass(frozen=True)
class _State:
    """One committed generation, as arrays over its live entries (ascending ``seq``)."""

    generation: int
    layout: int
    seq: np.ndarray  # int64
    segment: np.ndarray  # int64 segment id
    row: np.ndarray  # int64 first row in the segment
    rows: np.ndarray  # int64
    windows: tuple[tuple[int, ...], ...]
    ids: tuple[str, ...]
    position: Mapping[str, int]  # doc id -> position in the arrays
    segments: Mapping[int, Segment]
    parts: tuple[Any, ...] = ()  # quantiser parts; empty: search exactly
    covered_upto: int = 0  # entries with seq <= this are in the quantiser parts
    params: quantiser.AnnParams | None = None  # search settings of the parts (with the caller's overrides)
    plans: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # segment -> exact-scan plan

    @property
    def tokens(self) -> int:
        return int(self.rows.sum())


class PersistentIndex:
    """A durable index in a directory: SQLite catalogue + immutable memory-mapped vector segments.

    Opening a directory that holds an index reads it; opening a missing or empty directory
    creates one (``dim`` is then required). Writes go to disk when they return: there is no
    ``save()`` to remember (``save(dir)`` still exports a portable copy). Any number of readers,
    in threads and processes, may search while one writer adds or deletes; each search sees one
    committed generation.

    Args:
        path: the index directory.
        dim: token vector size (required to create; checked against the index otherwise).
        relevance_dim: size of the relevance head's own vectors, or ``None``.
        dtype: storage type of the vectors: ``"bfloat16"`` (default), ``"float16"``, ``"float32"``
            or ``"int8"`` (one float32 scale per token: half the disk of bf16; measured in
            ``benchmarks/experiments/int8_rescoring.py`` to rank as bf16 does).
        model: what :class:`FGRRetriever` records about the model (written to ``index.json``).
        create: ``False`` raises :class:`IndexNotFoundError` instead of creating.
        approximate: ``"auto"`` (default) trains a faiss IVF-PQ quantiser once the index holds
            ``ann_min_tokens`` token vectors (and stays exact below, or without faiss installed);
            ``True`` requires faiss; ``False`` always scans exactly.
        ann: overrides of :class:`~fgr_retriever.index.ann.AnnParams` (``nlist``, ``code_bytes``,
            ``nprobe``, ``neighbours``, ``candidates``, ``train_tokens``).
        ann_min_tokens: stored token vectors before a quantiser is trained.
        fresh_max_tokens: token vectors written since the last quantiser update that are scanned
            exactly before they are folded into a new quantiser part.
        auto_optimize: merge segments and fold fresh vectors automatically after writes.
        lock_timeout: seconds a writer waits for another writer before :class:`IndexStoreError`.

    >>> import tempfile, torch
    >>> from fgr_retriever.model.encoder import TextEncoding
    >>> from fgr_retriever.types import Document
    >>> index = PersistentIndex(tempfile.mkdtemp() + "/idx", dim=4)
    >>> vec = torch.nn.functional.normalize(torch.ones(2, 4), dim=-1)
    >>> index.add([Document(id="a", text="hello world")],
    ...           [TextEncoding(vectors=vec, offsets=torch.tensor([[0, 5], [6, 11]]), window_lengths=(2,))])
    >>> len(index), index.ids()
    (1, ['a'])
    """

    backend = "persistent"

    def __init__(self, path: str | os.PathLike[str], *, dim: int | None = None, relevance_dim: int | None = None,
                 dtype: str = "bfloat16", model: Mapping[str, Any] | None = None, create: bool = True,
                 approximate: bool | str = "auto", ann: Mapping[str, Any] | None = None,
                 ann_min_tokens: int = 1 << 19, fresh_max_tokens: int = 1 << 18, auto_optimize: bool = True,
                 lock_timeout: float = 60.0, chunk_tokens: int = 1 << 18,
                 lexical_fields: Sequence[str] = DEFAULT_LEXICAL_FIELDS) -> None:
        if approximate not in ("auto", True, False):
            raise InvalidInputError(f"approximate must be 'auto', True or False, got {approximate!r}")
        if dtype not in _DTYPES:
            raise InvalidInputError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        if approximate is True:
            quantiser.require_faiss()  # fail now, not at the first quantiser build
        self.path = Path(path)
        self.approximate = approximate
        self.ann_overrides = dict(ann or {})
        self.ann_min_tokens = int(ann_min_tokens)
        self.fresh_max_tokens = int(fresh_max_tokens)
        self.auto_optimize = auto_optimize
        self.lock_timeout = float(lock_timeout)
        self.chunk_tokens = int(chunk_tokens)
        self._local = threading.local()
        self._write_guard = threading.RLock()
        self._writer_depth = 0  # nesting of _writer() in the thread that holds _write_guard
        self._refresh_guard = threading.Lock()
        self._state: _State | None = None
        self._segments: dict[int, Segment] = {}
        self._parts: dict[str, Any] = {}
        self._closed = False
        self._warned_exact = False
        self._lexical = LexicalTable()
        if isinstance(lexical_fields, str) or not all(isinstance(f, str) for f in lexical_fields):
            raise InvalidInputError("lexical_fields must be a list of metadata field names")
        if not (self.path / CATALOG_FILE).exists():
            if not create:
                raise IndexNotFoundError(f"no fgr-retriever index at {self.path} (expected {self.path / CATALOG_FILE})")
            if dim is None:
                raise InvalidInputError("dim is required to create a new index")
            self._create(dim=dim, relevance_dim=relevance_dim, dtype=dtype, model=dict(model or {}),
                         lexical_fields=list(lexical_fields))
        meta = read_meta(self._conn())
        if meta.get("schema_version") != SCHEMA_VERSION:
            meta = self._upgrade(list(lexical_fields))
        try:
            self.dim = int(meta["dim"])
            self.relevance_dim = None if meta.get("relevance_dim") is None else int(meta["relevance_dim"])
            self.dtype = str(meta["dtype"])
        except (KeyError, TypeError, ValueError):
            raise IndexCorruptedError(f"{self.path / CATALOG_FILE}: damaged settings") from None
        if self.dtype not in _DTYPES:
            raise IndexCorruptedError(f"{self.path}: unsupported vector dtype {self.dtype!r}")
        if dim is not None and dim != self.dim:
            raise ModelMismatchError(f"{self.path} holds {self.dim}-d vectors, not {dim}-d")
        if relevance_dim != self.relevance_dim and dim is not None:
            raise ModelMismatchError("the model's relevance head and the index disagree on relevance vectors")
        fields = meta.get("lexical_fields")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise IndexCorruptedError(f"{self.path / CATALOG_FILE}: damaged lexical_fields setting")
        # the index keeps the fields it was built with: BM25 rows must be removed with the values
        # they were inserted with
        self.lexical_fields = tuple(fields)
        self._remove_orphans()
        self._current()

    # ------------------------------------------------------------ plumbing
    def _create(self, *, dim: int, relevance_dim: int | None, dtype: str, model: dict[str, Any],
                lexical_fields: list[str]) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise InvalidInputError(f"dim must be a positive int, got {dim!r}")
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise IndexStoreError(f"{self.path} exists and is not an empty directory; choose a new path")
        parent = self.path.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        # built aside and renamed into place: a crash never leaves a half-created index at the path
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.tmp-", dir=parent))
        try:
            (tmp / _SEGMENTS).mkdir()
            (tmp / _ANN).mkdir()
            (tmp / _LOCK_FILE).touch()
            conn = sqlite3.connect(str(tmp / CATALOG_FILE), isolation_level=None)
            try:
                create_schema(conn, {"dim": dim, "relevance_dim": relevance_dim, "dtype": dtype,
                                     "lexical_fields": lexical_fields})
            finally:
                conn.close()
            manifest = {"format": "fgr-retriever-index", "version": PERSISTENT_VERSION, "backend": self.backend,
                        "catalog": CATALOG_FILE, "model": model}
            atomic_write_text(tmp / INDEX_MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            for p in [tmp, tmp / _SEGMENTS, tmp / _ANN]:
                _as_if_created_normally(p, directory=True)
            for p in [tmp / _LOCK_FILE, tmp / CATALOG_FILE]:
                _as_if_created_normally(p, directory=False)
            try:
                os.rename(tmp, self.path)  # replaces a missing or empty directory atomically
            except OSError:
                if not (self.path / CATALOG_FILE).exists():  # not another process creating it first
                    raise
            _fsync_dir(parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _upgrade(self, lexical_fields: list[str]) -> dict[str, Any]:
        """Bring a version-1 catalogue to version 2: build the BM25 table from the live documents,
        in one transaction (an older fgr-retriever then refuses the index instead of writing to it
        without keeping BM25 in step)."""
        with self._writer() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                meta = read_meta(conn)
                if meta.get("schema_version") == SCHEMA_VERSION:  # another process upgraded it first
                    conn.execute("COMMIT")
                    return meta
                LexicalTable.create(conn)
                rows = conn.execute("SELECT seq, text, metadata FROM entries WHERE deleted_gen IS NULL")
                LexicalTable.insert(conn, (self._lexical_row(seq, text, metadata, lexical_fields)
                                           for seq, text, metadata in rows))
                for key, value in (("schema_version", SCHEMA_VERSION), ("lexical_fields", lexical_fields)):
                    conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return read_meta(conn)

    def _lexical_row(self, seq: int, text: str, metadata: str, fields: Sequence[str] | None = None) -> tuple:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError:
            raise IndexCorruptedError(f"{self.path}: damaged metadata of entry {seq}") from None
        return (seq, *lexical_values(text, meta, self.lexical_fields if fields is None else fields))

    def _lexical_forget(self, conn: sqlite3.Connection, ids: Sequence[str]) -> None:
        """Remove the live versions of ``ids`` from the BM25 table (inside the caller's transaction)."""
        for batch in chunks(ids):
            rows = conn.execute(f"SELECT seq, text, metadata FROM entries WHERE deleted_gen IS NULL AND doc_id IN "
                                f"({','.join('?' * len(batch))})", batch).fetchall()
            LexicalTable.remove(conn, [self._lexical_row(*r) for r in rows])

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise IndexStoreError(f"the index at {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path / CATALOG_FILE, timeout=self.lock_timeout)
        return conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees the same committed state."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _writer(self) -> Iterator[sqlite3.Connection]:
        """The single-writer section: a thread lock plus an exclusive ``flock`` across processes."""
        if not self._write_guard.acquire(timeout=self.lock_timeout):
            raise IndexStoreError(f"another thread kept the index at {self.path} busy for {self.lock_timeout:.0f} s")
        fd = None
        self._writer_depth += 1
        try:
            # flock conflicts between two descriptors of one process: only the outermost takes it
            if fcntl is not None and self._writer_depth == 1:
                fd = self._open_lock()
                deadline = time.monotonic() + self.lock_timeout
                while not _try_flock(fd):
                    if time.monotonic() > deadline:
                        raise IndexStoreError(f"another process kept writing to {self.path} for "
                                              f"{self.lock_timeout:.0f} s")
                    time.sleep(0.01)
            yield self._conn()
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock
            self._writer_depth -= 1
            self._write_guard.release()

    def _open_lock(self) -> int:
        return os.open(self.path / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)

    def _remove_orphans(self) -> None:
        """Delete files no committed transaction names (killed writes, replaced segments)."""
        if fcntl is None:
            return
        fd = self._open_lock()
        try:
            if not _try_flock(fd):
                return  # a writer is active: its new files are not orphans yet
            with self._read() as conn:
                named = {r[0] for r in conn.execute("SELECT file FROM segments")}
                named |= {r[0] for r in conn.execute("SELECT file FROM ann_parts")}
                meta = read_meta(conn)
            if meta.get("ann_template"):
                named.add(meta["ann_template"])
            for folder in (_SEGMENTS, _ANN):
                for f in (self.path / folder).iterdir():
                    if f.name not in named and f.is_file():
                        with contextlib.suppress(OSError):
                            f.unlink()
        finally:
            os.close(fd)

    # ------------------------------------------------------------ snapshots
    def _current(self) -> _State:
        """The state of the last committed generation (re-read only when it changed)."""
        for attempt in range(5):
            try:
                return self._refresh()
            except IndexCorruptedError:
                # a file named by a snapshot we read vanished because an optimize committed in
                # between: read again; a file that stays missing is real damage
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _refresh(self) -> _State:
        conn = self._conn()
        row = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'layout')").fetchall())
        st = self._state
        if st is not None and json.loads(row["generation"]) == st.generation and json.loads(row["layout"]) == st.layout:
            return st
        with self._refresh_guard:
            st = self._state
            with self._read() as conn:
                meta = read_meta(conn)
                gen, layout = int(meta["generation"]), int(meta["layout"])
                if st is not None and gen == st.generation and layout == st.layout:
                    return st
                # what every state of this generation shares, whatever the documents
                shared = {"segments": self._open_segments(conn), **self._open_parts(conn, meta)}
                if st is None or layout != st.layout:
                    new = self._full_state(conn, gen, layout, shared)
                else:
                    new = self._incremental_state(conn, st, gen, shared)
            self._state = new
            return new

    def _open_segments(self, conn: sqlite3.Connection) -> dict[int, Segment]:
        rows = conn.execute("SELECT id, file, bytes FROM segments").fetchall()
        opened = {}
        for seg_id, name, size in rows:
            seg = self._segments.get(seg_id)
            if seg is None:
                seg = Segment(check_file_name(name, self.path / _SEGMENTS), expected_bytes=size)
            opened[seg_id] = seg
        self._segments = opened
        return opened

    def _open_parts(self, conn: sqlite3.Connection, meta: Mapping[str, Any]) -> dict[str, Any]:
        """The quantiser parts to search (none when exact), how far they cover, and their settings."""
        rows = conn.execute("SELECT file, last_seq FROM ann_parts ORDER BY id").fetchall()
        if rows and self.approximate is False:
            rows = []  # exact on request: the quantiser files are not even opened
        if rows and not self._faiss_ok():
            if self.approximate is True:
                quantiser.require_faiss()  # raises, naming the extra
            if not self._warned_exact:
                self._warned_exact = True
                warnings.warn(f"{self.path} has an approximate-search quantiser but faiss-cpu is not installed; "
                              'searching exactly (slower). pip install "fgr-retriever[ann]"', stacklevel=4)
            rows = []
        if not rows:
            self._parts = {}
            return {"parts": (), "covered_upto": 0, "params": None}
        opened = {}
        for name, _ in rows:
            opened[name] = self._parts.get(name) or quantiser.read_part(check_file_name(name, self.path / _ANN))
        self._parts = opened
        at_query = {k: v for k, v in self.ann_overrides.items() if k in ("nprobe", "neighbours", "candidates")}
        return {"parts": tuple(opened[name] for name, _ in rows), "covered_upto": max(last for _, last in rows),
                "params": quantiser.AnnParams(**{**meta["ann_params"], **at_query})}

    _COLUMNS = "seq, doc_id, segment, row, rows, windows"

    def _full_state(self, conn, gen, layout, shared) -> _State:
        rows = conn.execute(f"SELECT {self._COLUMNS} FROM entries WHERE deleted_gen IS NULL ORDER BY seq").fetchall()
        empty = _State(generation=gen, layout=layout, seq=np.zeros(0, dtype=np.int64),
                       segment=np.zeros(0, dtype=np.int64), row=np.zeros(0, dtype=np.int64),
                       rows=np.zeros(0, dtype=np.int64), windows=(), ids=(), position={}, segments={})
        return self._extend(empty, gen, rows, shared, keep=None)

    def _incremental_state(self, conn, st: _State, gen, shared) -> _State:
        """Catch up from ``st``: only rows added or deleted since its generation are read, and the
        arrays are masked and extended (numpy and C-level copies; no Python loop over the corpus)."""
        added = conn.execute(f"SELECT {self._COLUMNS} FROM entries WHERE added_gen > ? AND deleted_gen IS NULL "
                             "ORDER BY seq", (st.generation,)).fetchall()
        gone = [r[0] for r in conn.execute("SELECT seq FROM entries WHERE deleted_gen > ?", (st.generation,))]
        keep = ~np.isin(st.seq, np.asarray(gone, dtype=np.int64)) if gone else None
        return self._extend(st, gen, added, shared, keep=keep)

    def _extend(self, st: _State, gen, added, shared, *, keep: np.ndarray | None) -> _State:
        added = [self._parse(r) for r in added]
        n = len(added)
        new_seq = np.fromiter((r[0] for r in added), dtype=np.int64, count=n)
        new_seg = np.fromiter((r[2] for r in added), dtype=np.int64, count=n)
        new_first = np.fromiter((r[3] for r in added), dtype=np.int64, count=n)
        new_count = np.fromiter((r[4] for r in added), dtype=np.int64, count=n)
        for r in added:  # structural checks: a damaged catalogue must not index out of bounds
            seg = shared["segments"].get(r[2])
            if seg is None or r[3] < 0 or r[3] + r[4] > seg.rows or sum(r[5]) != r[4]:
                raise IndexCorruptedError(f"{self.path}: entry {r[0]} points outside its segment")
        if keep is None:
            ids, windows = st.ids, st.windows
            position = dict(st.position)
            arrays = (st.seq, st.segment, st.row, st.rows)
        else:
            ids, windows = tuple(compress(st.ids, keep)), tuple(compress(st.windows, keep))
            position = {d: i for i, d in enumerate(ids)}
            arrays = (st.seq[keep], st.segment[keep], st.row[keep], st.rows[keep])
        base = len(ids)
        position.update((r[1], base + j) for j, r in enumerate(added))
        seq, seg, first, count = (np.concatenate([a, b]) for a, b in zip(arrays, (new_seq, new_seg, new_first, new_count)))
        return _State(generation=gen, layout=st.layout, seq=seq, segment=seg, row=first,
                      rows=count, windows=windows + tuple(r[5] for r in added), ids=ids + tuple(r[1] for r in added),
                      position=position, **shared)

    @staticmethod
    def _parse(r: tuple) -> tuple:
        try:
            windows = tuple(int(w) for w in r[5].split(","))
        except (AttributeError, ValueError):
            raise IndexCorruptedError(f"entry {r[0]}: damaged window lengths {r[5]!r}") from None
        return (r[0], r[1], r[2], r[3], r[4], windows)

    # ------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self._current().ids)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._current().position

    def ids(self) -> list[str]:
        return list(self._current().ids)

    @property
    def num_tokens(self) -> int:
        return self._current().tokens

    @property
    def generation(self) -> int:
        return self._current().generation

    def stats(self) -> dict[str, Any]:
        """Counts for monitoring: documents, tokens, segments, quantiser coverage, bytes on disk."""
        st = self._current()
        disk = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        fresh = int(st.rows[st.seq > st.covered_upto].sum()) if st.parts else st.tokens
        return {"documents": len(st.ids), "tokens": st.tokens, "segments": len(st.segments),
                "quantiser_parts": len(st.parts), "exact_tokens": fresh, "generation": st.generation,
                "disk_bytes": disk}

    def _documents_by_seq(self, conn, seqs: Sequence[int]) -> dict[int, Document]:
        out: dict[int, Document] = {}
        for batch in chunks([int(s) for s in seqs]):
            q = f"SELECT seq, doc_id, text, metadata FROM entries WHERE seq IN ({','.join('?' * len(batch))})"
            for seq, doc_id, text, metadata in conn.execute(q, batch):
                try:
                    out[seq] = Document(id=doc_id, text=text, metadata=json.loads(metadata))
                except json.JSONDecodeError:
                    raise IndexCorruptedError(f"{self.path}: damaged metadata of {doc_id!r}") from None
        return out

    def get(self, ids: Sequence[str]) -> list[Document]:
        for _ in range(5):
            st = self._current()
            missing = [i for i in ids if i not in st.position]
            if missing:
                raise DocumentNotFoundError(missing)
            seqs = [int(st.seq[st.position[i]]) for i in ids]
            with self._read() as conn:
                found = self._documents_by_seq(conn, seqs)
            if len(found) == len(set(seqs)):
                return [found[s] for s in seqs]
            self._state = None  # replaced or purged after our snapshot: read the new one
        raise IndexStoreError(f"{self.path} kept changing while documents were read; try again")

    @property
    def _compute_dtype(self) -> torch.dtype:
        """The type queries are multiplied in: the storage type, or float32 for int8 codes."""
        return torch.float32 if self.dtype == "int8" else _DTYPES[self.dtype]

    def _pack(self, vectors: torch.Tensor) -> dict[str, torch.Tensor]:
        """Token vectors in the storage type (int8: symmetric per-token codes plus their scale)."""
        if self.dtype != "int8":
            return {"vectors": vectors.to(_DTYPES[self.dtype])}
        v = vectors.float()
        scale = v.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        return {"vectors": torch.round(v / scale[:, None]).clamp(-127, 127).to(torch.int8), "scales": scale}

    @staticmethod
    def _unpack(seg: Segment, vectors: torch.Tensor, a: int, b: int, *, mapped: bool = False) -> torch.Tensor:
        if vectors.dtype != torch.int8:
            return vectors
        scales = seg.tensor("scales")[a:b] if mapped else seg.read("scales", a, b)
        return vectors.float() * scales[:, None]

    def _tokens_at(self, st: _State, i: int) -> StoredTokens:
        seg = st.segments[int(st.segment[i])]
        a, b = int(st.row[i]), int(st.row[i] + st.rows[i])
        rel = seg.read("relevance_vectors", a, b) if seg.get("relevance_vectors") is not None else None
        return StoredTokens(vectors=self._vectors_at(st, i), offsets=seg.read("offsets", a, b),
                            relevance_vectors=rel, window_lengths=st.windows[i])

    def _vectors_at(self, st: _State, i: int) -> torch.Tensor:
        seg = st.segments[int(st.segment[i])]
        a, b = int(st.row[i]), int(st.row[i] + st.rows[i])
        return self._unpack(seg, seg.read("vectors", a, b), a, b)

    def tokens(self, doc_id: str) -> StoredTokens:
        st = self._current()
        if doc_id not in st.position:
            raise DocumentNotFoundError([doc_id])
        return self._tokens_at(st, st.position[doc_id])

    # ------------------------------------------------------------ searching
    def _segment_plan(self, st: _State, seg_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Window starts covering all rows of a segment, and the entry position owning each window
        (``-1`` for rows of deleted versions), so a segment is scanned without copying it."""
        plan = st.plans.get(seg_id)
        if plan is None:
            members = np.flatnonzero(st.segment == seg_id)
            members = members[np.argsort(st.row[members], kind="stable")]
            starts, owners, cursor = [], [], 0
            for i in members:
                a = int(st.row[i])
                if a > cursor:
                    starts.append(cursor)
                    owners.append(-1)
                for length in st.windows[i]:
                    starts.append(a)
                    owners.append(int(i))
                    a += length
                cursor = a
            if cursor < st.segments[seg_id].rows:
                starts.append(cursor)
                owners.append(-1)
            plan = (np.asarray(starts, dtype=np.int64), np.asarray(owners, dtype=np.int64))
            st.plans[seg_id] = plan
        return plan

    def _scan_segment(self, st: _State, seg_id: int, q: torch.Tensor, out: np.ndarray) -> None:
        """Exact MaxSim of every live entry of a segment into ``out`` (indexed by position)."""
        starts, owners = self._segment_plan(st, seg_id)
        vectors = st.segments[seg_id].tensor("vectors")
        ends = np.append(starts[1:], vectors.shape[0])
        w0 = 0
        while w0 < len(starts):
            w1 = max(w0 + 1, int(np.searchsorted(ends, starts[w0] + self.chunk_tokens, side="right")))
            r0, r1 = int(starts[w0]), int(ends[w1 - 1])
            block = self._unpack(st.segments[seg_id], vectors[r0:r1], r0, r1, mapped=True)
            win = segment_max(similarity(q, block), starts[w0:w1] - r0).sum(axis=0)
            own = owners[w0:w1]
            live = own >= 0
            np.maximum.at(out, own[live], win[live])
            w0 = w1

    def _exact_scores(self, st: _State, positions: np.ndarray, q: torch.Tensor) -> np.ndarray:
        """Exact MaxSim of the entries at ``positions`` (a long document scores as its best window).

        Segments where most rows are wanted are scanned in place; scattered entries are gathered.
        """
        scores = np.full(len(positions), -np.inf, dtype=np.float32)
        if not len(positions):
            return scores
        wanted_rows = np.bincount(np.searchsorted(np.unique(st.segment), st.segment[positions]),
                                  weights=st.rows[positions])
        seg_ids = np.unique(st.segment)
        scan = {int(s) for s, w in zip(seg_ids, wanted_rows) if w >= 0.5 * st.segments[int(s)].rows}
        if scan:
            full = np.full(len(st.ids), -np.inf, dtype=np.float32)
            for seg_id in scan:
                self._scan_segment(st, seg_id, q, full)
            in_scan = np.isin(st.segment[positions], list(scan))
            scores[in_scan] = full[positions[in_scan]]
            rest = np.flatnonzero(~in_scan)
        else:
            rest = np.arange(len(positions))
        batch: list[int] = []
        used = 0

        def flush() -> None:
            mats, starts, owners, total = [], [], [], 0
            for j in batch:
                i = positions[j]
                t = self._vectors_at(st, int(i))
                mats.append(t)
                w0 = total
                for length in st.windows[i]:
                    starts.append(w0)
                    owners.append(j)
                    w0 += length
                total += t.shape[0]
            win = segment_max(similarity(q, torch.cat(mats)), np.asarray(starts, dtype=np.int64)).sum(axis=0)
            np.maximum.at(scores, np.asarray(owners), win)

        for j in rest[np.lexsort((st.row[positions[rest]], st.segment[positions[rest]]))]:
            batch.append(int(j))
            used += int(st.rows[positions[j]])
            if used >= self.chunk_tokens:
                flush()
                batch, used = [], 0
        if batch:
            flush()
        return scores

    def search(self, query: QueryEncoding, k: int, *, filter: MetadataFilter | None = None) -> list[IndexHit]:
        """Top-``k`` documents by MaxSim: exact, or approximate candidates re-scored exactly.

        Hits carry their document and token vectors from the same snapshot, so highlighting them
        never races with a concurrent delete.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive int, got {k!r}")
        if query.vectors.shape[-1] != self.dim:
            raise ModelMismatchError(f"query vectors have dim {query.vectors.shape[-1]}, the index has {self.dim}")
        predicate = compile_document_filter(filter) if filter is not None else None
        for _ in range(5):
            try:
                return self._search(self._current(), query, k, predicate)
            except _Stale:
                self._state = None
        raise IndexStoreError(f"{self.path} was reorganised five times during one search; try again")

    def _search(self, st: _State, query: QueryEncoding, k: int,
                predicate: Callable[[Document], bool] | None) -> list[IndexHit]:
        if not st.ids:
            return []
        q = query.vectors.detach().to("cpu", self._compute_dtype)
        docs: dict[int, Document] = {}
        with torch.inference_mode(), self._read() as conn:
            if st.parts:
                params = st.params
                ncand = max(params.candidates, 4 * k)
                labels, approx = quantiser.candidate_scores(list(st.parts), q.float().numpy(), params)
                pos = np.searchsorted(st.seq, labels)
                pos = np.minimum(pos, len(st.seq) - 1)
                live = st.seq[pos] == labels  # deleted or replaced versions drop out here
                pos, approx = pos[live], approx[live]
                fresh = np.flatnonzero(st.seq > st.covered_upto)
                if predicate is not None:
                    pool = pos[np.argsort(-approx, kind="stable")[: 4 * ncand]]
                    docs = self._documents_by_seq(conn, st.seq[np.concatenate([pool, fresh])])
                    keep = self._matching(st, pool, docs, predicate)
                    if len(keep) < k:  # a selective filter: fall back to every matching document
                        pool = self._all_matching(conn, st, predicate, docs)
                        fresh = np.zeros(0, dtype=np.int64)
                    else:
                        pool = keep[:ncand]
                        fresh = self._matching(st, fresh, docs, predicate)
                else:
                    pool = pos[np.argsort(-approx, kind="stable")[:ncand]]
                positions = np.unique(np.concatenate([pool, fresh]))
                if predicate is None and len(positions) < min(k, len(st.ids)):
                    # the quantiser reached too few live documents (e.g. after mass deletes): scan
                    positions = np.arange(len(st.ids))
            else:
                positions = np.arange(len(st.ids))
                if predicate is not None:
                    positions = self._all_matching(conn, st, predicate, docs)
            scores = self._exact_scores(st, positions, q)
            k = min(k, len(positions))
            if k == 0:
                return []
            top = np.argpartition(-scores, k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            chosen = positions[top]
            need = [int(st.seq[i]) for i in chosen if int(st.seq[i]) not in docs]
            docs.update(self._documents_by_seq(conn, need))
        hits = []
        for i, s in zip(chosen, scores[top]):
            doc = docs.get(int(st.seq[i]))
            if doc is None:
                raise _Stale()
            hits.append(IndexHit(id=st.ids[i], score=float(s), document=doc, tokens=self._tokens_at(st, int(i))))
        return hits

    @staticmethod
    def _matching(st: _State, positions: np.ndarray, docs: Mapping[int, Document],
                  predicate: Callable[[Document], bool]) -> np.ndarray:
        keep = []
        for i in positions:
            doc = docs.get(int(st.seq[i]))
            if doc is None:
                raise _Stale()
            if predicate(doc):
                keep.append(i)
        return np.asarray(keep, dtype=np.int64)

    def _all_matching(self, conn, st: _State, predicate, docs: dict[int, Document]) -> np.ndarray:
        keep = []
        cursor = conn.execute("SELECT seq, doc_id, text, metadata FROM entries WHERE deleted_gen IS NULL OR "
                              "deleted_gen > ?", (st.generation,))
        for seq, doc_id, text, metadata in cursor:
            i = int(np.searchsorted(st.seq, seq))
            if i >= len(st.seq) or st.seq[i] != seq:
                continue  # added after our snapshot
            doc = Document(id=doc_id, text=text, metadata=json.loads(metadata))
            if predicate(doc):
                keep.append(i)
                docs[seq] = doc
        return np.asarray(sorted(keep), dtype=np.int64)

    # ------------------------------------------------------------ lexical
    def _live_position(self, st: _State, seq: int) -> int | None:
        i = int(np.searchsorted(st.seq, seq))
        return i if i < len(st.seq) and st.seq[i] == seq else None

    def lexical_search(self, query: str, k: int, *, filter: MetadataFilter | None = None) -> list[tuple[str, float]]:
        """The ``k`` best documents for ``query`` by BM25 alone, as ``(id, score)``, best first,
        from the same committed generation as a vector search started now."""
        predicate = compile_document_filter(filter) if filter is not None else None
        st = self._current()
        out: list[tuple[str, float]] = []
        page: list[tuple[int, int, float]] = []  # (seq, position, score), filtered a page at a time

        def keep(conn: sqlite3.Connection) -> None:
            docs = self._documents_by_seq(conn, [seq for seq, _, _ in page]) if predicate else {}
            out.extend((st.ids[i], score) for seq, i, score in page
                       if predicate is None or (seq in docs and predicate(docs[seq])))
            page.clear()

        with self._read() as conn, contextlib.closing(
                self._lexical.iter_search(conn, query, limit=None if predicate else k)) as rows:
            for seq, score in rows:
                i = self._live_position(st, seq)  # rows of versions newer than our snapshot are skipped
                if i is not None:
                    page.append((seq, i, score))
                if len(page) >= 256:
                    keep(conn)
                    if len(out) >= k:
                        break
            keep(conn)
        return out[:k]

    def lexical_scores(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """BM25 of the given documents for ``query`` (0 for those that match no query word)."""
        st = self._current()
        seqs = {int(st.seq[st.position[i]]): i for i in ids if i in st.position}
        with self._read() as conn:
            found = self._lexical.scores(conn, query, list(seqs))
        out = dict.fromkeys(ids, 0.0)
        out.update((seqs[seq], score) for seq, score in found.items() if seq in seqs)
        return out

    def exact_matches(self, query: str, *, max_docs: int = 10, filter: MetadataFilter | None = None) -> list[str]:
        """Documents that contain an identifier or quoted phrase of ``query`` held by at most
        ``max_docs`` documents (see :func:`~fgr_retriever.index.lexical.exact_phrases`)."""
        phrases = exact_phrases(query)
        if not phrases:
            return []
        predicate = compile_document_filter(filter) if filter is not None else None
        st = self._current()
        with self._read() as conn:
            found = LexicalTable.exact_matches(conn, phrases, max_rows=max_docs)
            seqs = [seq for rows in found.values() for seq in rows if self._live_position(st, seq) is not None]
            docs = self._documents_by_seq(conn, seqs) if predicate is not None else {}
        ids = [st.ids[self._live_position(st, seq)] for seq in seqs  # type: ignore[index]
               if predicate is None or (seq in docs and predicate(docs[seq]))]
        return list(dict.fromkeys(ids))

    # ------------------------------------------------------------ writing
    def add(self, documents: Sequence[Document], encodings: Sequence[TextEncoding]) -> None:
        """Insert documents, replacing any stored under the same id; durable when it returns."""
        if len(documents) != len(encodings):
            raise InvalidInputError(f"{len(documents)} documents but {len(encodings)} encodings")
        if len({d.id for d in documents}) != len(documents):
            raise DuplicateIdError("the same id appears twice in one add(); ids must be unique")
        rows = []
        for i, (doc, enc) in enumerate(zip(documents, encodings)):
            if enc.vectors.ndim != 2 or enc.vectors.shape[1] != self.dim:
                raise ModelMismatchError(f"vectors of size {tuple(enc.vectors.shape)[1:]} do not fit an index of dim {self.dim}")
            if (enc.relevance_vectors is None) != (self.relevance_dim is None):
                raise ModelMismatchError("the model's relevance head and the index disagree on relevance vectors")
            if sum(enc.window_lengths) != enc.vectors.shape[0] or enc.offsets.shape != (enc.vectors.shape[0], 2):
                raise InvalidInputError(f"encoding {i}: window lengths, vectors and offsets disagree")
            check_encodable(doc.id, f"document {i} id")
            check_encodable(doc.text, f"document {i} text")
            check_encodable(dict(doc.metadata), f"document {i} metadata")
            try:
                metadata = json.dumps(dict(doc.metadata), ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"metadata of document {i} is not JSON-serialisable: {exc}") from None
            rows.append((doc.id, ",".join(str(int(w)) for w in enc.window_lengths), doc.text, metadata))
        if not documents:
            return
        tensors = {**self._pack(torch.cat([e.vectors.detach().cpu() for e in encodings])),
                   "offsets": torch.cat([e.offsets.cpu() for e in encodings]).to(torch.int32)}
        if self.relevance_dim is not None:  # small; kept in 16 bits even in an int8 index
            rel_dtype = torch.bfloat16 if self.dtype == "int8" else _DTYPES[self.dtype]
            tensors["relevance_vectors"] = torch.cat([e.relevance_vectors.detach().cpu()  # type: ignore[union-attr]
                                                      for e in encodings]).to(rel_dtype)
        with self._writer() as conn:
            info = write_segment(self.path / _SEGMENTS, tensors)
            try:
                conn.execute("BEGIN IMMEDIATE")
                gen = self._next_generation(conn)
                seg_id = conn.execute("INSERT INTO segments(file, rows, bytes, sha256) VALUES (?, ?, ?, ?)",
                                      (info.file, info.rows, info.bytes, info.sha256)).lastrowid
                self._lexical_forget(conn, [r[0] for r in rows])
                for batch in chunks([r[0] for r in rows]):
                    conn.execute(f"UPDATE entries SET deleted_gen = ? WHERE deleted_gen IS NULL AND doc_id IN "
                                 f"({','.join('?' * len(batch))})", [gen, *batch])
                start, values = 0, []
                for (doc_id, windows, text, metadata), enc in zip(rows, encodings):
                    n = int(enc.vectors.shape[0])
                    values.append((doc_id, seg_id, start, n, windows, text, metadata, gen))
                    start += n
                conn.executemany("INSERT INTO entries(doc_id, segment, row, rows, windows, text, metadata, added_gen) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
                # BM25 rows from the stored form in hand (as a later removal will derive them); only
                # the new sequence numbers are read back
                seq_of = dict(conn.execute("SELECT doc_id, seq FROM entries WHERE added_gen = ?", (gen,)).fetchall())
                LexicalTable.insert(conn, (self._lexical_row(seq_of[doc_id], text, metadata)
                                           for doc_id, _, text, metadata in rows))
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                with contextlib.suppress(OSError):
                    (self.path / _SEGMENTS / info.file).unlink()
                raise
            self._maintain()

    @staticmethod
    def _next_generation(conn: sqlite3.Connection) -> int:
        gen = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]) + 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (json.dumps(gen),))
        return gen

    def delete(self, ids: Sequence[str]) -> None:
        """Remove documents (a tombstone; space returns at :meth:`optimize`). Unknown ids raise
        :class:`DocumentNotFoundError` and delete nothing."""
        ids = list(dict.fromkeys(ids))
        with self._writer() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                live = set()
                for batch in chunks(ids):
                    live |= {r[0] for r in conn.execute(
                        f"SELECT doc_id FROM entries WHERE deleted_gen IS NULL AND doc_id IN ({','.join('?' * len(batch))})",
                        batch)}
                missing = [i for i in ids if i not in live]
                if missing:
                    raise DocumentNotFoundError(missing)
                gen = self._next_generation(conn)
                self._lexical_forget(conn, ids)
                for batch in chunks(ids):
                    conn.execute(f"UPDATE entries SET deleted_gen = ? WHERE deleted_gen IS NULL AND doc_id IN "
                                 f"({','.join('?' * len(batch))})", [gen, *batch])
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            self._maintain()

    def _maintain(self) -> None:
        """After a write: keep the number of segments and un-quantised vectors bounded."""
        if not self.auto_optimize:
            return
        st = self._current()
        conn = self._conn()
        # tiered merging: only small segments and mostly-dead ones are rewritten, so a write to a
        # large index never copies the bulk of it
        live_rows = dict.fromkeys(st.segments, 0)
        for seg_id, rows in zip(st.segment.tolist(), st.rows.tolist()):
            live_rows[seg_id] += rows
        small = [s for s, seg in st.segments.items() if seg.rows < _SEGMENT_MAX_ROWS // 8]
        dead = [s for s, seg in st.segments.items() if seg.rows > 1 << 14 and live_rows[s] < seg.rows // 2]
        chosen = set(dead) | (set(small) if len(small) > 32 else set())
        if chosen:
            self._rewrite(conn, st, chosen)
            st = self._current()
        if self._wants_quantiser(st):
            self._update_quantiser(st)

    def _wants_quantiser(self, st: _State) -> bool:
        if self.approximate is False or st.tokens < self.ann_min_tokens:
            return False
        if self.approximate == "auto" and not self._faiss_ok():
            return False
        if not st.parts:
            return True
        return int(st.rows[st.seq > st.covered_upto].sum()) >= self.fresh_max_tokens

    def _faiss_ok(self) -> bool:
        try:
            quantiser.require_faiss()
        except FGRError:
            return False
        return True

    def _update_quantiser(self, st: _State, *, rebuild: bool = False) -> None:
        """Train the quantiser if there is none (or ``rebuild``), then encode what it does not cover."""
        conn = self._conn()
        meta = read_meta(conn)
        template = meta.get("ann_template")
        new_files: list[str] = []
        if template is None or rebuild or st.tokens > 4 * int(meta.get("ann_trained_tokens") or 0):
            params = quantiser.AnnParams.for_tokens(st.tokens, self.dim, self.ann_overrides)
            sample = self._sample_vectors(st, params.train_tokens)
            index = quantiser.train_template(sample, params)
            template = f"template-{uuid.uuid4().hex}.faiss"
            quantiser.require_faiss().write_index(index, str(self.path / _ANN / template))
            new_files.append(template)
            covered, replace_parts = 0, True
            trained = st.tokens
        else:
            params = quantiser.AnnParams(**meta["ann_params"])
            covered, replace_parts = st.covered_upto, False
            trained = int(meta.get("ann_trained_tokens") or 0)
        todo = np.flatnonzero(st.seq > covered)
        if not len(todo) and not replace_parts:
            return
        part = f"part-{uuid.uuid4().hex}.faiss"

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:  # bounded float32 copies
            for group in chunks(todo, 2048):
                yield (torch.cat([self._vectors_at(st, int(i)) for i in group]).float().numpy(),
                       np.repeat(st.seq[group], st.rows[group]))

        n_codes = quantiser.build_part(self.path / _ANN / template, batches(), self.path / _ANN / part)
        for name in new_files + [part]:
            _as_if_created_normally(self.path / _ANN / name, directory=False)
        _fsync_dir(self.path / _ANN)
        last = int(st.seq[todo].max()) if len(todo) else covered
        old_parts = [r[0] for r in conn.execute("SELECT file FROM ann_parts")] if replace_parts else []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if replace_parts:
                conn.execute("DELETE FROM ann_parts")
            conn.execute("INSERT INTO ann_parts(file, first_seq, last_seq, tokens) VALUES (?, ?, ?, ?)",
                         (part, covered + 1, last, n_codes))
            for key, value in (("ann_template", template), ("ann_params", params.to_dict()),
                               ("ann_trained_tokens", trained)):
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value)))
            self._next_generation(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            for name in new_files + [part]:
                with contextlib.suppress(OSError):
                    (self.path / _ANN / name).unlink()
            raise
        for name in old_parts + ([meta["ann_template"]] if new_files and meta.get("ann_template") else []):
            with contextlib.suppress(OSError):
                (self.path / _ANN / name).unlink()

    def _sample_vectors(self, st: _State, n: int) -> np.ndarray:
        rng = np.random.default_rng(0)
        total = st.tokens
        take = np.sort(rng.choice(total, size=min(n, total), replace=False))
        starts = np.concatenate([[0], np.cumsum(st.rows)[:-1]])
        owner = np.searchsorted(starts, take, side="right") - 1
        out = np.empty((len(take), self.dim), dtype=np.float32)
        for o in np.unique(owner):
            sel = owner == o
            vec = self._vectors_at(st, int(o))
            out[sel] = vec[take[sel] - starts[o]].float().numpy()
        return out

    def _rewrite(self, conn: sqlite3.Connection, st: _State, chosen: set[int] | None) -> None:
        """Copy the live rows of the ``chosen`` segments (all when ``None``) into new segments,
        drop those segments' deleted versions, and delete the old files after the commit."""
        with self._writer() as conn:
            files = dict(conn.execute("SELECT id, file FROM segments").fetchall())
            chosen = set(files) if chosen is None else chosen
            old_segments = [files[i] for i in chosen if i in files]
            new_infos, moves = [], []  # moves: (seq, new segment index, row)
            order = np.lexsort((st.row, st.segment))
            order = order[np.isin(st.segment[order], list(chosen))]
            batch: list[int] = []
            rows_in_batch = 0

            def flush() -> None:
                parts = [self._tokens_at(st, i) for i in batch]
                tensors = {**self._pack(torch.cat([p.vectors for p in parts])),
                           "offsets": torch.cat([p.offsets for p in parts])}
                if self.relevance_dim is not None:
                    tensors["relevance_vectors"] = torch.cat([p.relevance_vectors for p in parts])  # type: ignore[misc]
                new_infos.append(write_segment(self.path / _SEGMENTS, tensors))
                row = 0
                for i in batch:
                    moves.append((int(st.seq[i]), len(new_infos) - 1, row))
                    row += int(st.rows[i])

            for i in order:
                batch.append(int(i))
                rows_in_batch += int(st.rows[i])
                if rows_in_batch >= _SEGMENT_MAX_ROWS:
                    flush()
                    batch, rows_in_batch = [], 0
            if batch:
                flush()
            try:
                conn.execute("BEGIN IMMEDIATE")
                for batch_ids in chunks(sorted(chosen)):
                    conn.execute(f"DELETE FROM entries WHERE deleted_gen IS NOT NULL AND segment IN "
                                 f"({','.join('?' * len(batch_ids))})", batch_ids)
                seg_ids = [conn.execute("INSERT INTO segments(file, rows, bytes, sha256) VALUES (?, ?, ?, ?)",
                                        (i.file, i.rows, i.bytes, i.sha256)).lastrowid for i in new_infos]
                conn.executemany("UPDATE entries SET segment = ?, row = ? WHERE seq = ?",
                                 [(seg_ids[s], r, seq) for seq, s, r in moves])
                for batch_files in chunks(old_segments):
                    conn.execute(f"DELETE FROM segments WHERE file IN ({','.join('?' * len(batch_files))})", batch_files)
                layout = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()[0]) + 1
                conn.execute("UPDATE meta SET value = ? WHERE key = 'layout'", (json.dumps(layout),))
                self._next_generation(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                for info in new_infos:
                    with contextlib.suppress(OSError):
                        (self.path / _SEGMENTS / info.file).unlink()
                raise
            for name in old_segments:
                with contextlib.suppress(OSError):
                    (self.path / _SEGMENTS / name).unlink()

    def optimize(self, *, retrain: bool = False) -> None:
        """Merge segments, drop deleted versions for good and bring the quantiser up to date.

        Readers keep searching meanwhile (they switch to the new layout at their next search).
        ``retrain`` re-trains the quantiser from the current corpus.
        """
        with self._writer() as conn:
            self._rewrite(conn, self._current(), None)
            st = self._current()
            parts = conn.execute("SELECT COUNT(*) FROM ann_parts").fetchone()[0]
            if self._wants_quantiser(st) or retrain:
                self._update_quantiser(st, rebuild=retrain or parts > 4)
            elif parts and self.approximate is not False and (st.seq > st.covered_upto).any():
                self._update_quantiser(st, rebuild=parts > 4)

    # ------------------------------------------------------------ export
    def save(self, directory: Path) -> list[str]:
        """Export the current generation as a portable copy in the embedded format (one safetensors
        file and a JSON-lines file); :meth:`FGRRetriever.load` reads it into memory."""
        from .embedded import EmbeddedIndex

        st = self._current()
        copy = EmbeddedIndex(dim=self.dim, relevance_dim=self.relevance_dim,
                             dtype="bfloat16" if self.dtype == "int8" else self.dtype)
        with self._read() as conn:  # documents from the same snapshot as the vectors
            for batch in chunks(range(len(st.ids)), 2048):
                found = self._documents_by_seq(conn, st.seq[batch])
                if len(found) < len(batch):
                    raise IndexStoreError(f"{self.path} was reorganised during save(); try again")
                copy.add([found[int(st.seq[i])] for i in batch], [self._tokens_at(st, i).encoding() for i in batch])
        return copy.save(directory)

    saves_as = "embedded"

    def close(self) -> None:
        """Close this thread's catalogue connection; the index object is unusable afterwards."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._closed = True

    def __enter__(self) -> PersistentIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PersistentIndex({str(self.path)!r}, dim={self.dim})"
