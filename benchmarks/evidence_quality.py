"""Evidence quality of sentence-level decoding against baselines, with calibration on dev splits.

    .venv/bin/python benchmarks/evidence_quality.py --model default \\
        --model previous=runs/previous-default --out benchmarks/results/evidence_quality.json

Everything is measured in one run on ``../shared/data`` (a benchmark, not a test):

* **Calibration set** (never reported): the dev splits of the training sources — WikiQA train and
  SelQA questions with ``blake2b(query) % 10 == 0``, half A (even question hash) of the SQuAD v2.0
  dev-split articles (gold widened to the answer's sentence; unanswerable questions are negatives)
  and half A of the HotpotQA dev-split questions (distractor paragraphs are negatives). For each
  model and unit (sentence, clause) a Platt scaling of the sentence score is fitted, then the
  threshold and ratio that maximise wordpiece micro-F1 on this set among those that leave at most
  10 % of its answering passages blank (see :func:`choose`). The best unit on this set is the
  model's.
* **Reported**: ``msmarco-human-dev`` (wordpiece micro-F1 with the calibration above, and two-fold:
  threshold and ratio fitted on one half, measured on the other), ``wikiqa-dev``, and half B of
  the SQuAD v2.0 / HotpotQA dev splits (share of negatives left blank, share of positives whose
  evidence holds the answer / a supporting sentence, share of the passage highlighted). Bootstrap
  95 % confidence intervals (1,000 resamples of the examples) on every F1.
* **Baselines** in the same run: select-all, first sentence, best query-overlap sentence, the
  oracle best sentence (an upper bound), and each model's word-level decoding at its threshold.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fgr_retriever import FGRColBERT
from fgr_retriever._io import atomic_write_text, iter_jsonl
from fgr_retriever.distill.training import evidence_sentences
from fgr_retriever.distill.training_data import article_split, question_split
from fgr_retriever.evaluation import (
    UnitScores,
    best_overlap_sentence_spans,
    best_threshold,
    default_tokenizer,
    gold_labels,
    unit_scores_from_tokens,
    wordpiece_units,
)
from fgr_retriever.evidence.sentence_decoding import calibrated, select_units, text_units, unit_scores
from fgr_retriever.evidence.word_decoding import combine_windows, spans_from_tokens

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
UNIT_KINDS = ("sentence", "clause")
THRESHOLDS = np.round(np.r_[np.arange(0.0, 0.1, 0.01), np.arange(0.1, 0.96, 0.05)], 2)
RATIOS = np.round(np.arange(0.5, 1.001, 0.05), 2)
MAX_POSITIVE_BLANK = 0.10  # at most this share of answering calibration passages may show no evidence


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


@dataclass
class Example:
    id: str
    query: str
    passage: str
    spans: tuple  # gold evidence as given by the source
    sentence_gold: bool = True  # gold is sentence-sized (else: answer spans)
    answers: tuple = ()  # answer spans that "contains the answer" checks (SQuAD)
    units: dict = field(default_factory=dict)  # kind -> [(s, e)]
    wp: np.ndarray | None = None  # wordpiece ranges


def _widen(passage: str, spans) -> tuple:
    """Gold answer spans widened to the sentences holding them."""
    sentences, evidence = evidence_sentences(passage, spans)
    return tuple(s for s, ev in zip(sentences, evidence) if ev)


def load_sets(data: Path, *, seed: int = 0, squad_n: int = 600, hotpot_q: int = 120) -> dict[str, list[Example]]:
    rng = random.Random(seed)
    h = data / "highlight"
    sets: dict[str, list[Example]] = {"cal": [], "msmarco-human-dev": [], "wikiqa-dev": [],
                                      "squad-v2.0-dev-B": [], "hotpotqa-dev-B": []}
    for name, source in (("wikiqa-train.jsonl.gz", "wikiqa"), ("selqa-ass.jsonl.gz", "selqa")):
        for _, r in iter_jsonl(h / name):
            if question_split(r["query"]) == "dev":
                sets["cal"].append(Example(f"{source}:{r['id']}", r["query"], r["passage"], tuple(map(tuple, r["spans"]))))
    squad = [r for _, r in iter_jsonl(h / "squad-v2.0-dev.jsonl.gz") if article_split(r["title"]) == "dev"]
    rng.shuffle(squad)
    half = {"A": [], "B": []}
    for r in squad:
        key = "A" if _hash(r["query"]) % 2 == 0 else "B"
        if len(half[key]) < squad_n:
            spans = tuple(map(tuple, r["spans"]))
            half[key].append(Example(f"squad:{r['id']}", r["query"], r["passage"], _widen(r["passage"], spans),
                                     answers=spans))
    sets["cal"] += half["A"]
    sets["squad-v2.0-dev-B"] = half["B"]
    by_q: dict[str, list] = {}
    for _, r in iter_jsonl(h / "hotpotqa-dev.jsonl.gz"):
        if r["rpt_split"] == "dev":
            by_q.setdefault(r["question_id"], []).append(r)
    qids = sorted(by_q, key=_hash)
    for key, chosen in (("A", [q for q in qids if _hash(q) % 2 == 0][:hotpot_q]),
                        ("B", [q for q in qids if _hash(q) % 2 == 1][:hotpot_q])):
        exs = [Example(f"hotpot:{r['id']}", r["query"], r["passage"], tuple(map(tuple, r["spans"])))
               for q in chosen for r in by_q[q]]
        if key == "A":
            sets["cal"] += exs
        else:
            sets["hotpotqa-dev-B"] = exs
    for _, r in iter_jsonl(h / "msmarco-human-dev.jsonl"):
        sets["msmarco-human-dev"].append(Example(r["id"], r["query"], r["passage"], tuple(map(tuple, r["spans"])),
                                                 sentence_gold=False))
    for _, r in iter_jsonl(h / "wikiqa-dev.jsonl.gz"):
        sets["wikiqa-dev"].append(Example(r["id"], r["query"], r["passage"], tuple(map(tuple, r["spans"]))))
    tok = default_tokenizer()
    for exs in sets.values():
        for e, wp in zip(exs, wordpiece_units([e.passage for e in exs], tok)):
            e.wp = wp
            for kind in UNIT_KINDS:
                e.units[kind] = text_units(e.passage, kind)
    return sets


# ------------------------------------------------------------------ F1 accounting
@dataclass
class Counts:
    """Per example: wordpieces per unit, gold wordpieces per unit, gold wordpieces in total."""
    n: np.ndarray
    g: np.ndarray
    total_gold: int
    n_all: int


def unit_counts(e: Example, units) -> Counts:
    gold = gold_labels(e.wp, e.spans)
    n, g = np.zeros(len(units)), np.zeros(len(units))
    starts = e.wp[:, 0] if len(e.wp) else np.zeros(0)
    for k, (s, t) in enumerate(units):
        inside = (starts >= s) & (starts < t)
        n[k], g[k] = inside.sum(), (inside & gold).sum()
    return Counts(n, g, int(gold.sum()), len(e.wp))


def prf(tp: float, fp: float, fn: float) -> float:
    return 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0


def spans_counts(e: Example, spans) -> tuple[float, float, float]:
    """TP, FP, FN in wordpieces of predicted character spans."""
    gold = gold_labels(e.wp, e.spans)
    pred = gold_labels(e.wp, spans) if spans else np.zeros(len(e.wp), dtype=bool)
    return float((pred & gold).sum()), float((pred & ~gold).sum()), float((~pred & gold).sum())


def micro(rows: list[tuple[float, float, float]]) -> float:
    a = np.asarray(rows).reshape(-1, 3).sum(axis=0)
    return prf(*a)


def bootstrap(rows: list[tuple[float, float, float]], *, n: int = 1000, seed: int = 0) -> list[float]:
    arr = np.asarray(rows).reshape(-1, 3)
    rng = np.random.default_rng(seed)
    vals = [prf(*arr[rng.integers(0, len(arr), len(arr))].sum(axis=0)) for _ in range(n)]
    return [round(float(np.percentile(vals, 2.5)), 4), round(float(np.percentile(vals, 97.5)), 4)]


def chosen_counts(c: Counts, probs: np.ndarray, t: float, r: float) -> tuple[float, float, float]:
    chosen = select_units(probs, threshold=t, ratio=r)
    tp = float(c.g[chosen].sum()) if chosen else 0.0
    fp = float(c.n[chosen].sum()) - tp if chosen else 0.0
    return tp, fp, c.total_gold - tp


# ------------------------------------------------------------------ model scoring
def score_model(model: FGRColBERT, sets: dict[str, list[Example]], *, extra=None) -> dict:
    """Per set and example: raw unit scores per kind and word-level spans at the model's threshold;
    ``extra(model, query_encoding, text_encoding, example)`` adds its own entries to each row
    (experiments that score units with more than the sentence score)."""
    out = {}
    for name, exs in sets.items():
        passages = list(dict.fromkeys(e.passage for e in exs))
        queries = list(dict.fromkeys(e.query for e in exs))
        t0 = time.perf_counter()
        penc = dict(zip(passages, model.encode_documents(passages, batch_size=32, show_progress_bar=True)))
        qenc = dict(zip(queries, model.encode_queries(queries)))
        rows = []
        for e in exs:
            enc, q = penc[e.passage], qenc[e.query]
            sims = model.token_similarities(q, enc.vectors, enc.relevance_vectors).numpy()
            raw = {k: unit_scores(sims, enc.offsets.numpy(), e.units[k]) for k in UNIT_KINDS}
            probs = model.token_probabilities(q, enc.vectors, enc.relevance_vectors).numpy()
            offs, merged = combine_windows([(enc.offsets.numpy(), probs)])
            rows.append({"raw": raw, "tokens": (offs, merged), **(extra(model, q, enc, e) if extra else {})})
        out[name] = rows
        print(f"  scored {name}: {len(exs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def score_precise(model, sets: dict[str, list[Example]]) -> dict:
    """Unit probabilities of the precise cross-encoder, in the same layout as :func:`score_model`
    (its probabilities stand in for raw scores; its own calibration is the identity)."""
    out = {}
    for name, exs in sets.items():
        t0 = time.perf_counter()
        rows = []
        for e in exs:
            raw = {}
            for kind in UNIT_KINDS:
                if kind != model.config.unit:
                    continue
                (units, probs), = model.unit_probabilities(e.query, [e.passage])
                assert units == e.units[kind]
                raw[kind] = probs
            rows.append({"raw": raw})
        out[name] = rows
        print(f"  precise {name}: {len(exs)} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def calibrate_precise(sets, scored, kind: str) -> dict:
    """Threshold and ratio of the precise model on the calibration set (its outputs are already
    probabilities: no Platt step)."""
    exs, rows = sets["cal"], scored["cal"]
    counts = [unit_counts(e, e.units[kind]) for e in exs]
    probs = [row["raw"][kind] for row in rows]
    return {"unit": kind, "scale": None, "bias": None, **choose(exs, counts, probs)}


def word_threshold(sets, scored) -> float:
    """The wordpiece micro-F1-best threshold of word decoding on the calibration set."""
    exs, rows = sets["cal"], scored["cal"]
    gold = [gold_labels(e.wp, e.spans) for e in exs]
    scores = [unit_scores_from_tokens(e.wp, *row["tokens"]) for e, row in zip(exs, rows)]
    return round(float(best_threshold(UnitScores.build("wordpiece", [e.id for e in exs], [e.wp for e in exs],
                                                       gold, scores))), 4)


def add_word_spans(sets, scored, threshold: float) -> None:
    for name, exs in sets.items():
        for e, row in zip(exs, scored[name]):
            offs, merged = row["tokens"]
            row["words"] = [(s.start, s.end) for s in spans_from_tokens(e.passage, offs, merged, threshold=threshold)]


def platt(scores: np.ndarray, labels: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Logistic regression of labels on one score (Newton's method, tiny ridge)."""
    x = np.stack([scores, np.ones_like(scores)], axis=1)
    w = np.array([10.0, -5.0])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - labels) + 1e-6 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        w = w - np.linalg.solve(hess, grad)
    return float(w[0]), float(w[1])


