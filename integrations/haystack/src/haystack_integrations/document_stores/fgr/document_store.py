"""A Haystack document store backed by an FGR-ColBERT index.

Documents are encoded token by token when they are written, so a search returns not only the
best documents but, for each, the sentence that answers the query (see
:mod:`fgr_retriever.evidence.metadata`). Use it with
:class:`~haystack_integrations.components.retrievers.fgr.FGRColBERTRetriever`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Container, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from haystack import Document, default_from_dict, default_to_dict, logging
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from fgr_retriever import Document as CoreDocument
from fgr_retriever import (
    DocumentNotFoundError,
    FGRRetriever,
    IndexCorruptedError,
    IndexStoreError,
    ModelMismatchError,
)
from fgr_retriever.evidence.metadata import evidence_fields

from ._models import load_model
from ._validation import check_int, check_threshold

__all__ = ["FGRColBERTDocumentStore", "RESERVED_META_KEY"]

logger = logging.getLogger(__name__)

#: Key of the core metadata under which the Haystack-only parts of a Document (embedding,
#: sparse_embedding, blob, score) are kept, so that they survive a reopen unchanged.
RESERVED_META_KEY = "_haystack"

# The storage types the core indexes accept; checked here so a typo fails at construction
# instead of at the first write, after the model has been loaded.
_STORAGE_DTYPES = ("bfloat16", "float16", "float32")

# Document fields that the core stores natively (as id, text and metadata).
_NATIVE_FIELDS = ("id", "content", "meta")


def _check_filters(filters: Any) -> None:
    """Raise :class:`~haystack.errors.FilterError` for a malformed Haystack filter.

    The filter is tried on a blank Document: structural mistakes (a missing ``operator``,
    ``conditions``, ``field`` or ``value`` key, an unknown operator, a non-list ``in`` value) raise
    there, so they are reported even when the store is empty. Comparisons against a missing field
    are simply false, so a well-formed filter never fails the probe.
    """
    if not isinstance(filters, dict):
        raise FilterError(f"filters must be a dict in Haystack filter syntax, got {type(filters).__name__}")
    try:
        document_matches_filter(filters, Document())
    except (TypeError, AttributeError, KeyError) as exc:  # e.g. "conditions": None
        raise FilterError(f"malformed filters {filters!r}: {exc}") from None


def _to_core(doc: Document) -> tuple[CoreDocument, bool]:
    """The core document for ``doc`` and whether its meta changed on the way through JSON."""
    if doc.content is None:
        raise ValueError(
            f"Document {doc.id!r} has no text (content=None). FGR-ColBERT indexes text only: convert "
            "files to text first, or route non-text documents elsewhere."
        )
    if not doc.content.strip():
        raise ValueError(f"Document {doc.id!r} has empty content; there is nothing to index.")
    if RESERVED_META_KEY in doc.meta:
        raise ValueError(f"Document {doc.id!r}: meta key {RESERVED_META_KEY!r} is reserved by FGRColBERTDocumentStore.")
    # Everything Haystack's own serialisation gives for the fields the core has no slot for
    # (today: embedding, sparse_embedding, blob, score; tomorrow whatever Document gains).
    extras = {k: v for k, v in doc.to_dict(flatten=False).items() if k not in _NATIVE_FIELDS and v is not None}
    if "embedding" in extras:  # numpy scalars are common in embeddings and are not JSON
        extras["embedding"] = [float(x) for x in extras["embedding"]]
    metadata: dict[str, Any] = dict(doc.meta)
    if extras:
        metadata[RESERVED_META_KEY] = extras
    try:
        # the stored form is JSON; keep exactly what a reload would give back
        stored = json.loads(json.dumps(metadata, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Document {doc.id!r} cannot be stored: its meta (and embedding, blob) must be JSON-serialisable "
            f"({exc})."
        ) from None
    changed = {k: v for k, v in stored.items() if k != RESERVED_META_KEY} != doc.meta
    return CoreDocument(id=doc.id, text=doc.content, metadata=stored), changed


def _from_core(doc: CoreDocument) -> Document:
    # a shallow copy is enough: nothing here mutates nested values, and callers only ever get deep copies
    metadata = dict(doc.metadata)
    extras = metadata.pop(RESERVED_META_KEY, None) or {}
    return Document.from_dict({**extras, "id": doc.id, "content": doc.text, "meta": metadata})


def _with_evidence(result: Any, doc: Document, *, evidence_only: bool) -> Document:
    """A new Document for one search result: `doc` with the result's score and evidence meta."""
    text, evidence_meta = evidence_fields(result, evidence_only=evidence_only)
    doc = copy.deepcopy(doc)  # the stored document (and its embedding list) stays untouched
    return replace(doc, content=text, score=result.score, meta={**doc.meta, **evidence_meta})


