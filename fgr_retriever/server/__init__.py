"""The search server: ``fgr-retriever serve INDEX_DIR`` and :func:`create_app` for your own ASGI stack.

Owns: the FastAPI app (JSON API with OpenAPI docs, the search page) over one loaded
:class:`~fgr_retriever.FGRRetriever` (``app``), and the page itself (``page.html``).

May import: the runtime (``retriever``, ``evidence``, foundation modules); FastAPI and uvicorn
come with the ``serve`` extra and load only when an app is created. Nothing in the runtime
imports this package.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