def calibrate(sets, scored, kind: str) -> dict:
    exs, rows = sets["cal"], scored["cal"]
    xs, ys = [], []
    for e, row in zip(exs, rows):
        raw = row["raw"][kind]
        ok = np.isfinite(raw)
        lab = np.array([any(a < u[1] and b > u[0] for a, b in e.spans) for u in e.units[kind]], dtype=float)
        xs.append(raw[ok]); ys.append(lab[ok])
    a, b = platt(np.concatenate(xs), np.concatenate(ys))
    counts = [unit_counts(e, e.units[kind]) for e in exs]
    probs = [calibrated(row["raw"][kind], scale=a, bias=b) for row in rows]
    return {"unit": kind, "scale": round(a, 4), "bias": round(b, 4), **choose(exs, counts, probs)}


def choose(exs, counts, probs) -> dict:
    """Threshold and ratio: the micro-F1-best pair among those that leave at most
    :data:`MAX_POSITIVE_BLANK` of the answering passages without evidence.

    A shown document with no evidence at all is the worse failure for a reader (they were told
    the document matters and are shown nothing), so blank answering passages are capped rather
    than traded freely against precision; the unconstrained optimum is reported beside it.
    """
    positive = np.array([bool(e.spans) for e in exs])
    best_maxima = np.array([float(np.max(p)) if len(p) else 0.0 for p in probs])
    free, capped = (-1.0, 0.0, 1.0), (-1.0, 0.0, 1.0)
    for t in THRESHOLDS:
        blank = float(np.mean(best_maxima[positive] < t)) if positive.any() else 0.0
        for r in RATIOS:
            f = micro([chosen_counts(c, p, t, r) for c, p in zip(counts, probs)])
            if f > free[0]:
                free = (f, float(t), float(r))
            if blank <= MAX_POSITIVE_BLANK and f > capped[0]:
                capped = (f, float(t), float(r))
    return {"threshold": capped[1], "ratio": capped[2], "cal_micro_f1": round(capped[0], 4),
            "cal_positive_blank": round(float(np.mean(best_maxima[positive] < capped[1])), 4),
            "cal_negative_blank": round(float(np.mean(best_maxima[~positive] < capped[1])), 4),
            "unconstrained": {"threshold": free[1], "ratio": free[2], "cal_micro_f1": round(free[0], 4)}}


