"""``fgr-retriever train``: distil an FGR-ColBERT model from evidence-labelled pairs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError

__all__ = ["register"]


def _key_value(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # plain strings need no quotes: relevance_query_tokens=all
    return key.strip(), value


def register(sub) -> None:
    t = sub.add_parser(
        "train", help="train an FGR-ColBERT model (ranking + token-relevance loss)",
        description="Train FGR-ColBERT with (1 - λ)·L_rank + λ·L_token. Data: the standard mix built from the "
                    "shared data folder (--shared-data) and/or highlight JSONL files such as the output of "
                    "`fgr-retriever label` (--train-file). The trained model is written to OUT/final; OUT/checkpoint "
                    "is refreshed every --save-every steps and --resume continues from it.")
    t.add_argument("--out", required=True, help="run directory (checkpoint, log, final model)")
    t.add_argument("--base", help="model to start from: any directory or hub id the core loads "
                                  "(default: the bundled model)")
    t.add_argument("--shared-data", help="folder holding highlight/ (e.g. ../shared/data): builds the standard mix")
    t.add_argument("--sources", nargs="+", help="sources of the standard mix (default: "
                                                "squad-v1.1 squad-v2.0-unanswerable nq hotpotqa; also available: "
                                                "squad-v1.1-train wikiqa selqa)")
    t.add_argument("--repeat", action="append", type=_key_value, default=[], metavar="SOURCE=N",
                   help="oversample a source of the standard mix, e.g. hotpotqa=3")
    t.add_argument("--train-file", action="append", default=[], help="highlight JSONL(.gz) file (repeatable)")
    t.add_argument("--config", help="JSON file of training options; command-line options override it")
    t.add_argument("--lambda", dest="token_loss_weight", type=float, help="λ, the token-loss weight (default 0.5)")
    t.add_argument("--mu", dest="sentence_loss_weight", type=float,
                   help="μ, the weight of the listwise within-passage sentence loss (default 0: off)")
    t.add_argument("--sentence-temperature", type=float, help="softmax temperature of the sentence loss (0.05)")
    t.add_argument("--token-target", choices=["span", "sentence"],
                   help="token labels: the evidence spans, or the whole sentences that hold them (default span)")
    t.add_argument("--steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--grad-accumulation", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--head-lr", type=float)
    t.add_argument("--freeze-layers", type=int)
    t.add_argument("--train-doc-maxlen", type=int)
    t.add_argument("--max-negatives", type=int)
    t.add_argument("--kl-weight", type=float)
    t.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast (for GPUs)")
    t.add_argument("--seed", type=int)
    t.add_argument("--save-every", type=int)
    t.add_argument("--override", action="append", type=_key_value, default=[], metavar="FIELD=VALUE",
                   help="change a model config field before training, e.g. relevance_query_tokens=all")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    t.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)


def _training_config(args: argparse.Namespace):
    from .._io import read_json
    from ..distill.training import TrainingConfig

    options: dict[str, Any] = {}
    if args.config:
        options.update(read_json(Path(args.config), InvalidInputError, "training config"))
    for name in ("token_loss_weight", "steps", "batch_size", "grad_accumulation", "lr", "head_lr", "freeze_layers",
                 "train_doc_maxlen", "max_negatives", "kl_weight", "bf16", "seed", "save_every",
                 "sentence_loss_weight", "sentence_temperature", "token_target"):
        value = getattr(args, name)
        if value is not None:
            options[name] = value
    if args.override:
        options["model_overrides"] = {**dict(options.get("model_overrides") or {}), **dict(args.override)}
    return TrainingConfig.from_dict(options)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..distill.training import Trainer, trainable_summary
    from ..distill.training_data import count_by_source, read_training_file, shared_data_examples
    from ..model.encoder import FGRColBERT

    if not args.shared_data and not args.train_file:
        raise InvalidInputError("no training data: pass --shared-data DIR and/or --train-file FILE")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = _training_config(args)
    examples = []
    if args.shared_data:
        kwargs = {"sources": args.sources} if args.sources else {}
        examples += shared_data_examples(args.shared_data, split="train", seed=config.seed,
                                         repeat=dict(args.repeat), **kwargs)
    elif args.repeat or args.sources:
        raise InvalidInputError("--sources and --repeat choose parts of the standard mix; they need --shared-data")
    for path in args.train_file:
        examples += read_training_file(path)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = FGRColBERT.from_pretrained(args.base, device=device)
    trainer = Trainer(model=model, examples=examples, config=config, output_dir=args.out,
                      show_progress_bar=not args.quiet)
    print(f"examples: {len(examples)} {json.dumps(count_by_source(examples))}")
    print(f"parameters: {json.dumps(trainable_summary(model))}; device {device}")
    trainer.train(resume=args.resume)
    print(f"trained model: {Path(args.out) / 'final'}")
    return 0
