"""Would an int8 full-vector store keep ranking quality? (measured before choosing one)

The persistent index keeps every token vector in bf16 (768 bytes at 384-d) for exact re-scoring.
Symmetric per-token int8 (one float32 scale per token: 388 bytes) would halve the disk. This
script ranks the 595 MS MARCO dev-small-600 queries against all 11,710 passages of their pool
by exact MaxSim two ways from the same cached encodings (``benchmarks/index_scale.py
--encode``): bf16 (what the index stores) and int8 per token (quantised from those bf16
vectors), and reports recall@10 of int8 against bf16, and MRR@10 on the real relevance judgements with a
paired bootstrap 95 % interval of the int8 - bf16 difference.

    .venv/bin/python benchmarks/experiments/int8_rescoring.py

Writes ``benchmarks/results/int8_rescoring.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from index_scale import CACHE, DATA  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "int8_rescoring.json"


def maxsim_all(q: torch.Tensor, vectors: torch.Tensor, starts: np.ndarray, owner: np.ndarray, n_docs: int,
               chunk: int = 1 << 18) -> np.ndarray:
    """Exact MaxSim of one query against every passage (windows back to back, best window)."""
    ends = np.append(starts[1:], vectors.shape[0])
    win = np.empty(len(starts), dtype=np.float32)
    w0 = 0
    while w0 < len(starts):
        w1 = max(w0 + 1, int(np.searchsorted(ends, starts[w0] + chunk, side="right")))
        r0, r1 = int(starts[w0]), int(ends[w1 - 1])
        sim = (q @ vectors[r0:r1].T).numpy()
        win[w0:w1] = np.maximum.reduceat(sim, starts[w0:w1] - r0, axis=1).sum(axis=0)
        w0 = w1
    doc = np.full(n_docs, -np.inf, dtype=np.float32)
    np.maximum.at(doc, owner, win)
    return doc


def main() -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    torch.set_num_threads(2)
    t = load_file(str(CACHE))
    with safe_open(str(CACHE), framework="pt") as fh:
        ids = json.loads(fh.metadata()["ids"])
    bf16 = t["vectors"]
    wl = t["window_lengths"].numpy()
    wcount = t["windows"].numpy()
    starts = np.concatenate([[0], np.cumsum(wl)[:-1]])
    owner = np.repeat(np.arange(len(wcount)), wcount)
    queries = [t["query_vectors"][i, : int(n)] for i, n in enumerate(t["query_lengths"])]
    qids = [json.loads(line)["_id"] for line in open(DATA / "queries.jsonl")]
    qrels: dict[str, set[str]] = {}
    for line in open(DATA / "qrels.tsv"):
        parts = line.split()
        if len(parts) >= 3 and parts[0] != "query-id" and float(parts[-1]) > 0:
            qrels.setdefault(parts[0], set()).add(parts[1])

    f32 = bf16.float()
    scale = f32.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
    int8 = torch.round(f32 / scale).to(torch.int8)
    deq = int8.float() * scale  # what re-scoring from an int8 store computes with
    variants = {"bf16": f32, "int8": deq}
    rankings: dict[str, list[list[int]]] = {name: [] for name in variants}
    start = time.perf_counter()
    for q in queries:
        for name, vec in variants.items():
            scores = maxsim_all(q.float(), vec, starts, owner, len(wcount))
            top = np.argpartition(-scores, 9)[:10]
            rankings[name].append(top[np.argsort(-scores[top], kind="stable")].tolist())
    seconds = time.perf_counter() - start

    def mrr(ranks: list[list[int]]) -> list[float]:
        out = []
        for qid, top in zip(qids, ranks):
            rel = qrels.get(qid, set())
            out.append(next((1 / (i + 1) for i, d in enumerate(top) if ids[d] in rel), 0.0))
        return out

    m = {name: mrr(r) for name, r in rankings.items()}
    diff = np.asarray(m["int8"]) - np.asarray(m["bf16"])
    rng = np.random.default_rng(0)
    boots = [float(diff[rng.integers(0, len(diff), len(diff))].mean()) for _ in range(10_000)]
    recall = [len(set(a) & set(b)) / 10 for a, b in zip(rankings["int8"], rankings["bf16"])]
    result = {
        "queries": len(queries), "passages": len(wcount), "tokens": int(bf16.shape[0]),
        "bytes_per_token": {"bf16": 768, "int8": 384 + 4},
        "recall_at_10_int8_vs_bf16": round(float(np.mean(recall)), 4),
        "top1_agreement": round(float(np.mean([a[0] == b[0] for a, b in zip(rankings["int8"], rankings["bf16"])])), 4),
        "mrr_at_10": {name: round(float(np.mean(v)), 4) for name, v in m.items()},
        "mrr_diff_int8_minus_bf16": round(float(diff.mean()), 4),
        "mrr_diff_ci95": [round(float(np.percentile(boots, 2.5)), 4), round(float(np.percentile(boots, 97.5)), 4)],
        "seconds": round(seconds),
    }
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
