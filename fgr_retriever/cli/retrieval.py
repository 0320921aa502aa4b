"""``fgr-retriever index``, ``search`` and ``highlight``: the runtime path on the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from ..errors import IndexNotFoundError, InvalidInputError
from . import common
from .common import add_color_option, add_model_option

__all__ = ["register", "cmd_index", "cmd_search", "cmd_highlight"]


def register(sub) -> None:
    i = sub.add_parser("index", help="build an index from .txt .md .json(l) .csv .html .pdf files or folders")
    i.add_argument("paths", nargs="+", help="files or folders (hidden entries such as .git/ are skipped)")
    i.add_argument("--out", help="index directory to write")
    i.add_argument("--collection", help="with --qdrant-url/--qdrant-path: the Qdrant collection to write "
                                        "(created when missing; an existing one is appended to)")
    add_model_option(i)
    common.add_qdrant_options(i)
    g = i.add_mutually_exclusive_group()
    g.add_argument("--append", action="store_true", help="add to (or update) an existing index")
    g.add_argument("--overwrite", action="store_true", help="replace an existing index")
    i.add_argument("--batch-size", type=int, default=32)
    i.add_argument("--storage-dtype", choices=["bfloat16", "float16", "float32", "int8"], default="bfloat16",
                   help="how token vectors are stored (int8: half the disk of bfloat16, same ranking; "
                        "see docs/index-engine.md)")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.add_argument("--strict", action="store_true", help="stop at the first unreadable file instead of skipping it")
    i.add_argument("--chunk-tokens", type=int,
                   help="cut long documents into passages of at most this many wordpieces, at sentence "
                        "boundaries (default: two model windows, 2 x (doc_maxlen - 3) = 354 for the bundled model)")
    i.add_argument("--chunk-overlap", type=int, default=24,
                   help="wordpieces of trailing sentences repeated at the start of the next passage (default 24)")
    i.add_argument("--no-chunking", action="store_true", help="index every document whole, however long")
    i.add_argument("--csv-text-column", action="append", metavar="COLUMN",
                   help="CSV column(s) holding the text (repeatable; default: 'text')")
    i.add_argument("--csv-metadata-column", action="append", metavar="COLUMN",
                   help="CSV column(s) kept as metadata (repeatable; default: all other columns)")
    i.add_argument("--csv-id-column", metavar="COLUMN", help="CSV column holding document ids (default: 'id' if present)")
    i.set_defaults(func=cmd_index)

    s = sub.add_parser("search", help="search an index")
    s.add_argument("index", help="index directory, or the URL of a running `fgr-retriever serve` "
                                 "(http://host:port): no model to load, an answer in milliseconds; with "
                                 "--qdrant-url/--qdrant-path, the Qdrant collection")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=10)
    s.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"category": {"$in": ["policy"]}}\'')
    s.add_argument("--threshold", type=float, help="evidence threshold (default: the model's, for the unit)")
    s.add_argument("--unit", choices=["sentence", "clause", "word"],
                   help="what evidence is made of (default: the model's, sentence for the bundled one)")
    s.add_argument("--mode", choices=["late", "hybrid", "lexical"],
                   help="ranking: late interaction (default), hybrid (fused with BM25: references such as "
                        "MV-OND28 and rare words rank first) or lexical (BM25 alone)")
    s.add_argument("--fusion", choices=["rrf", "relative_score"], help="how --mode hybrid fuses the two rankings")
    s.add_argument("--weight", type=float, help="late interaction's share in the hybrid fusion, 0 to 1")
    s.add_argument("--no-highlight", action="store_true")
    s.add_argument("--full-text", action="store_true", help="print whole documents with highlights")
    s.add_argument("--format", choices=["terminal", "json", "html", "markdown"], default="terminal",
                   help="terminal: evidence highlighted in context (colour when printing to a terminal, [[…]] "
                        "when piped); json; html or markdown: each hit with its evidence marked")
    s.add_argument("--json", action="store_true", help="the same as --format json")
    add_model_option(s)
    add_color_option(s)
    common.add_qdrant_options(s)
    s.set_defaults(func=cmd_search)

    o = sub.add_parser("optimize", help="compact an index (reclaim deleted space, merge segment files) and "
                                        "bring its approximate-search quantiser up to date")
    o.add_argument("index", help="index directory")
    o.add_argument("--retrain", action="store_true", help="re-train the quantiser on the current documents")
    add_model_option(o)
    o.set_defaults(func=cmd_optimize)

    h = sub.add_parser("highlight", help="highlight the sentence of a text (or file) that answers a query")
    h.add_argument("query")
    h.add_argument("text", help="a file path or the text itself")
    h.add_argument("--literal", action="store_true", help="treat TEXT as text even if a file has that name")
    h.add_argument("--threshold", type=float)
    h.add_argument("--unit", choices=["sentence", "clause", "word"], help="sentence (default), clause or word")
    h.add_argument("--format", choices=["terminal", "html", "markdown"], default="terminal")
    h.add_argument("--json", action="store_true")
    add_model_option(h)
    add_color_option(h)
    h.set_defaults(func=cmd_highlight)


def cmd_index(args: argparse.Namespace) -> int:
    from .._io import atomic_directory
    from ..ingest import load_documents
    from ..retriever import FGRRetriever

    if common.uses_qdrant(args) == bool(args.out) or common.uses_qdrant(args) != bool(args.collection):
        raise InvalidInputError("give --out DIR, or --qdrant-url/--qdrant-path with --collection NAME")
    if args.chunk_tokens is not None and args.chunk_tokens < 8:
        raise InvalidInputError("--chunk-tokens must be at least 8")
    report = load_documents(args.paths, strict=args.strict, csv_text_columns=args.csv_text_column,
                            csv_metadata_columns=args.csv_metadata_column, csv_id_column=args.csv_id_column)
    print(report.summary(), file=sys.stderr)
    if not report.documents:
        raise InvalidInputError("no documents found")
    if common.uses_qdrant(args):
        # Qdrant upserts by id: an existing collection is appended to (its model must match)
        retriever = common.open_qdrant(args.collection, args, show_progress_bar=not args.quiet)
        added = _add(retriever, args, report)
        print(f"indexed {added} passages; Qdrant collection {args.collection!r} now holds {len(retriever)}")
        return 0
    out = Path(args.out)
    exists = out.exists() and any(out.iterdir()) if out.is_dir() else out.exists()
    if exists and not (args.append or args.overwrite):
        raise InvalidInputError(f"{out} already exists; pass --append to add to it or --overwrite to replace it")
    if args.append and exists:
        # written in place, in one transaction: readers (a running `serve`) keep searching meanwhile
        retriever = common.open_index(out, args, writable=True)
        added = _add(retriever, args, report)
        total = len(retriever)
    else:
        # a new index is built aside and swapped in whole: an interrupted run leaves no half index
        with atomic_directory(out, marker="index.json") as tmp:
            retriever = FGRRetriever.open(tmp, model=common.load_model(args.model, args.device),
                                          storage_dtype=args.storage_dtype)
            added = _add(retriever, args, report)
            total = len(retriever)
            retriever.close()
    what = f"{added} documents" if added == len(report.documents) else \
        f"{added} passages from {len(report.documents)} documents"
    print(f"indexed {what}; {out} now holds {total}")
    return 0


def _add(retriever, args: argparse.Namespace, report) -> int:
    """Chunk and add the loaded documents; returns how many passages were added."""
    from ..ingest import chunk_documents, wordpiece_counter

    docs = report.documents
    if not args.no_chunking:
        # two windows ([CLS], marker and [SEP] aside): a product sheet or a policy stays whole
        # with its name next to its facts; one window (177) split the demo's sheets and lost a
        # question (30/38 top-1 against 31/38), two lose none; a book still becomes passages
        budget = args.chunk_tokens or 2 * (retriever.model.config.doc_maxlen - 3)
        docs = chunk_documents(docs, max_tokens=budget, overlap_tokens=min(args.chunk_overlap, budget - 1),
                               count_tokens=wordpiece_counter(retriever.model.tokenizer.hf))
        if len(docs) != len(report.documents):
            print(f"split into {len(docs)} passages of at most {budget} wordpieces", file=sys.stderr)
    retriever.batch_size = args.batch_size
    retriever.show_progress_bar = not args.quiet
    retriever.add_documents(docs)
    return len(docs)


def cmd_optimize(args: argparse.Namespace) -> int:
    retriever = common.open_index(args.index, args, writable=True)
    before = retriever.index.stats()
    retriever.optimize(retrain=args.retrain)
    after = retriever.index.stats()
    print(f"{args.index}: {after['documents']} documents, {before['segments']} -> {after['segments']} segment files, "
          f"{before['disk_bytes'] / 1e6:.1f} -> {after['disk_bytes'] / 1e6:.1f} MB, "
          f"{after['quantiser_parts']} quantiser part(s), {after['exact_tokens']} token vectors scanned exactly")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    flt = None
    if args.filter:
        try:
            flt = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"--filter is not valid JSON: {exc}") from None
    if common.uses_qdrant(args):
        retriever = common.open_qdrant(args.index, args)
        results = retriever.search(args.query, k=args.k, filter=flt, highlight=not args.no_highlight,
                                   threshold=args.threshold, unit=args.unit, **_ranking(args))
    elif args.index.startswith(("http://", "https://")):
        results = _search_server(args, flt)
    else:
        retriever = common.open_index(args.index, args)
        results = retriever.search(args.query, k=args.k, filter=flt, highlight=not args.no_highlight,
                                   threshold=args.threshold, unit=args.unit, **_ranking(args))
    fmt = "json" if args.json else args.format
    if fmt == "json":
        json.dump([r.to_dict() for r in results], sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif fmt in ("html", "markdown"):
        print(_render_results(results, fmt))
    else:
        common.print_results(results, color=common.use_color(args), full_text=args.full_text)
    return 0


def _ranking(args: argparse.Namespace) -> dict:
    """--mode, --fusion and --weight as search() keywords (only those given)."""
    return {name: getattr(args, name) for name in ("mode", "fusion", "weight") if getattr(args, name) is not None}


def _search_server(args: argparse.Namespace, flt) -> list:
    """The same search, asked of a running server (the URL the user gave: no other network use)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    from ..types import SearchResult

    if args.model or args.device or args.no_highlight:
        raise InvalidInputError("--model, --device and --no-highlight apply to a local index, not to a server")
    params = {"q": args.query, "k": args.k, **({"unit": args.unit} if args.unit else {}),
              **({"threshold": args.threshold} if args.threshold is not None else {}),
              **({"filter": json.dumps(flt)} if flt is not None else {}), **_ranking(args)}
    url = args.index.rstrip("/") + "/search?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["detail"]
        raise InvalidInputError(f"the server refused the search ({exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise IndexNotFoundError(f"no fgr-retriever server answers at {args.index} ({exc})") from None
    return [SearchResult.from_dict(r) for r in body["results"]]


def _render_results(results, fmt: str) -> str:
    """Each hit as a heading and its text with the evidence marked (HTML ``<mark>`` or bold)."""
    from html import escape

    from ..evidence.rendering import render_html, render_markdown

    out = []
    for r in results:
        title = r.metadata.get("title")
        head = f"{r.rank}. {r.id}" + (f" — {title}" if title else "") + f" (score {r.score:.2f})"
        if fmt == "html":
            out.append(f'<article id="{escape(r.id, quote=True)}">\n<h3>{escape(head)}</h3>\n'
                       f"<p>{render_html(r.text, r.spans, answers=r.answers)}</p>\n</article>")
        else:
            out.append(f"### {render_markdown(head, [])}\n\n{render_markdown(r.text, r.spans, answers=r.answers)}\n")
    return "\n".join(out) if out else ("<p>No results.</p>" if fmt == "html" else "No results.")


def cmd_highlight(args: argparse.Namespace) -> int:
    from ..evidence.rendering import render_html, render_markdown

    source = args.text
    path = Path(source)
    if not args.literal and len(source) < 4096 and path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    else:
        text = source
    model = common.load_model(args.model, args.device)
    spans, answers = model.highlight_with_answers(args.query, text, threshold=args.threshold, unit=args.unit)
    if args.json:
        unit, threshold = model.resolve_evidence(args.unit, args.threshold)
        json.dump({"query": args.query, "unit": unit, "threshold": threshold,
                   "spans": [s.to_dict() for s in spans], "answers": [a.to_dict() for a in answers]},
                  sys.stdout, ensure_ascii=False, indent=2)
        print()
    elif args.format == "html":
        print(render_html(text, spans, answers=answers))
    elif args.format == "markdown":
        print(render_markdown(text, spans, answers=answers))
    else:
        print(common.mark(text, spans, common.use_color(args), answers))
    return 0
