"""Retrieval must not pay for evidence: the evidence model against the previous default and dense
MiniLM, and the cost of highlighting at search time (a benchmark, not a test).

    .venv/bin/python benchmarks/retrieval_parity.py --previous runs/previous-default \\
        --out benchmarks/results/retrieval_parity.json

In one run:

* nDCG@10 re-ranking the BM25 top-100 of TREC DL 2020 and full retrieval of the HotpotQA dev-split
  questions over their paragraphs (the sets and code of ``evaluate_default.py``) for the bundled
  model, the previous default (``--previous``) and dense all-MiniLM-L6-v2 (mean pooling);
* search latency over ``--passages`` MS MARCO passages (k = 10, one query at a time) with
  highlighting off, with sentence evidence (the default) and with word evidence, alternated per
  query so machine noise hits all alike; and the latency of the precise second pass over the 10
  hits when ``--precise`` names an experimental cross-encoder.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate_default import DATA, hotpot_dev  # noqa: E402

from fgr_retriever import FGRColBERT, FGRRetriever  # noqa: E402
from fgr_retriever._io import atomic_write_text, iter_jsonl  # noqa: E402
from fgr_retriever.evaluation import DenseRanker, FGRRanker, evaluate_retrieval, load_beir  # noqa: E402


def retrieval(models: dict[str, FGRColBERT]) -> dict:
    out: dict = {}
    dl20 = load_beir(DATA / "retrieval" / "trec-dl20")
    hotpot, qids = hotpot_dev()
    rankers = {name: FGRRanker(m, name=name) for name, m in models.items()}
    rankers["dense_minilm"] = DenseRanker(name="dense_minilm")
    for name, ranker in rankers.items():
        out.setdefault("trec-dl20 rerank@100", {})[name] = evaluate_retrieval(dl20, ranker, mode="rerank",
                                                                             depth=100).metrics
        out.setdefault("hotpotqa dev-split full", {})[name] = evaluate_retrieval(hotpot, ranker, mode="full",
                                                                                query_ids=qids).metrics
        print(name, {k: round(v[name]["ndcg@10"], 4) for k, v in out.items()}, flush=True)
    out["trec-dl20 rerank@100"]["bm25"] = evaluate_retrieval(dl20, "bm25", mode="rerank").metrics
    return out


def overhead(model: FGRColBERT, *, passages: int, queries: int, precise: str | None) -> dict:
    folder = DATA / "retrieval" / "msmarco-dev-small-600"
    corpus = [(rec["_id"], rec["text"]) for _, rec in iter_jsonl(folder / "corpus.jsonl.gz")][:passages]
    qs = [rec["text"] for _, rec in iter_jsonl(folder / "queries.jsonl")][:queries]
    retriever = FGRRetriever(model=model, show_progress_bar=True)
    t0 = time.perf_counter()
    retriever.add_documents([t for _, t in corpus], ids=[i for i, _ in corpus])
    index_s = time.perf_counter() - t0
    modes = {"off": dict(highlight=False), "sentence": dict(unit="sentence"), "word": dict(unit="word")}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for q in qs[:3]:  # warm-up
        for kwargs in modes.values():
            retriever.search(q, k=10, **kwargs)
    for q in qs:
        for mode, kwargs in modes.items():
            t = time.perf_counter()
            retriever.search(q, k=10, **kwargs)
            times[mode].append(time.perf_counter() - t)
    med = {m: statistics.median(v) * 1000 for m, v in times.items()}
    out = {"passages": len(corpus), "queries": len(qs), "index_seconds": round(index_s, 1),
           "stored_tokens": int(sum(retriever.index.tokens(i).vectors.shape[0] for i, _ in corpus[:1000]) *
                                len(corpus) / min(1000, len(corpus))),
           "median_ms": {m: round(v, 2) for m, v in med.items()},
           "overhead_sentence": round(med["sentence"] / med["off"], 4),
           "overhead_word": round(med["word"] / med["off"], 4), "torch_threads": torch.get_num_threads()}
    if precise:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "precise_experiment"))
        from model import PreciseEvidenceModel

        pm = PreciseEvidenceModel.from_pretrained(precise)
        extra = []
        for q in qs[: min(len(qs), 40)]:
            hits = retriever.search(q, k=10, highlight=False)
            t = time.perf_counter()
            pm.highlight(q, [h.text for h in hits])
            extra.append(time.perf_counter() - t)
        out["precise_second_pass_median_ms"] = round(statistics.median(extra) * 1000, 1)
    print(json.dumps(out), flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--previous", help="directory of the previous default model, for the same-run comparison")
    p.add_argument("--precise", help="a precise cross-encoder directory (benchmarks/precise_experiment) for the "
                                     "second-pass latency")
    p.add_argument("--passages", type=int, default=10_000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--skip-retrieval", action="store_true")
    p.add_argument("--out", default="benchmarks/results/retrieval_parity.json")
    args = p.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    models = {"default": FGRColBERT.from_pretrained()}
    if args.previous:
        models["previous"] = FGRColBERT.from_pretrained(args.previous)
    results: dict = {}
    if not args.skip_retrieval:
        results["retrieval"] = retrieval(models)
    results["highlight_overhead"] = overhead(models["default"], passages=args.passages, queries=args.queries,
                                             precise=args.precise)
    results["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(Path(args.out), json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
