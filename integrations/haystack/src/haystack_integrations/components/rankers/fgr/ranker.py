"""``FGRColBERTRanker``: re-rank documents from any retriever with FGR-ColBERT and mark their evidence."""

# Postponed annotations are fine here: Haystack 3.x resolves string annotations of run() with
# typing.get_type_hints, so every name used in run()'s signature is imported at runtime below.
from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from fgr_retriever import Document as CoreDocument
from fgr_retriever import FGRRetriever
from fgr_retriever.evidence.metadata import evidence_fields, full_text_of, strip_evidence_fields
from haystack_integrations.document_stores.fgr._models import load_model
from haystack_integrations.document_stores.fgr._validation import check_int, check_threshold

__all__ = ["FGRColBERTRanker"]


def _best_per_id(documents: list[Document]) -> list[Document]:
    """One document per id: the highest-scored copy (the first one on a tie), in first-seen order.

    Hybrid pipelines often hand the same document over twice; scoring it twice would waste time
    and return it twice.
    """
    best: dict[str, Document] = {}
    for doc in documents:
        seen = best.get(doc.id)
        score = doc.score if doc.score is not None else -math.inf
        if seen is None or score > (seen.score if seen.score is not None else -math.inf):
            best[doc.id] = doc
    return list(best.values())


