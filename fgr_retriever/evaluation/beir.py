"""BEIR folders: corpus, queries, judgements and an optional first-stage run.

BEIR folders (``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels.tsv``, optional
``run.bm25.tsv``) are ranked in ``"rerank"`` mode (the run's top ``depth`` candidates are
re-scored) or ``"full"`` mode (the whole corpus is searched). A document's text is
``title + ". " + text`` when the title is non-empty, for every ranker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from .._io import iter_jsonl, read_lines
from ..errors import InvalidInputError


@dataclass
class BeirDataset:
    """A BEIR folder in memory. ``queries`` keeps the file's order; ``run`` (if present) maps a
    query to its candidate documents, best first."""

    name: str
    path: Path
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    run: dict[str, list[str]] | None = None

    def text(self, doc_id: str) -> str:
        title, text = self.corpus[doc_id]
        return document_text(title, text)


def document_text(title: str, text: str) -> str:
    """What every ranker reads of a document: ``title + ". " + text`` when there is a title."""
    return f"{title.strip()}. {text}" if title and title.strip() else text


def _find(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _read_corpus(path: Path) -> dict[str, tuple[str, str]]:
    corpus: dict[str, tuple[str, str]] = {}
    for n, rec in iter_jsonl(path):
        doc_id, text, title = rec.get("_id"), rec.get("text"), rec.get("title") or ""
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
            raise InvalidInputError(f"{path}:{n}: '_id' must be a non-empty string")
        if not isinstance(text, str) or not isinstance(title, str):
            raise InvalidInputError(f"{path}:{n}: 'text' (and 'title', if given) must be strings")
        doc_id = str(doc_id)
        if doc_id in corpus:
            raise InvalidInputError(f"{path}:{n}: duplicate document id {doc_id!r}")
        corpus[doc_id] = (title, text)
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for n, rec in iter_jsonl(path):
        qid, text = rec.get("_id"), rec.get("text")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
            raise InvalidInputError(f"{path}:{n}: '_id' must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{path}:{n}: 'text' must be a non-empty string")
        if str(qid) in queries:
            raise InvalidInputError(f"{path}:{n}: duplicate query id {qid!r}")
        queries[str(qid)] = text
    return queries


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    for n, line in read_lines(path):
        yield n, line.split()


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, cols in _tsv_rows(path):
        if n == 1 and cols and not re.fullmatch(r"-?\d+", cols[-1]):
            continue  # the BEIR header "query-id corpus-id score"
        if len(cols) == 4:  # TREC qrels: qid iteration docid grade
            cols = [cols[0], cols[2], cols[3]]
        if len(cols) != 3:
            raise InvalidInputError(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {len(cols)} columns")
        try:
            grade = int(cols[2])
        except ValueError:
            raise InvalidInputError(f"{path}:{n}: score {cols[2]!r} is not an integer") from None
        qrels.setdefault(cols[0], {})[cols[1]] = grade
    return qrels


def _read_run(path: Path) -> dict[str, list[str]]:
    scored: dict[str, list[tuple[float, str]]] = {}
    for n, cols in _tsv_rows(path):
        if len(cols) != 6:
            raise InvalidInputError(f"{path}:{n}: expected TREC run format 'qid Q0 docid rank score tag', "
                                    f"got {len(cols)} columns")
        try:
            score = float(cols[4])
        except ValueError:
            raise InvalidInputError(f"{path}:{n}: score {cols[4]!r} is not a number") from None
        scored.setdefault(cols[0], []).append((score, cols[2]))
    run = {}
    for qid, items in scored.items():
        # trec_eval orders by score, ties by document id descending; the rank column is ignored
        items.sort(key=lambda x: (x[0], x[1]), reverse=True)
        run[qid] = list(dict.fromkeys(d for _, d in items))
    return run


def load_beir(folder: str | Path, *, run_file: str = "run.bm25.tsv") -> BeirDataset:
    """Load a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels.tsv`` (or BEIR's
    ``qrels/test.tsv``) and, when present, ``run_file``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such directory (expected a BEIR folder)")
    corpus_path = _find(folder, ["corpus.jsonl", "corpus.jsonl.gz"])
    queries_path = _find(folder, ["queries.jsonl", "queries.jsonl.gz"])
    qrels_path = _find(folder, ["qrels.tsv", "qrels/test.tsv", "qrels/dev.tsv"])
    missing = [name for name, p in (("corpus.jsonl[.gz]", corpus_path), ("queries.jsonl", queries_path),
                                    ("qrels.tsv", qrels_path)) if p is None]
    if missing:
        raise InvalidInputError(f"{folder} is not a BEIR folder: missing {', '.join(missing)}")
    run_path = folder / run_file
    dataset = BeirDataset(name=folder.name, path=folder, corpus=_read_corpus(corpus_path),  # type: ignore[arg-type]
                          queries=_read_queries(queries_path), qrels=_read_qrels(qrels_path),  # type: ignore[arg-type]
                          run=_read_run(run_path) if run_path.is_file() else None)
    if not dataset.corpus:
        raise InvalidInputError(f"{corpus_path} holds no documents")
    if not dataset.queries:
        raise InvalidInputError(f"{queries_path} holds no queries")
    return dataset


def select_queries(dataset: BeirDataset, *, relevance_level: int = 1, max_queries: int | None = None,
                   query_ids: Iterable[str] | None = None) -> list[str]:
    """Evaluated queries, in the query file's order: those with a judgement ``>= relevance_level``,
    restricted to ``query_ids`` if given, then the first ``max_queries``."""
    qids = [q for q in dataset.queries
            if any(g >= relevance_level for g in dataset.qrels.get(q, {}).values())]
    if query_ids is not None:
        wanted = {str(q) for q in query_ids}
        unknown = sorted(wanted - set(dataset.queries))
        if unknown:
            raise InvalidInputError(f"{dataset.name}: unknown query id(s) {unknown[:5]}")
        qids = [q for q in qids if q in wanted]
    if max_queries is not None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise InvalidInputError(f"max_queries must be a positive int, got {max_queries!r}")
        qids = qids[:max_queries]
    return qids
