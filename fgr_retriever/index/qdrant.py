"""``QdrantIndex``: the token vectors in a Qdrant collection, MaxSim computed inside Qdrant.

For catalogues that outgrow one machine: Qdrant shards and replicates the collection, keeps
vectors on disk and quantises them, and computes late interaction natively (multivectors with
the ``MAX_SIM`` comparator). fgr-retriever stays the same on top: the same ``SearchResult`` and
the same evidence, decoded from the vectors Qdrant hands back with the hits.

Layout of the collection (one point per model window of a document, so a long document scores
as its best window, exactly as :class:`~fgr_retriever.index.embedded.EmbeddedIndex` does):

* ``tokens``: the window's token vectors, a multivector compared with ``MAX_SIM``, on disk,
  without an HNSW graph of its own (it only re-scores candidates);
* ``candidate``: one vector per window for fast candidate generation (``"pooled"``, the
  default: the normalised mean token vector; or ``"muvera"``, a MUVERA fixed-dimensional
  encoding from fastembed; ``docs/scale-out.md`` has the measured recall of each), or none
  (``candidate=None``: every search scans the multivectors, exact and slow);
* payload: ``doc_id``, ``window``, ``windows``, the window's character ``offsets``, the
  document's ``metadata`` (on every window, so filters see it whichever window ranks best) and,
  on window 0 only, its ``text`` and ``lexical``: the text and the ``lexical_fields`` metadata
  values, under a full-text index with BM25 scoring, the BM25 side of the hybrid and lexical
  modes (Qdrant's ``TextQuery``).

A search asks Qdrant for the ``candidates`` nearest windows by ``candidate`` (Query API
prefetch), re-scores them with exact MaxSim on ``tokens`` and groups the windows by ``doc_id``;
the hits' windows then come back with their vectors for highlighting, in one more call.

The model's fingerprint and the vector size are stored in the collection's metadata; opening a
collection built by another model raises :class:`~fgr_retriever.errors.ModelMismatchError`.

>>> from fgr_retriever import FGRRetriever
>>> from fgr_retriever.testing import tiny_model
>>> model = tiny_model()
>>> index = QdrantIndex.for_model(model, location=":memory:", candidate="pooled")  # doctest: +SKIP
>>> retriever = FGRRetriever(model=model, index=index)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import (
    DocumentNotFoundError,
    IndexStoreError,
    InvalidInputError,
    MissingDependencyError,
    ModelMismatchError,
)
from ..model.encoder import QueryEncoding, TextEncoding
from ..types import Document
from .base import IndexHit, StoredTokens
from .filters import MetadataFilter
from .lexical import DEFAULT_LEXICAL_FIELDS, analyse, exact_phrases, lexical_values, query_terms

if TYPE_CHECKING:
    from pathlib import Path

    from ..model.encoder import FGRColBERT

__all__ = ["QdrantFilter", "QdrantIndex", "translate_filter"]

_NAMESPACE = uuid.UUID("6c1f3d2a-9b0e-4f57-8a41-2f6d0c9e7b13")
_CANDIDATES = ("muvera", "pooled", None)
_CHUNK = 1024  # documents per request when looking up or deleting by id
_LEXICAL = "lexical"  # window 0's payload field under the BM25 text index


def _lexical_fields(fields: Sequence[str]) -> tuple[str, ...]:
    if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
        raise InvalidInputError("lexical_fields must be a list of metadata field names")
    return tuple(fields)


def require_qdrant():
    try:
        import qdrant_client
    except ImportError:
        raise MissingDependencyError("QdrantIndex needs qdrant-client: pip install 'fgr-retriever[qdrant]'") from None
    return qdrant_client


def _muvera(dim: int):
    try:
        from fastembed.postprocess.muvera import Muvera
    except ImportError:
        raise MissingDependencyError("candidate='muvera' needs fastembed's MUVERA encoder: "
                                     "pip install 'fgr-retriever[qdrant-muvera]' (or candidate='pooled')") from None
    # fixed seed: documents and queries must be encoded with the same random projections
    return Muvera(dim=dim, k_sim=5, dim_proj=16, r_reps=20, random_seed=42)


def point_id(doc_id: str, window: int) -> str:
    """The point id of one window of a document: stable, so an upsert overwrites in place."""
    return str(uuid.uuid5(_NAMESPACE, f"{doc_id}\x00{window}"))


# ---------------------------------------------------------------------------- filters
class QdrantFilter:
    """A ready qdrant-client ``Filter`` over this module's payload layout, handed to Qdrant as is.

    For integrations that translate their own filter language (Haystack's, for one) straight to
    Qdrant: pass ``QdrantFilter(models.Filter(...))`` wherever a metadata filter goes
    (:meth:`FGRRetriever.search <fgr_retriever.FGRRetriever.search>`, :meth:`QdrantIndex.count`,
    :meth:`QdrantIndex.delete_where`). Its keys address the payload: ``metadata.<field>``,
    ``doc_id``, ``window`` (``text`` exists on window 0 only, so it cannot filter a search).

    It is callable only so that the retriever's filter check lets it through as a predicate;
    an index other than :class:`QdrantIndex` that calls it gets an :class:`InvalidInputError`.
    """

    __slots__ = ("filter",)

    def __init__(self, qdrant_filter: Any) -> None:
        from qdrant_client import models

        if not isinstance(qdrant_filter, models.Filter):
            raise InvalidInputError("QdrantFilter wraps a qdrant_client.models.Filter, "
                                    f"got {type(qdrant_filter).__name__}")
        self.filter = qdrant_filter

    def __call__(self, document: Any) -> bool:
        raise InvalidInputError("a QdrantFilter is evaluated by Qdrant: use it with a QdrantIndex")

    def __repr__(self) -> str:
        return f"QdrantFilter({self.filter!r})"


def translate_filter(spec: Mapping[str, Any] | QdrantFilter | None):
    """Our metadata filter (see :mod:`fgr_retriever.index.filters`) as a Qdrant ``Filter`` over
    the ``metadata`` payload, or ``None``. What Qdrant cannot express with the same meaning
    raises :class:`InvalidInputError` instead of filtering differently. A :class:`QdrantFilter`
    is passed through unchanged.

    Differences that remain, by Qdrant's design: a list-valued metadata field matches ``$eq`` /
    ``$in`` when *any* element matches; ``$exists`` treats a field holding ``null`` or ``[]`` as
    absent.
    """
    if spec is None:
        return None
    if isinstance(spec, QdrantFilter):
        return spec.filter
    from qdrant_client import models

    if callable(spec) and not isinstance(spec, Mapping):
        raise InvalidInputError("a Python predicate cannot run inside Qdrant: pass a metadata filter mapping")
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"filter must be a mapping, got {type(spec).__name__}")
    must: list[Any] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise InvalidInputError(f"{key} needs a non-empty list of filters")
            parts = [translate_filter(v) for v in value]
            must.append(models.Filter(must=parts) if key == "$and" else models.Filter(should=parts))
        elif isinstance(key, str) and key.startswith("$"):
            raise InvalidInputError(f"unknown top-level filter operator {key!r}; use $and or $or")
        elif not isinstance(key, str) or not key:
            raise InvalidInputError("filter field names must be non-empty strings")
        else:
            must.append(_field_filter(models, f"metadata.{key}", key, value))
    return models.Filter(must=must)


def _equals(models, path: str, name: str, value: Any):
    if isinstance(value, bool) or isinstance(value, (str, int)):
        return models.FieldCondition(key=path, match=models.MatchValue(value=value))
    if isinstance(value, float):
        return models.FieldCondition(key=path, range=models.Range(gte=value, lte=value))
    if value is None:
        return models.IsNullCondition(is_null=models.PayloadField(key=path))
    raise InvalidInputError(f"Qdrant cannot compare {name!r} with a {type(value).__name__}; "
                            "compare with a string, number, bool or null")


def _field_filter(models, path: str, name: str, cond: Any):
    if not isinstance(cond, Mapping):
        return _equals(models, path, name, cond)
    must: list[Any] = []
    must_not: list[Any] = []
    ranges: dict[str, float] = {}
    for op, arg in cond.items():
        if op == "$eq":
            must.append(_equals(models, path, name, arg))
        elif op == "$ne":
            must_not.append(_equals(models, path, name, arg))
        elif op in ("$in", "$nin"):
            if isinstance(arg, (str, bytes)) or not hasattr(arg, "__iter__"):
                raise InvalidInputError(f"{op} on {name!r} needs a list, got {type(arg).__name__}")
            values = list(arg)
            if not values or not (all(isinstance(v, str) for v in values)
                                  or all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                raise InvalidInputError(f"Qdrant's {op} on {name!r} takes a non-empty list of strings or of "
                                        "integers, not a mix or other types")
            match = models.FieldCondition(key=path, match=models.MatchAny(any=values))
            (must if op == "$in" else must_not).append(match)
        elif op in ("$gt", "$gte", "$lt", "$lte"):
            if isinstance(arg, bool) or not isinstance(arg, (int, float)):
                raise InvalidInputError(f"Qdrant compares {op} on {name!r} with numbers only, got {arg!r}")
            ranges[op[1:]] = arg
        elif op == "$exists":
            empty = models.IsEmptyCondition(is_empty=models.PayloadField(key=path))
            (must_not if arg else must).append(empty)
        else:
            raise InvalidInputError(f"unknown filter operator {op!r} on {name!r}")
    if ranges:
        must.append(models.FieldCondition(key=path, range=models.Range(**ranges)))
    return models.Filter(must=must or None, must_not=must_not or None)


# ------------------------------------------------------------------------------ index
class QdrantIndex:
    """An :class:`~fgr_retriever.index.base.Index` in a Qdrant collection (see the module doc).

    Connect with ``url`` (and ``api_key``) to a server or cluster, or use qdrant-client's local
    mode with ``path=`` (a folder) or ``location=":memory:"``; or pass a ready ``client``. The
    collection is created on first use with ``dim`` (and ``model_fingerprint``, recorded), and
    validated when it exists. ``shard_number``, ``replication_factor`` and ``quantization`` (a
    qdrant-client quantisation config) apply when it is created; ``index_fields`` (``{"category":
    "keyword", "price": "float"}``) creates payload indexes for the metadata fields you filter on.
    ``lexical_fields`` are the metadata fields BM25 reads beside the text (hybrid and lexical
    search; default :data:`~fgr_retriever.index.lexical.DEFAULT_LEXICAL_FIELDS`), recorded in a
    new collection; an existing one keeps its own (:meth:`build_lexical` changes them).
    Transient errors (timeouts, connection errors, HTTP 429/5xx) are retried ``retries`` times
    with exponential back-off.
    """

    backend = "qdrant"
    saves_as = "embedded"  # save() exports the embedded index's portable files

    def __init__(self, *, dim: int, collection: str = "fgr-retriever", url: str | None = None,
                 api_key: str | None = None, path: str | None = None, location: str | None = None,
                 client: Any = None, model_fingerprint: str | None = None, candidate: str | None = "pooled",
                 candidates: int = 200, on_disk: bool = True, shard_number: int | None = None,
                 replication_factor: int | None = None, quantization: Any = None,
                 index_fields: Mapping[str, str] | None = None, lexical_fields: Sequence[str] | None = None,
                 timeout: int = 60, retries: int = 3, batch_size: int = 64, show_progress_bar: bool = False) -> None:
        qc = require_qdrant()
        if not isinstance(dim, int) or dim < 1:
            raise InvalidInputError(f"dim must be a positive int, got {dim!r}")
        if candidate not in _CANDIDATES:
            raise InvalidInputError(f"candidate must be one of {_CANDIDATES}, got {candidate!r}")
        if not isinstance(candidates, int) or candidates < 1:
            raise InvalidInputError(f"candidates must be a positive int, got {candidates!r}")
        if sum(x is not None for x in (url, path, location, client)) != 1:
            raise InvalidInputError("give exactly one of url=, path=, location=':memory:' or client=")
        asked = _lexical_fields(lexical_fields) if lexical_fields is not None else None
        self.dim = dim
        self.collection = collection
        self.model_fingerprint = model_fingerprint
        self.candidate = candidate
        self.candidates = candidates
        self.retries = retries
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self.client = client if client is not None else qc.QdrantClient(
            url=url, api_key=api_key, path=path, location=location, timeout=timeout)
        self._muvera = _muvera(dim) if candidate == "muvera" else None
        self._lexical_built = True
        # settled by _open: an existing collection's own (recorded when BM25 was built), else these
        self.lexical_fields: tuple[str, ...] = asked if asked is not None else DEFAULT_LEXICAL_FIELDS
        self._open(on_disk=on_disk, shard_number=shard_number, replication_factor=replication_factor,
                   quantization=quantization, asked=asked)
        for name, schema in (index_fields or {}).items():
            self.create_payload_index(name, schema)

    @classmethod
    def for_model(cls, model: FGRColBERT, **kwargs: Any) -> QdrantIndex:
        """A ``QdrantIndex`` with the model's vector size and fingerprint."""
        return cls(dim=model.dim, model_fingerprint=model.fingerprint(), **kwargs)

    # ------------------------------------------------------------------ plumbing
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, retried on transient errors with exponential back-off."""
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except UnexpectedResponse as exc:
                transient = exc.status_code in (429, 502, 503, 504)
                if not transient or attempt == self.retries:
                    raise IndexStoreError(f"Qdrant refused the request ({exc.status_code}): "
                                          f"{exc.content[:300]!r}") from None
            except (ResponseHandlingException, ConnectionError, TimeoutError) as exc:
                if attempt == self.retries:
                    raise IndexStoreError(f"Qdrant did not answer after {self.retries + 1} tries: {exc}") from None
            time.sleep(min(8.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _open(self, *, on_disk: bool, shard_number, replication_factor, quantization,
              asked: tuple[str, ...] | None) -> None:
        from qdrant_client import models

        if self._call(self.client.collection_exists, self.collection):
            self._validate(asked)
            return
        vectors = {"tokens": models.VectorParams(
            size=self.dim, distance=models.Distance.DOT, on_disk=on_disk,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
            hnsw_config=models.HnswConfigDiff(m=0))}  # re-scoring only: no graph over every token
        if self.candidate is not None:
            size = self._muvera.embedding_size if self._muvera is not None else self.dim
            vectors["candidate"] = models.VectorParams(size=size, distance=models.Distance.DOT, on_disk=on_disk)
        metadata = {"fgr_dim": self.dim, "fgr_candidate": self.candidate or "none",
                    "fgr_model_fingerprint": self.model_fingerprint, "fgr_layout": 1,
                    "fgr_lexical_fields": list(self.lexical_fields)}
        self._call(self.client.create_collection, self.collection, vectors_config=vectors,
                   shard_number=shard_number, replication_factor=replication_factor,
                   quantization_config=quantization, metadata=metadata)
        self.create_payload_index("doc_id", "keyword", metadata_field=False)
        self.create_payload_index("window", "integer", metadata_field=False)
        self._create_lexical_index()

    def _validate(self, asked: tuple[str, ...] | None) -> None:
        info = self._call(self.client.get_collection, self.collection)
        meta = dict(getattr(info.config, "metadata", None) or {})
        if meta.get("fgr_layout") != 1:
            raise IndexStoreError(f"Qdrant collection {self.collection!r} was not created by fgr-retriever "
                                  "(no fgr_layout in its metadata); choose another collection name")
        if meta.get("fgr_dim") != self.dim:
            raise ModelMismatchError(f"collection {self.collection!r} holds {meta.get('fgr_dim')}-d vectors, "
                                     f"the model makes {self.dim}-d ones")
        stored = meta.get("fgr_model_fingerprint")
        if self.model_fingerprint is None:
            self.model_fingerprint = stored  # so a retriever can check the model it is given
        elif stored and stored != self.model_fingerprint:
            raise ModelMismatchError(f"collection {self.collection!r} was built by another model "
                                     f"(fingerprint {stored[:12]}…, this model {self.model_fingerprint[:12]}…)")
        candidate = meta.get("fgr_candidate")
        if candidate != (self.candidate or "none"):
            raise InvalidInputError(f"collection {self.collection!r} was built with candidate={candidate!r}; "
                                    f"open it with that, not {self.candidate!r}")
        fields = meta.get("fgr_lexical_fields")
        if fields is None:  # created before hybrid search: BM25 waits for build_lexical()
            self._lexical_built = False
            return
        if asked is not None and tuple(fields) != asked:
            raise InvalidInputError(f"collection {self.collection!r} indexes the fields {fields} for BM25, not "
                                    f"{list(asked)}; open it without lexical_fields, or re-index them "
                                    "with build_lexical(lexical_fields=...)")
        self.lexical_fields = tuple(fields)

    def create_payload_index(self, name: str, schema: str, *, metadata_field: bool = True) -> None:
        """A payload index on metadata field ``name`` (``keyword``, ``integer``, ``float``,
        ``bool``, ``datetime`` …): filters on it stay fast on large collections."""
        from qdrant_client import models

        try:
            field_schema = models.PayloadSchemaType(schema)
        except ValueError:
            raise InvalidInputError(f"unknown payload index type {schema!r}; use one of "
                                    f"{[t.value for t in models.PayloadSchemaType]}") from None
        key = f"metadata.{name}" if metadata_field else name
        with warnings.catch_warnings():
            # local mode says payload indexes do nothing there; a server uses them
            warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            self._call(self.client.create_payload_index, self.collection, field_name=key, field_schema=field_schema)

    def _create_lexical_index(self) -> None:
        """The full-text index with BM25 scoring over window 0's ``lexical`` field. The field
        holds analysed text (see :meth:`_lexical_text`), so Qdrant's default word tokeniser, the
        one qdrant-client's local mode runs too, only splits it on spaces."""
        from qdrant_client import models

        params = models.TextIndexParams(type=models.TextIndexType.TEXT, phrase_matching=True,
                                        scoring=models.TextScoringParams(type=models.TextScoringType.BM25))
        self._call(self.client.create_payload_index, self.collection, field_name=_LEXICAL, field_schema=params)

    def _lexical_text(self, text: str, metadata: Mapping[str, Any]) -> str:
        """What BM25 reads of a document: the stems of its text (as the local indexes' FTS5
        table makes them: accents removed, Porter stems), then those of its lexical fields twice,
        so they weigh double as there (a column weight in FTS5; one field here, so through their
        term frequency)."""
        body, fields = lexical_values(text, metadata, self.lexical_fields)
        body, fields = " ".join(analyse(body)), " ".join(analyse(fields))
        return "\n".join(p for p in (body, fields, fields) if p)

    def _candidate_vector(self, vectors: np.ndarray, *, query: bool) -> list[float]:
        if self._muvera is not None:
            fde = self._muvera.process_query(vectors) if query else self._muvera.process_document(vectors)
            return np.asarray(fde, dtype=np.float32).tolist()
        mean = vectors.mean(axis=0)
        return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32).tolist()

    @staticmethod
    def _doc_filter(ids: Sequence[str]):
        from qdrant_client import models

        return models.Filter(must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=list(ids)))])

    @staticmethod
    def _documents_filter(filter: Mapping[str, Any] | None = None):
        """Window 0 of every document (one point per document) whose metadata matches ``filter``."""
        from qdrant_client import models

        flt = translate_filter(filter)
        first = models.FieldCondition(key="window", match=models.MatchValue(value=0))
        return models.Filter(must=[first] + ([flt] if flt is not None else []))

    def _scroll(self, flt, *, with_vectors: bool | list[str] = False,
                with_payload: bool | list[str] = True) -> Iterator[Any]:
        offset = None
        while True:
            points, offset = self._call(self.client.scroll, self.collection, scroll_filter=flt, limit=256,
                                        offset=offset, with_payload=with_payload, with_vectors=with_vectors)
            yield from points
            if offset is None:
                return

    # ------------------------------------------------------------------ reads
    def __len__(self) -> int:
        return self.count()

    def __contains__(self, doc_id: object) -> bool:
        return isinstance(doc_id, str) and bool(self.existing([doc_id]))

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored (window 0 looked up by point id, 1,024 per request)."""
        ids = list(dict.fromkeys(ids))
        found: set[str] = set()
        for b in range(0, len(ids), _CHUNK):
            points = self._call(self.client.retrieve, self.collection, [point_id(i, 0) for i in ids[b: b + _CHUNK]],
                                with_payload=["doc_id"])
            found.update(p.payload["doc_id"] for p in points)
        return found

    def documents(self, filter: Mapping[str, Any] | QdrantFilter | None = None, *,
                  fields: Sequence[str] = ("doc_id",)) -> Iterator[dict[str, Any]]:
        """The payload ``fields`` of window 0 (one point per document) of every document whose
        metadata matches ``filter``, in point-id order; only the fields asked for travel."""
        for point in self._scroll(self._documents_filter(filter), with_payload=list(fields)):
            yield point.payload

    def ids(self) -> list[str]:
        return [p["doc_id"] for p in self.documents()]

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        """How many documents match ``filter`` (all of them without one)."""
        return int(self._call(self.client.count, self.collection, count_filter=self._documents_filter(filter),
                              exact=True).count)

    def get(self, ids: Sequence[str]) -> list[Document]:
        ids = list(ids)
        if not ids:
            return []
        points = self._call(self.client.retrieve, self.collection, [point_id(i, 0) for i in ids], with_payload=True)
        by_id = {p.payload["doc_id"]: p.payload for p in points}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise DocumentNotFoundError(f"no document with id {missing[0]!r}")
        return [Document(id=i, text=by_id[i]["text"], metadata=by_id[i].get("metadata") or {}) for i in ids]

    def _stored(self, ids: Sequence[str]) -> dict[str, tuple[Document | None, StoredTokens]]:
        """Documents and all their windows' vectors and offsets, in window order."""
        windows: dict[str, list[Any]] = {}
        for p in self._scroll(self._doc_filter(ids), with_vectors=["tokens"]):
            windows.setdefault(p.payload["doc_id"], []).append(p)
        out = {}
        for doc_id, points in windows.items():
            points.sort(key=lambda p: p.payload["window"])
            if len(points) != points[0].payload["windows"]:
                continue  # an upsert is being written: the caller treats the document as absent
            head = points[0].payload
            vecs = [np.asarray(p.vector["tokens"], dtype=np.float32) for p in points]
            offs = [np.asarray(p.payload["offsets"], dtype=np.int32).reshape(-1, 2) for p in points]
            doc = Document(id=doc_id, text=head["text"], metadata=head.get("metadata") or {})
            tokens = StoredTokens(vectors=torch.from_numpy(np.concatenate(vecs)),
                                  offsets=torch.from_numpy(np.concatenate(offs)),
                                  window_lengths=tuple(len(v) for v in vecs))
            out[doc_id] = (doc, tokens)
        return out

    def tokens(self, doc_id: str) -> StoredTokens:
        found = self._stored([doc_id]).get(doc_id)
        if found is None:
            raise DocumentNotFoundError(f"no document with id {doc_id!r}")
        return found[1]

    def search(self, query: QueryEncoding, k: int, *, filter: MetadataFilter | None = None) -> list[IndexHit]:
        from qdrant_client import models

        flt = translate_filter(filter)  # type: ignore[arg-type]
        qvecs = query.vectors.float().cpu().numpy()
        prefetch = None
        if self.candidate is not None:
            prefetch = models.Prefetch(query=self._candidate_vector(qvecs, query=True), using="candidate",
                                       limit=max(self.candidates, k), filter=flt)
        result = self._call(self.client.query_points_groups, self.collection, group_by="doc_id",
                            query=qvecs.tolist(), using="tokens", prefetch=prefetch, query_filter=flt,
                            limit=k, group_size=1, with_payload=["doc_id"], with_vectors=False)
        ranked = [(g.id, float(g.hits[0].score)) for g in result.groups if g.hits]
        stored = self._stored([i for i, _ in ranked]) if ranked else {}
        return [IndexHit(id=str(i), score=s, document=stored[i][0], tokens=stored[i][1])
                for i, s in ranked if i in stored]

    def tokens_of(self, ids: Sequence[str]) -> dict[str, StoredTokens]:
        """The stored tokens of several documents in one round of requests (absent ids are left
        out): what a hybrid search needs for the candidates BM25 alone found."""
        return {i: tokens for i, (_, tokens) in self._stored(list(ids)).items()} if ids else {}

    # ------------------------------------------------------------------ BM25
    def _need_lexical(self) -> None:
        if not self._lexical_built:
            raise InvalidInputError(f"collection {self.collection!r} was created before hybrid search and has no "
                                    "BM25 field yet; call build_lexical() once (it reads the stored texts, no "
                                    "re-encoding), or use mode='late'")

    def _text_query(self, query: str, flt: Any, limit: int) -> list[tuple[str, float]]:
        from qdrant_client import models

        self._need_lexical()
        # the query's words without stop words, stemmed as the documents were
        terms = analyse(" ".join(query_terms(query)))
        if not terms or limit < 1:
            return []
        result = self._call(self.client.query_points, self.collection, query=models.TextQuery(text=" ".join(terms)),
                            using=_LEXICAL, query_filter=flt, limit=limit, with_payload=["doc_id"],
                            with_vectors=False)
        return [(p.payload["doc_id"], float(p.score)) for p in result.points]

    def lexical_search(self, query: str, k: int, *,
                       filter: Mapping[str, Any] | QdrantFilter | None = None) -> list[tuple[str, float]]:
        """The ``k`` best documents for ``query`` by BM25 alone (Qdrant's ``TextQuery`` over the
        ``lexical`` field), as ``(id, score)``, best first; ``filter`` as in :meth:`search`."""
        return self._text_query(query, self._documents_filter(filter), k)

    def lexical_scores(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """BM25 of the given documents for ``query`` (0 for those that match no query word)."""
        from qdrant_client import models

        ids = list(dict.fromkeys(ids))
        found: dict[str, float] = {}
        for b in range(0, len(ids), _CHUNK):
            chunk = ids[b: b + _CHUNK]
            only = models.Filter(must=[models.HasIdCondition(has_id=[point_id(i, 0) for i in chunk])])
            found.update(self._text_query(query, only, len(chunk)))
        return {i: found.get(i, 0.0) for i in ids}

    def exact_matches(self, query: str, *, max_docs: int = 10,
                      filter: Mapping[str, Any] | QdrantFilter | None = None) -> list[str]:
        """Documents that contain an identifier or quoted phrase of ``query`` (a phrase match on
        the ``lexical`` field) held by at most ``max_docs`` documents of the whole collection
        (see :func:`~fgr_retriever.index.lexical.exact_phrases`), then narrowed by ``filter``."""
        from qdrant_client import models

        self._need_lexical()
        found: list[str] = []
        for phrase in exact_phrases(query):
            stems = analyse(phrase)
            if not stems:
                continue
            holds = models.FieldCondition(key=_LEXICAL, match=models.MatchPhrase(phrase=" ".join(stems)))
            points, _ = self._call(self.client.scroll, self.collection, limit=max_docs + 1, with_payload=["doc_id"],
                                   scroll_filter=models.Filter(must=[holds]))
            if 0 < len(points) <= max_docs:  # a string that many documents share identifies none of them
                found.extend(p.payload["doc_id"] for p in points)
        found = list(dict.fromkeys(found))
        if found and filter is not None:
            kept = {p["doc_id"] for p in self.documents(QdrantFilter(models.Filter(must=[
                translate_filter(filter), self._doc_filter(found)])))}
            found = [i for i in found if i in kept]
        return found

    def build_lexical(self, *, lexical_fields: Sequence[str] | None = None) -> int:
        """Give a collection its BM25 side from the stored texts and metadata (no re-encoding):
        for a collection created before hybrid search, or to index other ``lexical_fields``.
        Returns how many documents were indexed. Run it while nothing else writes."""
        if lexical_fields is not None:
            self.lexical_fields = _lexical_fields(lexical_fields)
        self._create_lexical_index()
        done = 0
        bar = tqdm(total=self.count(), desc="Indexing BM25", unit="doc", disable=not self.show_progress_bar)
        heads = self._scroll(self._documents_filter(), with_payload=["text", "metadata"])
        while batch := [p for _, p in zip(range(self.batch_size * 4), heads)]:
            self._write_lexical(batch)
            done += len(batch)
            bar.update(len(batch))
        bar.close()
        info = self._call(self.client.get_collection, self.collection)
        meta = {**dict(getattr(info.config, "metadata", None) or {}), "fgr_lexical_fields": list(self.lexical_fields)}
        self._call(self.client.update_collection, self.collection, metadata=meta)
        self._lexical_built = True
        return done

    # ------------------------------------------------------------------ writes
    def add(self, documents: Sequence[Document], encodings: Sequence[TextEncoding]) -> None:
        """Upsert: every window is written (in batches, with a progress bar), then windows a
        shorter new version no longer has are deleted, so the document stays searchable."""
        from qdrant_client import models

        if len(documents) != len(encodings):
            raise InvalidInputError(f"{len(documents)} documents but {len(encodings)} encodings")
        ids = [d.id for d in documents]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("duplicate ids in one add() call")
        points = []
        for doc, enc in zip(documents, encodings):
            if enc.vectors.ndim != 2 or enc.vectors.shape[1] != self.dim:
                raise InvalidInputError(f"document {doc.id!r}: vectors must be [tokens, {self.dim}]")
            if enc.relevance_vectors is not None:
                raise InvalidInputError("QdrantIndex stores the retrieval vectors only; a model whose relevance "
                                        "head needs its own vectors (relevance_mode other than 'shared') cannot use it")
            lengths = enc.window_lengths or (int(enc.vectors.shape[0]),)
            start = 0
            for w, n in enumerate(lengths):
                vecs = enc.vectors[start: start + n].float().cpu().numpy()
                offs = enc.offsets[start: start + n].to(torch.int64).reshape(-1).tolist()
                start += n
                # metadata on every window (filters must see it whichever window ranks best), the
                # text once
                payload: dict[str, Any] = {"doc_id": doc.id, "window": w, "windows": len(lengths), "offsets": offs,
                                           "metadata": dict(doc.metadata)}
                if w == 0:
                    payload["text"] = doc.text
                    payload[_LEXICAL] = self._lexical_text(doc.text, doc.metadata)
                vector: dict[str, Any] = {"tokens": vecs.tolist()}
                if self.candidate is not None:
                    vector["candidate"] = self._candidate_vector(vecs, query=False)
                points.append(models.PointStruct(id=point_id(doc.id, w), vector=vector, payload=payload))
        bar = tqdm(total=len(points), desc="Uploading to Qdrant", unit="window", disable=not self.show_progress_bar)
        for b in range(0, len(points), self.batch_size):
            batch = points[b: b + self.batch_size]
            self._call(self.client.upsert, self.collection, points=batch, wait=True)
            bar.update(len(batch))
        bar.close()
        # windows an earlier, longer version had: one request per window count (usually one in all)
        by_windows: dict[int, list[str]] = {}
        for doc, enc in zip(documents, encodings):
            by_windows.setdefault(len(enc.window_lengths or (0,)), []).append(doc.id)
        for windows, group in by_windows.items():
            for b in range(0, len(group), _CHUNK):
                stale = models.Filter(must=[
                    models.FieldCondition(key="doc_id", match=models.MatchAny(any=group[b: b + _CHUNK])),
                    models.FieldCondition(key="window", range=models.Range(gte=windows))])
                self._call(self.client.delete, self.collection, points_selector=models.FilterSelector(filter=stale),
                           wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        from qdrant_client import models

        ids = list(ids)
        for b in range(0, len(ids), _CHUNK):  # bounded requests, however many ids
            self._call(self.client.delete, self.collection,
                       points_selector=models.FilterSelector(filter=self._doc_filter(ids[b: b + _CHUNK])), wait=True)

    def clear(self) -> None:
        """Delete every document; the collection and its settings stay. One request."""
        from qdrant_client import models

        # every point of the layout has a doc_id
        everything = models.Filter(must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="doc_id"))])
        self._call(self.client.delete, self.collection, points_selector=models.FilterSelector(filter=everything),
                   wait=True)

    def update_metadata(self, ids: Sequence[str], metadata: Mapping[str, Any]) -> None:
        """Merge ``metadata`` into the stored metadata of the documents ``ids``, as ``dict.update``
        does (top-level keys are replaced or added), on every window, without re-encoding.

        One ``set_payload`` call per 1,024 documents; ids that are not stored are ignored. A key
        whose new value is ``None`` is stored as null: Qdrant's payload merge would drop such a
        key instead, so for those the documents' metadata is read and written back whole, one call
        per document.
        """
        from qdrant_client import models

        if isinstance(ids, str):
            raise InvalidInputError("ids must be a list of document ids (wrap a single id in [...])")
        if not isinstance(metadata, Mapping) or not all(isinstance(k, str) and k for k in metadata):
            raise InvalidInputError("metadata must be a mapping with non-empty string keys")
        try:
            # what a search or get() would give back, so the stored form is plain JSON
            metadata = json.loads(json.dumps(dict(metadata), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"metadata is not JSON-serialisable: {exc}") from None
        values = {k: v for k, v in metadata.items() if v is not None}
        nulls = {k: None for k, v in metadata.items() if v is None}
        ids = list(dict.fromkeys(ids))
        for b in range(0, len(ids), _CHUNK):
            chunk = ids[b: b + _CHUNK]
            if values:
                # key="metadata": merged into that object, the rest of the payload is untouched
                self._call(self.client.set_payload, self.collection, payload=values, key="metadata",
                           points=models.FilterSelector(filter=self._doc_filter(chunk)), wait=True)
            if not nulls:
                continue
            heads = self._call(self.client.retrieve, self.collection, [point_id(i, 0) for i in chunk],
                               with_payload=["doc_id", "metadata"])
            for head in heads:
                whole = {**(head.payload.get("metadata") or {}), **nulls}
                # a top-level merge replaces the whole "metadata" object, nulls inside it included
                self._call(self.client.set_payload, self.collection, payload={"metadata": whole},
                           points=models.FilterSelector(filter=self._doc_filter([head.payload["doc_id"]])),
                           wait=True)
        if self._lexical_built and set(metadata) & set(self.lexical_fields):
            self._refresh_lexical(ids)  # a reference or title changed: so does what BM25 reads

    def _refresh_lexical(self, ids: Sequence[str]) -> None:
        """Rewrite window 0's ``lexical`` field of ``ids`` from their stored text and metadata."""
        for b in range(0, len(ids), _CHUNK):
            self._write_lexical(self._call(self.client.retrieve, self.collection,
                                           [point_id(i, 0) for i in ids[b: b + _CHUNK]],
                                           with_payload=["text", "metadata"]))

    def _write_lexical(self, heads: Sequence[Any]) -> None:
        """Set the ``lexical`` field of window-0 points (read with their ``text`` and ``metadata``)
        in one request."""
        from qdrant_client import models

        ops = [models.SetPayloadOperation(set_payload=models.SetPayload(
            payload={_LEXICAL: self._lexical_text(h.payload.get("text") or "", h.payload.get("metadata") or {})},
            points=[h.id])) for h in heads]
        if ops:
            self._call(self.client.batch_update_points, self.collection, update_operations=ops, wait=True)

    def delete_where(self, filter: Mapping[str, Any] | QdrantFilter) -> int:
        """Delete every document whose metadata matches ``filter``; returns how many."""
        ids = [p["doc_id"] for p in self.documents(filter)]
        self.delete(ids)
        return len(ids)

    def save(self, directory: Path) -> list[str]:
        """A portable copy (the embedded index's files), read back from the collection."""
        from .embedded import EmbeddedIndex

        copy = EmbeddedIndex(dim=self.dim, dtype="float32", lexical_fields=self.lexical_fields)
        ids = self.ids()
        for b in range(0, len(ids), 256):
            stored = self._stored(ids[b: b + 256])
            docs = [stored[i][0] for i in ids[b: b + 256] if i in stored]
            copy.add(docs, [stored[d.id][1].encoding() for d in docs])
        return copy.save(directory)

    def close(self) -> None:
        self.client.close()
