"""The ``fgr-retriever`` parser: one subcommand group per module of this package.

Exit codes: 0 success, 1 an error the message explains (bad file, missing index, ...),
2 wrong command-line usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import FGRError
from . import demo, evaluate, label, retrieval, serve, train

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="fgr-retriever",
                                description="ColBERT retrieval that highlights the sentence answering your query.")
    p.add_argument("--version", action="version", version=f"fgr-retriever {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    for group in (demo, retrieval, serve, label, train, evaluate):
        group.register(sub)
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
