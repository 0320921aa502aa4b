"""``FGRColBERTRetriever``: ColBERT retrieval from an FGRColBERTDocumentStore, with evidence spans."""

# Postponed annotations are fine here: Haystack 3.x resolves string annotations of run() with
# typing.get_type_hints, so every name used in run()'s signature is imported at runtime below.
from __future__ import annotations

from typing import Any

from haystack import DeserializationError, Document, component, default_from_dict, default_to_dict
from haystack.core.serialization import import_class_by_name
from haystack.document_stores.types import FilterPolicy, apply_filter_policy

from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore
from haystack_integrations.document_stores.fgr._validation import check_int, check_threshold

__all__ = ["FGRColBERTRetriever"]


def _check_mode(mode: object) -> None:
    if mode not in ("late", "hybrid", "lexical"):
        raise ValueError(f"mode must be 'late', 'hybrid' or 'lexical', got {mode!r}")


def _document_store_from_dict(data: dict[str, Any]) -> FGRColBERTDocumentStore:
    """The store serialised in `data`, of the class its `type` names (the local store or the Qdrant
    one, or any other subclass of `FGRColBERTDocumentStore`)."""
    type_name = data.get("type")
    if not isinstance(type_name, str):
        raise DeserializationError(f"the serialised document_store has no 'type': {data!r}")
    try:
        # Haystack's own import, with its deserialisation allowlist (haystack_integrations is on it)
        store_cls = import_class_by_name(type_name)
    except ImportError as exc:
        raise DeserializationError(f"cannot import the document_store class {type_name!r}: {exc}") from exc
    if not (isinstance(store_cls, type) and issubclass(store_cls, FGRColBERTDocumentStore)):
        raise DeserializationError(f"document_store type {type_name!r} is not an FGRColBERTDocumentStore")
    return store_cls.from_dict(data)


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
        mode: str = "late",
    ) -> None:
        """
        Create the retriever.

        :param document_store: The `FGRColBERTDocumentStore` to search (or an
            `FGRColBERTQdrantDocumentStore`, which is one).
        :param top_k: The maximum number of documents to return; must be > 0.
        :param filters: Haystack filters applied to every search.
        :param filter_policy: How run-time filters combine with `filters`: `REPLACE` (default) uses the
            run-time filters instead; `MERGE` combines both.
        :param evidence_only: Replace each document's content with its evidence (the highlighted sentences
            with some context); the full text moves to `meta["full_text"]`. A document with no
            highlighted span keeps its full content.
        :param threshold: Token probability above which words count as evidence; `None` uses the
            model's own threshold.
        :param mode: Ranking: `"late"` (late interaction, the default), `"hybrid"` (late interaction
            fused with BM25, so product references such as `MV-OND28` and rare words rank first) or
            `"lexical"` (BM25 alone). Hybrid and lexical need `FGRColBERTDocumentStore`.
        :raises TypeError: if `document_store` is not an `FGRColBERTDocumentStore`.
        :raises ValueError: if `top_k` or `threshold` is out of range.
        """
        if not isinstance(document_store, FGRColBERTDocumentStore):
            raise TypeError(
                f"document_store must be an FGRColBERTDocumentStore, got {type(document_store).__name__}"
            )
        check_int("top_k", top_k)
        check_threshold(threshold)
        _check_mode(mode)
        self.document_store = document_store
        self.top_k = top_k
        self.filters = filters
        self.filter_policy = (
            filter_policy if isinstance(filter_policy, FilterPolicy) else FilterPolicy.from_str(filter_policy)
        )
        self.evidence_only = evidence_only
        self.threshold = threshold
        self.mode = mode

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
            mode=self.mode,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRColBERTRetriever:
        """Rebuild a retriever (and its document store) from :meth:`to_dict` output."""
        params = dict(data.get("init_parameters", {}))
        # done by hand rather than left to default_from_dict, which only does it in newer Haystack
        if isinstance(params.get("document_store"), dict):
            params["document_store"] = _document_store_from_dict(params["document_store"])
        if isinstance(params.get("filter_policy"), str):
            params["filter_policy"] = FilterPolicy.from_str(params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    def _resolve(self, filters: dict[str, Any] | None, top_k: int | None,
                 mode: str | None) -> tuple[dict[str, Any] | None, int, str]:
        filters = apply_filter_policy(self.filter_policy, self.filters, filters)
        top_k = self.top_k if top_k is None else top_k
        check_int("top_k", top_k, minimum=0)
        mode = self.mode if mode is None else mode
        _check_mode(mode)
        return filters, top_k, mode

    @component.output_types(documents=list[Document])
    def run(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None, mode: str | None = None
    ) -> dict[str, list[Document]]:
        """
        Retrieve the best documents for `query`.

        :param query: The question or search text.
        :param filters: Haystack filters for this run, combined with the init filters by `filter_policy`.
        :param top_k: The maximum number of documents for this run (0 returns none).
        :param mode: The ranking for this run (`"late"`, `"hybrid"` or `"lexical"`); `None` uses the init `mode`.
        :returns: `{"documents": [...]}`, best first, with `score` and the evidence metadata.
        """
        filters, top_k, mode = self._resolve(filters, top_k, mode)
        documents = self.document_store._search(
            query, top_k=top_k, filters=filters, evidence_only=self.evidence_only, threshold=self.threshold, mode=mode
        )
        return {"documents": documents}

    @component.output_types(documents=list[Document])
    async def run_async(
        self, query: str, filters: dict[str, Any] | None = None, top_k: int | None = None, mode: str | None = None
    ) -> dict[str, list[Document]]:
        """:meth:`run` without blocking the event loop (the search runs in a worker thread)."""
        filters, top_k, mode = self._resolve(filters, top_k, mode)
        documents = await self.document_store._search_async(
            query, top_k=top_k, filters=filters, evidence_only=self.evidence_only, threshold=self.threshold, mode=mode
        )
        return {"documents": documents}
