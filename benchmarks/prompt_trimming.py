"""Evidence-trimmed prompts vs whole documents: prompt size and answer containment (a benchmark).

    .venv/bin/python benchmarks/prompt_trimming.py            # bundled default model
    .venv/bin/python benchmarks/prompt_trimming.py --questions 100 --model path/to/model

For SQuAD v1.1 and NQ-open (``../shared/data/highlight``), the questions and paragraphs of the
*dev* split (articles the default model never saw in training, ``article_split(title) == "dev"``)
form a small open-book QA task: every paragraph of the split is indexed, each question retrieves
its top k (3, 5, 10), and the context block a generator would receive is built twice — from the
whole documents, and from the evidence only (:func:`fgr_retriever.evidence.prompting.build_context`).

Reported per dataset, k and variant:

* ``tokens``: mean size of the context block in BERT wordpieces (the model's tokenizer; a proxy
  for an LLM's tokens, which are in the same range for English);
* ``containment``: share of questions for which a gold answer string (case-insensitive,
  whitespace-normalised) occurs in the context block — trimming that loses answers is no win;
* ``gold_passage_at_k``: share of questions whose source paragraph was retrieved (how much of the
  full-document containment comes from retrieval itself).

Results go to ``benchmarks/results/prompt_trimming.json``; ``docs/benchmarks.md`` summarises them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from fgr_retriever import FGRColBERT, FGRRetriever
from fgr_retriever._io import atomic_write_text, iter_jsonl
from fgr_retriever.distill.training_data import article_split
from fgr_retriever.evidence.prompting import build_context

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "highlight"
OUT = Path(__file__).resolve().parent / "results" / "prompt_trimming.json"
KS = (3, 5, 10)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def load_questions(name: str, limit: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(questions, corpus) of the dev split: questions carry their answers and source paragraph id."""
    path = DATA / {"squad": "squad-v1.1-dev.jsonl.gz", "nq": "nq-open-oracle.jsonl.gz"}[name]
    corpus: dict[str, dict] = {}
    questions = []
    for _, rec in iter_jsonl(path):
        title = rec.get("title") or rec["id"]
        if article_split(title) != "dev":
            continue
        passage = rec["passage"]
        pid = corpus.setdefault(passage, {"id": f"{name}-p{len(corpus):05d}", "text": passage,
                                          "metadata": {"title": title}})["id"]
        answers = [a for a in rec.get("answers") or rec.get("span_texts") or [] if a.strip()]
        if answers:
            questions.append({"id": rec["id"], "question": rec["query"], "answers": answers, "passage_id": pid})
    random.Random(seed).shuffle(questions)
    return questions[:limit], list(corpus.values())


def contains_answer(context: str, answers: list[str]) -> bool:
    ctx = normalise(context)
    return any(normalise(a) in ctx for a in answers)


def variants(default_threshold: float) -> list[dict]:
    return [
        {"name": "full documents", "mode": "full", "threshold": default_threshold, "context_words": 0,
         "without_evidence": "full"},
        {"name": f"evidence, threshold {default_threshold:g}, ±8 words", "mode": "evidence",
         "threshold": default_threshold, "context_words": 8, "without_evidence": "skip"},
        {"name": f"evidence, threshold {default_threshold:g}, ±16 words", "mode": "evidence",
         "threshold": default_threshold, "context_words": 16, "without_evidence": "skip"},
        {"name": f"evidence, threshold {default_threshold:g}, ±32 words", "mode": "evidence",
         "threshold": default_threshold, "context_words": 32, "without_evidence": "skip"},
        # threshold 0: every hit contributes its best sentence(s), none is left out as "no evidence"
        {"name": "evidence, threshold 0, ±8 words", "mode": "evidence", "threshold": 0.0, "context_words": 8,
         "without_evidence": "skip"},
        # the fair baseline: whole documents in rank order, cut to the size the evidence prompt had
        {"name": "full documents cut to the size of evidence ±16", "mode": "full", "threshold": default_threshold,
         "context_words": 0, "without_evidence": "full",
         "budget_of": f"evidence, threshold {default_threshold:g}, ±16 words"},
    ]


