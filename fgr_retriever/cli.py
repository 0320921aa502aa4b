"""The ``fgr-retriever`` command line: ``demo``, ``index``, ``search``, ``highlight``.

Exit codes: 0 success, 1 an error the message explains (bad file, missing index, ...),
2 wrong command-line usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .errors import FGRError, InvalidInputError
from .types import SearchResult, Span

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def _use_color(args: argparse.Namespace) -> bool:
    if getattr(args, "color", None) == "always":
        return True
    if getattr(args, "color", None) == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _mark(text: str, spans: Sequence[Span], color: bool) -> str:
    from .rendering import render_ansi

    if color:
        return render_ansi(text, spans)
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[pos:s.start], "[[", text[s.start:s.end], "]]"]
        pos = s.end
    return "".join(out + [text[pos:]])


def _print_results(results: list[SearchResult], *, color: bool, full_text: bool) -> None:
    if not results:
        print("  (no results)")
    for r in results:
        title = r.metadata.get("title")
        head = f"  {r.rank}. {r.id}" + (f" — {title}" if title else "") + f"  (score {r.score:.2f})"
        print(head)
        if full_text:
            print("     " + _mark(r.text, r.spans, color).replace("\n", "\n     "))
        if r.evidence:
            print(f"     evidence: {r.evidence}")
        elif r.spans == ():
            print("     evidence: (nothing here reaches the evidence threshold)")


def _load_model(name: str | None):
    from .model import FGRColBERT

    return FGRColBERT.from_pretrained(name)


# ---------------------------------------------------------------------- commands
def cmd_demo(args: argparse.Namespace) -> int:
    from .documents_io import read_documents
    from .evidence import answer_in_spans
    from .retriever import FGRRetriever

    kb = Path(args.kb) if args.kb else EXAMPLES_DIR / "knowledge_base.jsonl"
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
    color = _use_color(args)
    print("Loading the bundled default model (offline)…", flush=True)
    retriever = FGRRetriever(model=_load_model(args.model), show_progress_bar=True)
    docs = read_documents([kb])
    retriever.add_documents(docs)
    print(f"Indexed {len(retriever)} documents from {kb.name}.\n")
    hits = answered = 0
    for item in questions:
        q = item["question"]
        results = retriever.search(q, k=args.k)
        print(("\x1b[1m" if color else "") + f"Q: {q}" + ("\x1b[0m" if color else ""))
        _print_results(results, color=color, full_text=True)
        if item.get("expected_id"):
            ok = bool(results) and results[0].id == item["expected_id"]
            hits += ok
            print(f"  expected {item['expected_id']}: {'top-1 ✓' if ok else 'not top-1'}")
        if item.get("answer"):
            found = bool(results) and answer_in_spans(results[0].text, results[0].spans, item["answer"])
            answered += found
            print(f"  answer {item['answer']!r}: {'highlighted ✓' if found else 'not in the highlighted evidence'}")
        print()
    expected = sum(1 for i in questions if i.get("expected_id"))
    if expected:
        print(f"{hits}/{expected} questions answered by the expected document at rank 1.")
    with_answer = sum(1 for i in questions if i.get("answer"))
    if with_answer:
        print(f"{answered}/{with_answer} answers inside the top document's highlighted evidence.")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from .documents_io import read_documents
    from .retriever import FGRRetriever

    out = Path(args.out)
    docs = read_documents(args.paths)
    if not docs:
        raise InvalidInputError("no documents found")
    exists = out.exists() and any(out.iterdir()) if out.is_dir() else out.exists()
    if exists and not (args.append or args.overwrite):
        raise InvalidInputError(f"{out} already exists; pass --append to add to it or --overwrite to replace it")
    if args.append and exists:
        retriever = FGRRetriever.load(out, **({"model": _load_model(args.model)} if args.model else {}))
    else:
        retriever = FGRRetriever(model=_load_model(args.model), storage_dtype=args.storage_dtype)
    retriever.batch_size = args.batch_size
    retriever.show_progress_bar = not args.quiet
    retriever.add_documents(docs)
    retriever.save(out)
    print(f"indexed {len(docs)} documents; {out} now holds {len(retriever)}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .retriever import FGRRetriever

    flt = None
    if args.filter:
        try:
            flt = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--filter is not valid JSON: {exc}") from None
    retriever = FGRRetriever.load(args.index, **({"model": _load_model(args.model)} if args.model else {}))
    results = retriever.search(args.query, k=args.k, filter=flt, highlight=not args.no_highlight,
                               threshold=args.threshold, unit=args.unit)
    if args.json:
        json.dump([r.to_dict() for r in results], sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        _print_results(results, color=_use_color(args), full_text=args.full_text)
    return 0


def cmd_highlight(args: argparse.Namespace) -> int:
    from .rendering import render_html, render_markdown

    source = args.text
    path = Path(source)
    if not args.literal and len(source) < 4096 and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        text = source
    model = _load_model(args.model)
    spans = model.highlight(args.query, text, threshold=args.threshold, unit=args.unit)
    if args.json:
        unit, threshold = model.resolve_evidence(args.unit, args.threshold)
        json.dump({"query": args.query, "unit": unit, "threshold": threshold,
                   "spans": [s.to_dict() for s in spans]}, sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif args.format == "html":
        print(render_html(text, spans))
    elif args.format == "markdown":
        print(render_markdown(text, spans))
    else:
        print(_mark(text, spans, _use_color(args)))
    return 0


# ------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="fgr-retriever",
                                description="ColBERT retrieval that highlights the sentence answering your query.")
    p.add_argument("--version", action="version", version=f"fgr-retriever {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, model: bool = True) -> None:
        if model:
            sp.add_argument("--model", help="model directory or hub id (default: the bundled model)")
        sp.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="highlight with terminal colours (default: when printing to a terminal)")

    d = sub.add_parser("demo", help="index the bundled demo knowledge base and answer a few questions")
    common(d)
    d.add_argument("--kb", help="knowledge base (.jsonl) to use instead of examples/knowledge_base.jsonl")
    d.add_argument("--questions", help="JSON list of {question, expected_id}")
    d.add_argument("-q", "--question", action="append", help="ask this instead (repeatable)")
    d.add_argument("-k", type=int, default=3, help="results per question (default 3)")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("index", help="build an index from .txt, .md and .jsonl files or folders")
    i.add_argument("paths", nargs="+", help="files or folders")
    i.add_argument("--out", required=True, help="index directory to write")
    i.add_argument("--model", help="model directory or hub id (default: the bundled model)")
    g = i.add_mutually_exclusive_group()
    g.add_argument("--append", action="store_true", help="add to (or update) an existing index")
    g.add_argument("--overwrite", action="store_true", help="replace an existing index")
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--storage-dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="search an index")
    s.add_argument("index", help="index directory")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"category": {"$in": ["policy"]}}\'')
    s.add_argument("--threshold", type=float, help="evidence threshold (default: the model's, for the unit)")
    s.add_argument("--unit", choices=["sentence", "clause", "word"],
                   help="what evidence is made of (default: the model's, sentence for the bundled one)")
    s.add_argument("--no-highlight", action="store_true")
    s.add_argument("--full-text", action="store_true", help="print whole documents with highlights")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    common(s)
    s.set_defaults(func=cmd_search)

    h = sub.add_parser("highlight", help="highlight the sentence of a text (or file) that answers a query")
    h.add_argument("query")
    h.add_argument("text", help="a file path or the text itself")
    h.add_argument("--literal", action="store_true", help="treat TEXT as text even if a file has that name")
    h.add_argument("--threshold", type=float)
    h.add_argument("--unit", choices=["sentence", "clause", "word"], help="sentence (default), clause or word")
    h.add_argument("--format", choices=["terminal", "html", "markdown"], default="terminal")
    h.add_argument("--json", action="store_true")
    common(h)
    h.set_defaults(func=cmd_highlight)

    # the distillation commands live beside the code they drive
    from .cli_eval import register as register_eval
    from .cli_label import register as register_label
    from .cli_train import register as register_train

    register_label(sub)
    register_train(sub)
    register_eval(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) < 1:
        parser.error("-k must be at least 1")
    try:
        return int(args.func(args) or 0)
    except FGRError as exc:
        print(f"fgr-retriever: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fgr-retriever: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
