"""Speed and size benchmarks of the core (encode, search with and without highlights, storage).

Reads ``../shared/data`` (BEIR folders), writes ``benchmarks/results/core.json`` and prints a
Markdown summary (pasted into ``docs/benchmarks.md``)::

    .venv/bin/python benchmarks/run_benchmarks.py            # full run, ~10 min on 2 cores
    .venv/bin/python benchmarks/run_benchmarks.py --quick    # smaller, ~2 min

Numbers are wall-clock on the machine that runs it; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fgr_retriever import Document, EmbeddedIndex, FGRColBERT, FGRRetriever

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_beir(name: str):
    folder = DATA / "retrieval" / name
    corpus = read_jsonl(folder / "corpus.jsonl.gz")
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    run: dict[str, list[str]] = {}
    if (folder / "run.bm25.tsv").exists():
        for line in (folder / "run.bm25.tsv").read_text(encoding="utf-8").splitlines():
            qid, _, did, *_ = line.split("\t")
            run.setdefault(qid, []).append(did)
    return corpus, queries, qrels, run


def ndcg_at_10(ranked: list[str], judged: dict[str, int]) -> float:
    dcg = sum(judged.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def timed(fn, repeat: int = 1):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return out, best


def bench_encode(model: FGRColBERT, texts: list[str]) -> dict:
    out = {}
    encs = {}
    for precision in ("float32", "bfloat16"):
        model.precision = precision
        model.encode_documents(texts[:16])  # warm-up
        encs[precision], dt = timed(lambda: model.encode_documents(texts, batch_size=32))
        out[f"docs_per_s_{precision}"] = round(len(texts) / dt, 1)
    model.precision = "float32"
    cos = torch.cat([(a.vectors * b.vectors).sum(-1) for a, b in zip(encs["float32"], encs["bfloat16"])])
    out["bf16_vs_fp32_token_cosine_mean"] = round(float(cos.mean()), 5)
    out["bf16_vs_fp32_token_cosine_p01"] = round(float(torch.quantile(cos, 0.01)), 5)
    return out, encs["float32"]


def latency(retriever: FGRRetriever, queries: list[str], k: int, highlight: bool) -> list[float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        retriever.search(q, k=k, highlight=highlight)
        times.append((time.perf_counter() - t) * 1000)
    return times


def bench_search(retriever: FGRRetriever, queries: list[str], k: int) -> dict:
    latency(retriever, queries[:5], k, True)  # warm-up
    # interleave on/off so machine noise hits both equally
    on, off = [], []
    for q in queries:
        off += latency(retriever, [q], k, False)
        on += latency(retriever, [q], k, True)
    enc_q = [timed(lambda q=q: retriever.model.encode_queries(q))[1] * 1000 for q in queries[:50]]
    return {
        "documents": len(retriever),
        "tokens": retriever.index.num_tokens,
        "queries": len(queries),
        "k": k,
        "ms_per_query_highlight_off": round(statistics.median(off), 2),
        "ms_per_query_highlight_on": round(statistics.median(on), 2),
        "highlight_overhead_ratio": round(statistics.median(on) / statistics.median(off), 3),
        "ms_query_encoding": round(statistics.median(enc_q), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller corpora and fewer queries")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "core.json")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}; the benchmarks need it", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    n_docs = 1500 if args.quick else 6000
    n_queries = 40 if args.quick else 200
    model = FGRColBERT.from_pretrained()
    results: dict = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__,
                    "threads": torch.get_num_threads(), "processor": platform.processor() or platform.machine()},
        "model": "bundled default (all-MiniLM-L6-v2, 384-d, untrained head)",
    }

    # --- encoding speed and bf16 agreement (TREC DL20 candidate passages)
    corpus, _, _, _ = load_beir("trec-dl20")
    sample = [d["text"] for d in corpus[:400 if not args.quick else 120]]
    results["encode"], _ = bench_encode(model, sample)
    results["encode"]["passages"] = len(sample)
    print("encode", results["encode"], flush=True)

    # --- HotpotQA: full-corpus retrieval, latency, storage
    corpus, queries, qrels, _ = load_beir("hotpotqa-dev")
    corpus = corpus[:n_docs]
    docs = [Document(id=d["_id"], text=d["text"], metadata={"title": d.get("title", "")}) for d in corpus]
    encodings, dt = timed(lambda: model.encode_documents([d.text for d in docs], batch_size=32))
    index = EmbeddedIndex(dim=model.dim)
    index.add(docs, encodings)
    retriever = FGRRetriever(model=model, index=index)
    qids = [q for q in sorted(queries) if q in qrels][:n_queries]
    qtexts = [queries[q] for q in qids]
    scale = {}
    scale["hotpotqa"] = bench_search(retriever, qtexts, k=10)
    scale["hotpotqa"]["index_docs_per_s"] = round(len(docs) / dt, 1)
    in_corpus = {d.id for d in docs}
    nd = []
    for qid in qids:
        judged = {d: s for d, s in qrels[qid].items()}
        if not any(d in in_corpus for d in judged):
            continue
        ranked = [r.id for r in retriever.search(queries[qid], k=10, highlight=False)]
        nd.append(ndcg_at_10(ranked, judged))
    scale["hotpotqa"]["ndcg@10_full_retrieval"] = round(float(np.mean(nd)), 4)
    scale["hotpotqa"]["ndcg_queries"] = len(nd)
    print("hotpotqa", scale["hotpotqa"], flush=True)

    # storage: bytes per stored token, in memory and on disk
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        retriever.save(Path(tmp) / "idx")
        vec_bytes = (Path(tmp) / "idx" / "vectors.safetensors").stat().st_size
        total = sum(p.stat().st_size for p in (Path(tmp) / "idx").iterdir())
    results["storage"] = {
        "tokens": index.num_tokens,
        "dim": index.dim,
        "dtype": index.dtype,
        "bytes_per_token_in_memory": round(index.nbytes() / index.num_tokens, 1),
        "bytes_per_token_vectors_file": round(vec_bytes / index.num_tokens, 1),
        "bytes_per_token_whole_index_dir": round(total / index.num_tokens, 1),
        "tokens_per_document": round(index.num_tokens / len(index), 1),
    }
    print("storage", results["storage"], flush=True)

    # larger corpora: the same encoded passages under new ids (real vectors and texts)
    for copies in ((2,) if args.quick else (2, 4)):
        big = EmbeddedIndex(dim=model.dim)
        for c in range(copies):
            big.add([replace(d, id=f"{d.id}#{c}") for d in docs], encodings)
        r = FGRRetriever(model=model, index=big)
        key = f"hotpotqa_x{copies}"
        scale[key] = bench_search(r, qtexts[: max(20, n_queries // 4)], k=10)
        print(key, scale[key], flush=True)
        del big, r
    results["search"] = scale
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    print("\n| corpus | docs | tokens | ms/query (no highlight) | ms/query (highlight) | ratio |")
    print("|---|---|---|---|---|---|")
    for name, row in scale.items():
        print(f"| {name} | {row['documents']:,} | {row['tokens']:,} | {row['ms_per_query_highlight_off']} | "
              f"{row['ms_per_query_highlight_on']} | {row['highlight_overhead_ratio']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