def run_dataset(name: str, model: FGRColBERT, limit: int, seed: int) -> dict:
    questions, corpus = load_questions(name, limit, seed)
    retriever = FGRRetriever(model=model, show_progress_bar=True)
    t0 = time.perf_counter()
    retriever.add_documents(corpus)
    index_s = time.perf_counter() - t0
    tok = model.tokenizer.hf

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False, verbose=False)["input_ids"])

    rows = []
    sizes: dict[tuple[str, int], list[int]] = {}  # (variant, k) -> context size per question
    by_threshold: dict[float, list] = {}
    for v in variants(model.resolve_evidence(None, None)[1]):
        thr = v["threshold"]
        if thr not in by_threshold:
            by_threshold[thr] = [retriever.search(q["question"], k=max(KS), threshold=thr)
                                 for q in tqdm(questions, desc=f"{name}: search at threshold {thr:g}")]
        hits_per_q = by_threshold[thr]
        for k in KS:
            tokens, contained, gold = [], 0, 0
            budgets = sizes[(v["budget_of"], k)] if "budget_of" in v else [None] * len(questions)
            for q, hits, budget in zip(questions, hits_per_q, budgets):
                top = hits[:k]
                ctx = build_context(top, mode=v["mode"], context_words=v["context_words"], max_tokens=budget or None,
                                    without_evidence=v["without_evidence"], token_counter=count)
                tokens.append(count(ctx.text))
                contained += contains_answer(ctx.text, q["answers"])
                gold += any(h.id == q["passage_id"] for h in top)
            sizes[(v["name"], k)] = tokens
            rows.append({"variant": v["name"], **{key: v[key] for key in ("mode", "threshold", "context_words") if key in v},
                         **({"budget_of": v["budget_of"]} if "budget_of" in v else {}),
                         "k": k, "tokens": sum(tokens) / len(tokens), "containment": contained / len(questions),
                         "gold_passage_at_k": gold / len(questions)})
    full = {r["k"]: r["tokens"] for r in rows if r["mode"] == "full" and "budget_of" not in r}
    for r in rows:
        r["token_ratio_vs_full"] = r["tokens"] / full[r["k"]]
    return {"questions": len(questions), "corpus": len(corpus), "index_seconds": round(index_s, 1), "rows": rows}


def markdown(results: dict) -> str:
    lines = []
    for name, res in results["datasets"].items():
        lines.append(f"**{name}** ({res['questions']} questions, {res['corpus']} paragraphs indexed)\n")
        lines.append("| k | context | prompt tokens | vs full | answer in prompt | gold paragraph in top k |")
        lines.append("|---|---|---|---|---|---|")
        for r in sorted(res["rows"], key=lambda r: (r["k"], r["mode"] != "full" or "budget_of" in r)):
            lines.append(f"| {r['k']} | {r['variant']} | {r['tokens']:.0f} | {r['token_ratio_vs_full']:.2f}× | "
                         f"{r['containment']:.1%} | {r['gold_passage_at_k']:.1%} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory or hub id (default: the bundled model)")
    parser.add_argument("--questions", type=int, default=300, help="questions per dataset (default 300)")
    parser.add_argument("--datasets", nargs="+", default=["squad", "nq"], choices=["squad", "nq"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not DATA.exists():
        print(f"shared data not found at {DATA}; this benchmark needs ../shared/data", file=sys.stderr)
        return 2
    model = FGRColBERT.from_pretrained(args.model)
    results = {"model": args.model or "bundled default", "default_threshold": model.threshold,
               "token_unit": "BERT-uncased wordpieces of the context block", "datasets": {}}
    for name in args.datasets:
        results["datasets"][name] = run_dataset(name, model, args.questions, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
