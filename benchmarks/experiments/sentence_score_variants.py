"""Which sentence score picks the evidence sentence best? (a one-off experiment)

    .venv/bin/python benchmarks/experiments/sentence_score_variants.py

For the bundled model, every sentence of a passage gets a ``[Q, K]`` matrix of each real query
token's best cosine in it; the variants turn that into one score per sentence:

* ``mean``: the mean over query tokens (what ships; see ``fgr_retriever/evidence/sentence_decoding.py``);
* ``max``: the single best cosine;
* ``z``: per query token, standardised across the passage's sentences, then averaged;
* ``novelN``: a weighted mean that down-weights query tokens matching the whole passage well
  (weights ``exp(-N * best cosine in the passage)``), meant against query-echo.

Reported: the share of answering passages whose top-scored sentence holds gold evidence, on the
calibration set of ``evidence_quality.py`` (the only one used to choose), MS MARCO and WikiQA
dev, and the demo questions (their expected document, the answer string inside the sentence).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import evidence_quality as eq  # noqa: E402

from fgr_retriever import FGRColBERT  # noqa: E402
from fgr_retriever.evidence.sentence_decoding import token_units  # noqa: E402


def per_sentence_matrices(model, examples):
    passages = list(dict.fromkeys(e.passage for e in examples))
    queries = list(dict.fromkeys(e.query for e in examples))
    p_enc = dict(zip(passages, model.encode_documents(passages)))
    q_enc = dict(zip(queries, model.encode_queries(queries)))
    out = []
    for e in examples:
        enc = p_enc[e.passage]
        sims = model.token_similarities(q_enc[e.query], enc.vectors).numpy()
        units = e.units["sentence"]
        ids = token_units(enc.offsets.numpy(), units)
        m = np.full((sims.shape[1], len(units)), np.nan)
        for k in range(len(units)):
            if (ids == k).any():
                m[:, k] = sims[ids == k].max(axis=0)
        out.append(m)
    return out


def score(m, how: str):
    if how == "mean":
        return np.nanmean(m, axis=0)
    if how == "max":
        return np.nanmax(m, axis=0)
    if how == "z":
        mu, sd = np.nanmean(m, axis=1, keepdims=True), np.nanstd(m, axis=1, keepdims=True) + 0.05
        return np.nanmean((m - mu) / sd, axis=0)
    weights = np.exp(-float(how[5:]) * np.nanmax(m, axis=1, keepdims=True))  # "novelN"
    return np.nansum(weights / weights.sum() * m, axis=0)


def top1(examples, matrices, how: str) -> float:
    hits = []
    for e, m in zip(examples, matrices):
        if m.shape[1] == 0 or np.all(np.isnan(m)) or not (e.spans or e.answers):
            continue
        s, t = e.units["sentence"][int(np.argmax(np.nan_to_num(score(m, how), nan=-1e9)))]
        if e.answers and not e.spans:  # demo: the answer string inside the chosen sentence
            hits.append(e.answers[0] in e.passage[s:t])
        else:
            hits.append(any(a < t and b > s for a, b in e.spans))
    return round(float(np.mean(hits)), 3)


def main() -> None:
    sets = eq.load_sets(eq.DATA)
    kb = {r["id"]: r["text"] for r in map(json.loads, open(ROOT / "examples" / "knowledge_base.jsonl", encoding="utf-8"))}
    demo = json.loads((ROOT / "examples" / "demo_questions.json").read_text(encoding="utf-8"))
    sets["demo"] = [eq.Example(d["expected_id"], d["question"], kb[d["expected_id"]], (), answers=(d["answer"],))
                    for d in demo]
    for e in sets["demo"]:
        e.units["sentence"] = eq.text_units(e.passage, "sentence")
    model = FGRColBERT.from_pretrained()
    names = ["cal", "msmarco-human-dev", "wikiqa-dev", "demo"]
    matrices = {n: per_sentence_matrices(model, sets[n]) for n in names}
    for how in ["mean", "max", "z", "novel2", "novel5", "novel10", "novel20"]:
        print(how, {n: top1(sets[n], matrices[n], how) for n in names}, flush=True)


if __name__ == "__main__":
    main()
