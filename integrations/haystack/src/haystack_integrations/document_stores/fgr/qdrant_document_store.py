"""A Haystack document store whose documents and token vectors live in a Qdrant collection.

:class:`FGRColBERTDocumentStore` keeps every document in memory as well, which is right for one
machine. This store keeps nothing: every call goes to Qdrant through the core
:class:`~fgr_retriever.index.qdrant.QdrantIndex` (MaxSim computed by Qdrant, one point per model
window), and Haystack filters are translated to Qdrant payload filters
(:mod:`._qdrant_filters`), so it scales with the Qdrant deployment.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from haystack import Document, default_from_dict, default_to_dict, logging
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret, deserialize_secrets_inplace

from fgr_retriever import Document as CoreDocument
from fgr_retriever import FGRRetriever, ModelMismatchError

from ._models import load_model
from ._qdrant_filters import LISTS_KEY, list_paths, translate
from ._validation import check_int, check_threshold
from .document_store import (
    RESERVED_META_KEY,
    FGRColBERTDocumentStore,
    _check_write,
    _from_core,
    _plan_write,
    _to_core,
    _with_evidence,
)

__all__ = ["FGRColBERTQdrantDocumentStore"]

logger = logging.getLogger(__name__)

_CANDIDATES = ("pooled", "muvera", None)
# the payload a listing needs (window 0's offsets, often long, are left on the server)
_DOCUMENT_PAYLOAD = ["doc_id", "text", "metadata"]


def _from_payload(doc_id: str, text: str, metadata: dict[str, Any]) -> Document:
    metadata = dict(metadata)
    metadata.pop(LISTS_KEY, None)  # the store's bookkeeping, not the Document's meta
    return _from_core(CoreDocument(id=doc_id, text=text, metadata=metadata))


def _to_payload(doc: Document) -> tuple[CoreDocument, bool]:
    if LISTS_KEY in doc.meta:
        raise ValueError(f"Document {doc.id!r}: meta key {LISTS_KEY!r} is reserved by FGRColBERTQdrantDocumentStore.")
    core, changed = _to_core(doc)
    lists = list_paths(dict(core.metadata))
    if lists:
        core = CoreDocument(id=core.id, text=core.text, metadata={**core.metadata, LISTS_KEY: lists})
    return core, changed


class FGRColBERTQdrantDocumentStore(FGRColBERTDocumentStore):
    """An FGR-ColBERT document store on Qdrant, for collections that outgrow one machine.

    The documents, their token vectors and their meta live only in a Qdrant collection (a server
    or cluster with `url`, or qdrant-client's local mode with `path` or `location=":memory:"`);
    Qdrant computes the late-interaction scores and evaluates the filters. Several stores and
    processes can share one collection. Search results carry the same evidence metadata as
    :class:`FGRColBERTDocumentStore`, and it works with the same
    :class:`~haystack_integrations.components.retrievers.fgr.FGRColBERTRetriever`.

    Differences from the local store: `filter_documents` returns documents in Qdrant's order (by
    point id), not in insertion order; a search cannot filter on `content` (the text is stored
    on each document's first window only); `update_by_filter` changes meta in place without
    re-encoding. Needs qdrant-client (`pip install 'fgr-retriever[qdrant]'`).

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.document_stores.fgr import FGRColBERTQdrantDocumentStore

    store = FGRColBERTQdrantDocumentStore(location=":memory:")   # or url="http://qdrant:6333"
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
        url: str | None = None,
        api_key: Secret | None = Secret.from_env_var("QDRANT_API_KEY", strict=False),
        path: str | None = None,
        location: str | None = None,
        collection: str = "fgr-retriever",
        candidate: str | None = "pooled",
        candidates: int = 200,
        index_fields: dict[str, str] | None = None,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        timeout: int = 60,
        batch_size: int = 32,
        context_words: int = 3,
        evidence_max_tokens: int | None = None,
        device: str | None = None,
    ) -> None:
        """
        Create the store; nothing connects and no model loads until first use (or `warm_up()`).

        :param model: A model directory or Hugging Face hub id; `None` is the bundled default model.
            A collection must be opened with the model that built it (its fingerprint is stored).
        :param url: A Qdrant server or cluster, e.g. `"http://qdrant:6333"`.
        :param api_key: The API key for `url`, as a Haystack `Secret`; by default the environment
            variable `QDRANT_API_KEY` when it is set. Resolved only when connecting, and never
            written by `to_dict()` (an environment-variable secret is written by name).
        :param path: A folder for qdrant-client's local mode (one process at a time; trials, tests).
        :param location: `":memory:"` for an in-memory local-mode collection (lost on exit).
            Give exactly one of `url`, `path` and `location`.
        :param collection: The collection; created on first use when missing.
        :param candidate: How candidates are proposed before exact MaxSim re-scoring: `"pooled"`
            (default), `"muvera"` (needs fastembed) or `None` (exact scan; small collections).
            Fixed when the collection is created.
        :param candidates: Candidate windows re-scored per search (more: better recall, slower).
        :param index_fields: Payload indexes for the meta fields you filter on, e.g.
            `{"category": "keyword", "year": "integer", "date": "datetime"}` (names with or
            without the `meta.` prefix). Created on first use.
        :param shard_number: Shards of a new collection (Qdrant's setting).
        :param replication_factor: Replicas of a new collection (Qdrant's setting).
        :param timeout: Seconds before a Qdrant request times out (transient errors are retried).
        :param batch_size: Documents encoded per forward pass when writing.
        :param context_words: Words of context kept around each evidence span when search results
            are trimmed to their evidence.
        :param evidence_max_tokens: Optional budget (whitespace words) for each trimmed result.
        :param device: Torch device for the model, e.g. `"cuda"`; `None` keeps the default (CPU).
        :raises ValueError: when not exactly one of `url`, `path`, `location` is given, or a
            setting is out of range.
        """
        # The base __init__ is not called on purpose: it sets up the in-memory mirror of all
        # documents that this store must not have. The settings shared with it are checked alike.
        if model is not None and not isinstance(model, str):
            raise TypeError(
                f"model must be a model directory or hub id (str) or None, got {type(model).__name__}; "
                "save an in-memory model with model.save_pretrained(path) and pass the path"
            )
        where = {"url": url, "path": path, "location": location}
        given = [name for name, value in where.items() if value is not None]
        if len(given) != 1:
            raise ValueError(
                "FGRColBERTQdrantDocumentStore needs exactly one of url= (a Qdrant server or cluster), "
                f"path= (a local folder) or location=':memory:'; got {given or 'none'}"
            )
        for name in given:
            if not isinstance(where[name], str) or not where[name]:
                raise ValueError(f"{name} must be a non-empty string, got {where[name]!r}")
        if api_key is not None and not isinstance(api_key, Secret):
            raise TypeError(
                f"api_key must be a haystack.utils.Secret (e.g. Secret.from_env_var('QDRANT_API_KEY')), "
                f"got {type(api_key).__name__}"
            )
        if not isinstance(collection, str) or not collection:
            raise ValueError(f"collection must be a non-empty string, got {collection!r}")
        if candidate not in _CANDIDATES:
            raise ValueError(f"candidate must be one of {list(_CANDIDATES)}, got {candidate!r}")
        if index_fields is not None and not (
            isinstance(index_fields, dict)
            and all(isinstance(k, str) and k and isinstance(v, str) for k, v in index_fields.items())
        ):
            raise ValueError(f"index_fields must map meta field names to payload index types, got {index_fields!r}")
        check_int("candidates", candidates)
        check_int("shard_number", shard_number, allow_none=True)
        check_int("replication_factor", replication_factor, allow_none=True)
        check_int("timeout", timeout)
        check_int("batch_size", batch_size)
        check_int("context_words", context_words, minimum=0)
        check_int("evidence_max_tokens", evidence_max_tokens, allow_none=True)
        self.model = model
        self.url = url
        self.api_key = api_key
        self.path = str(path) if path is not None else None
        self.location = location
        self.collection = collection
        self.candidate = candidate
        self.candidates = candidates
        self.index_fields = dict(index_fields) if index_fields is not None else None
        self.shard_number = shard_number
        self.replication_factor = replication_factor
        self.timeout = timeout
        self.batch_size = batch_size
        self.context_words = context_words
        self.evidence_max_tokens = evidence_max_tokens
        self.device = device
        self._retriever: FGRRetriever | None = None
        self._lock = threading.RLock()  # one connection and one model load, whichever thread asks first

    # ------------------------------------------------------------------ loading
    def _where(self) -> str:
        if self.url is not None:
            return f"url={self.url!r}"
        if self.path is not None:
            return f"path={self.path!r}"
        return f"location={self.location!r}"

    def _ready(self) -> FGRRetriever:
        """The core retriever on the Qdrant collection, connected (and the model loaded) on first use."""
        with self._lock:
            if self._retriever is not None:
                return self._retriever
            from fgr_retriever.index.qdrant import QdrantIndex, require_qdrant

            require_qdrant()  # before the model loads: a missing package is reported at once
            model = load_model(self.model, device=self.device)
            if self.url is not None:
                connection = {"url": self.url, "api_key": self.api_key.resolve_value() if self.api_key else None}
            else:
                connection = {"path": self.path} if self.path is not None else {"location": self.location}
            fields = {name.removeprefix("meta."): schema for name, schema in (self.index_fields or {}).items()}
            try:
                index = QdrantIndex.for_model(
                    model, collection=self.collection, candidate=self.candidate, candidates=self.candidates,
                    index_fields=fields, shard_number=self.shard_number,
                    replication_factor=self.replication_factor, timeout=self.timeout, **connection,
                )
            except ModelMismatchError as exc:
                raise ModelMismatchError(
                    f"The Qdrant collection {self.collection!r} at {self._where()} was built with a different "
                    f"model than model={self.model!r}: {exc}. Pass the model that built it, or use another "
                    "collection to rebuild."
                ) from exc
            self._retriever = FGRRetriever(model=model, index=index, **self._settings())
            return self._retriever

    def _index(self) -> Any:
        return self._ready().index

    def close(self) -> None:
        """Close the Qdrant client (a local-mode `path` is then free for another store); the next
        call reconnects."""
        with self._lock:
            if self._retriever is not None:
                self._retriever.index.close()
                self._retriever = None

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Serialise the settings (the documents live in Qdrant).

        :raises ValueError: if `api_key` is a token secret, which Haystack never writes out.
        """
        return default_to_dict(
            self,
            model=self.model,
            url=self.url,
            api_key=self.api_key.to_dict() if self.api_key is not None else None,
            path=self.path,
            location=self.location,
            collection=self.collection,
            candidate=self.candidate,
            candidates=self.candidates,
            index_fields=self.index_fields,
            shard_number=self.shard_number,
            replication_factor=self.replication_factor,
            timeout=self.timeout,
            batch_size=self.batch_size,
            context_words=self.context_words,
            evidence_max_tokens=self.evidence_max_tokens,
            device=self.device,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRColBERTQdrantDocumentStore:
        """Rebuild a store from :meth:`to_dict` output; it connects on first use."""
        params = dict(data.get("init_parameters", {}))
        deserialize_secrets_inplace(params, keys=["api_key"])
        return default_from_dict(cls, {**data, "init_parameters": params})

    # ------------------------------------------------------------------ helpers
    def _filter(self, filters: dict[str, Any] | None, *, search: bool = False) -> Any:
        """`None` (no restriction), `False` (nothing matches) or a QdrantFilter for the core."""
        if not filters:  # None or {}: every document, as in the local store
            return None
        translated = translate(filters, search=search)
        if isinstance(translated, bool):
            return None if translated else False
        from fgr_retriever.index.qdrant import QdrantFilter

        return QdrantFilter(translated)

    # --------------------------------------------------------------- protocol
    def count_documents(self) -> int:
        """The number of documents in the collection."""
        return self._index().count()

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """
        The documents that match `filters` (Haystack filter syntax), evaluated by Qdrant.

        Documents come in Qdrant's order (by point id), which is stable but not insertion order.

        :raises FilterError: if `filters` is malformed or cannot be evaluated with Haystack's meaning.
        """
        flt = self._filter(filters)
        if flt is False:
            return []
        return [_from_payload(p["doc_id"], p["text"], p.get("metadata") or {})
                for p in self._index().documents(flt, fields=_DOCUMENT_PAYLOAD)]

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """
        Encode documents and upsert them into the collection.

        Everything is checked (ids already in Qdrant, text, meta) before anything is written, so a
        failing call writes nothing. The check and the write are separate requests: two writers
        racing on one new id may both succeed, the later one winning.

        :param documents: Haystack Documents with text content.
        :param policy: What to do with an id that is already stored (or repeated in `documents`):
            `FAIL` raises `DuplicateDocumentError`; `SKIP` keeps the stored one; `OVERWRITE`
            replaces it (and re-encodes it). `NONE` means `FAIL`, as in `InMemoryDocumentStore`.
        :returns: The number of documents written (with `OVERWRITE`, always `len(documents)`).
        :raises ValueError: for non-Documents, documents without text, or meta that is not JSON.
        """
        documents, policy = _check_write(documents, policy)
        retriever = self._ready()
        stored = self._index().existing([d.id for d in documents]) if (
            policy != DuplicatePolicy.OVERWRITE and documents) else set()
        batch = _plan_write(documents, stored, policy)
        converted = [_to_payload(doc) for doc in batch.values()]
        if any(changed for _, changed in converted):
            logger.warning("Some document meta is stored as its JSON form (e.g. tuples become lists).")
        if converted:
            retriever.add_documents([core for core, _ in converted])
        return len(documents) if policy == DuplicatePolicy.OVERWRITE else len(batch)

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete documents (all their windows) by id; ids that are not stored are ignored."""
        if isinstance(document_ids, str):  # a lone id would otherwise be read character by character
            document_ids = [document_ids]
        self._index().delete(list(dict.fromkeys(document_ids)))

    # ------------------------------------------------ beyond the base protocol
    def delete_all_documents(self) -> None:
        """Delete every document of the collection (the collection and its settings stay)."""
        self._index().clear()

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """The number of documents that match `filters`, counted by Qdrant."""
        flt = self._filter(filters)
        return 0 if flt is False else self._index().count(flt)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """Delete the documents that match `filters`; returns how many were deleted."""
        flt = self._filter(filters)
        return 0 if flt is False else self._index().delete_where(flt)

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """
        Merge `meta` into the meta of every document that matches `filters`; returns the count.

        Only the payload changes (Qdrant `set_payload` on every window of each document): nothing
        is re-encoded, and the documents keep their place. A key set to `None` is kept, with None.
        The matches are listed first and then updated, in separate requests: a document written
        by another process in between keeps that process's version.

        :raises ValueError: if `meta` is not a JSON-serialisable dict or uses a reserved key.
        """
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}")
        for key in (RESERVED_META_KEY, LISTS_KEY):
            if key in meta:
                raise ValueError(f"meta key {key!r} is reserved by FGRColBERTQdrantDocumentStore.")
        try:
            stored_meta = json.loads(json.dumps(meta, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"meta cannot be stored: it must be JSON-serialisable ({exc}).") from None
        if stored_meta != meta:
            logger.warning("Some document meta is stored as its JSON form (e.g. tuples become lists).")
        flt = self._filter(filters)
        if flt is False:
            return 0
        # where the updated documents hold lists afterwards: their other keys' lists stay, the
        # updated keys' are replaced by those of the new values
        new_lists = list_paths(stored_meta)
        groups: dict[tuple[str, ...], list[str]] = {}
        for payload in self._index().documents(flt, fields=["doc_id", f"metadata.{LISTS_KEY}"]):
            old = (payload.get("metadata") or {}).get(LISTS_KEY) or []
            kept = [p for p in old if json.loads(p)[0] not in stored_meta]
            groups.setdefault(tuple(sorted({*kept, *new_lists})), []).append(payload["doc_id"])
        index = self._index()
        for lists, ids in groups.items():
            # documents without lists get [] rather than no key: a merge cannot remove one, and
            # [] matches no list condition
            index.update_metadata(ids, {**stored_meta, LISTS_KEY: list(lists)})
        return sum(len(ids) for ids in groups.values())

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
        The `top_k` best documents for `query`, best first, as new Documents with the same score
        and evidence meta as :meth:`FGRColBERTDocumentStore._search`; filters are applied by Qdrant.

        :raises FilterError: for a `content` condition, which a search cannot apply (see the class doc).
        """
        check_int("top_k", top_k, minimum=0)
        check_threshold(threshold)
        if top_k == 0:
            return []
        flt = self._filter(filters, search=True)
        if flt is False:
            return []
        # hybrid and lexical: BM25 by Qdrant's text index beside the vectors (QdrantIndex)
        results = self._ready().search(query, k=top_k, filter=flt, threshold=threshold, mode=mode)
        return [
            _with_evidence(result, _from_payload(result.id, result.text, dict(result.metadata)),
                           evidence_only=evidence_only)
            for result in results
        ]
