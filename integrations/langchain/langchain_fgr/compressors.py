"""``FGREvidenceCompressor``: re-rank documents from any retriever and attach their evidence.

Documents from a vector store, BM25 or a web search are scored by FGR-ColBERT against the query
(no index needed), sorted best first and given the shared evidence metadata
(``relevance_score``, ``evidence_spans``, ``answer_spans``, ``full_text`` when trimmed). Use it on its own or as
the ``base_compressor`` of LangChain's ``ContextualCompressionRetriever``.

>>> from langchain_core.documents import Document
>>> from langchain_fgr import FGREvidenceCompressor
>>> docs = [Document(page_content="Silk scarves should be dry-cleaned only.", id="silk"),
...         Document(page_content="Returns are accepted within 30 days of delivery.", id="returns",
...                  metadata={"source": "policy.md"})]
>>> best = FGREvidenceCompressor(top_n=1).compress_documents(
...     docs, "How many days do I have to send something back?")
>>> best[0].id, best[0].metadata["source"], [s["text"] for s in best[0].metadata["evidence_spans"]]
('returns', 'policy.md', ['30 days'])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from fgr_retriever.errors import InvalidInputError
from fgr_retriever.model import FGRColBERT
from fgr_retriever.retriever import FGRRetriever
from fgr_retriever.types import SearchResult
from fgr_retriever.validation import check_query
from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from ._concurrency import acall_locked, call_locked
from ._convert import check_documents, core_input, to_langchain

__all__ = ["FGREvidenceCompressor"]


class FGREvidenceCompressor(BaseDocumentCompressor):
    """Re-rank any retriever's documents with FGR-ColBERT and attach evidence spans.

    Returns new documents, best first; the inputs are never modified and each output keeps its
    input's id and metadata (deep-copied) with the evidence keys added. A document that already
    carries evidence metadata (say, from an earlier pass) is scored on its ``full_text`` and its
    evidence keys are replaced, so running the compressor twice gives the same result. Documents
    with blank text cannot be scored: they come last, with ``relevance_score`` ``None`` and no
    spans.

    Args:
        model: an :class:`~fgr_retriever.FGRColBERT`, a model directory or name; default: the
            bundled model. :meth:`from_retriever` shares the model of an
            :class:`~langchain_fgr.FGRColBERTRetriever`.
        top_n: keep only the best ``top_n`` documents (after ``drop_without_evidence``).
        evidence_only: replace ``page_content`` by the evidence; ``full_text`` keeps the text.
        threshold: token probability above which a word is evidence (``None``: the model's).
        drop_without_evidence: leave out documents in which no word crossed the threshold.
        context_words, evidence_max_tokens: shape of the evidence text (as in the core).
        batch_size: documents encoded per forward pass.

    >>> from fgr_retriever.testing import tiny_model
    >>> compressor = FGREvidenceCompressor(model=tiny_model(), evidence_only=True)
    >>> doc = Document(page_content="Linen creases less when it is hung up damp.", metadata={"page": 3})
    >>> out = compressor.compress_documents([doc], "linen creases")
    >>> out[0] is doc, doc.metadata, sorted(out[0].metadata)[:3]
    (False, {'page': 3}, ['answer_spans', 'evidence_spans', 'full_text'])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    model: FGRColBERT | None = Field(default=None, repr=False, exclude=True)
    top_n: int | None = None
    evidence_only: bool = False
    threshold: float | None = None
    drop_without_evidence: bool = False
    context_words: int = 3
    evidence_max_tokens: int | None = None
    batch_size: int = 32

    _core: FGRRetriever = PrivateAttr()

    def __init__(self, *, model: FGRColBERT | str | os.PathLike[str] | None = None, **data: Any) -> None:
        # loaded before validation so that a bad model path raises its own error type
        if model is None:
            model = FGRColBERT.from_pretrained()
        elif not isinstance(model, FGRColBERT):
            if not isinstance(model, (str, os.PathLike)):
                raise InvalidInputError(f"model must be an FGRColBERT, a model directory or name, or None; "
                                        f"got {type(model).__name__}")
            model = FGRColBERT.from_pretrained(model)
        super().__init__(model=model, **data)

    def model_post_init(self, context: Any, /) -> None:
        # rerank() never touches the index, so this core retriever stays empty
        self._core = FGRRetriever(model=self.model, batch_size=self.batch_size, context_words=self.context_words,
                                  evidence_max_tokens=self.evidence_max_tokens)

    @classmethod
    def from_retriever(cls, retriever: Any, **kwargs: Any) -> FGREvidenceCompressor:
        """A compressor with the model and evidence settings of an ``FGRColBERTRetriever``
        (or of a core ``FGRRetriever``); ``kwargs`` override them."""
        core = getattr(retriever, "retriever", retriever)
        if not isinstance(core, FGRRetriever):
            raise InvalidInputError(f"expected an FGRColBERTRetriever or FGRRetriever, got {type(retriever).__name__}")
        settings: dict[str, Any] = {"context_words": core.context_words,
                                    "evidence_max_tokens": core.evidence_max_tokens, "batch_size": core.batch_size}
        for name in ("evidence_only", "threshold"):
            if hasattr(retriever, name) and retriever is not core:
                settings[name] = getattr(retriever, name)
        settings.update(kwargs)
        return cls(model=core.model, **settings)

    @field_validator("top_n")
    @classmethod
    def _validate_top_n(cls, value: int | None) -> int | None:
        if value is not None and (isinstance(value, bool) or value < 1):
            raise InvalidInputError(f"top_n must be a positive int or None, got {value!r}")
        return value

    @field_validator("threshold")
    @classmethod
    def _validate_threshold(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value <= 1.0:
            raise InvalidInputError(f"threshold must be a probability in [0, 1] or None, got {value!r}")
        return value

    @field_validator("context_words")
    @classmethod
    def _validate_context_words(cls, value: int) -> int:
        if value < 0:
            raise InvalidInputError(f"context_words must be >= 0, got {value!r}")
        return value

    @field_validator("batch_size")
    @classmethod
    def _validate_batch_size(cls, value: int) -> int:
        if value < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {value!r}")
        return value

    # ------------------------------------------------------------ compression
    def _rerank(self, query: str, inputs: list[dict[str, Any]]) -> list[SearchResult]:
        return self._core.rerank(query, inputs, threshold=self.threshold)

    def _prepare(self, documents: Sequence[Document], query: str
                 ) -> tuple[list[Document], str, list[int], list[dict[str, Any]]]:
        docs = check_documents(documents)
        query = check_query(query)
        texts = [core_input(d)["text"] for d in docs]  # full_text when an earlier pass trimmed it
        scorable = [i for i, text in enumerate(texts) if text.strip()]
        # positions as ids: input ids may be missing or repeated, positions map back exactly
        inputs = [{"text": texts[i], "id": str(i)} for i in scorable]
        return docs, query, scorable, inputs

    def _finish(self, docs: list[Document], scorable: list[int], results: list[SearchResult]) -> list[Document]:
        out: list[Document] = []
        for result in results:
            if self.drop_without_evidence and not result.spans:
                continue
            out.append(to_langchain(result, evidence_only=self.evidence_only, source=docs[int(result.id)]))
        if not self.drop_without_evidence:
            scored = set(scorable)
            for i, doc in enumerate(docs):
                if i not in scored:
                    blank = SearchResult(id=str(i), text=doc.page_content, score=float("nan"), rank=len(out) + 1)
                    out.append(to_langchain(blank, evidence_only=False, source=doc))
        return out[: self.top_n] if self.top_n is not None else out

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        """Re-rank ``documents`` for ``query``; new documents, best first, with evidence metadata."""
        docs, query, scorable, inputs = self._prepare(documents, query)
        results = call_locked(self.model, self._rerank, query, inputs) if inputs else []
        return self._finish(docs, scorable, results)

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        """:meth:`compress_documents` with the scoring in a worker thread (the event loop keeps running)."""
        docs, query, scorable, inputs = self._prepare(documents, query)
        results = await acall_locked(self.model, self._rerank, query, inputs) if inputs else []
        return self._finish(docs, scorable, results)
