"""Our retrieval metrics agree with trec_eval itself (through pytrec_eval) on random rankings.

``fgr_retriever.evaluation.retrieval_metrics`` computes nDCG@10, MRR@10 and Recall@k in a few
lines of Python, so ``fgr-retriever eval`` needs no compiled extension; this test (pytrec_eval is
a test dependency) holds those lines to the reference implementation: graded judgements, judged
documents missing from the ranking, unjudged documents in it, and both relevance levels.
"""

from __future__ import annotations

import random

import pytest

from fgr_retriever.evaluation import mrr_at_k, ndcg_at_k, recall_at_k

pytrec_eval = pytest.importorskip("pytrec_eval")


def _random_queries(seed: int, n: int = 150) -> list[tuple[dict[str, int], list[str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        pool = [f"d{i}" for i in range(rng.randint(5, 60))]
        judged = {d: rng.choice([0, 0, 1, 1, 2, 3]) for d in rng.sample(pool, rng.randint(1, len(pool)))}
        ranking = rng.sample(pool, rng.randint(1, len(pool)))
        out.append((judged, ranking))
    return out


def _trec_eval(judged: dict[str, int], ranking: list[str], measures: set[str], relevance_level: int) -> dict:
    # trec_eval orders by score (ties by document id), so distinct descending scores keep our order
    run = {"q": {d: float(len(ranking) - i) for i, d in enumerate(ranking)}}
    evaluator = pytrec_eval.RelevanceEvaluator({"q": judged}, measures, relevance_level=relevance_level)
    return evaluator.evaluate(run)["q"]


@pytest.mark.parametrize("relevance_level", [1, 2])
def test_metrics_match_trec_eval(relevance_level):
    compared = 0
    for judged, ranking in _random_queries(seed=relevance_level):
        if not any(g >= relevance_level for g in judged.values()):
            continue  # evaluate_retrieval skips queries without a relevant judgement, as trec_eval does
        ref = _trec_eval(judged, ranking, {"ndcg_cut.10", "recall.5", "recall.20"}, relevance_level)
        # MRR@10: trec_eval's recip_rank has no cut-off, so it sees only the first ten
        rr = _trec_eval(judged, ranking[:10], {"recip_rank"}, relevance_level)["recip_rank"]
        assert ndcg_at_k(ranking, judged, 10) == pytest.approx(ref["ndcg_cut_10"], abs=1e-9)
        assert recall_at_k(ranking, judged, 5, relevance_level=relevance_level) == pytest.approx(ref["recall_5"])
        assert recall_at_k(ranking, judged, 20, relevance_level=relevance_level) == pytest.approx(ref["recall_20"])
        assert mrr_at_k(ranking, judged, 10, relevance_level=relevance_level) == pytest.approx(rr)
        compared += 1
    assert compared > 100
