"""Experiment: train the precise evidence cross-encoder (``model.py``) within a time budget.

    python benchmarks/precise_experiment/train.py --shared-data ../shared/data --out runs/precise --budget-s 300

Starts from all-MiniLM-L6-v2 (``--base`` may name a saved copy of it), trains the top
``--train-layers`` layers and a linear head on the same sentence labels as the default model
(SQuAD v1.1 train answers widened to their sentence, SQuAD v2.0 unanswerable, NQ, HotpotQA,
WikiQA and SelQA train splits): a listwise loss over the sentences of each passage (softmax mass
on the evidence sentences) plus binary cross-entropy on every sentence, which is what makes the
probability absolute (passages that do not answer get low scores everywhere).

The learning rate warms up for ``--warmup-steps``, the speed of those steps sets the number of
steps that fits the budget, and the rate then decays linearly to zero at the last step. The run
directory gets the model (``final/``) and the training log; ``--export`` also writes the trained
tensors (fp32) and the log to a folder, for a machine without the base-weights package.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from fgr_retriever.distill.training import evidence_sentences
from fgr_retriever.distill.training_data import count_by_source, shared_data_examples

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model import PreciseConfig, PreciseEvidenceModel  # noqa: E402

SOURCES = ("squad-v1.1-train", "squad-v2.0-unanswerable", "nq", "hotpotqa", "wikiqa", "selqa")
REPEAT = {"wikiqa": 3, "selqa": 2, "hotpotqa": 3, "nq": 2}


def passages_of(examples):
    """(query, passage text, spans) for every labelled passage: positives and confirmed negatives."""
    out = []
    for ex in examples:
        for p in ex.passages:
            if p.spans is not None:
                out.append((ex.query, p.text, tuple(p.spans)))
    return out


def make_batch(model: PreciseEvidenceModel, items, rng: random.Random):
    queries, windows, units, labels = [], [], [], []
    for query, text, spans in items:
        sents, evidence = evidence_sentences(text, spans)
        if not sents:
            continue
        plan = model.plan(query, text, sents)
        if not plan:
            continue
        with_evidence = [w for w in plan if any(evidence[u] for u in w[0])]
        window = with_evidence[0] if with_evidence else rng.choice(plan)
        queries.append(query)
        windows.append(window)
        units.append(sents)
        labels.append([float(evidence[u]) for u in window[0]])
    return model.batch(queries, windows, units), labels


def loss_of(model, batch, labels, *, listwise_weight: float, bf16: bool):
    device = next(model.parameters()).device
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else torch.autocast(device.type, enabled=False)
    with ctx:
        logits = model.unit_logits(batch)
    bce, lw, hits = [], [], []
    for lg, lab in zip(logits, labels):
        y = torch.tensor(lab, device=device)
        bce.append(F.binary_cross_entropy_with_logits(lg, y, reduction="sum"))
        if 0 < y.sum() < len(y):
            lw.append(torch.logsumexp(lg, 0) - torch.logsumexp(lg[y > 0], 0))
            hits.append(float(y[int(lg.argmax())]))
    n_units = sum(len(lab) for lab in labels)
    loss = torch.stack(bce).sum() / max(1, n_units)
    stats = {"bce": float(loss.detach())}
    if lw:
        listwise = torch.stack(lw).mean()
        loss = loss + listwise_weight * listwise
        stats.update(listwise=float(listwise.detach()), top1=sum(hits) / len(hits))
    return loss, stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget-s", type=float, required=True)
    parser.add_argument("--base", help="Hugging Face directory of all-MiniLM-L6-v2 (default: the installed package)")
    parser.add_argument("--train-layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-3)
    parser.add_argument("--listwise-weight", type=float, default=1.0)
    parser.add_argument("--warmup-steps", type=int, default=30)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--export")
    args = parser.parse_args()
    started = time.perf_counter()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    from fgr_retriever.model.serialization import _load_encoder, base_weights_dir

    base = Path(args.base) if args.base else base_weights_dir()
    encoder, tokenizer = _load_encoder(base, trust_remote_code=False)
    model = PreciseEvidenceModel(encoder=encoder.float(), tokenizer=tokenizer,
                                 config=PreciseConfig(max_length=args.max_length)).to(args.device)
    start = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()}
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    layers = model.encoder.encoder.layer
    for layer in layers[len(layers) - args.train_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    body = [p for p in model.encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body, "lr": args.lr, "weight_decay": 0.01},
                                   {"params": model.head.parameters(), "lr": args.head_lr, "weight_decay": 0.0}])
    examples = shared_data_examples(args.shared_data, split="train", seed=args.seed, sources=SOURCES, repeat=REPEAT)
    items = passages_of(examples)
    rng.shuffle(items)
    print(f"passages: {len(items)} {json.dumps(count_by_source(examples))}", flush=True)
    bf16 = args.device == "cuda"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "training_log.jsonl", "w", encoding="utf-8")
    model.train()
    total, step, pos = None, 0, 0
    warm_started = time.perf_counter()
    while total is None or step < total:
        if pos + args.batch_size > len(items):
            rng.shuffle(items)
            pos = 0
        chunk = items[pos: pos + args.batch_size]
        pos += args.batch_size
        if step < args.warmup_steps:
            scale = (step + 1) / args.warmup_steps
        else:
            if total is None:
                per_step = (time.perf_counter() - warm_started) / args.warmup_steps
                left = args.budget_s - (time.perf_counter() - started) - 20
                total = args.warmup_steps + max(10, int(left / per_step))
                print(f"{per_step:.3f} s/step -> {total} steps ({total * args.batch_size / len(items):.2f} epochs)",
                      flush=True)
            scale = max(0.0, (total - step) / (total - args.warmup_steps))
        for g, base_lr in zip(optimizer.param_groups, (args.lr, args.head_lr)):
            g["lr"] = base_lr * scale
        batch, labels = make_batch(model, chunk, rng)
        loss, stats = loss_of(model, batch, labels, listwise_weight=args.listwise_weight, bf16=bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        step += 1
        record = {"step": step, "lr_scale": round(scale, 4), **{k: round(v, 4) for k, v in stats.items()},
                  "elapsed_s": round(time.perf_counter() - started, 1)}
        log.write(json.dumps(record) + "\n")
        if step % 100 == 0:
            print(json.dumps(record), flush=True)
    log.close()
    model.eval().to("cpu")
    model.save_pretrained(out / "final")
    if args.export:
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        trained = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
                   if not torch.equal(v.detach().float(), start[k])}
        save_file(trained, str(export / "precise-trained.safetensors"))
        (export / "precise.json").write_text(json.dumps({"config": model.config.to_dict(), "args": vars(args),
                                                         "steps": step, "tensors": sorted(trained)}, indent=2))
        (export / "precise_training_log.jsonl").write_text((out / "training_log.jsonl").read_text())
    print(f"done: {step} steps in {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
