"""``fgr-retriever serve INDEX_DIR``: the search page and JSON API over a saved index."""

from __future__ import annotations

import argparse

from ..errors import MissingDependencyError
from . import common
from .common import add_model_option

__all__ = ["register", "cmd_serve"]


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve a search page and a JSON API over an index (needs the serve extra)")
    s.add_argument("index", help="index directory (built with fgr-retriever index)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--title", default="fgr-retriever", help="the page's title")
    add_model_option(s)
    s.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    index = common.check_index(args.index)
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("serve needs FastAPI and uvicorn: pip install 'fgr-retriever[serve]'") from None
    from ..server import create_app

    retriever = common.open_index(index, args)
    print(f"serving {len(retriever)} documents from {index} at http://{args.host}:{args.port}/ "
          f"(API docs at /docs)", flush=True)
    uvicorn.run(create_app(retriever, title=args.title), host=args.host, port=args.port, log_level="warning")
    return 0
