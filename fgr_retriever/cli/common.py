"""What every command shares: model loading, terminal colour, printing results.

Commands call :func:`load_model` through this module (``common.load_model(...)``) so that tests
and embedders have one place to substitute a model.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..evidence.rendering import render_ansi
from ..types import SearchResult, Span

__all__ = ["add_model_option", "add_color_option", "use_color", "mark", "print_results", "load_model"]


def add_model_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--model", help="model directory or hub id (default: the bundled model)")


def add_color_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                    help="highlight with terminal colours (default: when printing to a terminal)")


def use_color(args: argparse.Namespace) -> bool:
    if getattr(args, "color", None) == "always":
        return True
    if getattr(args, "color", None) == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def mark(text: str, spans: Sequence[Span], color: bool) -> str:
    if color:
        return render_ansi(text, spans)
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s.start):
        out += [text[pos:s.start], "[[", text[s.start:s.end], "]]"]
        pos = s.end
    return "".join(out + [text[pos:]])


def print_results(results: list[SearchResult], *, color: bool, full_text: bool) -> None:
    if not results:
        print("  (no results)")
    for r in results:
        title = r.metadata.get("title")
        head = f"  {r.rank}. {r.id}" + (f" — {title}" if title else "") + f"  (score {r.score:.2f})"
        print(head)
        if full_text:
            print("     " + mark(r.text, r.spans, color).replace("\n", "\n     "))
        if r.evidence:
            print(f"     evidence: {r.evidence}")
        elif r.spans == ():
            print("     evidence: (nothing here reaches the evidence threshold)")


def load_model(name: str | None):
    # imported here: loading torch and transformers is the slow part of starting the CLI
    from ..model import FGRColBERT

    return FGRColBERT.from_pretrained(name)
