"""``FGRColBERTRetriever``: ColBERT retrieval from an FGRColBERTDocumentStore, with evidence spans."""

# Postponed annotations are fine here: Haystack 3.x resolves string annotations of run() with
# typing.get_type_hints, so every name used in run()'s signature is imported at runtime below.
from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore
from haystack_integrations.document_stores.fgr._validation import check_int, check_threshold

__all__ = ["FGRColBERTRetriever"]


@component
class FGRColBERTRetriever:
    """
    Retrieves documents from an `FGRColBERTDocumentStore` and marks the sentence that answers the query.

    Each returned Document is a new object with `score` (the ColBERT MaxSim score; comparable between
    documents of one query only) and, in `meta`, the evidence schema shared by all fgr-retriever
    integrations: `relevance_score`, `evidence_spans` (a list of `{"start", "end", "text", "score"}`
    with character offsets into the full text), `answer_spans` (the answer inside the evidence, same
    shape) and, with `evidence_only=True`, `full_text` (the
    untrimmed content, while `content` holds just the evidence with a little context).

    Usage example (runs offline with the bundled default model):

    ```python
    from haystack import Document
    from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever
    from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

    store = FGRColBERTDocumentStore()
    store.write_documents([
        Document(content="Returns are free. You can return an item within 30 days of delivery.",
                 meta={"topic": "policy"}),
        Document(content="Silk scarves should be dry-cleaned only.", meta={"topic": "care"}),
    ])
    retriever = FGRColBERTRetriever(store, top_k=1)
    best = retriever.run(query="How long do I have to return an item?")["documents"][0]
    print(best.meta["topic"], [span["text"] for span in best.meta["evidence_spans"]])
    # policy ['You can return an item within 30 days of delivery.']
    ```
    """

    def __init__(
        self,
        document_store: FGRColBERTDocumentStore,
        *,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
        evidence_only: bool = False,
        threshold: float | None = None,
    ) -> None:
        """
        Create the retriever.

        :param document_store: The `FGRColBERTDocumentStore` to search.
        :param top_k: The maximum number of documents to return; must be > 0.
        :param filters: Haystack filters applied to every search.
        :param filter_policy: How run-time filters combine with `filters`: `REPLACE` (default) uses the
            run-time filters instead; `MERGE` combines both.
        :param evidence_only: Replace each document's content with its evidence (the highlighted sentences
            with some context); the full text moves to `meta["full_text"]`. A document with no
            highlighted span keeps its full content.
        :param threshold: Token probability above which words count as evidence; `None` uses the
            model's own threshold.
        :raises TypeError: if `document_store` is not an `FGRColBERTDocumentStore`.
        :raises ValueError: if `top_k` or `threshold` is out of range.
        """
        if not isinstance(document_store, FGRColBERTDocumentStore):
            raise TypeError(
                f"document_store must be an FGRColBERTDocumentStore, got {type(document_store).__name__}"
            )
        check_int("top_k", top_k)
        check_threshold(threshold)
        self.document_store = document_store
        self.top_k = top_k
        self.filters = filters
        self.filter_policy = (
            filter_policy if isinstance(filter_policy, FilterPolicy) else FilterPolicy.from_str(filter_policy)
        )
        self.evidence_only = evidence_only
        self.threshold = threshold

    def _get_telemetry_data(self) -> dict[str, Any]:
        return {"document_store": type(self.document_store).__name__}

    def warm_up(self) -> None:
        """Load the store's model and index (otherwise done by the first run)."""
        self.document_store.warm_up()

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` without blocking the event loop."""
        await self.document_store.warm_up_async()

    def to_dict(self) -> dict[str, Any]:
        """Serialise the retriever, with its document store nested."""
        return default_to_dict(
            self,
            document_store=self.document_store,
            top_k=self.top_k,
            filters=self.filters,
            filter_policy=self.filter_policy.value,
            evidence_only=self.evidence_only,
            threshold=self.threshold,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRColBERTRetriever:
        """Rebuild a retriever (and its document store) from :meth:`to_dict` output."""
        params = dict(data.get("init_parameters", {}))
        # done by hand rather than left to default_from_dict, which only does it in newer Haystack
        if isinstance(params.get("document_store"), dict):
            params["document_store"] = FGRColBERTDocumentStore.from_dict(params["document_store"])
        if isinstance(params.get("filter_policy"), str):
            params["filter_policy"] = FilterPolicy.from_str(params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _resolve(self, filters: dict[str, Any] | None, top_k: int | None) -> tuple[dict[str, Any] | None, int]:
        filters = apply_filter_policy(self.filter_policy, self.filters, filters)
        top_k = self.top_k if top_k is None else top_k
        check_int("top_k", top_k, minimum=0)
        return filters, top_k

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """
        Retrieve the best documents for `query`.

        :param query: The question or search text.
        :param filters: Haystack filters for this run, combined with the init filters by `filter_policy`.
        :param top_k: The maximum number of documents for this run (0 returns none).
        :returns: `{"documents": [...]}`, best first, with `score` and the evidence metadata.
        """
        filters, top_k = self._resolve(filters, top_k)
        documents = self.document_store._search(
            query, top_k=top_k, filters=filters, evidence_only=self.evidence_only, threshold=self.threshold
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run` without blocking the event loop (the search runs in a worker thread)."""
        filters, top_k = self._resolve(filters, top_k)
        documents = await self.document_store._search_async(
            query, top_k=top_k, filters=filters, evidence_only=self.evidence_only, threshold=self.threshold
        )
        return {"documents": documents}
