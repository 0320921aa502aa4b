"""Product references and demo questions on the demo catalogue, per search mode (a benchmark).

    .venv/bin/python benchmarks/experiments/hybrid_references.py \\
        --out benchmarks/results/hybrid_references.json

For every ``Reference: …`` in ``examples/knowledge_base.jsonl`` (29 of them), how often the
product that holds it ranks first when it is asked about (``Is MV-BRM-CN available in another
colour?``) or searched bare (``MV-BRM-CN``); and top-1 on the 38 demo questions (natural
language, no references), for each mode with the bundled model and the default fusion.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from fgr_retriever import FGRRetriever
from fgr_retriever._io import atomic_write_text
from fgr_retriever.ingest import read_documents

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/hybrid_references.json")
    args = p.parse_args()
    retriever = FGRRetriever()
    retriever.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    refs = {m.group(1): d.id for d in retriever.get(retriever.index.ids())
            for m in re.finditer(r"Reference: ([A-Z0-9][A-Z0-9-]+[A-Z0-9])", d.text)}
    questions = json.loads((EXAMPLES / "demo_questions.json").read_text(encoding="utf-8"))
    out: dict = {"references": len(refs), "demo_questions": len(questions), "fusion": retriever.hybrid.fusion,
                 "weight": retriever.hybrid.weight, "modes": {}}
    for mode in ("late", "hybrid", "lexical"):
        asked = [ref for ref, doc in refs.items()
                 if retriever.search(f"Is {ref} available in another colour?", k=1, mode=mode)[0].id == doc]
        bare = [ref for ref, doc in refs.items() if retriever.search(ref, k=1, mode=mode)[0].id == doc]
        top1 = sum(retriever.search(q["question"], k=1, mode=mode)[0].id == q["expected_id"] for q in questions)
        out["modes"][mode] = {"reference_question_top1": len(asked), "reference_bare_top1": len(bare),
                              "missed_reference_questions": sorted(set(refs) - set(asked)), "demo_top1": top1}
        print(mode, out["modes"][mode], flush=True)
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
