"""Retrieval evaluation runs: rank a BEIR dataset's queries and score them like trec_eval."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from ..errors import InvalidInputError
from .beir import BeirDataset, select_queries
from .rankers import BM25RunRanker, DenseRanker, FGRRanker, Mode, Ranker
from .reports import RetrievalReport
from .retrieval_metrics import query_metrics

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT




def _as_ranker(ranker: Ranker | FGRColBERT | str, *, batch_size: int, show_progress_bar: bool) -> Ranker:
    from ..model.encoder import FGRColBERT

    if isinstance(ranker, FGRColBERT):
        return FGRRanker(ranker, batch_size=batch_size, show_progress_bar=show_progress_bar)
    if ranker == "bm25":
        return BM25RunRanker()
    if ranker == "dense":
        return DenseRanker(show_progress_bar=show_progress_bar)
    if isinstance(ranker, str) or not hasattr(ranker, "rank"):
        raise InvalidInputError(f"ranker must be an FGRColBERT, 'bm25', 'dense' or a Ranker, got {ranker!r}")
    return ranker


def evaluate_retrieval(dataset: BeirDataset, ranker: Ranker | FGRColBERT | str, *, mode: Mode = "rerank",
                       depth: int = 100, k_values: Sequence[int] = (10, 50, 100), relevance_level: int = 1,
                       max_queries: int | None = None, query_ids: Iterable[str] | None = None,
                       batch_size: int = 32, show_progress_bar: bool = False) -> RetrievalReport:
    """Rank ``dataset``'s queries with ``ranker`` and score them like trec_eval (see module doc).

    ``mode="rerank"`` re-scores the first ``depth`` run candidates (documents missing from the
    corpus cannot be scored and are dropped); ``mode="full"`` searches the whole corpus for the
    top ``max(k_values)``. Pass the same :class:`FGRRanker` / :class:`DenseRanker` object to
    several calls to reuse its document encodings.
    """
    if mode not in ("rerank", "full"):
        raise InvalidInputError(f"mode must be 'rerank' or 'full', got {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InvalidInputError(f"depth must be a positive int, got {depth!r}")
    if mode == "rerank" and dataset.run is None:
        raise InvalidInputError(f"{dataset.name} has no run.bm25.tsv, so it cannot be re-ranked; use mode='full'")
    k_values = tuple(sorted({int(k) for k in k_values}))
    if not k_values or k_values[0] < 1:
        raise InvalidInputError(f"k_values must be positive ints, got {k_values!r}")
    rk = _as_ranker(ranker, batch_size=batch_size, show_progress_bar=show_progress_bar)
    qids = select_queries(dataset, relevance_level=relevance_level, max_queries=max_queries, query_ids=query_ids)
    start = time.perf_counter()
    rankings = rk.rank(dataset, qids, mode=mode, depth=depth, k=max(k_values + (10,)))
    per_query = {q: query_metrics(rankings.get(q, []), dataset.qrels.get(q, {}), k_values=k_values,
                                  relevance_level=relevance_level) for q in qids}
    names = list(next(iter(per_query.values())).keys()) if per_query else \
        ["ndcg@10", "mrr@10"] + [f"recall@{k}" for k in k_values]
    means = {m: float(np.mean([v[m] for v in per_query.values()])) if per_query else 0.0 for m in names}
    return RetrievalReport(dataset=dataset.name, ranker=rk.name, mode=mode, depth=depth,
                           relevance_level=relevance_level, n_queries=len(qids), metrics=means, per_query=per_query,
                           n_queries_without_candidates=sum(1 for q in qids if not rankings.get(q)),
                           seconds=time.perf_counter() - start)
