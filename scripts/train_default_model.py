"""Train the bundled default model's recipe within a time budget (GPU or CPU).

    python scripts/train_default_model.py --shared-data ../shared/data --out runs/evidence \\
        --budget-s 420 --batch-size 64

The recipe (see ``docs/training.md`` and ``MODEL_CARD.md``): start from the bundled model, train the
top 4 of 6 layers and the projection with ``(1 - λ) L_rank + λ L_token + μ L_sentence`` on the
sentence-level mix (SQuAD v1.1 train, SQuAD v2.0 unanswerable, NQ, HotpotQA, WikiQA, SelQA train
splits), token labels widened to evidence sentences, query tokens: real ones only.

The number of steps is fixed before training from a short timed probe (or by ``--steps``), so the
learning-rate schedule runs to its end inside ``--budget-s``. The run directory gets the trained
model (``final/``) and the training log; ``scripts/package_default_model.py RUN/final`` turns it
into the bundled default. ``--export`` also writes the trained tensors in files of at most 15 MiB,
for a machine that lacks the base weights package (the tensors then go onto the base elsewhere).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from fgr_retriever import FGRColBERT
from fgr_retriever.distill.training import Trainer, TrainingConfig, _collate
from fgr_retriever.distill.training_data import count_by_source, shared_data_examples

SOURCES = ("squad-v1.1-train", "squad-v2.0-unanswerable", "nq", "hotpotqa", "wikiqa", "selqa")
REPEAT = {"wikiqa": 3, "selqa": 2, "hotpotqa": 3, "nq": 2}


def recipe(*, steps: int, batch_size: int, bf16: bool, seed: int) -> TrainingConfig:
    return TrainingConfig(
        steps=steps, batch_size=batch_size, token_loss_weight=0.2, sentence_loss_weight=1.0,
        sentence_temperature=0.05, token_target="sentence", lr=4e-5, head_lr=1e-2, freeze_layers=2,
        train_doc_maxlen=180, max_negatives=1, bf16=bf16, seed=seed, save_every=max(50, steps // 4),
        model_overrides={"relevance_query_tokens": "content"})


def probe_seconds_per_step(examples, *, base: str | None, batch_size: int, bf16: bool, device: str,
                           steps: int = 12) -> float:
    """Time a few real optimiser steps (forward, backward, update) on a throw-away model."""
    model = FGRColBERT.from_pretrained(base, device=device).float()
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model=model, examples=examples, config=recipe(steps=1000, batch_size=batch_size,
                                                                         bf16=bf16, seed=1),
                          output_dir=tmp, show_progress_bar=False)
        model.train()
        rng = random.Random(0)
        times = []
        for step in range(steps):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            trainer.optimizer.zero_grad(set_to_none=True)
            loss, _ = trainer._loss(_collate(trainer._examples_for(step), 1), rng)
            loss.backward()
            trainer.optimizer.step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    del model, trainer
    warm = sorted(times[2:])
    return warm[len(warm) // 2] * 1.08  # median plus logging and checkpoint overhead


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget-s", type=float, required=True, help="training time to fill (seconds)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, help="fixed step count (skips the timing probe)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--base", help="model directory to start from (default: the bundled model)")
    parser.add_argument("--export", help="also write the trained tensors (fp32, files of at most 15 MiB) here: "
                                         "for a machine that lacks the base weights package")
    args = parser.parse_args()

    t_start = time.perf_counter()
    bf16 = args.device == "cuda"
    examples = shared_data_examples(args.shared_data, split="train", seed=args.seed, sources=SOURCES, repeat=REPEAT)
    print(f"examples: {len(examples)} {json.dumps(count_by_source(examples))}", flush=True)
    steps = args.steps
    if steps is None:
        per_step = probe_seconds_per_step(examples, base=args.base, batch_size=args.batch_size, bf16=bf16, device=args.device)
        left = args.budget_s - (time.perf_counter() - t_start)
        steps = max(10, int(left / per_step))
        print(f"probe: {per_step:.3f} s/step -> {steps} steps ({steps * args.batch_size / len(examples):.2f} epochs)",
              flush=True)
    config = recipe(steps=steps, batch_size=args.batch_size, bf16=bf16, seed=args.seed)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    model = FGRColBERT.from_pretrained(args.base, device=args.device).float()
    start = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()} if args.export else {}
    trainer = Trainer(model=model, examples=examples, config=config, output_dir=out, show_progress_bar=False,
                      log=lambda r: print(json.dumps(r), flush=True) if r["step"] % 50 == 0 else None)
    trainer.train()
    if args.export:
        model = model.to("cpu").float().eval()
        trained = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()
                   if k in start and not torch.equal(v.detach().float(), start[k])}
        summary = {"config": model.config.to_dict(), "training": config.to_dict(), "examples": len(examples),
                   "by_source": count_by_source(examples), "wall_s": round(time.perf_counter() - t_start, 1),
                   "changed_tensors": sorted(trained)}
        export = Path(args.export)
        export.mkdir(parents=True, exist_ok=True)
        part, size, n = {}, 0, 0
        for name in sorted(trained):
            nbytes = trained[name].numel() * 4
            if part and size + nbytes > 15 * 2**20:
                save_file(part, str(export / f"trained-{n}.safetensors"))
                part, size, n = {}, 0, n + 1
            part[name], size = trained[name], size + nbytes
        if part:
            save_file(part, str(export / f"trained-{n}.safetensors"))
        (export / "trained.json").write_text(json.dumps(summary, indent=2))
        shutil.copy(out / "training_log.jsonl", export / "training_log.jsonl")
        print(f"exported {len(trained)} tensors in {n + 1} files to {export}")
    print(f"trained model: {out / 'final'}; total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
