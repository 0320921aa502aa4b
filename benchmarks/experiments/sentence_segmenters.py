"""Compare sentence segmenters on our passages: speed and the hard cases (a one-off experiment).

    .venv/bin/pip install pysbd sentencex        # not dependencies of fgr-retriever
    .venv/bin/python benchmarks/experiments/sentence_segmenters.py

Passages: the 120 MS MARCO human-dev passages, the 98 demo knowledge-base documents and every
10th of the first 3,000 SQuAD v1.1 train passages (518 in all). Prints ms per passage and how each
segmenter cuts three sentences with abbreviations, decimals, times and units.
"""

from __future__ import annotations

import gzip
import itertools
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "highlight"
HARD = ["Orders placed before 2 p.m. Paris time ship the same day. Weight: 0.9 kg. It holds No. 5 parfum.",
        "Dr. Smith arrived at 3 a.m. on Jan. 5. The U.S. team won 2-1. Price: €3,450. Call us!",
        "The bag weighs 0.9 kg (approx.) and is 28 cm wide. Straps: adjustable; detachable."]


def passages() -> list[str]:
    out = [json.loads(line)["passage"] for line in open(DATA / "msmarco-human-dev.jsonl", encoding="utf-8")]
    out += [json.loads(line)["text"] for line in open(ROOT / "examples" / "knowledge_base.jsonl", encoding="utf-8")]
    with gzip.open(DATA / "squad-v1.1-train.jsonl.gz", "rt", encoding="utf-8") as fh:
        out += [json.loads(line)["passage"] for line in itertools.islice(fh, 0, 3000, 10)]
    return out


def main() -> None:
    import blingfire
    import pysbd
    import sentencex

    seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
    segmenters = {
        "blingfire": lambda t: [t[s:e] for s, e in blingfire.text_to_sentences_and_offsets(t)[1]],
        "pysbd": lambda t: [s.sent.strip() for s in seg.segment(t)],
        "sentencex": lambda t: [s.strip() for s in sentencex.segment("en", t)],
    }
    texts = passages()
    for name, split in segmenters.items():
        t0 = time.perf_counter()
        n = sum(len(split(t)) for t in texts)
        ms = (time.perf_counter() - t0) / len(texts) * 1e3
        print(f"{name}: {len(texts)} passages, {n} sentences, {ms:.3f} ms/passage")
        for t in HARD:
            print("   ", split(t))


if __name__ == "__main__":
    main()
