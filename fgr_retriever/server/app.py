"""The search server: a JSON API with OpenAPI docs and a search page, over one loaded retriever.

The model and the index load once, when the app is created; every request then costs a search
(milliseconds), not a process start (seconds). Endpoints:

``GET /search``
    ``q``, ``k``, ``unit``, ``threshold``, ``filter`` (a metadata filter as JSON) and the ranking
    ``mode`` (``late``, ``hybrid`` or ``lexical``, with ``fusion`` and ``weight``). Returns
    the hits with their spans (evidence sentences), answers (the answer inside them, when the
    model has an answer head), evidence string and the text rendered as HTML with ``<mark>``
    (answers as a nested ``<mark class="answer">``).
``POST /highlight``
    ``{"query", "text", "unit"?, "threshold"?}``: evidence spans and answers of any text.
``GET /documents/{id}``
    one stored document.
``GET /``
    the search page; ``GET /docs`` the OpenAPI documentation; ``GET /healthz`` a liveness check.

Bad input gets a 422 with the library's own message; an unknown document id a 404.
"""

# no `from __future__ import annotations`: FastAPI reads the endpoint annotations at runtime, and
# the request model is defined inside create_app (FastAPI and pydantic load only when needed)
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DocumentNotFoundError, FGRError, InvalidInputError, MissingDependencyError
from ..evidence.rendering import render_html

if TYPE_CHECKING:
    from ..retriever import FGRRetriever

__all__ = ["create_app"]

PAGE = Path(__file__).with_name("page.html")


def _require_fastapi():
    try:
        import fastapi
    except ImportError:
        raise MissingDependencyError("the server needs FastAPI and uvicorn: pip install 'fgr-retriever[serve]'") from None
    return fastapi


def create_app(retriever: "FGRRetriever", *, title: str = "fgr-retriever"):
    """A FastAPI app that searches ``retriever`` (already loaded; the app never reloads it).

    >>> from fastapi.testclient import TestClient                         # doctest: +SKIP
    >>> client = TestClient(create_app(FGRRetriever.load("kb-index")))   # doctest: +SKIP
    >>> client.get("/search", params={"q": "return window"}).json()      # doctest: +SKIP
    """
    fastapi = _require_fastapi()
    from fastapi.responses import HTMLResponse, JSONResponse
    from pydantic import BaseModel, Field

    class HighlightRequest(BaseModel):
        query: str = Field(description="the question")
        text: str = Field(description="any text")
        unit: str | None = Field(default=None, description="sentence, clause or word (default: the model's)")
        threshold: float | None = Field(default=None, description="evidence threshold (default: the model's)")

    app = fastapi.FastAPI(title=title, description="ColBERT search that shows the evidence answering the query.",
                          version=_version())

    @app.exception_handler(FGRError)
    async def _fgr_error(request, exc: FGRError):  # the library's message, not a traceback
        status = 404 if isinstance(exc, DocumentNotFoundError) else 422
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    def hit(r) -> dict[str, Any]:
        return {**r.to_dict(), "html": render_html(r.text, r.spans, answers=r.answers)}

    @app.get("/search", summary="Search with evidence")
    def search(q: str, k: int = 10, unit: str | None = None, threshold: float | None = None,
               filter: str | None = None, mode: str | None = None, fusion: str | None = None,
               weight: float | None = None) -> dict[str, Any]:
        try:
            flt = json.loads(filter) if filter else None
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"filter is not valid JSON: {exc}") from None
        results = retriever.search(q, k=k, filter=flt, unit=unit, threshold=threshold, mode=mode, fusion=fusion,
                                   weight=weight)
        return {"query": q, "results": [hit(r) for r in results]}

    @app.post("/highlight", summary="Evidence spans of any text")
    def highlight(request: HighlightRequest) -> dict[str, Any]:
        model = retriever.model
        spans, answers = model.highlight_with_answers(request.query, request.text, threshold=request.threshold,
                                                      unit=request.unit)
        unit, threshold = model.resolve_evidence(request.unit, request.threshold)
        return {"query": request.query, "unit": unit, "threshold": threshold,
                "spans": [s.to_dict() for s in spans], "answers": [a.to_dict() for a in answers],
                "html": render_html(request.text, spans, answers=answers)}

    @app.get("/documents/{doc_id:path}", summary="One stored document")
    def document(doc_id: str) -> dict[str, Any]:
        doc = retriever.get([doc_id])[0]
        return {"id": doc.id, "text": doc.text, "metadata": dict(doc.metadata)}

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True, "documents": len(retriever)}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8").replace("{{title}}", title)

    return app


def _version() -> str:
    from .. import __version__

    return __version__
