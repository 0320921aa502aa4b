"""Hybrid search on Qdrant against the same search on the embedded index (a benchmark).

    .venv/bin/python benchmarks/experiments/qdrant_hybrid.py --out benchmarks/results/qdrant_hybrid.json

``QdrantIndex`` ranks BM25 with Qdrant's own full-text index (``TextQuery`` over a field of
Porter stems made by ``fgr_retriever.index.lexical.analyse``, the lexical fields written twice)
where the local indexes use SQLite FTS5 (its Porter stemmer, the fields as a column of weight 2).
Does hybrid search keep its quality?

* HotpotQA dev-split questions over their 2,967 paragraphs (the set where hybrid gained most in
  ``benchmarks/hybrid_retrieval.py``), its report half (the default fusion was chosen on the
  other): nDCG@10 of late, hybrid (default fusion) and BM25 alone on the embedded index, hybrid
  and BM25 alone on Qdrant, bootstrap 95 % CIs, paired differences, and how far the two BM25s
  agree (overlap of their top 10). Late interaction on Qdrant is checked against the embedded
  index's on every tenth query (same top 10) rather than scored: local mode takes seconds a query.
* The demo catalogue: its 29 product references asked about (``Is MV-BRM-CN available in another
  colour?``) and the 38 demo questions, top-1 per mode on Qdrant (the embedded figures are in
  ``benchmarks/results/hybrid_references.json``).

Qdrant runs in qdrant-client's local mode (no server installs here); the vectors are copied from
the embedded index, so late interaction is the same on both and differences come from BM25.
Local mode's latencies say nothing about a server's and are not reported.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from evaluate_default import DATA, hotpot_dev  # noqa: E402
from hybrid_retrieval import bootstrap, half, retriever_for  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from fgr_retriever import FGRColBERT, FGRRetriever, QdrantIndex  # noqa: E402
from fgr_retriever._io import atomic_write_text  # noqa: E402
from fgr_retriever.evaluation.retrieval_metrics import ndcg_at_k  # noqa: E402
from fgr_retriever.ingest import read_documents  # noqa: E402

EXAMPLES = HERE.parents[1] / "examples"
MODES = ("late", "hybrid", "lexical")


def qdrant_copy(source: FGRRetriever) -> FGRRetriever:
    """The source's documents and token vectors in a local-mode Qdrant collection."""
    index = QdrantIndex.for_model(source.model, location=":memory:", batch_size=256)
    ids = source.index.ids()
    for b in tqdm(range(0, len(ids), 256), desc="copying into Qdrant"):
        docs = source.index.get(ids[b: b + 256])
        index.add(docs, [source.index.tokens(d.id).encoding() for d in docs])
    return FGRRetriever(model=source.model, index=index)


def stats(values: list[float]) -> dict:
    arr = np.asarray(values)
    return {"mean": round(float(arr.mean()), 4), "ci95": bootstrap(arr), "n": int(len(arr))}


def hotpot(model: FGRColBERT) -> dict:
    dataset, qids = hotpot_dev()
    qids = [q for q in qids if half(q) == "report"]
    embedded = retriever_for("hotpotqa-dev", dataset, model)
    qdrant = qdrant_copy(embedded)
    scores: dict[str, list[float]] = {}
    overlap: list[float] = []
    late_check = {"queries": 0, "same_top10": 0}
    for n, qid in enumerate(tqdm(qids, desc="HotpotQA queries")):
        text, judged = dataset.queries[qid], dataset.qrels.get(qid, {})
        tops = {}
        for backend, r, modes in (("embedded", embedded, MODES), ("qdrant", qdrant, ("hybrid", "lexical"))):
            for mode in modes:
                ranking = [h.id for h in r.search(text, k=10, mode=mode, highlight=False)]
                scores.setdefault(f"{backend} {mode}", []).append(ndcg_at_k(ranking, judged, 10))
                tops[backend, mode] = ranking
        if n % 10 == 0:
            late_check["queries"] += 1
            late_check["same_top10"] += [h.id for h in qdrant.search(text, k=10, highlight=False)] == tops[
                "embedded", "late"]
        a, b = set(tops["embedded", "lexical"]), set(tops["qdrant", "lexical"])
        overlap.append(len(a & b) / max(1, min(len(a), len(b))))
    out: dict = {"queries": len(qids), "half": "report", "passages": len(dataset.corpus), "metric": "ndcg@10",
                 "qdrant_late_check": late_check}
    out.update({name: stats(v) for name, v in scores.items()})
    for a, b in (("qdrant hybrid", "embedded hybrid"), ("qdrant hybrid", "embedded late"),
                 ("qdrant lexical", "embedded lexical")):
        diff = np.asarray(scores[a]) - np.asarray(scores[b])
        out[f"{a} - {b}"] = {"mean": round(float(diff.mean()), 4), "ci95": bootstrap(diff)}
    out["bm25 top-10 overlap (qdrant vs fts5)"] = stats(overlap)
    return out


def references(model: FGRColBERT) -> dict:
    r = FGRRetriever(model=model, index=QdrantIndex.for_model(model, location=":memory:"))
    r.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    refs = {m.group(1): d.id for d in r.get(r.index.ids())
            for m in re.finditer(r"Reference: ([A-Z0-9][A-Z0-9-]+[A-Z0-9])", d.text)}
    questions = json.loads((EXAMPLES / "demo_questions.json").read_text(encoding="utf-8"))
    out: dict = {"references": len(refs), "demo_questions": len(questions)}
    for mode in MODES:
        asked = [ref for ref, doc in refs.items()
                 if r.search(f"Is {ref} available in another colour?", k=1, mode=mode)[0].id == doc]
        top1 = sum(r.search(q["question"], k=1, mode=mode)[0].id == q["expected_id"] for q in questions)
        out[mode] = {"reference_question_top1": len(asked), "missed": sorted(set(refs) - set(asked)),
                     "demo_top1": top1}
        print(mode, out[mode], flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/qdrant_hybrid.json")
    args = p.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    torch.set_num_threads(2)
    started = time.perf_counter()
    model = FGRColBERT.from_pretrained()
    out = {"demo_catalogue_on_qdrant": references(model), "hotpotqa_dev": hotpot(model)}
    out["seconds"] = round(time.perf_counter() - started)
    print(json.dumps(out["hotpotqa_dev"], indent=1))
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
