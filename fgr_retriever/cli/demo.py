"""``fgr-retriever demo``: index the bundled knowledge base and answer its questions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InvalidInputError
from . import common
from .common import add_color_option, add_model_option

__all__ = ["register", "cmd_demo", "DEMO_DATA"]

# the demo knowledge base ships inside the package, so `fgr-retriever demo` works from an
# installed wheel; a checkout's examples/ links to the same files
DEMO_DATA = Path(__file__).resolve().parents[1] / "demo_data"


def register(sub) -> None:
    d = sub.add_parser("demo", help="index the bundled demo knowledge base and answer a few questions")
    add_model_option(d)
    add_color_option(d)
    d.add_argument("--kb", help="knowledge base (.jsonl) to use instead of the bundled demo one")
    d.add_argument("--questions", help="JSON list of {question, expected_id}")
    d.add_argument("-q", "--question", action="append", help="ask this instead (repeatable)")
    d.add_argument("-k", type=int, default=3, help="results per question (default 3)")
    d.set_defaults(func=cmd_demo)



def cmd_demo(args: argparse.Namespace) -> int:
    from ..evidence.text import answer_in_spans
    from ..ingest import read_documents
    from ..retriever import FGRRetriever

    kb = Path(args.kb) if args.kb else DEMO_DATA / "knowledge_base.jsonl"
    if not kb.exists():
        raise InvalidInputError(f"demo knowledge base not found at {kb}; pass --kb PATH")
    if args.question:
        questions = [{"question": q} for q in args.question]
    else:
        qfile = Path(args.questions) if args.questions else kb.with_name("demo_questions.json")
        try:
            questions = json.loads(qfile.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InvalidInputError(f"cannot read demo questions from {qfile}: {exc}") from None
    color = common.use_color(args)
    print(f"Loading {'model ' + args.model if args.model else 'the bundled default model (offline)'}…", flush=True)
    retriever = FGRRetriever(model=common.load_model(args.model, args.device), show_progress_bar=True)
    docs = read_documents([kb])
    retriever.add_documents(docs)
    print(f"Indexed {len(retriever)} documents from {kb.name}.\n")
    hits = answered = marked = 0
    for item in questions:
        q = item["question"]
        results = retriever.search(q, k=args.k)
        print(("\x1b[1m" if color else "") + f"Q: {q}" + ("\x1b[0m" if color else ""))
        common.print_results(results, color=color, full_text=True)
        if item.get("expected_id"):
            ok = bool(results) and results[0].id == item["expected_id"]
            hits += ok
            print(f"  expected {item['expected_id']}: {'top-1 ✓' if ok else 'not top-1'}")
        if item.get("answer"):
            found = bool(results) and answer_in_spans(results[0].text, results[0].spans, item["answer"])
            answered += found
            # the answer mark hits the answer when they overlap (it may say "30 days" for "within 30 days")
            at = results[0].text.find(item["answer"]) if found else -1
            hit = at >= 0 and any(a.start < at + len(item["answer"]) and at < a.end for a in results[0].answers)
            marked += hit
            where = "highlighted, answer marked ✓" if hit else "highlighted ✓" if found else \
                "not in the highlighted evidence"
            print(f"  answer {item['answer']!r}: {where}")
        print()
    expected = sum(1 for i in questions if i.get("expected_id"))
    if expected:
        print(f"{hits}/{expected} questions answered by the expected document at rank 1.")
    with_answer = sum(1 for i in questions if i.get("answer"))
    if with_answer:
        print(f"{answered}/{with_answer} answers inside the top document's highlighted evidence, "
              f"the answer marked in {marked} of them.")
    return 0
