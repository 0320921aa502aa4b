"""Dev figures of a trained model beside its baselines, for the model card (a benchmark, not a test).

    .venv/bin/python benchmarks/evaluate_default.py --model runs/fgr-minilm/final \\
        --ablation runs/fgr-minilm-lambda0/final --out benchmarks/results/default_model.json

Everything is measured in one run on ``../shared/data``:

* highlights on ``msmarco-human-dev`` (wordpiece and word micro-F1): the model at the threshold
  calibrated on that file (the number the issue targets) and, because calibrating and reporting
  on the same 120 pairs flatters the model, a two-fold figure (threshold fitted on one half,
  measured on the other); select-all, best-overlap sentence and the untrained default beside it;
* highlights on the *dev* split of SQuAD v2.0 (articles never trained on): how often the model
  highlights nothing for unanswerable questions, and micro-F1 on the answerable ones;
* retrieval: nDCG@10 re-ranking the BM25 top-100 of TREC DL 2020, and full retrieval for the
  HotpotQA questions of the dev split (``rpt_split == "dev"``, never trained on) over the
  paragraphs of those questions; the model, the λ = 0 ablation (same recipe without the token
  loss), dense all-MiniLM-L6-v2 with mean pooling, and BM25 where a run exists.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from fgr_retriever import FGRColBERT
from fgr_retriever._io import atomic_write_text, iter_jsonl
from fgr_retriever.distill.training_data import article_split
from fgr_retriever.evaluation import (
    DenseRanker,
    FGRRanker,
    UnitScores,
    best_threshold,
    evaluate_baselines,
    evaluate_retrieval,
    highlight_metrics,
    load_beir,
    read_highlight_file,
    score_with_model,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def subset(scores: UnitScores, keep: np.ndarray) -> UnitScores:
    idx = np.flatnonzero(keep)
    per = scores.example_index
    return UnitScores.build(scores.unit, [scores.example_ids[i] for i in idx], [scores.offsets[i] for i in idx],
                            [scores.gold[per == i] for i in idx], [scores.scores[per == i] for i in idx])


def two_fold(scores: UnitScores) -> dict:
    """Fit the threshold on even-numbered pairs, measure on odd ones, and the other way round."""
    n = scores.n_examples
    even = np.arange(n) % 2 == 0
    out = []
    for fit, test in ((even, ~even), (~even, even)):
        t = best_threshold(subset(scores, fit))
        out.append(highlight_metrics(subset(scores, test), threshold=t).micro_f1)
    return {"micro_f1_mean": round(float(np.mean(out)), 4), "folds": [round(float(x), 4) for x in out]}


def highlight_section(models: dict[str, FGRColBERT], threshold_of: dict[str, float]) -> dict:
    msmarco = read_highlight_file(DATA / "highlight" / "msmarco-human-dev.jsonl")
    section: dict = {"msmarco-human-dev": {}, "squad-v2.0-dev-split": {}}
    for name, report in evaluate_baselines(msmarco).items():
        section["msmarco-human-dev"][name] = {unit: r.metrics.to_dict() for unit, r in report.items()}
    for name, model in models.items():
        scored = score_with_model(model, msmarco)
        entry = {}
        for unit, sc in scored.items():
            t = best_threshold(sc)
            entry[unit] = {"calibrated": highlight_metrics(sc, threshold=t).to_dict(), "two_fold": two_fold(sc)}
            if unit == "wordpiece":
                threshold_of[name] = t
        section["msmarco-human-dev"][name] = entry
    squad_file = DATA / "highlight" / "squad-v2.0-dev.jsonl.gz"
    titles = {rec["id"]: rec["title"] for _, rec in iter_jsonl(squad_file)}
    squad = [e for e in read_highlight_file(squad_file) if article_split(titles[e.id]) == "dev"]
    hotpot = _hotpot_dev_pairs()
    for name, model in models.items():
        sc = score_with_model(model, squad, units="wordpiece")["wordpiece"]
        own = best_threshold(sc)
        entry = {"n_pairs": len(squad), "n_unanswerable": sum(not e.spans for e in squad)}
        for label, t in (("at_squad_calibrated_threshold", own), ("at_msmarco_calibrated_threshold", threshold_of[name]),
                         ("at_0.5", 0.5)):
            m = highlight_metrics(sc, threshold=t).to_dict()
            entry[label] = {
                "threshold": round(t, 4),
                "unanswerable_highlight_nothing_rate": m["empty_rate_gold_empty"],
                "answerable_highlight_something_rate": None if m["empty_rate_gold_nonempty"] is None
                else round(1 - m["empty_rate_gold_nonempty"], 4),
                "micro_f1": m["micro_f1"], "precision": m["precision"], "recall": m["recall"],
            }
        section["squad-v2.0-dev-split"][name] = entry
        sc = score_with_model(model, hotpot, units="wordpiece")["wordpiece"]
        t = best_threshold(sc)
        m = highlight_metrics(sc, threshold=t).to_dict()
        section.setdefault("hotpotqa-dev-split (supporting sentences)", {})[name] = {
            "threshold": round(t, 4), "micro_f1": m["micro_f1"], "precision": m["precision"], "recall": m["recall"],
            "distractor_highlight_nothing_rate": m["empty_rate_gold_empty"], "n_pairs": len(hotpot)}
    return section


def _hotpot_dev_pairs():
    from fgr_retriever.evaluation import HighlightExample

    return [HighlightExample(id=rec["id"], query=rec["query"], passage=rec["passage"],
                             spans=tuple(tuple(s) for s in rec["spans"]))
            for rec in _hotpot_dev_records()]


def _hotpot_dev_records() -> list[dict]:
    """HotpotQA highlight records of the questions never trained on (``rpt_split == "dev"``)."""
    return [rec for _, rec in iter_jsonl(DATA / "highlight" / "hotpotqa-dev.jsonl.gz") if rec["rpt_split"] == "dev"]


def hotpot_dev() -> tuple:
    dataset = load_beir(DATA / "retrieval" / "hotpotqa-dev")
    records = _hotpot_dev_records()
    dev_questions = {rec["query"] for rec in records}
    docs = {rec["doc_id"] for rec in records}
    qids = [q for q, text in dataset.queries.items() if text in dev_questions]
    pool = replace(dataset, name="hotpotqa-dev (dev-split questions)",
                   corpus={d: v for d, v in dataset.corpus.items() if d in docs})
    return pool, qids


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--ablation", help="the λ = 0 model of the same recipe")
    p.add_argument("--out", default="benchmarks/results/default_model.json")
    p.add_argument("--skip-retrieval", action="store_true")
    p.add_argument("--skip-highlight", action="store_true")
    p.add_argument("--no-dense", action="store_true", help="leave out the dense baseline (when measured already)")
    args = p.parse_args()
    if not DATA.exists():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    models = {"fgr": FGRColBERT.from_pretrained(args.model)}
    if args.ablation:
        models["lambda0"] = FGRColBERT.from_pretrained(args.ablation)
    thresholds: dict[str, float] = {}
    results: dict = {"model": args.model, "ablation": args.ablation,
                     "torch_threads": torch.get_num_threads()}
    if not args.skip_highlight:
        highlight_models = {**models, "untrained_default": _untrained()}
        results["highlight"] = highlight_section(highlight_models, thresholds)
        print(json.dumps(results["highlight"]["msmarco-human-dev"]["fgr"]["wordpiece"], indent=1), flush=True)
    if not args.skip_retrieval:
        retrieval: dict = {}
        dl20 = load_beir(DATA / "retrieval" / "trec-dl20")
        hotpot, hotpot_qids = hotpot_dev()
        rankers = {name: FGRRanker(m, name=name) for name, m in models.items()}
        if not args.no_dense:
            rankers["dense_minilm"] = DenseRanker(name="dense_minilm")
        for name, ranker in rankers.items():
            retrieval.setdefault("trec-dl20 rerank@100", {})[name] = evaluate_retrieval(
                dl20, ranker, mode="rerank", depth=100).metrics
            retrieval.setdefault("hotpotqa dev-split full", {})[name] = evaluate_retrieval(
                hotpot, ranker, mode="full", query_ids=hotpot_qids).metrics
            print(name, {k: round(v["ndcg@10"], 4) for k, v in ((d, r[name]) for d, r in retrieval.items())},
                  flush=True)
        retrieval["trec-dl20 rerank@100"]["bm25"] = evaluate_retrieval(dl20, "bm25", mode="rerank").metrics
        retrieval["hotpotqa dev-split full"]["_pool"] = {"documents": len(hotpot.corpus), "queries": len(hotpot_qids)}
        results["retrieval"] = retrieval
    results["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.out), json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _untrained() -> FGRColBERT:
    """The previous bundled default: base weights as ColBERT vectors, head fitted, not trained."""
    from fgr_retriever.model.config import FGRConfig
    from fgr_retriever.model.serialization import reference_model

    config = FGRConfig(dim=384, relevance_scale=1.4504, relevance_bias=-0.9256, threshold=0.485)
    return reference_model(config, model_cls=FGRColBERT)


if __name__ == "__main__":
    sys.exit(main())