def evaluate(sets, scored, cal: dict) -> dict:
    kind, a, b, t, r = cal["unit"], cal["scale"], cal["bias"], cal["threshold"], cal["ratio"]
    res = {}
    for name in ("msmarco-human-dev", "wikiqa-dev", "squad-v2.0-dev-B", "hotpotqa-dev-B"):
        exs, rows = sets[name], scored[name]
        probs = [row["raw"][kind] if a is None else calibrated(row["raw"][kind], scale=a, bias=b) for row in rows]
        counts = [unit_counts(e, e.units[kind]) for e in exs]
        tpfpfn = [chosen_counts(c, p, t, r) for c, p in zip(counts, probs)]
        entry = {"n": len(exs), "micro_f1": round(micro(tpfpfn), 4), "ci95": bootstrap(tpfpfn)}
        if "words" in rows[0]:
            word_rows = [spans_counts(e, row["words"]) for e, row in zip(exs, rows)]
            entry.update(word_decoding_micro_f1=round(micro(word_rows), 4), word_decoding_ci95=bootstrap(word_rows))
        chosen = [select_units(p, threshold=t, ratio=r) for p in probs]
        neg = [not ch for e, ch in zip(exs, chosen) if not e.spans]
        if neg:
            entry["negatives_blank"] = round(float(np.mean(neg)), 4)
            entry["n_negatives"] = len(neg)
        pos = []
        for e, ch in zip(exs, chosen):
            if not e.spans:
                continue
            units = [e.units[kind][i] for i in ch]
            targets = e.answers or e.spans
            if e.answers:  # the whole answer string lies inside the evidence
                pos.append(any(any(u[0] <= s and t_ <= u[1] for u in units) for s, t_ in targets))
            else:  # the evidence holds (overlaps) a gold sentence
                pos.append(any(any(u[0] < t_ and s < u[1] for u in units) for s, t_ in targets))
        entry["positives_with_answer"] = round(float(np.mean(pos)), 4)
        cover = [sum(e.units[kind][i][1] - e.units[kind][i][0] for i in ch) / max(1, len(e.passage))
                 for e, ch in zip(exs, chosen)]
        entry["mean_share_highlighted"] = round(float(np.mean(cover)), 4)
        if name == "msmarco-human-dev":
            entry["two_fold"] = two_fold(exs, counts, probs)
        res[name] = entry
    return res


