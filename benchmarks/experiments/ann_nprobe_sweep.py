"""How latency and recall trade off with ``nprobe`` and ``neighbours`` (100k passages).

Builds (or reuses) the 100k-passage index of ``benchmarks/index_scale.py`` (same corpus:
MS MARCO dev-small-600 passages plus perturbed copies), computes exact MaxSim top-10 for the
first 30 queries once, then for each setting measures single-query p50/p95 over 200 queries
(2 threads) and recall@10 against exact on the 30. The defaults were not tuned on this run; it
shows where the latency at 1M passages could come from.

    .venv/bin/python benchmarks/experiments/ann_nprobe_sweep.py

Writes ``benchmarks/results/ann_nprobe_sweep.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

import index_scale  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "ann_nprobe_sweep.json"
PATH = ROOT / "benchmarks" / ".cache" / "index-sweep-100000"


def main() -> None:
    from fgr_retriever.index import PersistentIndex
    from fgr_retriever.model.encoder import QueryEncoding

    torch.set_num_threads(2)
    if not (PATH / "catalog.sqlite").exists():
        index_scale.build(PATH, 100_000)
    queries = index_scale.Corpus().queries[:200]
    enc = [QueryEncoding(vectors=q, relevance_mask=torch.ones(q.shape[0], dtype=torch.bool)) for q in queries]
    exact = PersistentIndex(PATH, approximate=False)
    truth = [[h.id for h in exact.search(q, 10)] for q in enc[:30]]
    rows = []
    for nprobe in (8, 16, 32, 64):
        for neighbours in (128, 256):
            index = PersistentIndex(PATH, ann={"nprobe": nprobe, "neighbours": neighbours})
            lat, got = index_scale.timed_searches(index, enc)
            recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)]))
            rows.append({"nprobe": nprobe, "neighbours": neighbours, "p50_ms": round(1000 * float(np.median(lat)), 1),
                         "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1), "recall_at_10": round(recall, 4)})
            print(rows[-1], flush=True)
            index.close()
    OUT.write_text(json.dumps({"documents": 100_000, "tokens": exact.num_tokens, "recall_queries": 30,
                               "latency_queries": 200, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
