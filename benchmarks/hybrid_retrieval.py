"""Hybrid retrieval: BM25 (SQLite FTS5), late interaction and their fusions, in one run (a benchmark).

    .venv/bin/python benchmarks/hybrid_retrieval.py --out benchmarks/results/hybrid_retrieval.json

On ``../shared/data`` with the bundled model:

* TREC DL 2020: full retrieval over its pool (5,396 passages) and re-ranking of each query's BM25
  top-100 (nDCG@10);
* HotpotQA: full retrieval for the dev-split questions over their paragraphs (nDCG@10, R@10);
* MS MARCO dev-small 600: full retrieval over the union of the candidate lists (MRR@10).

Systems: BM25 alone (``mode="lexical"``), late interaction alone (``mode="late"``), and hybrid
with each fusion (``rrf`` and ``relative_score``) over a grid of weights, all with the exact-
identifier boost on (the product's default). Each query's candidates are gathered once with the
product's own code (both sides' top 100, each scored by both sides) and every fusion setting is
ranked from them with the product's ``fuse``; a check confirms that ``search(mode="hybrid")``
returns exactly those rankings.

The default fusion and weight are *chosen* on a calibration half of the queries of every set (by
a hash of the query id) and *reported* on the other half, with bootstrap 95 % intervals; full-set
figures are given too. Also: added latency per query (MS MARCO pool, one query at a time, modes
alternated) and the BM25 table's size beside the token vectors.

Indexes are encoded once and kept in ``benchmarks/.cache/hybrid`` (gitignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_default import DATA, hotpot_dev  # noqa: E402

from fgr_retriever import FGRColBERT, FGRRetriever  # noqa: E402
from fgr_retriever._io import atomic_write_text  # noqa: E402
from fgr_retriever.evaluation import load_beir  # noqa: E402
from fgr_retriever.evaluation.beir import select_queries  # noqa: E402
from fgr_retriever.evaluation.retrieval_metrics import mrr_at_k, ndcg_at_k, recall_at_k  # noqa: E402
from fgr_retriever.index.fusion import HybridConfig  # noqa: E402
from fgr_retriever.index.lexical import LexicalTable, lexical_values  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache" / "hybrid"
WEIGHTS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
DEPTH = 100


def half(qid: str) -> str:
    return "calibration" if int(hashlib.sha1(qid.encode()).hexdigest(), 16) % 2 == 0 else "report"


def retriever_for(name: str, dataset, model: FGRColBERT) -> FGRRetriever:
    path = CACHE / name
    if not (path / "index.json").exists():
        r = FGRRetriever(model=model, show_progress_bar=True)
        ids = list(dataset.corpus)
        r.add_documents([dataset.text(d) for d in ids], ids=ids)
        r.save(path)
    return FGRRetriever.load(path, model=model)


def metric_fn(metric: str):
    if metric == "ndcg@10":
        return lambda ranking, judged: ndcg_at_k(ranking, judged, 10)
    if metric == "mrr@10":
        return lambda ranking, judged: mrr_at_k(ranking, judged, 10)
    if metric == "recall@10":
        return lambda ranking, judged: recall_at_k(ranking, judged, 10)
    raise ValueError(metric)


def bootstrap(values: np.ndarray, rounds: int = 2000, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(rounds, len(values)))
    means = values[idx].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def run_set(retriever: FGRRetriever, dataset, qids: list[str], *, rerank: bool, metrics: list[str],
            run: dict | None = None) -> dict:
    """Per-query metric values of every system on one set."""
    fns = {m: metric_fn(m) for m in metrics}
    systems: dict[str, dict[str, list[float]]] = {}
    configs = {f"hybrid {f} w={w}": HybridConfig(fusion=f, weight=w, depth=DEPTH)
               for f in ("rrf", "relative_score") for w in WEIGHTS}
    check = {"queries": 0, "identical": 0}
    model = retriever.model
    texts = [dataset.queries[q] for q in qids]
    encoded = model.encode_queries(texts)
    for n, (qid, text, q) in enumerate(zip(qids, texts, encoded)):
        judged = dataset.qrels.get(qid, {})
        flt = None
        if rerank:
            allowed = set(dataset.run.get(qid, [])[:DEPTH])
            flt = lambda doc, allowed=allowed: doc.id in allowed  # noqa: E731
        rankings: dict[str, list[str]] = {}
        lexical = retriever.search(text, k=DEPTH, filter=flt, mode="lexical", highlight=False)
        rankings["bm25 (FTS5)"] = [r.id for r in lexical]
        if run is not None:
            rankings["bm25 (Anserini run)"] = run.get(qid, [])[:DEPTH]
        c = retriever._hybrid_candidates(text, q, DEPTH, flt, "hybrid", HybridConfig(depth=DEPTH))
        rankings["late"] = [h.id for h in sorted(c.late_hits.values(), key=lambda h: -h.score)]
        for name, cfg in configs.items():
            rankings[name] = [h.id for h in retriever._rank_candidates(c, DEPTH, "hybrid", cfg)]
        if n % 10 == 0:  # the product path gives the same ranking
            got = [r.id for r in retriever.search(text, k=DEPTH, filter=flt, mode="hybrid", highlight=False)]
            check["queries"] += 1
            check["identical"] += int(got == rankings[f"hybrid {retriever.hybrid.fusion} w={retriever.hybrid.weight}"])
        for name, ranking in rankings.items():
            for m, fn in fns.items():
                systems.setdefault(name, {}).setdefault(m, []).append(fn(ranking, judged))
        if n % 50 == 0:
            print(f"  {n}/{len(qids)}", flush=True)
    return {"per_query": systems, "check": check}


def summarise(values: dict[str, dict[str, list[float]]], qids: list[str], which: str | None) -> dict:
    keep = np.asarray([which is None or half(q) == which for q in qids])
    out = {}
    for name, by_metric in values.items():
        out[name] = {}
        for m, vals in by_metric.items():
            arr = np.asarray(vals)[keep]
            out[name][m] = {"mean": round(float(arr.mean()), 4), "ci95": bootstrap(arr), "n": int(len(arr))}
    return out


def paired(values: dict, qids: list[str], a: str, b: str, metric: str, which: str | None) -> dict:
    keep = np.asarray([which is None or half(q) == which for q in qids])
    diff = np.asarray(values[a][metric])[keep] - np.asarray(values[b][metric])[keep]
    return {"mean": round(float(diff.mean()), 4), "ci95": bootstrap(diff)}


def latency(retriever: FGRRetriever, queries: list[str]) -> dict:
    times: dict[str, list[float]] = {"late": [], "hybrid": [], "lexical": []}
    for q in queries:
        for mode in times:  # alternated, so machine noise hits all modes alike
            t = time.perf_counter()
            retriever.search(q, k=10, mode=mode, highlight=False)
            times[mode].append(1000 * (time.perf_counter() - t))
    return {m: {"median_ms": round(float(np.median(v)), 1), "p90_ms": round(float(np.percentile(v, 90)), 1)}
            for m, v in times.items()}


def storage(retriever: FGRRetriever) -> dict:
    index = retriever.index
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(str(Path(tmp) / "lexical.sqlite"), isolation_level=None)
        LexicalTable.create(conn)
        conn.execute("BEGIN")
        docs = index.get(index.ids())
        LexicalTable.insert(conn, ((i + 1, *lexical_values(d.text, d.metadata, index.lexical_fields))
                                   for i, d in enumerate(docs)))
        conn.execute("COMMIT")
        conn.execute("VACUUM")
        conn.close()
        fts = (Path(tmp) / "lexical.sqlite").stat().st_size
    text = sum(len(d.text.encode()) for d in docs)
    return {"documents": len(docs), "bm25_table_bytes": fts, "token_vector_bytes": index.nbytes(),
            "text_bytes": text, "bm25_over_vectors": round(fts / index.nbytes(), 4)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/hybrid_retrieval.json")
    p.add_argument("--latency-queries", type=int, default=100)
    p.add_argument("--latency-only", metavar="OUT",
                   help="only the latency and storage measurement (MS MARCO pool), written to OUT")
    args = p.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    started = time.perf_counter()
    model = FGRColBERT.from_pretrained()
    if args.latency_only:
        marco = load_beir(DATA / "retrieval" / "msmarco-dev-small-600")
        retriever = retriever_for("msmarco-dev-small-600", marco, model)
        queries = [marco.queries[q] for q in select_queries(marco)][: args.latency_queries]
        out = {"latency_msmarco_pool": latency(retriever, queries), "storage_msmarco_pool": storage(retriever),
               "queries": len(queries), "threads": torch.get_num_threads()}
        print(json.dumps(out, indent=1))
        atomic_write_text(Path(args.latency_only), json.dumps(out, indent=1) + "\n")
        return 0
    dl20 = load_beir(DATA / "retrieval" / "trec-dl20")
    hotpot, hotpot_qids = hotpot_dev()
    marco = load_beir(DATA / "retrieval" / "msmarco-dev-small-600")
    plan = [  # (result name, cache name, dataset, query ids, rerank?, metrics, primary metric)
        ("trec-dl20 full", "trec-dl20", dl20, select_queries(dl20), False, ["ndcg@10", "recall@10"], "ndcg@10"),
        ("trec-dl20 rerank@100", "trec-dl20", dl20, select_queries(dl20), True, ["ndcg@10"], "ndcg@10"),
        ("hotpotqa dev full", "hotpotqa-dev", hotpot, hotpot_qids, False, ["ndcg@10", "recall@10"], "ndcg@10"),
        ("msmarco dev-small-600 full", "msmarco-dev-small-600", marco, select_queries(marco), False,
         ["mrr@10", "ndcg@10"], "mrr@10"),
    ]
    per_set: dict = {}
    retrievers: dict[str, FGRRetriever] = {}
    for name, cache, dataset, qids, rerank, metrics, primary in plan:
        print(name, len(qids), "queries", flush=True)
        if cache not in retrievers:
            retrievers[cache] = retriever_for(cache, dataset, model)
        run = dataset.run if rerank else None
        res = run_set(retrievers[cache], dataset, list(qids), rerank=rerank, metrics=metrics, run=run)
        per_set[name] = {"qids": list(qids), "primary": primary, **res}

    # choose the default on the calibration halves: best mean of the primary metric over the sets
    hybrid_names = [n for n in next(iter(per_set.values()))["per_query"] if n.startswith("hybrid")]

    def calib_mean(name: str) -> float:
        vals = []
        for s in per_set.values():
            keep = [half(q) == "calibration" for q in s["qids"]]
            vals.append(float(np.mean(np.asarray(s["per_query"][name][s["primary"]])[keep])))
        return float(np.mean(vals))

    calibration = {n: round(calib_mean(n), 4) for n in hybrid_names}
    chosen = max(calibration, key=calibration.get)
    best_per_fusion = {f: max((n for n in hybrid_names if f" {f} " in n), key=calibration.get)
                       for f in ("rrf", "relative_score")}
    results: dict = {"chosen_default": chosen, "best_per_fusion_on_calibration": best_per_fusion,
                     "calibration_mean_primary": calibration, "sets": {}}
    for name, s in per_set.items():
        qids, pq, primary = s["qids"], s["per_query"], s["primary"]
        entry = {"primary_metric": primary, "queries": len(qids), "product_path_check": s["check"],
                 "report_half": summarise(pq, qids, "report"), "full_set": summarise(pq, qids, None)}
        shown = ["bm25 (FTS5)", "late", *best_per_fusion.values()]
        entry["report_half_paired"] = {
            f"{h} minus {base}": paired(pq, qids, h, base, primary, "report")
            for h in best_per_fusion.values() for base in ("late", "bm25 (FTS5)")}
        entry["full_set_paired"] = {
            f"{h} minus {base}": paired(pq, qids, h, base, primary, None)
            for h in best_per_fusion.values() for base in ("late", "bm25 (FTS5)")}
        results["sets"][name] = entry
        print(name, {k: entry["full_set"][k][primary]["mean"] for k in shown + (
            ["bm25 (Anserini run)"] if "bm25 (Anserini run)" in pq else [])}, flush=True)
    marco_retriever = retrievers["msmarco-dev-small-600"]
    queries = [marco.queries[q] for q in select_queries(marco)][: args.latency_queries]
    results["latency_msmarco_pool"] = latency(marco_retriever, queries)
    results["storage_msmarco_pool"] = storage(marco_retriever)
    results["seconds"] = round(time.perf_counter() - started)
    results["settings"] = {"depth": DEPTH, "weights": WEIGHTS, "exact_boost": True, "model": "bundled default",
                           "threads": torch.get_num_threads()}
    print(json.dumps({k: results[k] for k in ("chosen_default", "latency_msmarco_pool", "storage_msmarco_pool")},
                     indent=1))
    atomic_write_text(Path(args.out), json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
