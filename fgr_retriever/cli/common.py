"""What every command shares: model loading, terminal colour, printing results.

Commands call :func:`load_model` through this module (``common.load_model(...)``) so that tests
and embedders have one place to substitute a model.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..errors import IndexNotFoundError
from ..evidence.rendering import render_ansi, render_plain
from ..evidence.text import context_windows
from ..types import SearchResult, Span

__all__ = ["add_model_option", "add_color_option", "use_color", "mark", "marked_snippet", "print_results",
           "load_model", "check_index", "open_index"]

_SPACE = re.compile(r"\s+")


def add_model_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", help="model directory or hub id (default: the bundled model)")
    sp.add_argument("--device", help="where the model runs: cpu, cuda, cuda:1, mps (default: cpu)")


def add_color_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                    help="highlight with terminal colours (default: when printing to a terminal)")


def use_color(args: argparse.Namespace) -> bool:
    if getattr(args, "color", None) == "always":
        return True
    if getattr(args, "color", None) == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def mark(text: str, spans: Sequence[Span], color: bool, answers: Sequence[Span] = ()) -> str:
    """``text`` with the evidence marked (colour in a terminal, ``[[…]]`` otherwise) and the
    answers inside it marked again (``{{…}}`` when plain)."""
    return (render_ansi if color else render_plain)(text, spans, answers=answers)


def _clip(spans: Sequence[Span], a: int, b: int, text: str) -> list[Span]:
    return [replace(sp, start=max(sp.start, a) - a, end=min(sp.end, b) - a, text=text[max(sp.start, a):min(sp.end, b)])
            for sp in spans if sp.start < b and sp.end > a]


def marked_snippet(text: str, spans: Sequence[Span], color: bool, *, context_words: int = 12,
                   answers: Sequence[Span] = ()) -> str:
    """The evidence in its context: each span with ``context_words`` words around it, marked
    (colour in a terminal, ``[[…]]`` otherwise; answers inside marked again), pieces joined by
    ``…``, whitespace collapsed."""
    windows = context_windows(text, [(sp.start, sp.end) for sp in spans], context_words)
    parts = []
    for a, b in windows:
        parts.append(_SPACE.sub(" ", mark(text[a:b], _clip(spans, a, b, text), color,
                                          _clip(answers, a, b, text))).strip())
    out = " … ".join(parts)
    if windows and text[:windows[0][0]].strip():
        out = "… " + out
    if windows and text[windows[-1][1]:].strip():
        out += " …"
    return out


def print_results(results: list[SearchResult], *, color: bool, full_text: bool) -> None:
    if not results:
        print("  (no results)")
    for r in results:
        title = r.metadata.get("title")
        head = f"  {r.rank}. {r.id}" + (f" — {title}" if title else "") + f"  (score {r.score:.2f})"
        print(head)
        if full_text:
            print("     " + mark(r.text, r.spans, color, r.answers).replace("\n", "\n     "))
        elif r.spans:
            print(f"     evidence: {marked_snippet(r.text, r.spans, color, answers=r.answers)}")
        if r.answers:
            print(f"     answer: {' | '.join(a.text for a in r.answers)}")
        if full_text and r.evidence:
            print(f"     evidence: {r.evidence}")
        elif r.spans == () and not r.evidence:
            print("     evidence: (nothing here reaches the evidence threshold)")


def load_model(name: str | None, device: str | None = None):
    # imported here: loading torch and transformers is the slow part of starting the CLI
    from ..model import FGRColBERT

    return FGRColBERT.from_pretrained(name, device=device)


def check_index(path: str | Path) -> Path:
    """``path`` if it holds a saved index; checked before torch loads, so the error is instant."""
    path = Path(path)
    if not (path / "index.json").is_file():
        raise IndexNotFoundError(f"no fgr-retriever index at {path} (expected {path / 'index.json'})")
    return path


def open_index(path: str | Path, args: argparse.Namespace, *, writable: bool = False):
    """A saved index with ``--model`` (default: the model recorded in it) on ``--device``.

    ``writable`` opens it in place for changes (an index in the portable format is converted
    once); otherwise a persistent index is opened in place and a portable copy read into memory.
    """
    path = check_index(path)  # before the import: a wrong path is answered without loading torch
    from ..retriever import FGRRetriever

    opener = FGRRetriever.open if writable else FGRRetriever.load
    retriever = opener(path, **({"model": load_model(args.model, args.device)} if args.model else {}))
    if args.device and not args.model:
        retriever.model.to(args.device)
    return retriever


def add_qdrant_options(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("Qdrant (instead of a local index; needs fgr-retriever[qdrant])")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--qdrant-url", help="a Qdrant server or cluster, e.g. http://qdrant:6333 (API key from the "
                                            "QDRANT_API_KEY environment variable)")
    where.add_argument("--qdrant-path", help="a folder for qdrant-client's local mode (one process; for trials)")
    g.add_argument("--candidate", choices=["pooled", "muvera", "none"], default="pooled",
                   help="the vector that proposes MaxSim candidates when a collection is created (default: pooled; "
                        "see docs/scale-out.md)")
    g.add_argument("--candidates", type=int, default=200, help="candidates re-scored with exact MaxSim (default 200)")


def uses_qdrant(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "qdrant_url", None) or getattr(args, "qdrant_path", None))


def open_qdrant(collection: str, args: argparse.Namespace, *, show_progress_bar: bool = False):
    """A retriever over the Qdrant collection ``collection`` with ``--model`` on ``--device``;
    the collection is created when missing and must have been built by the same model."""
    from ..index.qdrant import QdrantIndex
    from ..retriever import FGRRetriever

    model = load_model(args.model, args.device)
    candidate = None if args.candidate == "none" else args.candidate
    index = QdrantIndex.for_model(model, collection=collection, url=args.qdrant_url, path=args.qdrant_path,
                                  api_key=os.environ.get("QDRANT_API_KEY") or None, candidate=candidate,
                                  candidates=args.candidates, show_progress_bar=show_progress_bar)
    return FGRRetriever(model=model, index=index)

