"""Which single vector should generate Qdrant's MaxSim candidates: a pooled vector or a MUVERA FDE?

    .venv/bin/python benchmarks/index_scale.py --encode          # once: the cached encodings
    .venv/bin/python scripts/train_answer_head.py --out /tmp/h.safetensors   # once: caches SQuAD passages
    pip install fastembed                                         # MUVERA's fixed-dimensional encodings
    .venv/bin/python benchmarks/experiments/qdrant_candidates.py

A Qdrant collection for fgr-retriever holds each document's token vectors as a multivector
(``MAX_SIM``) plus one single vector for fast candidate generation; a search prefetches the
``N`` nearest documents by the single vector and re-scores them with exact MaxSim. That is
exactly what this computes, with numpy instead of a server, so the strategies are compared on
the same candidates a server would re-score (a server's HNSW over the single vector adds its own,
small, approximation on top).

Corpora, all real passages encoded by the bundled model (no synthetic copies: near-duplicates
form clusters that make candidate generation look *easier* than it is, as a first run of this
script showed): the 11,710 MS MARCO dev-small-600 passages alone, and 32,410 passages = those
plus the 5,396 TREC DL 2020 pool passages and 5,913 HotpotQA dev passages (encoded here, cached)
and 9,391 SQuAD v1.1 train passages (cached by ``scripts/train_answer_head.py``). Queries: 200
real MS MARCO dev queries, all their positions (``[MASK]`` expansion included, as ranking uses
them). Recall@10 against exact MaxSim over the whole corpus, bootstrap 95 % intervals over queries.
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
from index_scale import Corpus  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "qdrant_candidates.json"
EXTRA = ROOT / "benchmarks" / ".cache" / "extra_passages.safetensors"
SQUAD = ROOT / "benchmarks" / ".cache" / "answer_head"
DATA = ROOT.parent / "shared" / "data" / "retrieval"


def extra_passages() -> list[torch.Tensor]:
    """Token vectors of the TREC DL 2020 and HotpotQA dev corpora (encoded once, cached) and of
    the SQuAD passages cached by the answer-head trainer."""
    import gzip

    from safetensors.torch import load_file, save_file

    if not EXTRA.exists():
        from fgr_retriever import FGRColBERT

        texts = [json.loads(line)["text"] for name in ("trec-dl20", "hotpotqa-dev")
                 for line in gzip.open(DATA / name / "corpus.jsonl.gz", "rt")]
        encs = FGRColBERT.from_pretrained().encode_documents(texts, batch_size=64, show_progress_bar=True)
        save_file({f"d{i}": e.vectors.to(torch.bfloat16).contiguous() for i, e in enumerate(encs)}, str(EXTRA))
    out = list(load_file(str(EXTRA)).values())
    for shard in sorted(SQUAD.glob("passages-*.safetensors")):
        t = load_file(str(shard))
        out += [v for k, v in t.items() if k.endswith(".v")]
    return [v.float() for v in out]
CANDIDATES = (100, 200, 500, 1000)


def exact_top(queries, vectors: torch.Tensor, starts: np.ndarray, k: int = 10) -> list[np.ndarray]:
    """Exact MaxSim top-k documents per query (each document's rows are contiguous)."""
    out = []
    for q in queries:
        sims = (vectors @ q.T).numpy()  # [T, Q]
        per_doc = np.maximum.reduceat(sims, starts, axis=0).sum(axis=1)
        out.append(np.argsort(-per_doc)[:k])
    return out


def rerank_top(q, cand: np.ndarray, vectors: torch.Tensor, starts: np.ndarray, rows: np.ndarray, k: int = 10):
    scores = []
    for d in cand:
        a = int(starts[d])
        scores.append(float((vectors[a: a + int(rows[d])] @ q.T).max(dim=0).values.sum()))
    return cand[np.argsort(-np.asarray(scores))[:k]]


def bootstrap(values: list[float], rounds: int = 2000) -> list[float]:
    arr = np.asarray(values)
    rng = np.random.default_rng(0)
    means = [arr[rng.integers(0, len(arr), len(arr))].mean() for _ in range(rounds)]
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def main() -> int:
    from fastembed.postprocess.muvera import Muvera

    torch.set_num_threads(2)
    corpus = Corpus()
    queries = [q.float() for q in corpus.queries[:200]]
    report: dict = {"queries": len(queries), "sizes": {}}
    muveras = {"muvera k_sim=5 d_proj=16 r=20 (10,240-d)": Muvera(dim=384, k_sim=5, dim_proj=16, r_reps=20),
               "muvera k_sim=4 d_proj=8 r=20 (2,560-d)": Muvera(dim=384, k_sim=4, dim_proj=8, r_reps=20)}
    _, base = corpus.documents(0, corpus.n)
    base_vectors = [e.vectors for e in base]
    extra = extra_passages()
    for name, docs_vectors in (("msmarco", base_vectors), ("msmarco+trec+hotpotqa+squad", base_vectors + extra)):
        size = len(docs_vectors)
        t0 = time.perf_counter()
        rows = np.array([v.shape[0] for v in docs_vectors])
        starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
        vectors = torch.cat(docs_vectors).float()
        truth = exact_top(queries, vectors, starts)
        print(f"{size:,} documents, {len(vectors):,} tokens; exact top-10 in {time.perf_counter() - t0:.0f} s",
              flush=True)
        strategies: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
        pooled = torch.nn.functional.normalize(torch.stack([v.mean(0) for v in docs_vectors]), dim=-1).numpy()
        strategies["pooled mean"] = (pooled, [torch.nn.functional.normalize(q.mean(0), dim=0).numpy() for q in queries])
        for name, mv in muveras.items():
            t1 = time.perf_counter()
            docs = np.stack([mv.process_document(v.numpy()) for v in docs_vectors]).astype(np.float32)
            strategies[name] = (docs, [mv.process_query(q.numpy()).astype(np.float32) for q in queries])
            print(f"  {name}: encoded in {time.perf_counter() - t1:.0f} s", flush=True)
        result = {}
        for name, (docs, qvecs) in strategies.items():
            row = {}
            for n in CANDIDATES:
                recalls = []
                for q, qv, true in zip(queries, qvecs, truth):
                    cand = np.argsort(-(docs @ qv))[:n]
                    got = rerank_top(q, cand, vectors, starts, rows)
                    recalls.append(len(set(got.tolist()) & set(true.tolist())) / 10)
                row[str(n)] = {"recall_at_10": round(float(np.mean(recalls)), 4), "ci95": bootstrap(recalls)}
            row["bytes_per_document"] = int(docs.shape[1] * 4)
            result[name] = row
            print(f"  {name}: " + ", ".join(f"{n}: {row[str(n)]['recall_at_10']:.3f}" for n in CANDIDATES), flush=True)
        report["sizes"][str(size)] = {"corpus": name, "tokens": int(len(vectors)), "strategies": result}
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
