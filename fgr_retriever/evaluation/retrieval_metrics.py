"""Retrieval metrics, computed like trec_eval.

nDCG@10 uses linear gain and a log2 discount whose ideal ranking uses *all* judged documents
of the query, including those missing from the corpus; MRR@10 and Recall@k count a document as
relevant when its grade is ``>= relevance_level`` (default 1; TREC DL papers often use 2 for
these binary measures); nDCG always uses the raw grades. Queries without a relevant judgement
are skipped (see :func:`fgr_retriever.evaluation.beir.select_queries`).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def _dedupe(ranking: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """trec_eval's ``ndcg_cut.k``: gain = grade (negative grades count 0), discount
    ``1/log2(rank+1)``; the ideal ranking sorts *all* judged documents, in the corpus or not."""
    ranking = _dedupe(ranking)[:k]
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10, *, relevance_level: int = 1) -> float:
    """Reciprocal rank of the first document with grade ``>= relevance_level`` in the top ``k``."""
    for i, d in enumerate(_dedupe(ranking)[:k]):
        if judged.get(d, 0) >= relevance_level:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int, *, relevance_level: int = 1) -> float:
    """Relevant documents in the top ``k`` over all relevant judgements (outside the corpus too)."""
    relevant = {d for d, g in judged.items() if g >= relevance_level}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedupe(ranking)[:k])) / len(relevant)


def query_metrics(ranking: Sequence[str], judged: Mapping[str, int], *, k_values: Sequence[int],
                  relevance_level: int) -> dict[str, float]:
    out = {"ndcg@10": ndcg_at_k(ranking, judged, 10),
           "mrr@10": mrr_at_k(ranking, judged, 10, relevance_level=relevance_level)}
    for k in k_values:
        out[f"recall@{k}"] = recall_at_k(ranking, judged, k, relevance_level=relevance_level)
    return out
