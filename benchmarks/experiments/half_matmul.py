"""16-bit MaxSim on CPUs without 16-bit matmul: native bf16 against float32 upcast (a benchmark).

    .venv/bin/python benchmarks/experiments/half_matmul.py --out benchmarks/results/half_matmul.json

Late-interaction search over the MS MARCO pool (11,710 passages, bf16 token vectors, the
embedded index built by ``benchmarks/hybrid_retrieval.py``), one query at a time, the two ways
of multiplying alternated per query (``FGR_HALF_MATMUL``), and what the automatic probe picks on
this machine. Also: do the rankings agree (top-10 overlap), and how far apart are the scores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evaluate_default import DATA  # noqa: E402

from fgr_retriever import FGRColBERT, FGRRetriever  # noqa: E402
from fgr_retriever._io import atomic_write_text, iter_jsonl  # noqa: E402
from fgr_retriever.model import scoring  # noqa: E402

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "hybrid" / "msmarco-dev-small-600"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/half_matmul.json")
    p.add_argument("--queries", type=int, default=40)
    args = p.parse_args()
    if not (CACHE / "index.json").exists():
        print("run benchmarks/hybrid_retrieval.py first (it builds the MS MARCO index)", file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    model = FGRColBERT.from_pretrained()
    retriever = FGRRetriever.load(CACHE, model=model)
    queries = [rec["text"] for _, rec in iter_jsonl(DATA / "retrieval" / "msmarco-dev-small-600" / "queries.jsonl")]
    encoded = model.encode_queries(queries[: args.queries])
    times: dict[str, list[float]] = {"native": [], "upcast": []}
    overlap, score_gap = [], []
    for q in encoded:
        hits = {}
        for mode in times:
            os.environ["FGR_HALF_MATMUL"] = mode
            t = time.perf_counter()
            hits[mode] = retriever.index.search(q, 10)
            times[mode].append(1000 * (time.perf_counter() - t))
        overlap.append(len({h.id for h in hits["native"]} & {h.id for h in hits["upcast"]}) / 10)
        score_gap.append(max(abs(a.score - b.score) for a, b in zip(hits["native"], hits["upcast"])))
    os.environ.pop("FGR_HALF_MATMUL")
    scoring._native_half.clear()
    out = {
        "tokens": retriever.index.num_tokens, "documents": len(retriever), "queries": len(encoded),
        "median_ms": {m: round(statistics.median(v), 1) for m, v in times.items()},
        "speedup_upcast": round(statistics.median(times["native"]) / statistics.median(times["upcast"]), 2),
        "top10_overlap_mean": round(statistics.mean(overlap), 4),
        "max_top10_score_gap": round(max(score_gap), 4),
        "probe_picks_native": scoring._native_half_is_faster(torch.bfloat16, model.dim),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    print(json.dumps(out, indent=1))
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