@component
class FGRColBERTRanker:
    """
    Re-ranks documents from any source with FGR-ColBERT and marks the sentence that answers the query.

    No index is needed: documents are encoded on the fly. The output documents are new objects (the
    inputs are left untouched), best first, with `score` (ColBERT MaxSim) and the evidence schema
    shared by all fgr-retriever integrations in `meta`: `relevance_score`, `evidence_spans` (offsets
    into the full text) and, with `evidence_only=True`, `full_text`. Documents trimmed by an earlier
    FGR stage are re-ranked on their `meta["full_text"]`, and their old evidence keys are replaced.

    Only documents with text can be ranked: a document whose content is `None` or blank raises
    `ValueError` (route non-text documents around the ranker). Documents that share an id are
    ranked once, keeping the highest-scored copy.

    Usage example (runs offline with the bundled default model):

    ```python
    from haystack import Document
    from haystack_integrations.components.rankers.fgr import FGRColBERTRanker

    ranker = FGRColBERTRanker(top_k=1)
    result = ranker.run(
        query="How long do I have to return an item?",
        documents=[
            Document(content="Silk scarves should be dry-cleaned only."),
            Document(content="Returns are free. You can return an item within 30 days of delivery."),
        ],
    )
    best = result["documents"][0]
    print([span["text"] for span in best.meta["evidence_spans"]])
    # ['You can return an item within 30 days of delivery.']
    ```
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        top_k: int = 10,
        evidence_only: bool = False,
        threshold: float | None = None,
        score_threshold: float | None = None,
        batch_size: int = 32,
        context_words: int = 3,
        evidence_max_tokens: int | None = None,
        device: str | None = None,
    ) -> None:
        """
        Create the ranker; the model is loaded by :meth:`warm_up` or the first run.

        :param model: A model directory or Hugging Face hub id; `None` is the bundled default (offline).
        :param top_k: The maximum number of documents to return; must be > 0.
        :param evidence_only: Replace each document's content with its evidence (highlighted sentences with
            `context_words` words of context); the full text moves to `meta["full_text"]`.
        :param threshold: Token probability above which words count as evidence; `None` uses the
            model's own threshold.
        :param score_threshold: Drop documents whose MaxSim score is below this value. MaxSim sums over
            query tokens, so useful values depend on query length; `None` keeps everything.
        :param batch_size: Documents encoded per forward pass.
        :param context_words: Words of context around each span in trimmed content.
        :param evidence_max_tokens: Optional budget (whitespace words) for trimmed content.
        :param device: Torch device for the model, e.g. `"cuda"`; `None` keeps the default (CPU).
        """
        if model is not None and not isinstance(model, str):
            raise TypeError(f"model must be a model directory or hub id (str) or None, got {type(model).__name__}")
        check_int("top_k", top_k)
        check_threshold(threshold)
        if score_threshold is not None and (isinstance(score_threshold, bool)
                                            or not isinstance(score_threshold, (int, float))):
            raise ValueError(f"score_threshold must be a number or None, got {score_threshold!r}")
        check_int("batch_size", batch_size)
        check_int("context_words", context_words, minimum=0)
        check_int("evidence_max_tokens", evidence_max_tokens, allow_none=True)
        self.model = model
        self.top_k = top_k
        self.evidence_only = evidence_only
        self.threshold = threshold
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.context_words = context_words
        self.evidence_max_tokens = evidence_max_tokens
        self.device = device
        self._retriever: FGRRetriever | None = None

    def warm_up(self) -> None:
        """Load the model (the first run does it otherwise)."""
        if self._retriever is None:
            self._retriever = FGRRetriever(
                model=load_model(self.model, device=self.device),
                batch_size=self.batch_size,
                context_words=self.context_words,
                evidence_max_tokens=self.evidence_max_tokens,
            )

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so the event loop is not blocked."""
        await asyncio.to_thread(self.warm_up)

    def to_dict(self) -> dict[str, Any]:
        """Serialise the ranker's settings."""
        return default_to_dict(
            self,
            model=self.model,
            top_k=self.top_k,
            evidence_only=self.evidence_only,
            threshold=self.threshold,
            score_threshold=self.score_threshold,
            batch_size=self.batch_size,
            context_words=self.context_words,
            evidence_max_tokens=self.evidence_max_tokens,
            device=self.device,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRColBERTRanker:
        """Rebuild a ranker from :meth:`to_dict` output."""
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, query: str, documents: list[Document], top_k: int | None = None) -> dict[str, list[Document]]:
        """
        Re-rank `documents` for `query`.

        :param query: The question or search text.
        :param documents: Documents with text content, from any retriever.
        :param top_k: The maximum number of documents for this run; `None` uses the init value.
        :returns: `{"documents": [...]}`: new Documents, best first, with `score` and evidence metadata.
        :raises ValueError: if a document has no text, or `query` is empty.
        """
        top_k = self.top_k if top_k is None else top_k
        check_int("top_k", top_k)
        if not documents:
            return {"documents": []}
        unique = _best_per_id(list(documents))
        # the text the evidence offsets refer to: the untrimmed one when an FGR stage trimmed it
        texts = [full_text_of(doc.content or "", doc.meta) for doc in unique]
        no_text = [doc.id for doc, text in zip(unique, texts) if not text.strip()]
        if no_text:
            shown = ", ".join(repr(i) for i in no_text[:5]) + (" …" if len(no_text) > 5 else "")
            raise ValueError(
                f"FGRColBERTRanker can only rank documents with text; these have none (content is None or "
                f"blank): {shown}"
            )
        self.warm_up()
        assert self._retriever is not None
        # positions as ids: input ids may be anything, and the core wants them unique and non-empty
        results = self._retriever.rerank(
            query, [CoreDocument(id=str(i), text=text) for i, text in enumerate(texts)], k=top_k,
            threshold=self.threshold,
        )
        ranked = []
        for result in results:
            if self.score_threshold is not None and not result.score >= self.score_threshold:
                continue
            doc = unique[int(result.id)]
            text, evidence_meta = evidence_fields(result, evidence_only=self.evidence_only)
            meta = {**strip_evidence_fields(doc.meta), **evidence_meta}
            ranked.append(replace(doc, content=text, score=result.score, meta=meta))
        return {"documents": ranked}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, documents: list[Document], top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run` in a worker thread, so the event loop is not blocked while encoding."""
        return await asyncio.to_thread(self.run, query, documents, top_k)
