"""Long queries: encoded at their own length (``query_max_tokens``) against cut at ``query_maxlen``.

Until 0.1.x every query was cut to ``query_maxlen`` (32 tokens) without a word; now a longer
query keeps its length up to ``FGRConfig.query_max_tokens``. This script ranks the HotpotQA
dev-split questions of ``benchmarks/retrieval_parity.py`` (full search over their pool) with
the bundled model both ways, sharing the document encodings, and reports nDCG@10 over all
questions and over those longer than ``query_maxlen``, with a paired bootstrap 95 % interval
of the difference on the long ones. TREC DL 2020 has no query longer than 29 wordpieces, so it
cannot move.

    .venv/bin/python benchmarks/experiments/long_queries.py

Writes ``benchmarks/results/long_queries.json``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from evaluate_default import hotpot_dev  # noqa: E402

from fgr_retriever import FGRColBERT  # noqa: E402
from fgr_retriever._io import atomic_write_text  # noqa: E402
from fgr_retriever.evaluation import FGRRanker, evaluate_retrieval  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "long_queries.json"


def paired_bootstrap(a: list[float], b: list[float], *, rounds: int = 10_000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    n = len(a)
    diffs = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(sum(b[i] - a[i] for i in idx) / n)
    diffs.sort()
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds) - 1]


def main() -> None:
    start = time.perf_counter()
    model = FGRColBERT.from_pretrained()
    dataset, qids = hotpot_dev()
    counts = {q: len(model.tokenizer.hf(dataset.queries[q], add_special_tokens=False)["input_ids"]) for q in qids}
    specials = 3
    long_ids = [q for q in qids if counts[q] + specials > model.config.query_maxlen]
    ranker = FGRRanker(model, name="default", show_progress_bar=True)  # one ranker: documents encoded once
    reports = {}
    for name, max_tokens in (("cut at query_maxlen", model.config.query_maxlen),
                             ("own length (query_max_tokens)", model.config.query_max_tokens)):
        model.config = replace(model.config, query_max_tokens=max_tokens)
        reports[name] = evaluate_retrieval(dataset, ranker, mode="full", query_ids=qids)
    cut, own = (reports[n].per_query for n in reports)
    a = [cut[q]["ndcg@10"] for q in long_ids]
    b = [own[q]["ndcg@10"] for q in long_ids]
    low, high = paired_bootstrap(a, b)
    result = {
        "dataset": dataset.name, "queries": len(qids), "longer_than_query_maxlen": len(long_ids),
        "query_maxlen": model.config.query_maxlen,
        "ndcg@10 all": {n: round(r.metrics["ndcg@10"], 4) for n, r in reports.items()},
        "ndcg@10 long queries": {"cut at query_maxlen": round(sum(a) / len(a), 4),
                                 "own length (query_max_tokens)": round(sum(b) / len(b), 4)} if long_ids else None,
        "difference on long queries, paired bootstrap 95% CI": [round(low, 4), round(high, 4)],
        "long queries better / worse / same": [sum(y > x for x, y in zip(a, b)), sum(y < x for x, y in zip(a, b)),
                                               sum(y == x for x, y in zip(a, b))],
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result, indent=2))
    atomic_write_text(OUT, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
