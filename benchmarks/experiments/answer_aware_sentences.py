"""Does the answer head help choose the evidence sentence? An experiment on issue 9's sets.

    .venv/bin/python benchmarks/experiments/answer_aware_sentences.py \\
        --out benchmarks/results/answer_aware_sentences.json          # ~15 min on 2 cores

The shipped evidence decoder ranks a passage's sentences by their MaxSim with the query. That
favours sentences that *repeat* the query (``The Ondine 28 is our signature shoulder bag``) over
the one that answers it (``Weight: 0.9 kg.``). The bundled model also carries an answer head
(:mod:`fgr_retriever.evidence.answer`, trained on SQuAD v1.1 train with "no answer" targets on
other sentences), which reads each sentence's stored vectors with the query's and says whether
it holds an answer. Here every sentence gets both signals, combined by a logistic regression
fitted on the calibration set of ``benchmarks/evidence_quality.py`` (same sets, same threshold
and ratio search, same reported sets and two-fold MS MARCO protocol), and compared with the
sentence score alone in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import evidence_quality as eq  # noqa: E402  (the benchmark whose protocol this reuses)

from fgr_retriever import FGRColBERT  # noqa: E402
from fgr_retriever._io import atomic_write_text  # noqa: E402
from fgr_retriever.evidence.answer import sentence_rows  # noqa: E402
from fgr_retriever.evidence.sentence_decoding import unit_scores  # noqa: E402

KIND = "sentence"


def head_features(model: FGRColBERT, query, vectors: torch.Tensor, offsets: np.ndarray, units) -> np.ndarray:
    """Per unit ``[log-odds that it holds an answer, log of the best span's probability]``."""
    head = model.answer_head
    out = np.full((len(units), 2), -20.0, dtype=np.float64)
    groups = [(k, sentence_rows(offsets, s, e, head.max_tokens)) for k, (s, e) in enumerate(units)]
    groups = [(k, rows) for k, rows in groups if len(rows)]
    if not groups:
        return out
    width = max(len(rows) for _, rows in groups)
    doc = torch.zeros(len(groups), width, vectors.shape[1])
    mask = torch.zeros(len(groups), width, dtype=torch.bool)
    for g, (_, rows) in enumerate(groups):
        doc[g, : len(rows)] = vectors[torch.from_numpy(rows)].float()
        mask[g, : len(rows)] = True
    q = query.vectors.cpu().float()[None].expand(len(groups), -1, -1)
    qmask = torch.ones(len(groups), q.shape[1], dtype=torch.bool)
    real = query.relevance_mask.cpu()[None].expand(len(groups), -1)
    with torch.inference_mode():
        start, end = head(doc, mask, q, qmask, real)
    ls, le = start.log_softmax(-1), end.log_softmax(-1)
    span_cap = int(head.settings["max_answer_tokens"])
    for g, (k, rows) in enumerate(groups):
        none = float(ls[g, 0] + le[g, 0])
        n = len(rows)
        s, e = ls[g, 1: n + 1], le[g, 1: n + 1]
        pair = s[:, None] + e[None, :]
        i = torch.arange(n)
        ok = (i[None, :] >= i[:, None]) & (i[None, :] - i[:, None] < span_cap)
        best = float(pair.masked_fill(~ok, -1e9).max())
        p_none = float(np.exp(none))
        out[k] = [np.log(max(1e-9, 1 - p_none)) - np.log(max(1e-9, p_none)), best]
    return out


def score(model: FGRColBERT, sets) -> dict:
    """``evidence_quality``'s scoring, plus the answer head's features of every sentence."""
    def head(model, q, enc, e):
        return {"head": head_features(model, q, enc.vectors, enc.offsets.numpy(), e.units[KIND])}

    scored = eq.score_model(model, sets, extra=head)
    for rows in scored.values():
        for row in rows:
            row["raw"] = row["raw"][KIND].astype(np.float64)
    return scored


def logistic(x: np.ndarray, y: np.ndarray, iters: int = 60) -> np.ndarray:
    """Logistic regression by Newton's method with a tiny ridge (x already has its bias column)."""
    w = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + 1e-4 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-4 * np.eye(len(w))
        w = w - np.linalg.solve(hess, grad)
    return w


def design(row, features: str) -> np.ndarray:
    raw = np.where(np.isfinite(row["raw"]), row["raw"], -1.0)
    cols = [raw]
    if features in ("sentence+answer", "sentence+answer+span"):
        cols.append(np.clip(row["head"][:, 0], -20, 20))
    if features == "sentence+answer+span":
        cols.append(np.clip(row["head"][:, 1], -20, 0))
    return np.stack([*cols, np.ones_like(raw)], axis=1)


def probabilities(row, features: str, w: np.ndarray) -> np.ndarray:
    p = 1 / (1 + np.exp(-(design(row, features) @ w)))
    return np.where(np.isfinite(row["raw"]), p, 0.0)


def demo_rows(model: FGRColBERT) -> list[tuple[dict, list, int, int]]:
    """The 38 demo questions against their expected document (an evidence measure, no
    retrieval): per question its sentence row, the sentences and the answer's character range."""
    root = Path(__file__).resolve().parents[2] / "examples"
    docs = {json.loads(line)["id"]: json.loads(line)["text"]
            for line in (root / "knowledge_base.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()}
    questions = json.loads((root / "demo_questions.json").read_text(encoding="utf-8"))
    texts = [docs[q["expected_id"]] for q in questions]
    encodings = model.encode_documents(texts)
    queries = model.encode_queries([q["question"] for q in questions])
    out = []
    for q, text, enc, qe in zip(questions, texts, encodings, queries):
        units = eq.text_units(text, KIND)
        sims = model.token_similarities(qe, enc.vectors, enc.relevance_vectors).numpy()
        row = {"raw": unit_scores(sims, enc.offsets.numpy(), units).astype(np.float64),
               "head": head_features(model, qe, enc.vectors, enc.offsets.numpy(), units)}
        start = text.find(q["answer"])
        out.append((row, units, start, start + len(q["answer"])))
    return out


def demo_check(rows, features: str, w: np.ndarray, threshold: float, ratio: float) -> dict:
    """The demo check of ``tests/test_default_model.py`` on :func:`demo_rows`: the answer inside
    the evidence."""
    hits, blank = 0, 0
    for row, units, start, end in rows:
        chosen = eq.select_units(probabilities(row, features, w), threshold=threshold, ratio=ratio)
        hits += any(units[i][0] <= start and end <= units[i][1] for i in chosen)
        blank += not chosen
    # a miss is either no evidence at all or a wrong sentence: they call for different fixes
    return {"answer_in_evidence": hits, "no_evidence": blank, "wrong_sentence": len(rows) - hits - blank,
            "questions": len(rows)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/answer_aware_sentences.json")
    p.add_argument("--squad-n", type=int, default=600)
    p.add_argument("--hotpot-questions", type=int, default=120)
    args = p.parse_args()
    if not (eq.DATA / "highlight").is_dir():
        print(f"no shared data at {eq.DATA}", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    started = time.perf_counter()
    sets = eq.load_sets(eq.DATA, squad_n=args.squad_n, hotpot_q=args.hotpot_questions)
    print({k: len(v) for k, v in sets.items()}, flush=True)
    model = FGRColBERT.from_pretrained()
    if model.answer_head is None:
        print("the bundled model has no answer head", file=sys.stderr)
        return 2
    scored = score(model, sets)
    demo = demo_rows(model)
    report: dict = {"sets": {k: len(v) for k, v in sets.items()}, "variants": {}}
    exs, rows = sets["cal"], scored["cal"]
    labels = [np.array([any(a < u[1] and b > u[0] for a, b in e.spans) for u in e.units[KIND]], dtype=float)
              for e in exs]
    counts = [eq.unit_counts(e, e.units[KIND]) for e in exs]
    for features in ("sentence", "sentence+answer", "sentence+answer+span"):
        ok = [np.isfinite(r["raw"]) for r in rows]
        x = np.concatenate([design(r, features)[m] for r, m in zip(rows, ok)])
        y = np.concatenate([lab[m] for lab, m in zip(labels, ok)])
        w = logistic(x, y)
        chosen = eq.choose(exs, counts, [probabilities(r, features, w) for r in rows])
        # evaluate() takes probabilities as "raw" scores when scale is None
        probs_scored = {name: [{"raw": {KIND: probabilities(r, features, w)}} for r in scored[name]]
                        for name in scored}
        cal = {"unit": KIND, "scale": None, "bias": None, **chosen}
        results = eq.evaluate(sets, probs_scored, cal)
        report["variants"][features] = {"weights": [round(float(v), 4) for v in w], "calibration": chosen,
                                        "results": results,
                                        "demo_given_document": demo_check(demo, features, w, chosen["threshold"],
                                                                          chosen["ratio"])}
        print(features, json.dumps({"w": report["variants"][features]["weights"], "cal": chosen}), flush=True)
        for k, v in results.items():
            print(f"  {k}: {json.dumps(v)}", flush=True)
        print(f"  demo (expected document given): {report['variants'][features]['demo_given_document']}",
              flush=True)
    report["seconds"] = round(time.perf_counter() - started)
    atomic_write_text(Path(args.out), json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
