"""The SQLite catalogue of a persistent index: documents, versions, segments and quantiser parts.

One row of ``entries`` is one stored *version* of a document: its id, text, JSON metadata, where
its token rows live (segment, first row, row count, window lengths) and the generations in which
it was added and deleted. Every commit bumps ``generation``; a reader that saw generation ``G``
catches up by reading only the rows added or deleted after ``G``. ``layout`` changes when
:meth:`PersistentIndex.optimize` moves rows between segments (readers then reload fully).

The database runs in WAL mode with ``synchronous=FULL``: readers never block the writer or each
other, and a committed transaction survives a power cut.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import IndexCorruptedError
from .lexical import LexicalTable

__all__ = ["CATALOG_FILE", "SCHEMA_VERSION", "READABLE_VERSIONS", "connect", "create_schema", "read_meta", "chunks"]

CATALOG_FILE = "catalog.sqlite"
SCHEMA_VERSION = 2  # 2 added the BM25 table (``lexical``); version 1 catalogues are upgraded on open
READABLE_VERSIONS = (1, 2)

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    segment INTEGER NOT NULL REFERENCES segments(id),
    row INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    windows TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    added_gen INTEGER NOT NULL,
    deleted_gen INTEGER
);
CREATE UNIQUE INDEX entries_live_id ON entries(doc_id) WHERE deleted_gen IS NULL;
CREATE INDEX entries_added ON entries(added_gen);
CREATE INDEX entries_deleted ON entries(deleted_gen) WHERE deleted_gen IS NOT NULL;
CREATE INDEX entries_segment ON entries(segment);
CREATE TABLE ann_parts (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL UNIQUE,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    tokens INTEGER NOT NULL
);
"""


def connect(path: Path, *, timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are opened explicitly) with our pragmas."""
    try:
        conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptedError(f"{path} is not a readable catalogue: {exc}") from None
    return conn


def create_schema(conn: sqlite3.Connection, meta: dict[str, Any]) -> None:
    conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the database file
    conn.execute("BEGIN IMMEDIATE")
    for statement in filter(str.strip, _SCHEMA.split(";")):
        conn.execute(statement)
    LexicalTable.create(conn)
    rows = {"schema_version": SCHEMA_VERSION, "generation": 0, "layout": 0, **meta}
    conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in rows.items()])
    conn.execute("COMMIT")


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    try:
        rows = conn.execute("SELECT key, value FROM meta").fetchall()
        meta = {k: json.loads(v) for k, v in rows}
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        raise IndexCorruptedError(f"the index catalogue is damaged: {exc}") from None
    if meta.get("schema_version") not in READABLE_VERSIONS:
        raise IndexCorruptedError(f"catalogue schema version {meta.get('schema_version')!r}; this fgr-retriever "
                                  f"reads versions {list(READABLE_VERSIONS)} (a newer fgr-retriever wrote it?)")
    return meta


def chunks(items: Iterable[Any], size: int = 500) -> Iterator[list[Any]]:
    """Batches small enough for SQLite's limit on bound parameters."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
