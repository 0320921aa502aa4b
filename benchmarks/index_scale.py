"""Index engine at scale: PersistentIndex (IVF-PQ candidates + exact re-scoring) against exact MaxSim.

Corpus: the 11,710 passages of ../shared/data/retrieval/msmarco-dev-small-600, encoded once with
the bundled model (``--encode``, ~3 min, cached in benchmarks/.cache/). Larger corpora add
*perturbed copies*: copy c of passage p has p's token vectors plus Gaussian noise (sigma 0.02 per
coordinate, then re-normalised: cosine ~0.89 to the original), its own id and p's text, so they
are near-duplicates that compete with the originals for every query, which is harder for the
quantiser than unrelated text. Queries: the 595 real MS MARCO dev queries of the same set.

For each size (10k, 100k by default; ``--sizes``) the script bulk-loads an index with
``auto_optimize=False`` in batches of 5,000 documents, runs ``optimize()`` (merges segments,
trains the quantiser), then in a fresh subprocess (clean RSS) measures on 2 threads:
single-query latency p50/p95 (approximate), recall@10 against exact MaxSim on the same index
(``approximate=False``), exact latency, RSS after the queries, disk size, and the time to add
1,000 more documents to the index (pre-encoded: encoding is the model's cost, reported apart).
The 10k row also times today's in-memory ``EmbeddedIndex`` scan as the baseline.

    .venv/bin/python benchmarks/index_scale.py --encode     # once
    .venv/bin/python benchmarks/index_scale.py --sizes 10000 100000

Writes benchmarks/results/index_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "msmarco600.safetensors"
OUT = ROOT / "benchmarks" / "results" / "index_scale.json"
DATA = ROOT.parent / "shared" / "data" / "retrieval" / "msmarco-dev-small-600"
SIGMA = 0.02


def encode() -> None:
    import gzip

    from safetensors.torch import save_file

    from fgr_retriever import FGRColBERT

    docs = [json.loads(line) for line in gzip.open(DATA / "corpus.jsonl.gz", "rt")]
    queries = [json.loads(line) for line in open(DATA / "queries.jsonl")]
    model = FGRColBERT.from_pretrained()
    t = time.time()
    encs = model.encode_documents([d["text"] for d in docs], batch_size=32, show_progress_bar=True)
    seconds = time.time() - t
    qs = model.encode_queries([q["text"] for q in queries])
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    save_file({
        "vectors": torch.cat([e.vectors for e in encs]).to(torch.bfloat16),
        "offsets": torch.cat([e.offsets for e in encs]).to(torch.int32),
        "rows": torch.tensor([e.vectors.shape[0] for e in encs]),
        "windows": torch.tensor([len(e.window_lengths) for e in encs]),
        "window_lengths": torch.tensor([w for e in encs for w in e.window_lengths]),
        "query_vectors": torch.nn.utils.rnn.pad_sequence([q.vectors for q in qs], batch_first=True).float(),
        "query_lengths": torch.tensor([q.vectors.shape[0] for q in qs]),
    }, str(CACHE), metadata={"ids": json.dumps([d["_id"] for d in docs]), "fingerprint": model.fingerprint(),
                             "seconds": str(seconds)})
    print(f"encoded {len(docs)} passages in {seconds:.0f} s")


class Corpus:
    """The cached real encodings and a generator of (perturbed) documents from them."""

    def __init__(self) -> None:
        import gzip

        from safetensors.torch import load_file

        t = load_file(str(CACHE))
        self.vectors, self.offsets = t["vectors"], t["offsets"]
        self.rows = t["rows"].numpy()
        self.starts = np.concatenate([[0], np.cumsum(self.rows)[:-1]])
        wl = t["window_lengths"].numpy()
        wcount = t["windows"].numpy()
        wstart = np.concatenate([[0], np.cumsum(wcount)[:-1]])
        self.windows = [tuple(int(x) for x in wl[a: a + c]) for a, c in zip(wstart, wcount)]
        self.queries = [t["query_vectors"][i, : int(n)] for i, n in enumerate(t["query_lengths"])]
        self.texts = [json.loads(line)["text"] for line in gzip.open(DATA / "corpus.jsonl.gz", "rt")]
        self.n = len(self.rows)

    def documents(self, first: int, count: int, seed_offset: int = 0):
        from fgr_retriever.model.encoder import TextEncoding
        from fgr_retriever.types import Document

        docs, encs = [], []
        for j in range(first, first + count):
            p, c = j % self.n, j // self.n
            a, b = int(self.starts[p]), int(self.starts[p] + self.rows[p])
            vec = self.vectors[a:b].float()
            if c or seed_offset:
                g = torch.Generator().manual_seed(j + seed_offset)
                vec = torch.nn.functional.normalize(vec + SIGMA * torch.randn(vec.shape, generator=g), dim=-1)
            docs.append(Document(id=f"p{p}-c{c}-{seed_offset}", text=self.texts[p], metadata={"copy": c}))
            encs.append(TextEncoding(vectors=vec, offsets=self.offsets[a:b], window_lengths=self.windows[p]))
        return docs, encs


def build(path: Path, size: int) -> dict:
    from fgr_retriever.index import PersistentIndex

    corpus = Corpus()
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    index = PersistentIndex(path, dim=corpus.vectors.shape[1], auto_optimize=False)
    for first in range(0, size, 5000):
        docs, encs = corpus.documents(first, min(5000, size - first))
        index.add(docs, encs)
        print(f"  loaded {first + len(docs):,}/{size:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
    t_load = time.perf_counter() - t0
    index.optimize()
    t_build = time.perf_counter() - t0
    stats = index.stats()
    print(f"  built in {t_build:.0f} s: {stats}", flush=True)
    return {"documents": size, "tokens": stats["tokens"], "load_seconds": round(t_load, 1),
            "build_seconds": round(t_build, 1), "disk_bytes": stats["disk_bytes"],
            "quantiser": json.loads(index._conn().execute("SELECT value FROM meta WHERE key='ann_params'").fetchone()[0])}


def measure(path: Path, n_queries: int, n_exact: int, baseline: bool) -> dict:
    """Runs in a fresh process: latency, recall, RSS."""
    from fgr_retriever.index import EmbeddedIndex, PersistentIndex
    from fgr_retriever.model.encoder import QueryEncoding

    torch.set_num_threads(2)
    corpus = Corpus()
    queries = corpus.queries[:n_queries]
    del corpus
    import gc

    gc.collect()
    rss_before = _rss_mb()
    index = PersistentIndex(path, approximate=True)
    exact = PersistentIndex(path, approximate=False)
    enc = [QueryEncoding(vectors=q, relevance_mask=torch.ones(q.shape[0], dtype=torch.bool)) for q in queries]
    lat, results = timed_searches(index, enc)
    rss_approx = _rss_mb()
    recalls, exact_lat = [], []
    for q, got in zip(enc[:n_exact], results):
        t = time.perf_counter()
        truth = [h.id for h in exact.search(q, 10)]
        exact_lat.append(time.perf_counter() - t)
        recalls.append(len(set(truth) & set(got)) / 10)
    out = {"queries": len(enc), "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
           "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1),
           "recall_at_10": round(float(np.mean(recalls)), 4), "recall_queries": len(recalls),
           "recall_ci95": _bootstrap(recalls),
           "exact_p50_ms": round(1000 * float(np.percentile(exact_lat, 50)), 1),
           "rss_mb_before_open": round(rss_before), "rss_mb_after_queries": round(rss_approx),
           "peak_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if baseline:
        st = exact._current()
        emb = EmbeddedIndex(dim=exact.dim)
        ids = list(st.ids)
        for a in range(0, len(ids), 5000):
            emb.add(exact.get(ids[a: a + 5000]), [exact._tokens_at(st, i).encoding() for i in range(a, min(a + 5000, len(ids)))])
        base = []
        for q in enc[:n_exact]:
            t = time.perf_counter()
            emb.search(q, 10)
            base.append(time.perf_counter() - t)
        out["embedded_scan_p50_ms"] = round(1000 * float(np.percentile(base, 50)), 1)
    return out


def timed_searches(index, queries, k: int = 10) -> tuple[list[float], list[list[str]]]:
    """Seconds per single-query search and the ids found, after one untimed first touch."""
    index.search(queries[0], k)
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search(q, k)
        lat.append(time.perf_counter() - t)
        found.append([h.id for h in hits])
    return lat, found


def add_thousand(path: Path, size: int) -> dict:
    from fgr_retriever.index import PersistentIndex

    corpus = Corpus()
    docs, encs = corpus.documents(size, 1000, seed_offset=7)
    index = PersistentIndex(path)
    t = time.perf_counter()
    index.add(docs, encs)
    seconds = time.perf_counter() - t
    return {"add_1k_seconds": round(seconds, 2), "after_add": index.stats()}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _bootstrap(values: list[float], rounds: int = 2000) -> list[float]:
    rng = np.random.default_rng(0)
    v = np.asarray(values)
    means = [float(rng.choice(v, len(v)).mean()) for _ in range(rounds)]
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encode", action="store_true", help="encode the corpus and queries into the cache")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--exact-queries", type=int, default=50)
    p.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / ".cache")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--add", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.encode:
        encode()
        return 0
    if args.measure:
        if args.add is not None:
            print(json.dumps(add_thousand(args.measure, args.add)))
        else:
            print(json.dumps(measure(args.measure, args.queries, args.exact_queries, args.baseline)))
        return 0
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    results.setdefault("sizes", {})
    for size in args.sizes:
        path = args.workdir / f"index-{size}"
        print(f"== {size:,} passages", flush=True)
        row = build(path, size)
        cmd = [sys.executable, __file__, "--measure", str(path), "--queries", str(args.queries),
               "--exact-queries", str(args.exact_queries)]
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        out = subprocess.run(cmd + (["--baseline"] if size <= 20_000 else []), check=True, capture_output=True,
                             text=True, env=env)
        row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        out = subprocess.run(cmd + ["--add", str(size)], check=True, capture_output=True, text=True, env=env)
        row.update(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(row, indent=1), flush=True)
        results["sizes"][str(size)] = row
        results["setup"] = {"corpus": "msmarco-dev-small-600 passages + perturbed copies (sigma 0.02)",
                            "threads": 2, "model": "bundled default", "sigma": SIGMA}
        OUT.write_text(json.dumps(results, indent=1) + "\n")
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