def _check_write(documents: Any, policy: DuplicatePolicy) -> tuple[list[Document], DuplicatePolicy]:
    """The documents as a list (each one a Document), and the policy with `NONE` read as `FAIL`."""
    if isinstance(documents, (str, bytes, Document)) or not isinstance(documents, Iterable):
        raise ValueError(f"write_documents() takes a list of Documents, got {type(documents).__name__}")
    documents = list(documents)
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise ValueError(f"write_documents() takes a list of Documents; item {i} is a {type(doc).__name__}")
    return documents, (DuplicatePolicy.FAIL if policy == DuplicatePolicy.NONE else policy)


def _plan_write(documents: list[Document], stored: Container[str], policy: DuplicatePolicy) -> dict[str, Document]:
    """What to write, by id, after `policy` has dealt with ids already `stored` or repeated."""
    batch: dict[str, Document] = {}
    for doc in documents:
        known, repeated = doc.id in stored, doc.id in batch
        if (known or repeated) and policy == DuplicatePolicy.FAIL:
            where = "is already stored" if known else "appears twice in this batch"
            raise DuplicateDocumentError(f"ID '{doc.id}' {where}.")
        if (known or repeated) and policy == DuplicatePolicy.SKIP:
            logger.warning("ID '{document_id}' already exists; skipping it", document_id=doc.id)
            continue
        batch.pop(doc.id, None)  # OVERWRITE within one batch: the last copy wins
        batch[doc.id] = doc
    return batch


