"""Train the answer head of the bundled default model (the second highlight tier).

    .venv/bin/python scripts/train_answer_head.py --out fgr_retriever/default_model/answer_head.safetensors

Training data: SQuAD v1.1 train from ``../shared/data/highlight`` (87,599 questions; the same
file the encoder was trained on, so no dev file is touched). Passages and questions are encoded
once with the frozen default model and cached under ``--cache`` (resumable shards); the head then
trains on the cached vectors. Its ``threshold`` is left at 0.5 here:
``benchmarks/answer_tier.py --calibrate`` fits it on the SQuAD v2.0 dev split's half A.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def read_squad(path: Path, limit: int | None, *, passage_share: float, per_passage: int):
    """Answered questions, at most ``per_passage`` per passage, from a ``passage_share`` of the
    passages (chosen by hash, so every article contributes): encoding passages is most of the cost."""
    from fgr_retriever.distill.answer_training import QAExample

    out = []
    seen: dict[str, int] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            if not r.get("answers"):
                continue
            h = int.from_bytes(hashlib.blake2b(r["passage"].encode(), digest_size=8).digest(), "big")
            if h % 1000 >= passage_share * 1000 or seen.get(r["passage"], 0) >= per_passage:
                continue
            seen[r["passage"]] = seen.get(r["passage"], 0) + 1
            start = int(r["answer_starts"][0])
            out.append(QAExample(r["id"], r["query"], r["passage"], (start, start + len(r["answers"][0])),
                                 group=r.get("title")))
            if limit and len(out) >= limit:
                break
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "highlight")
    ap.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / ".cache" / "answer_head")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None, help="first N questions only (a quick check)")
    ap.add_argument("--passage-share", type=float, default=0.5, help="share of the passages used")
    ap.add_argument("--per-passage", type=int, default=3, help="questions per passage at most")
    ap.add_argument("--hard-negative-share", type=float, default=0.5,
                    help="share of questions also shown another passage of their article (target: no answer)")
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from fgr_retriever import FGRColBERT
    from fgr_retriever.distill.answer_training import encode_cached, make_items, train_answer_head
    from fgr_retriever.evidence.answer import AnswerHead

    source = args.data / "squad-v1.1-train.jsonl.gz"
    if not source.exists():
        print(f"error: {source} not found (the shared data sets)", file=sys.stderr)
        return 2
    examples = read_squad(source, args.limit, passage_share=args.passage_share, per_passage=args.per_passage)
    model = FGRColBERT.from_pretrained()
    t0 = time.perf_counter()
    cache = encode_cached(model, examples, args.cache)
    t1 = time.perf_counter()
    items = make_items(examples, cache, hard_negative_share=args.hard_negative_share)
    print(f"{len(examples)} questions, {len(cache.passages)} passages encoded in {t1 - t0:.0f} s; "
          f"{len(items)} training sentences ({sum(i.start == 0 for i in items)} without the answer)")
    head = AnswerHead(dim=model.config.dim, hidden=args.hidden, layers=args.layers)
    losses = train_answer_head(head, items, cache, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    head.save(args.out)
    n = max(1, len(losses) // 10)
    print(f"trained {len(losses)} steps in {time.perf_counter() - t1:.0f} s; loss {sum(losses[:n]) / n:.3f} -> "
          f"{sum(losses[-n:]) / n:.3f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
