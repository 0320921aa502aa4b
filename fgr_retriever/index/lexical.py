"""BM25 beside the token vectors: an SQLite FTS5 table kept in step with the index.

Why FTS5 rather than an in-memory BM25 library: the persistent index must keep the lexical side
in the same transaction as the catalogue (an add, a delete or an upsert changes both or neither,
and readers see one committed state), and it must grow one write at a time without rebuilding.
FTS5 is an inverted index inside SQLite with BM25 ranking built in, so it gets the catalogue's
durability, crash safety and WAL concurrency for free. The embedded index uses the same table in
an in-memory database, built on first use.

The table is *contentless* (``content=''``): it stores the inverted index and document lengths,
not a second copy of the text. Removing a row therefore needs the values it was inserted with;
:meth:`LexicalTable.remove` is always given them from the owner's own records
(:func:`lexical_values` derives them deterministically).

Tokenisation is FTS5's ``unicode61`` (case and accents folded, split on anything that is not a
letter or digit) followed by the Porter stemmer, the usual BM25 setup; BM25 uses FTS5's fixed
k1 = 1.2, b = 0.75. Queries drop Lucene's English stop words. ``MV-BRM-CN`` is indexed as the
three tokens ``mv brm cn``; :func:`exact_phrases` finds such identifiers in a query so they can
be matched as a phrase.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import unicodedata
from typing import Any, Iterable, Iterator, Mapping, Sequence

__all__ = [
    "LexicalTable",
    "lexical_values",
    "query_terms",
    "exact_phrases",
    "analyse",
    "STOP_WORDS",
    "DEFAULT_LEXICAL_FIELDS",
]

TABLE = "lexical"
_CREATE = (f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(text, fields, content='', "
           "tokenize='porter unicode61 remove_diacritics 2')")

#: Lucene's default English stop words (what Anserini's BM25 drops); removed from queries only.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)

#: Metadata fields indexed beside the text by default: where catalogues keep titles, references
#: and codes. Matches in them weigh double.
DEFAULT_LEXICAL_FIELDS = ("title", "sku", "reference", "ref", "code", "product_code", "model", "mpn", "ean", "gtin")

# what unicode61 treats as a token: letters and digits (the underscore is a separator there too)
_TOKEN = re.compile(r"[^\W_]+")
# an identifier-like string: alphanumeric parts joined by - _ . / (MV-OND28, A4-200, ref_12)
_IDENT = re.compile(r"(?<![\w-])[^\W_]+(?:[-_./][^\W_]+)*(?![\w-])")
_QUOTED = re.compile(r'"([^"]+)"')


def lexical_values(text: str, metadata: Mapping[str, Any], fields: Sequence[str]) -> tuple[str, str]:
    """The two column values stored for a document: its text, and its ``fields`` metadata values
    (strings and numbers, lists of them; other values are skipped) joined by newlines."""
    parts: list[str] = []
    for name in fields:
        value = metadata.get(name)
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, str):
                parts.append(v)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                parts.append(str(v))
    return text, "\n".join(parts)


def query_terms(query: str) -> list[str]:
    """The distinct, lower-cased, non-stop-word tokens of ``query``, in order."""
    seen: dict[str, None] = {}
    for tok in _TOKEN.findall(query.lower()):
        if tok not in STOP_WORDS:
            seen.setdefault(tok, None)
    return list(seen)


def exact_phrases(query: str) -> list[str]:
    """The strings of ``query`` that look like references or codes, plus any "quoted" phrases.

    An identifier mixes letters and digits (``OND28``, ``2-ply``) or joins alphanumeric parts with
    ``-``, ``_``, ``.`` or ``/`` (``MV-BRM-CN``). Whether a match is rare enough to count is the
    caller's decision (see :meth:`LexicalTable.exact_matches`).
    """
    found: dict[str, None] = {}
    for quoted in _QUOTED.findall(query):
        if _TOKEN.search(quoted):
            found.setdefault(quoted.strip(), None)
    for ident in _IDENT.findall(query):
        has_letter = any(c.isalpha() for c in ident)
        has_digit = any(c.isdigit() for c in ident)
        joined = any(c in "-_./" for c in ident)
        if has_letter and (has_digit or joined):
            found.setdefault(ident, None)
    return list(found)


@functools.lru_cache(maxsize=1)
def _porter() -> Any:
    try:
        import snowballstemmer
    except ImportError:
        from ..errors import MissingDependencyError

        raise MissingDependencyError("BM25 on Qdrant stems words with snowballstemmer: "
                                     "pip install 'fgr-retriever[qdrant]'") from None
    return snowballstemmer.stemmer("porter")  # Porter's original algorithm, as FTS5's porter


@functools.lru_cache(maxsize=1 << 17)  # word frequencies are Zipfian: most lookups hit
def _analyse_token(token: str) -> str:
    # remove_diacritics: canonical decomposition, combining marks dropped (Orléans -> orleans)
    folded = "".join(c for c in unicodedata.normalize("NFD", token) if not unicodedata.combining(c))
    return _porter().stemWord(folded)


def analyse(text: str) -> list[str]:
    """The tokens this module's FTS5 table indexes for ``text`` (``porter unicode61
    remove_diacritics 2``: lower-cased runs of letters and digits, accents removed, Porter
    stems), computed in Python for engines that are given analysed text, such as Qdrant's
    default word tokeniser, which splits the result into exactly these tokens again. The stems
    are snowballstemmer's Porter; SQLite's variant differs on about 1 % of words (it leaves
    two-letter words and some ``-y`` endings alone).

    >>> analyse("Scarves are dry-cleaned in Orléans")
    ['scarv', 'ar', 'dry', 'clean', 'in', 'orlean']
    """
    return [stem for t in _TOKEN.findall(text.lower()) if (stem := _analyse_token(t))]  # a lone accent is no token


def _phrase(text: str) -> str | None:
    tokens = _TOKEN.findall(text.lower())
    return '"' + " ".join(tokens) + '"' if tokens else None


def _any_of(terms: Sequence[str]) -> str:
    # every term quoted: FTS5 reads them as plain strings, never as its query syntax
    return " OR ".join(f'"{t}"' for t in terms)


class LexicalTable:
    """BM25 search over an FTS5 table on a connection the owner controls.

    The owner opens the transactions: rows inserted or removed inside the owner's write
    transaction commit or roll back with it. Row ids are the owner's (the persistent index uses
    its entry sequence numbers). Scores are BM25 (higher is better; FTS5's ``bm25()`` negated).
    """

    def __init__(self, *, fields_weight: float = 2.0) -> None:
        self.fields_weight = float(fields_weight)

    @staticmethod
    def create(conn: sqlite3.Connection) -> None:
        conn.execute(_CREATE)

    @staticmethod
    def exists(conn: sqlite3.Connection) -> bool:
        row = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone()
        return row is not None

    @staticmethod
    def insert(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, str]]) -> None:
        """Add ``(rowid, text, fields)`` rows."""
        conn.executemany(f"INSERT INTO {TABLE}(rowid, text, fields) VALUES (?, ?, ?)", rows)

    @staticmethod
    def remove(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, str]]) -> None:
        """Remove rows, given exactly the values they were inserted with (contentless table)."""
        conn.executemany(f"INSERT INTO {TABLE}({TABLE}, rowid, text, fields) VALUES ('delete', ?, ?, ?)", rows)

    def _bm25(self) -> str:
        return f"bm25({TABLE}, 1.0, {self.fields_weight!r})"

    def search(self, conn: sqlite3.Connection, query: str, limit: int) -> list[tuple[int, float]]:
        """The ``limit`` best rows for ``query`` (any of its terms), best first."""
        with contextlib.closing(self.iter_search(conn, query, limit=limit)) as rows:
            return list(rows)

    def iter_search(self, conn: sqlite3.Connection, query: str, *,
                    limit: int | None = None) -> Iterator[tuple[int, float]]:
        """The matching rows (at most ``limit``), best first, read in pages; stop when you have
        enough (closing the generator, e.g. with ``contextlib.closing``, closes the statement)."""
        terms = query_terms(query)
        if not terms or (limit is not None and limit < 1):
            return
        sql = f"SELECT rowid, -{self._bm25()} AS s FROM {TABLE} WHERE {TABLE} MATCH ? ORDER BY s DESC, rowid"
        params: tuple = (_any_of(terms),)
        if limit is not None:  # lets SQLite keep a top-k instead of sorting every match
            sql, params = sql + " LIMIT ?", (*params, int(limit))
        cursor = conn.execute(sql, params)
        try:
            while rows := cursor.fetchmany(256):
                yield from ((int(r), float(s)) for r, s in rows)
        finally:
            cursor.close()  # an open statement would keep the caller's read transaction busy

    def scores(self, conn: sqlite3.Connection, query: str, rowids: Sequence[int]) -> dict[int, float]:
        """BM25 of the given rows (rows that match no query term are absent: their score is 0)."""
        terms = query_terms(query)
        out: dict[int, float] = {}
        if not terms:
            return out
        ids = [int(r) for r in rowids]
        for start in range(0, len(ids), 500):
            batch = ids[start: start + 500]
            sql = (f"SELECT rowid, -{self._bm25()} FROM {TABLE} WHERE {TABLE} MATCH ? "
                   f"AND rowid IN ({','.join('?' * len(batch))})")
            out.update((int(r), float(s)) for r, s in conn.execute(sql, (_any_of(terms), *batch)))
        return out

    @staticmethod
    def exact_matches(conn: sqlite3.Connection, phrases: Sequence[str], *, max_rows: int) -> dict[str, list[int]]:
        """For each phrase, the rows that contain it (as consecutive tokens, in text or fields),
        when there are at most ``max_rows`` of them: a string that many documents share is not
        an identifier of any one."""
        out: dict[str, list[int]] = {}
        for phrase in phrases:
            fts = _phrase(phrase)
            if fts is None:
                continue
            rows = [int(r[0]) for r in conn.execute(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ? LIMIT ?",
                                                    (fts, max_rows + 1))]
            if 0 < len(rows) <= max_rows:
                out[phrase] = rows
        return out

    @staticmethod
    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
