"""Choose the untrained default model's relevance head (a, b, threshold) and marker setup.

Fits ``sigmoid(a * maxcos + b)`` by logistic regression on the gold paragraphs of the first
HotpotQA questions (supporting-fact sentences as evidence; a file the shared-data README allows
training on), picks the threshold that maximises wordpiece micro-F1 on the same pairs, then
reports wordpiece micro-F1 on the human-annotated MS MARCO dev file (held out) and MRR@10 on
MS MARCO dev-small re-ranking for each variant.

For an untrained head the F1-optimal threshold is degenerate (it selects almost every token,
i.e. "select all"), which makes highlights useless to look at. The shipped threshold is therefore
the probability at the 80th percentile of the fit set's max-cosines (about the top fifth of
tokens); both choices and their held-out F1 are recorded.

    .venv/bin/python benchmarks/calibrate_default.py --out benchmarks/results/calibration.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fgr_retriever.model import FGRColBERT

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line))
            if limit and len(out) >= limit:
                break
    return out


def token_maxcos(model: FGRColBERT, records: list[dict]):
    """Per record: (max cosine per wordpiece, gold label per wordpiece)."""
    out = []
    for rec in records:
        q = model.encode_queries(rec["query"])[0]
        enc = model.encode_documents(rec["passage"])[0]
        valid = enc.offsets[:, 0] >= 0
        d = enc.vectors[valid]
        offs = enc.offsets[valid].numpy()
        qv = q.vectors[q.relevance_mask]
        cos = (d @ qv.T).max(dim=1).values.numpy()
        gold = np.zeros(len(offs), dtype=bool)
        for s, e in rec["spans"]:
            gold |= (offs[:, 0] < e) & (offs[:, 1] > s)
        out.append((cos, gold))
    return out


def fit(pairs) -> tuple[float, float, float]:
    x = torch.tensor(np.concatenate([c for c, _ in pairs]), dtype=torch.float32)
    y = torch.tensor(np.concatenate([g for _, g in pairs]), dtype=torch.float32)
    a = torch.tensor(10.0, requires_grad=True)
    b = torch.tensor(-5.0, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * x + b, y)
        loss.backward()
        return loss

    opt.step(closure)
    p = torch.sigmoid(a * x + b).detach().numpy()
    gold = y.numpy() > 0
    # search thresholds over the probabilities' own quantiles: a fixed grid can miss them all
    candidates = np.unique(np.round(np.quantile(p, np.linspace(0.01, 0.99, 99)), 3))
    best = max((micro_f1(p >= t, gold), float(t)) for t in candidates if 0.0 < t < 1.0)
    return float(a.detach()), float(b.detach()), best[1]


def selective_threshold(pairs, a: float, b: float, quantile: float = 0.8) -> float:
    x = np.concatenate([c for c, _ in pairs])
    return float(round(1 / (1 + np.exp(-(a * np.quantile(x, quantile) + b))), 3))


def micro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    return 0.0 if tp == 0 else float(2 * tp / (pred.sum() + gold.sum()))


def precision(pairs, a: float, b: float, t: float) -> float:
    p = np.concatenate([1 / (1 + np.exp(-(a * c + b))) for c, _ in pairs]) >= t
    g = np.concatenate([g for _, g in pairs])
    return float((p & g).sum() / max(1, p.sum()))


def evaluate_f1(pairs, a: float, b: float, t: float) -> float:
    p = np.concatenate([1 / (1 + np.exp(-(a * c + b))) for c, _ in pairs])
    return micro_f1(p >= t, np.concatenate([g for _, g in pairs]))


def mrr_at_10(model: FGRColBERT, n_queries: int) -> float:
    folder = DATA / "retrieval" / "msmarco-dev-small-600"
    corpus = {d["_id"]: d["text"] for d in read_jsonl(folder / "corpus.jsonl.gz")}
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, set[str]] = {}
    for line in (folder / "qrels.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    runs: dict[str, list[str]] = {}
    for line in (folder / "run.bm25.tsv").read_text().splitlines():
        qid, _, did, *_ = line.split("\t")
        runs.setdefault(qid, []).append(did)
    total = 0.0
    qids = sorted(runs)[:n_queries]
    for qid in qids:
        cands = [d for d in runs[qid] if d in corpus]
        scores = model.score(queries[qid], [corpus[d] for d in cands])
        ranked = [d for _, d in sorted(zip(scores, cands), key=lambda x: -x[0])][:10]
        total += next((1 / (i + 1) for i, d in enumerate(ranked) if d in qrels.get(qid, ())), 0.0)
    return total / len(qids)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/calibration.json"))
    ap.add_argument("--hotpot", type=int, default=300, help="HotpotQA questions whose gold paragraphs are used to fit")
    ap.add_argument("--mrr-queries", type=int, default=100)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}; nothing to calibrate", file=sys.stderr)
        return 1
    torch.set_grad_enabled(True)
    hotpot = read_jsonl(DATA / "highlight" / "hotpotqa-dev.jsonl.gz")
    first_questions = sorted({r["question_id"] for r in hotpot})[: args.hotpot]
    keep = set(first_questions)
    fit_records = [r for r in hotpot if r["question_id"] in keep and r["spans"]]
    human = read_jsonl(DATA / "highlight" / "msmarco-human-dev.jsonl")
    variants = {
        "no_markers": dict(query_marker=None, doc_marker=None),
        "unused_markers": dict(query_marker="[unused0]", doc_marker="[unused1]"),
    }
    results = {}
    for name, overrides in variants.items():
        model = FGRColBERT.from_pretrained(**overrides)
        with torch.inference_mode():
            fit_pairs = token_maxcos(model, fit_records)
            dev_pairs = token_maxcos(model, human)
        a, b, t = fit(fit_pairs)
        with torch.inference_mode():
            mrr = mrr_at_10(model, args.mrr_queries)
        results[name] = {
            "a": round(a, 4), "b": round(b, 4), "threshold": t,
            "hotpot_fit_micro_f1": round(evaluate_f1(fit_pairs, a, b, t), 4),
            "msmarco_human_dev_micro_f1": round(evaluate_f1(dev_pairs, a, b, t), 4),
            "selective_threshold": (ts := selective_threshold(fit_pairs, a, b)),
            "msmarco_human_dev_micro_f1_selective": round(evaluate_f1(dev_pairs, a, b, ts), 4),
            "msmarco_human_dev_precision_selective": round(precision(dev_pairs, a, b, ts), 4),
            "msmarco_human_dev_select_all_f1": round(evaluate_f1(dev_pairs, 0.0, 10.0, 0.5), 4),
            "msmarco_human_dev_positive_rate": round(float(np.concatenate([g for _, g in dev_pairs]).mean()), 4),
            "msmarco_dev_small_mrr10": round(mrr, 4),
        }
        print(name, results[name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"hotpot_questions": args.hotpot, "mrr_queries": args.mrr_queries,
                                    "variants": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