def two_fold(exs, counts, probs) -> dict:
    folds = [[i for i, e in enumerate(exs) if _hash(e.id) % 2 == f] for f in (0, 1)]
    rows, fitted = [None] * len(exs), []
    for fit, test in ((folds[0], folds[1]), (folds[1], folds[0])):
        best = (-1.0, 0.0, 1.0)
        for t in THRESHOLDS:
            for r in RATIOS:
                f = micro([chosen_counts(counts[i], probs[i], t, r) for i in fit])
                if f > best[0]:
                    best = (f, float(t), float(r))
        fitted.append({"threshold": best[1], "ratio": best[2]})
        for i in test:
            rows[i] = chosen_counts(counts[i], probs[i], best[1], best[2])
    return {"micro_f1": round(micro(rows), 4), "ci95": bootstrap(rows), "fitted": fitted}


def baselines(sets) -> dict:
    out = {}
    for name in ("msmarco-human-dev", "wikiqa-dev", "squad-v2.0-dev-B", "hotpotqa-dev-B"):
        exs = sets[name]
        preds = {
            "select_all": [[(0, len(e.passage))] for e in exs],
            "first_sentence": [e.units["sentence"][:1] for e in exs],
            "best_overlap_sentence": [best_overlap_sentence_spans(e.query, e.passage) for e in exs],
        }
        res = {}
        for b, spans in preds.items():
            rows = [spans_counts(e, s) for e, s in zip(exs, spans)]
            res[b] = {"micro_f1": round(micro(rows), 4), "ci95": bootstrap(rows)}
        oracle = []
        for e in exs:
            c = unit_counts(e, e.units["sentence"])
            if not e.spans or not len(c.n):
                oracle.append((0.0, 0.0, float(c.total_gold)))
                continue
            f = [prf(c.g[k], c.n[k] - c.g[k], c.total_gold - c.g[k]) for k in range(len(c.n))]
            k = int(np.argmax(f))
            oracle.append((c.g[k], c.n[k] - c.g[k], c.total_gold - c.g[k]))
        res["oracle_best_sentence"] = {"micro_f1": round(micro(oracle), 4)}
        out[name] = res
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", required=True, metavar="NAME[=PATH]",
                        help="'default' (the bundled model) or NAME=PATH; repeatable")
    parser.add_argument("--precise", action="append", default=[], metavar="NAME=PATH",
                        help="a precise cross-encoder of benchmarks/precise_experiment (an experiment); repeatable")
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--out", default="benchmarks/results/evidence_quality.json")
    parser.add_argument("--squad-n", type=int, default=600)
    parser.add_argument("--hotpot-questions", type=int, default=120)
    args = parser.parse_args()
    data = Path(args.data)
    if not (data / "highlight").is_dir():
        print(f"no shared data at {data}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    sets = load_sets(data, squad_n=args.squad_n, hotpot_q=args.hotpot_questions)
    print({k: len(v) for k, v in sets.items()}, flush=True)
    report = {"sets": {k: len(v) for k, v in sets.items()}, "baselines": baselines(sets), "models": {}}
    for spec in args.model:
        name, _, path = spec.partition("=")
        model = FGRColBERT.from_pretrained(path or None)
        print(f"model {name}", flush=True)
        scored = score_model(model, sets)
        cals = [calibrate(sets, scored, kind) for kind in UNIT_KINDS]
        best = max(cals, key=lambda c: c["cal_micro_f1"])
        word_t = word_threshold(sets, scored)
        add_word_spans(sets, scored, word_t)
        report["models"][name] = {"path": path or "bundled", "calibration": cals, "chosen": best,
                                  "word_threshold": word_t, "shipped_word_threshold": model.config.threshold,
                                  "results": evaluate(sets, scored, best),
                                  "results_by_unit": {c["unit"]: evaluate(sets, scored, c) for c in cals if c is not best}}
        print(json.dumps(report["models"][name]["chosen"]), flush=True)
        for k, v in report["models"][name]["results"].items():
            print(f"  {k}: {json.dumps(v)}", flush=True)
    for spec in args.precise:
        sys.path.insert(0, str(Path(__file__).resolve().parent / "precise_experiment"))
        from model import PreciseEvidenceModel

        name, _, path = spec.partition("=")
        model = PreciseEvidenceModel.from_pretrained(path)
        print(f"precise model {name}", flush=True)
        scored = score_precise(model, sets)
        cal = calibrate_precise(sets, scored, model.config.unit)
        report["models"][name] = {"path": path or "bundled", "kind": "precise cross-encoder", "chosen": cal,
                                  "results": evaluate(sets, scored, cal)}
        print(json.dumps(cal), flush=True)
        for k, v in report["models"][name]["results"].items():
            print(f"  {k}: {json.dumps(v)}", flush=True)
    report["seconds"] = round(time.perf_counter() - started, 1)
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["baselines"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