class FGRColBERTDocumentStore:
    """Stores Haystack Documents in an FGR-ColBERT late-interaction index, optionally on disk.

    Every Document round-trips unchanged (content, meta, embedding, sparse_embedding, blob, id);
    only its text is encoded. Metadata must be JSON-serialisable because the index stores it as
    JSON (tuples come back as lists). Filters use Haystack's filter syntax.

    The model is loaded on first use (or by :meth:`warm_up`), so building the store, and loading a
    pipeline that contains it, is cheap. With ``index_path`` the store works on a persistent
    on-disk index (:meth:`fgr_retriever.FGRRetriever.open`): it is created if missing, and every
    write or delete is written to it incrementally (only the new vectors; nothing is rewritten)
    and is durable when the call returns. Several stores, in this process or others, may read one
    ``index_path`` while one of them writes; each notices the others' changes at its next call.

    Usage example (runs offline with the bundled default model):

    ```python
    from haystack import Document
    from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

    store = FGRColBERTDocumentStore()
    store.write_documents([
        Document(content="Returns are accepted within 30 days of delivery.", meta={"topic": "policy"}),
        Document(content="Silk scarves should be dry-cleaned only.", meta={"topic": "care"}),
    ])
    print(store.count_documents())
    # 2
    print(store.filter_documents({"field": "meta.topic", "operator": "==", "value": "care"})[0].content)
    # Silk scarves should be dry-cleaned only.
    ```
    """

    def __init__(
        self,
        *,
        model: str | None = None,
        index_path: str | None = None,
        storage_dtype: str = "bfloat16",
        batch_size: int = 32,
        context_words: int = 3,
        evidence_max_tokens: int | None = None,
        device: str | None = None,
    ) -> None:
        """
        Create the store; nothing is loaded until it is first used.

        :param model: A model directory or Hugging Face hub id; `None` is the bundled default model
            (offline). An existing index must be opened with the model that built it.
        :param index_path: Directory of a persistent index, opened on first use (and created when it
            is missing or empty; a directory written by `FGRRetriever.save()` is converted once, in
            place). Changes are written to it incrementally and are durable when the call returns:
            there is nothing to save. Several processes may read it while one writes. `None` keeps
            the index in memory only.
        :param storage_dtype: Storage type of new token vectors: `"bfloat16"`, `"float16"` or
            `"float32"` (used when the index is created; an existing index keeps its own type).
        :param batch_size: Documents encoded per forward pass when writing.
        :param context_words: Words of context kept around each evidence span when search results
            are trimmed to their evidence.
        :param evidence_max_tokens: Optional budget (whitespace words) for each trimmed result.
        :param device: Torch device for the model, e.g. `"cuda"`; `None` keeps the default (CPU).
        """
        if model is not None and not isinstance(model, str):
            raise TypeError(
                f"model must be a model directory or hub id (str) or None, got {type(model).__name__}; "
                "save an in-memory model with model.save_pretrained(path) and pass the path"
            )
        if storage_dtype not in _STORAGE_DTYPES:
            raise ValueError(f"storage_dtype must be one of {list(_STORAGE_DTYPES)}, got {storage_dtype!r}")
        check_int("batch_size", batch_size)
        check_int("context_words", context_words, minimum=0)
        check_int("evidence_max_tokens", evidence_max_tokens, allow_none=True)
        self.model = model
        # keep a plain string: it is what to_dict() writes into pipeline YAML
        self.index_path = str(index_path) if index_path is not None else None
        self.storage_dtype = storage_dtype
        self.batch_size = batch_size
        self.context_words = context_words
        self.evidence_max_tokens = evidence_max_tokens
        self.device = device
        self._retriever: FGRRetriever | None = None
        # id -> Document as stored, in index order; serves filters and round-trips without JSON work
        self._documents: dict[str, Document] = {}
        # the persistent index's generation that _documents reflects (None: in memory, only we change it)
        self._generation: int | None = None
        # the core index is not safe for concurrent mutation; async methods run in worker threads
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ loading
    def warm_up(self) -> None:
        """Load the model and, when `index_path` holds an index, the index. Called on first use."""
        self._ready()

    async def warm_up_async(self) -> None:
        """:meth:`warm_up` in a worker thread, so the event loop is not blocked."""
        await asyncio.to_thread(self.warm_up)

    def _settings(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "context_words": self.context_words,
                "evidence_max_tokens": self.evidence_max_tokens}

    def _ready(self) -> FGRRetriever:
        """The core retriever, opened on first use; `_documents` is brought up to date with the index."""
        with self._lock:
            if self._retriever is not None:
                if self._generation is not None and self._retriever.index.generation != self._generation:
                    self._reload()  # another store (or process) changed the index since we last looked
                return self._retriever
            model = load_model(self.model, device=self.device)
            if self.index_path is not None:
                retriever = self._open_index(model)
            else:
                retriever = FGRRetriever(model=model, storage_dtype=self.storage_dtype, **self._settings())
            self._retriever = retriever
            self._reload()
            return retriever

    def _reload(self) -> None:
        """Read every stored document into `_documents` (and note the generation they belong to)."""
        retriever = self._retriever
        assert retriever is not None
        for attempt in range(5):
            # the generation first: if the index moves on while we read, the next call reads again
            generation = getattr(retriever.index, "generation", None)
            try:
                documents = retriever.get(retriever.index.ids())
            except DocumentNotFoundError:  # another process deleted some between ids() and get()
                if attempt == 4:
                    raise
                continue
            self._documents = {d.id: _from_core(d) for d in documents}
            self._generation = generation
            return

    def _after_write(self) -> None:
        """After our own change, which already updated `_documents`: note the index's new generation.

        When another process changed the index at the same time, `_documents` no longer mirrors it
        and is read again.
        """
        retriever = self._retriever
        assert retriever is not None
        if self._generation is None:
            return
        generation = retriever.index.generation
        if list(self._documents) == retriever.index.ids():
            self._generation = generation
        else:
            self._reload()

    def _open_index(self, model: Any) -> FGRRetriever:
        path = Path(self.index_path)  # type: ignore[arg-type]
        try:
            return FGRRetriever.open(path, model=model, storage_dtype=self.storage_dtype, **self._settings())
        except ModelMismatchError as exc:
            raise ModelMismatchError(
                f"The index at index_path={self.index_path!r} was built with a different model than "
                f"model={self.model!r}: {exc}. Pass the model that built it, or use a new index_path to rebuild."
            ) from exc
        except IndexStoreError as exc:
            # a fresh index is fine, but never on top of someone else's files
            if (not isinstance(exc, IndexCorruptedError) and path.exists() and not (path / "index.json").exists()
                    and (not path.is_dir() or any(path.iterdir()))):
                raise ValueError(
                    f"index_path={self.index_path!r} exists but holds no FGR index; choose an empty or new directory"
                ) from None
            raise

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Serialise the store's settings (not its documents: those live in `index_path`)."""
        return default_to_dict(
            self,
            model=self.model,
            index_path=self.index_path,
            storage_dtype=self.storage_dtype,
            batch_size=self.batch_size,
            context_words=self.context_words,
            evidence_max_tokens=self.evidence_max_tokens,
            device=self.device,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRColBERTDocumentStore:
        """Rebuild a store from :meth:`to_dict` output; it reopens `index_path` on first use."""
        return default_from_dict(cls, data)

    # --------------------------------------------------------------- protocol
    def count_documents(self) -> int:
        """The number of stored documents."""
        with self._lock:
            self._ready()
            return len(self._documents)

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """
        The stored documents that match `filters` (Haystack filter syntax), in insertion order.

        Returned documents are copies: changing them does not change the store.

        :raises FilterError: if `filters` is malformed.
        """
        if filters:
            _check_filters(filters)
        with self._lock:
            self._ready()
            docs = list(self._documents.values())
        if filters:
            docs = [d for d in docs if document_matches_filter(filters, d)]
        return [copy.deepcopy(d) for d in docs]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """
        Encode and store documents.

        Everything is checked before the index changes, so a failing call writes nothing. With
        `index_path`, the documents are on disk when the call returns.

        :param documents: Haystack Documents with text content.
        :param policy: What to do with an id that is already stored (or repeated in `documents`):
            `FAIL` raises `DuplicateDocumentError`; `SKIP` keeps the stored one; `OVERWRITE`
            replaces it (and re-encodes it). `NONE` means `FAIL`, as in `InMemoryDocumentStore`.
        :returns: The number of documents written (with `OVERWRITE`, always `len(documents)`).
        :raises ValueError: for non-Documents, documents without text, or meta that is not JSON.
        """
        documents, policy = _check_write(documents, policy)
        with self._lock:
            retriever = self._ready()
            batch = _plan_write(documents, self._documents, policy)
            converted = [_to_core(doc) for doc in batch.values()]
            if any(changed for _, changed in converted):
                logger.warning("Some document meta is stored as its JSON form (e.g. tuples become lists).")
            if converted:
                core_docs = [core for core, _ in converted]
                retriever.add_documents(core_docs)
                for core in core_docs:
                    # an overwritten id moves to the end, like the index's own order
                    self._documents.pop(core.id, None)
                    self._documents[core.id] = _from_core(core)
                self._after_write()
            return len(documents) if policy == DuplicatePolicy.OVERWRITE else len(batch)

    def delete_documents(self, document_ids: list[str]) -> None:
        """
        Delete documents by id.

        Ids that are not stored are ignored. (The protocol's docstring mentions an error for them, but
        Haystack's store test suite and `InMemoryDocumentStore` both expect a silent no-op.)
        """
        if isinstance(document_ids, str):  # a lone id would otherwise be read character by character
            document_ids = [document_ids]
        with self._lock:
            retriever = self._ready()
            present = [i for i in dict.fromkeys(document_ids) if i in self._documents]
            if not present:
                return
            try:
                retriever.delete(present)
            except DocumentNotFoundError:  # another process deleted some of them since our last look
                self._reload()
                present = [i for i in present if i in self._documents]
                if not present:
                    return
                retriever.delete(present)
            for doc_id in present:
                del self._documents[doc_id]
            self._after_write()

    # ------------------------------------------------ beyond the base protocol
    def delete_all_documents(self) -> None:
        """Delete every document (with `index_path`, from the index on disk, durably)."""
        with self._lock:
            retriever = self._ready()
            ids = retriever.index.ids()
            if ids:
                retriever.delete(ids)
            self._documents = {}
            self._after_write()

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """The number of documents that match `filters`."""
        return len(self._matching_ids(filters))

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents that match `filters`; returns how many were deleted."""
        with self._lock:
            ids = self._matching_ids(filters)
            self.delete_documents(ids)
            return len(ids)

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """
        Merge `meta` into the meta of every document that matches `filters`; returns the count.

        The core index has no metadata-only update, so updated documents are re-encoded (and move
        to the end of the insertion order).
        """
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
        with self._lock:
            ids = self._matching_ids(filters)
            updated = [replace(self._documents[i], meta={**self._documents[i].meta, **meta}) for i in ids]
            if updated:
                self.write_documents(updated, policy=DuplicatePolicy.OVERWRITE)
            return len(updated)

    def _matching_ids(self, filters: dict[str, Any] | None) -> list[str]:
        if filters:
            _check_filters(filters)
        with self._lock:
            self._ready()
            if not filters:
                return list(self._documents)
            return [i for i, d in self._documents.items() if document_matches_filter(filters, d)]

    # ------------------------------------------------------------------ search
    def _search(
        self,
        query: str,
        *,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        evidence_only: bool = False,
        threshold: float | None = None,
        mode: str | None = None,
    ) -> list[Document]:
        """
        The `top_k` best documents for `query`, best first, as new Documents.

        Each has `score` (ColBERT MaxSim) and, in its meta, the shared evidence schema:
        `relevance_score`, `evidence_spans` (offsets into the full text) and, when `evidence_only`
        trims the content to its evidence, `full_text`.
        """
        check_int("top_k", top_k, minimum=0)
        check_threshold(threshold)
        if top_k == 0:
            return []
        if filters:
            _check_filters(filters)
        with self._lock:
            retriever = self._ready()
            stored = self._documents

            def haystack_form(core_doc: Any) -> Document:
                # a document another process wrote after our last look is converted on the spot
                doc = stored.get(core_doc.id)
                if doc is None:
                    doc = _from_core(CoreDocument(id=core_doc.id, text=core_doc.text, metadata=dict(core_doc.metadata)))
                return doc

            # Haystack filters are evaluated by Haystack on the Haystack form of each document
            match = (lambda core_doc: document_matches_filter(filters, haystack_form(core_doc))) if filters else None
            results = retriever.search(query, k=top_k, filter=match, threshold=threshold, mode=mode)
            hits = [(result, haystack_form(result)) for result in results]
        return [_with_evidence(result, doc, evidence_only=evidence_only) for result, doc in hits]

    # ------------------------------------------------------------------- async
    async def count_documents_async(self) -> int:
        """:meth:`count_documents` in a worker thread."""
        return await asyncio.to_thread(self.count_documents)

    async def filter_documents_async(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """:meth:`filter_documents` in a worker thread."""
        return await asyncio.to_thread(self.filter_documents, filters)

    async def write_documents_async(
        self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE
    ) -> int:
        """:meth:`write_documents` in a worker thread."""
        return await asyncio.to_thread(self.write_documents, documents, policy)

    async def delete_documents_async(self, document_ids: list[str]) -> None:
        """:meth:`delete_documents` in a worker thread."""
        await asyncio.to_thread(self.delete_documents, document_ids)

    async def delete_all_documents_async(self) -> None:
        """:meth:`delete_all_documents` in a worker thread."""
        await asyncio.to_thread(self.delete_all_documents)

    async def count_documents_by_filter_async(self, filters: dict[str, Any]) -> int:
        """:meth:`count_documents_by_filter` in a worker thread."""
        return await asyncio.to_thread(self.count_documents_by_filter, filters)

    async def delete_by_filter_async(self, filters: dict[str, Any]) -> int:
        """:meth:`delete_by_filter` in a worker thread."""
        return await asyncio.to_thread(self.delete_by_filter, filters)

    async def update_by_filter_async(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """:meth:`update_by_filter` in a worker thread."""
        return await asyncio.to_thread(self.update_by_filter, filters, meta)

    async def _search_async(
        self,
        query: str,
        *,
        top_k: int = 10,
        filters: dict[str, Any] | None = None,
        evidence_only: bool = False,
        threshold: float | None = None,
        mode: str | None = None,
    ) -> list[Document]:
        """:meth:`_search` in a worker thread."""
        return await asyncio.to_thread(
            self._search, query, top_k=top_k, filters=filters, evidence_only=evidence_only, threshold=threshold,
            mode=mode,
        )
