"""``FGRRetriever``: add documents, search them, and get the sentence that answers the query."""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._io import atomic_directory, atomic_write_text, read_json, recover_directory, sha256_file
from .errors import (
    DocumentNotFoundError,
    DuplicateIdError,
    IndexCorruptedError,
    IndexNotFoundError,
    InvalidInputError,
    ModelMismatchError,
)
from .evidence.text import evidence_text
from .index import EmbeddedIndex, Index, IndexHit
from .index.base import StoredTokens
from .index.fusion import MODES, HybridConfig, fuse
from .index.catalog import CATALOG_FILE
from .index.persistent import PERSISTENT_VERSION, PersistentIndex
from .index.segments import check_file_name
from .index.filters import MetadataFilter, compile_document_filter
from .index.embedded import DOCUMENTS_FILE, VECTORS_FILE
from .model.encoder import FGRColBERT, QueryEncoding
from .types import Document, SearchResult, Span
from .validation import check_encodable, check_k, check_query

__all__ = ["FGRRetriever", "DocumentInput"]

DocumentInput = str | Document | Mapping[str, Any]
MANIFEST = "index.json"
INDEX_FORMAT = "fgr-retriever-index"
INDEX_VERSION = 1  # the portable copy written by save(): one safetensors file + JSON lines


@dataclass
class _Candidates:
    """What hybrid ranking fuses: candidate ids (late-interaction hits first), both sides' scores."""

    order: list[str]
    late: dict[str, float]
    lexical: dict[str, float]
    boosted: list[str]
    late_hits: dict[str, IndexHit]
    # stored tokens of the candidates only BM25 found (read to score them): reused to highlight
    tokens: dict[str, StoredTokens] = field(default_factory=dict)


class FGRRetriever:
    """Index documents with :class:`FGRColBERT` and search them with evidence highlighting.

    Args:
        model: the encoder; defaults to the bundled default model (offline).
        index: an :class:`~fgr_retriever.index.Index` backend; defaults to an empty
            :class:`~fgr_retriever.index.EmbeddedIndex` in ``storage_dtype``.
        storage_dtype: vector storage type of the default index.
        batch_size: documents encoded per forward pass.
        context_words: words of context around each span in ``SearchResult.evidence``.
        evidence_max_tokens: optional budget for ``SearchResult.evidence`` (whitespace words).
        max_document_chars: longer texts are refused; split them before indexing.
        show_progress_bar: progress bar while encoding (``None``: only for large batches).
        mode: how :meth:`search` ranks unless told otherwise: ``"late"`` (late interaction,
            MaxSim), ``"hybrid"`` (MaxSim fused with BM25) or ``"lexical"`` (BM25 alone).
        hybrid: fusion settings of the hybrid and lexical modes (:class:`HybridConfig`).

    >>> from fgr_retriever import FGRRetriever
    >>> retriever = FGRRetriever()
    >>> retriever.add_documents(["Returns are accepted within 30 days of delivery.",
    ...                          "Silk scarves should be dry-cleaned only."], ids=["returns", "silk"])
    ['returns', 'silk']
    >>> best = retriever.search("How many days do I have to send something back?", k=1)[0]
    >>> best.id
    'returns'
    """

    def __init__(self, *, model: FGRColBERT | None = None, index: Index | None = None,
                 storage_dtype: str = "bfloat16", batch_size: int = 32, context_words: int = 3,
                 evidence_max_tokens: int | None = None, max_document_chars: int = 2_000_000,
                 show_progress_bar: bool | None = None, mode: str = "late",
                 hybrid: HybridConfig | None = None) -> None:
        if model is not None and not isinstance(model, FGRColBERT):
            raise InvalidInputError(f"model must be an FGRColBERT, got {type(model).__name__}")
        self.model = model if model is not None else FGRColBERT.from_pretrained()
        rel_dim = self._relevance_dim(self.model)
        if index is None:
            index = EmbeddedIndex(dim=self.model.dim, relevance_dim=rel_dim, dtype=storage_dtype)
        elif index.dim != self.model.dim:
            raise ModelMismatchError(f"index dim {index.dim} != model dim {self.model.dim}")
        elif getattr(index, "model_fingerprint", None) not in (None, self.model.fingerprint()):
            # a backend that records which model built it (e.g. QdrantIndex) must be searched with that model
            raise ModelMismatchError("the index was built by another model (fingerprints differ)")
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
        if hybrid is not None and not isinstance(hybrid, HybridConfig):
            raise InvalidInputError(f"hybrid must be a HybridConfig, got {type(hybrid).__name__}")
        self.index = index
        self.mode = mode
        self.hybrid = hybrid if hybrid is not None else HybridConfig()
        self.batch_size = batch_size
        self.context_words = context_words
        self.evidence_max_tokens = evidence_max_tokens
        self.max_document_chars = max_document_chars
        self.show_progress_bar = show_progress_bar

    @staticmethod
    def _relevance_dim(model: FGRColBERT) -> int | None:
        mode = model.config.relevance_mode
        if mode == "projection":
            return model.config.relevance_dim
        if mode == "residual_ffn":
            return model.config.dim
        return None

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self.index

    # --------------------------------------------------------------- documents
    def _normalise(self, documents: Sequence[DocumentInput], ids: Sequence[str] | None,
                   metadata: Sequence[Mapping[str, Any] | None] | None) -> list[Document]:
        if isinstance(documents, (str, bytes, Mapping, Document)):
            raise InvalidInputError("documents must be a list (wrap a single document in [...])")
        documents = list(documents)
        if ids is not None:
            ids = list(ids)
            if len(ids) != len(documents):
                raise InvalidInputError(f"{len(ids)} ids for {len(documents)} documents")
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != len(documents):
                raise InvalidInputError(f"{len(metadata)} metadata entries for {len(documents)} documents")
        out: list[Document] = []
        for i, doc in enumerate(documents):
            if isinstance(doc, Document):
                text, doc_id, meta = doc.text, doc.id, dict(doc.metadata)
            elif isinstance(doc, Mapping):
                if "text" not in doc:
                    raise InvalidInputError(f"document {i} has no 'text' field")
                text, doc_id = doc["text"], doc.get("id")
                meta = dict(doc.get("metadata") or {})
                if doc.get("title") is not None:
                    meta.setdefault("title", doc["title"])
            elif isinstance(doc, str):
                text, doc_id, meta = doc, None, {}
            else:
                raise InvalidInputError(f"document {i} must be str, Document or mapping, got {type(doc).__name__}")
            if not isinstance(text, str):
                raise InvalidInputError(f"document {i} text must be str, got {type(text).__name__}")
            if not text.strip():
                raise InvalidInputError(f"document {i} is empty")
            if len(text) > self.max_document_chars:
                raise InvalidInputError(f"document {i} has {len(text):,} characters, over max_document_chars="
                                        f"{self.max_document_chars:,}; split it into smaller documents")
            if ids is not None:
                doc_id = ids[i]
            if doc_id is None:
                doc_id = uuid.uuid4().hex
            if not isinstance(doc_id, str) or not doc_id:
                raise InvalidInputError(f"document {i} id must be a non-empty string, got {doc_id!r}")
            if metadata is not None and metadata[i] is not None:
                if not isinstance(metadata[i], Mapping):
                    raise InvalidInputError(f"metadata {i} must be a mapping")
                meta.update(metadata[i])
            check_encodable(text, f"document {i} text")
            check_encodable(doc_id, f"document {i} id")
            check_encodable(meta, f"document {i} metadata")
            try:
                json.dumps(meta, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"metadata of document {i} is not JSON-serialisable: {exc}") from None
            out.append(Document(id=doc_id, text=text, metadata=meta))
        counts: dict[str, int] = {}
        for d in out:
            counts[d.id] = counts.get(d.id, 0) + 1
        dups = sorted(i for i, n in counts.items() if n > 1)
        if dups:
            raise DuplicateIdError(f"duplicate id(s) in one call: {dups[:5]}")
        return out

    def add_documents(self, documents: Sequence[DocumentInput], *, ids: Sequence[str] | None = None,
                      metadata: Sequence[Mapping[str, Any] | None] | None = None) -> list[str]:
        """Encode and store documents; an id that is already stored is replaced (upsert).

        ``documents`` items are strings, :class:`Document` objects or mappings with ``text`` and
        optional ``id``, ``metadata`` and ``title``. Everything is validated and encoded before
        the index changes, so a bad item leaves the index untouched. Returns the ids.
        """
        docs = self._normalise(documents, ids, metadata)
        if not docs:
            return []
        progress = self.show_progress_bar if self.show_progress_bar is not None else len(docs) >= 256
        encodings = self.model.encode_documents([d.text for d in docs], batch_size=self.batch_size,
                                                show_progress_bar=progress)
        self.index.add(docs, encodings)
        return [d.id for d in docs]

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id; unknown ids raise :class:`DocumentNotFoundError`, deleting nothing."""
        if isinstance(ids, str):
            ids = [ids]
        self.index.delete(list(ids))

    def get(self, ids: Sequence[str]) -> list[Document]:
        return self.index.get(list(ids))

    # ------------------------------------------------------------------ search
    def _result(self, doc: Document, score: float, rank: int, spans: list[Span],
                answers: list[Span] | None = None) -> SearchResult:
        evidence = evidence_text(doc.text, spans, context_words=self.context_words,
                                 max_tokens=self.evidence_max_tokens) if spans else ""
        return SearchResult(id=doc.id, text=doc.text, score=score, rank=rank, metadata=copy.deepcopy(dict(doc.metadata)),
                            spans=tuple(spans), evidence=evidence, answers=tuple(answers or ()))

    def _hits(self, text: str, q: QueryEncoding, k: int, filter: MetadataFilter | None, mode: str,
              config: HybridConfig) -> list[IndexHit]:
        if mode == "late":
            return self.index.search(q, k, filter=filter)
        return self._rank_candidates(self._hybrid_candidates(text, q, k, filter, mode, config), k, mode, config)

    def _hybrid_candidates(self, text: str, q: QueryEncoding, k: int, filter: MetadataFilter | None, mode: str,
                           config: HybridConfig) -> _Candidates:
        """Both sides' top ``config.depth`` candidates, each scored by both sides (BM25 0 for a
        document that matches no query word), plus the documents holding an identifier of the query."""
        if not hasattr(self.index, "lexical_search"):
            raise InvalidInputError(f"the {self.index.backend} index has no BM25 side; mode={mode!r} needs the "
                                    "embedded, persistent or Qdrant index (use mode='late')")
        depth = max(config.depth, k)
        lexical = dict(self.index.lexical_search(text, depth, filter=filter))  # type: ignore[attr-defined]
        boosted = (self.index.exact_matches(text, max_docs=config.exact_max_docs, filter=filter)  # type: ignore[attr-defined]
                   if config.exact_boost else [])
        late_hits = {h.id: h for h in self.index.search(q, depth, filter=filter)} if mode == "hybrid" else {}
        order = list(dict.fromkeys([*late_hits, *lexical, *boosted]))
        missing = [d for d in order if d not in lexical]
        if missing:
            lexical.update(self.index.lexical_scores(text, missing))  # type: ignore[attr-defined]
        late = {d: h.score for d, h in late_hits.items()}
        stored: dict[str, StoredTokens] = {}
        if mode == "hybrid":
            stored = self._stored_tokens([d for d in order if d not in late])  # MaxSim from their stored vectors
            late.update((d, self.model.text_score(q, tokens.encoding())) for d, tokens in stored.items())
            order = [d for d in order if d in late]  # the rest were deleted by another writer meanwhile
        return _Candidates(order=order, late=late, lexical={d: lexical[d] for d in order},
                           boosted=[d for d in boosted if d in order], late_hits=late_hits, tokens=stored)

    def _stored_tokens(self, ids: list[str]) -> dict[str, StoredTokens]:
        """The stored tokens of ``ids`` that still exist: in one call where the index offers one
        (a remote index would otherwise pay a round trip per document)."""
        many = getattr(self.index, "tokens_of", None)
        if many is not None:
            return many(ids)
        out = {}
        for d in ids:
            try:
                out[d] = self.index.tokens(d)
            except DocumentNotFoundError:
                pass
        return out

    @staticmethod
    def _rank_candidates(c: _Candidates, k: int, mode: str, config: HybridConfig) -> list[IndexHit]:
        fused = dict(c.lexical) if mode == "lexical" else fuse(c.late, c.lexical, config, order=c.order)
        # an exact identifier outranks everything else (the +1 keeps scores in rank order)
        for d in c.boosted:
            fused[d] += 1.0
        position = {d: i for i, d in enumerate(c.order)}
        ranked = sorted(fused, key=lambda d: (-fused[d], position[d]))[:k]
        return [IndexHit(id=d, score=float(fused[d]), document=c.late_hits[d].document if d in c.late_hits else None,
                         tokens=c.late_hits[d].tokens if d in c.late_hits else c.tokens.get(d)) for d in ranked]

    def _search_encoded(self, text: str, q: QueryEncoding, k: int, filter: MetadataFilter | None, highlight: bool,
                        threshold: float | None, unit: str | None = None, mode: str = "late",
                        config: HybridConfig | None = None) -> list[SearchResult]:
        hits = self._hits(text, q, k, filter, mode, config or self.hybrid)
        # snapshot backends hand over what they ranked; others are asked (same thread, same state)
        missing = [h.id for h in hits if h.document is None]
        fetched = dict(zip(missing, self.index.get(missing))) if missing else {}
        docs = [h.document if h.document is not None else fetched[h.id] for h in hits]
        results = []
        for rank, (hit, doc) in enumerate(zip(hits, docs), 1):
            spans: list[Span] = []
            answers: list[Span] = []
            if highlight:
                toks = hit.tokens if hit.tokens is not None else self.index.tokens(hit.id)
                spans, answers = self.model.tiers_from_vectors(q, doc.text, toks.vectors, toks.offsets,
                                                               toks.relevance_vectors, threshold=threshold, unit=unit)
            results.append(self._result(doc, hit.score, rank, spans, answers))
        return results

    def search(self, query: str, *, k: int = 10, filter: MetadataFilter | None = None, highlight: bool = True,
               threshold: float | None = None, unit: str | None = None, mode: str | None = None,
               fusion: str | None = None, weight: float | None = None) -> list[SearchResult]:
        """The ``k`` best documents for ``query``, best first, with evidence spans.

        ``filter`` restricts results by metadata (see :mod:`fgr_retriever.index.filters`) or is a
        callable that receives each stored :class:`Document` and returns ``True`` to keep it. With
        ``highlight=False`` the ranking is identical and ``spans``/``evidence`` are empty.
        Token probabilities come from the stored vectors of the hits and the query vectors
        already computed for ranking: no second encoder pass. ``unit`` (``"sentence"``,
        ``"clause"`` or ``"word"``) and ``threshold`` override the model's evidence decoding
        (see :meth:`FGRColBERT.highlight`).

        ``mode`` (default: the retriever's ``mode``) chooses the ranking: ``"late"`` (MaxSim over
        the token vectors), ``"hybrid"`` (MaxSim fused with BM25 over both sides' top candidates,
        see :mod:`fgr_retriever.index.fusion`) or ``"lexical"`` (BM25 alone). ``fusion``
        (``"rrf"`` or ``"relative_score"``) and ``weight`` (the late side's share) override the
        retriever's :class:`HybridConfig` for this call. In the hybrid and lexical modes a
        document holding an identifier of the query (``MV-OND28``) or a "quoted phrase" that few
        documents contain ranks first, and ``score`` is the fused score (+1 for such a match).
        Evidence always comes from the late-interaction vectors of the final hits.
        """
        return self.search_batch([query], k=k, filter=filter, highlight=highlight, threshold=threshold,
                                 unit=unit, mode=mode, fusion=fusion, weight=weight)[0]

    def search_batch(self, queries: Sequence[str], *, k: int = 10, filter: MetadataFilter | None = None,
                     highlight: bool = True, threshold: float | None = None, unit: str | None = None,
                     mode: str | None = None, fusion: str | None = None,
                     weight: float | None = None) -> list[list[SearchResult]]:
        """:meth:`search` for several queries, encoding them in one batch."""
        if isinstance(queries, str):
            raise InvalidInputError("search_batch takes a list of queries; use search() for one")
        queries = [check_query(q) for q in queries]
        k = check_k(k)
        compile_document_filter(filter)  # validate before any work
        unit, threshold = self.model.resolve_evidence(unit, threshold)
        mode, config = self._resolve_mode(mode, fusion, weight)
        encoded = self.model.encode_queries(queries) if queries else []
        return [self._search_encoded(text, q, k, filter, highlight, threshold, unit, mode, config)  # type: ignore[arg-type]
                for text, q in zip(queries, encoded)]

    def _resolve_mode(self, mode: str | None, fusion: str | None, weight: float | None) -> tuple[str, HybridConfig]:
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {MODES}, got {mode!r}")
        config = self.hybrid
        if fusion is not None or weight is not None:
            config = replace(config, **({"fusion": fusion} if fusion is not None else {}),
                             **({"weight": weight} if weight is not None else {}))
        return mode, config

    def rerank(self, query: str, documents: Sequence[DocumentInput], *, k: int | None = None,
               highlight: bool = True, threshold: float | None = None, unit: str | None = None) -> list[SearchResult]:
        """Score and highlight documents that come from anywhere (no index needed), best first.

        Documents without an id get their position (``"0"``, ``"1"``, …) as id.
        """
        query = check_query(query)
        k = check_k(k, allow_none=True)
        unit, threshold = self.model.resolve_evidence(unit, threshold)
        if isinstance(documents, (str, bytes, Mapping, Document)):
            raise InvalidInputError("documents must be a list (wrap a single document in [...])")
        documents = list(documents)
        ids = [d.id if isinstance(d, Document) else str(d.get("id") or i) if isinstance(d, Mapping) else str(i)
               for i, d in enumerate(documents)]
        docs = self._normalise(documents, ids, None)
        if not docs:
            return []
        q = self.model.encode_queries(query)[0]
        encodings = self.model.encode_documents([d.text for d in docs], batch_size=self.batch_size)
        scores = [self.model.text_score(q, enc) for enc in encodings]
        order = np.argsort(-np.asarray(scores), kind="stable")[: k or len(docs)]
        results = []
        for rank, i in enumerate(order, 1):
            enc = encodings[i]
            spans, answers = self.model.tiers_from_vectors(
                q, docs[i].text, enc.vectors, enc.offsets, enc.relevance_vectors, threshold=threshold, unit=unit,
            ) if highlight else ([], [])
            results.append(self._result(docs[i], scores[i], rank, spans, answers))
        return results

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Persist documents, metadata, vectors and the model reference to directory ``path``.

        The write is atomic: a crash leaves the previous index intact. The model's weights are
        not copied; its name or path and a fingerprint are recorded and checked on load.
        """
        path = Path(path)
        own = getattr(self.index, "path", None)
        if own is not None and Path(own).resolve() == path.resolve():
            raise InvalidInputError(f"{path} is where this index already lives: every change is on disk when it "
                                    "returns; save() writes a portable copy elsewhere")
        with atomic_directory(path, marker=MANIFEST) as tmp:
            files = self.index.save(tmp)
            manifest = {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "backend": getattr(self.index, "saves_as", self.index.backend),
                "documents": len(self.index),
                "model": self._model_record(self.model),
                "files": {f: sha256_file(tmp / f) for f in files},
            }
            atomic_write_text(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return path

    @staticmethod
    def read_manifest(path: str | Path) -> dict[str, Any]:
        path = Path(path)
        recover_directory(path, marker=MANIFEST)  # a save() killed between its two renames
        if not path.is_dir() or not (path / MANIFEST).exists():
            raise IndexNotFoundError(f"no fgr-retriever index at {path} (expected {path / MANIFEST})")
        manifest = read_json(path / MANIFEST, IndexCorruptedError, "index manifest")
        if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT:
            raise IndexCorruptedError(f"{path / MANIFEST} is not an fgr-retriever index manifest")
        if not isinstance(manifest.get("files", {}), dict) or not isinstance(manifest.get("model", {}), dict):
            raise IndexCorruptedError(f"{path / MANIFEST} is damaged: 'files' and 'model' must be objects")
        if manifest.get("version") not in (INDEX_VERSION, PERSISTENT_VERSION):
            raise IndexCorruptedError(f"{path} is index format version {manifest.get('version')}; "
                                      f"this fgr-retriever reads versions {INDEX_VERSION} and {PERSISTENT_VERSION}")
        return manifest

    @staticmethod
    def _recorded_model(manifest: Mapping[str, Any], model: FGRColBERT | None, allow_download: bool,
                        path: Path) -> FGRColBERT:
        """The model an index was built with, checked; never downloads unless asked."""
        recorded = manifest.get("model") or {}
        if model is None:
            name = recorded.get("name_or_path")
            if name is not None and not isinstance(name, str):
                raise IndexCorruptedError(f"{path / MANIFEST}: damaged model name {name!r}")
            if name is not None and not Path(name).expanduser().is_dir() and not allow_download:
                raise ModelMismatchError(
                    f"{path} was built with the model {name!r}, which is not a directory on this machine; pass "
                    "model=FGRColBERT.from_pretrained(...) (a local copy), or allow_download=True to fetch it "
                    "from the Hugging Face Hub")
            model = FGRColBERT.from_pretrained(name)
        if recorded.get("dim") is not None and recorded["dim"] != model.dim:
            raise ModelMismatchError(f"the index holds {recorded['dim']}-d vectors but the model makes {model.dim}-d ones")
        if recorded.get("fingerprint") and recorded["fingerprint"] != model.fingerprint():
            raise ModelMismatchError(
                f"{path} was built with a different model ({recorded.get('name_or_path') or 'the bundled default'}, "
                f"fingerprint {recorded['fingerprint'][:12]}…); load it with that model or rebuild the index"
            )
        return model

    @staticmethod
    def _model_record(model: FGRColBERT) -> dict[str, Any]:
        """What an index records about the model that built it (checked when it is opened)."""
        name = model.name_or_path
        if name is not None and Path(name).expanduser().is_dir():
            name = str(Path(name).expanduser().resolve())
        return {"name_or_path": name, "fingerprint": model.fingerprint(), "dim": model.dim,
                "relevance_mode": model.config.relevance_mode}

    @classmethod
    def open(cls, path: str | Path, *, model: FGRColBERT | None = None, create: bool = True,
             allow_download: bool = False, approximate: bool | str = "auto", ann: Mapping[str, Any] | None = None,
             index_options: Mapping[str, Any] | None = None, **kwargs: Any) -> FGRRetriever:
        """Open (or create) a persistent index at ``path``: every change is on disk when it returns.

        A directory written by :meth:`save` (the portable format) is converted once, in place and
        atomically. ``approximate`` and ``ann`` configure approximate search (see
        :class:`~fgr_retriever.index.PersistentIndex`), ``index_options`` any other of its settings.

        >>> import tempfile
        >>> retriever = FGRRetriever.open(tempfile.mkdtemp() + "/catalogue")
        >>> retriever.add_documents(["Returns are accepted within 30 days."], ids=["returns"])
        ['returns']
        >>> FGRRetriever.open(retriever.index.path).get(["returns"])[0].text
        'Returns are accepted within 30 days.'
        """
        path = Path(path)
        recover_directory(path, marker=MANIFEST)  # a save() or conversion killed between its renames
        options = {"approximate": approximate, "ann": ann, **dict(index_options or {})}
        if (path / MANIFEST).exists():
            manifest = cls.read_manifest(path)
            model = cls._recorded_model(manifest, model, allow_download, path)
            if manifest.get("version") == INDEX_VERSION:
                cls._migrate(path, model, options)
            elif not (path / CATALOG_FILE).is_file():
                raise IndexCorruptedError(f"{path / MANIFEST} describes a persistent index but {CATALOG_FILE} is missing")
        elif not create:
            raise IndexNotFoundError(f"no fgr-retriever index at {path} (expected {path / MANIFEST})")
        if model is None:
            model = FGRColBERT.from_pretrained()
        index = PersistentIndex(path, dim=model.dim, relevance_dim=cls._relevance_dim(model),
                                dtype=kwargs.pop("storage_dtype", "bfloat16"), model=cls._model_record(model),
                                create=create, **options)
        return cls(model=model, index=index, **kwargs)

    @classmethod
    def _migrate(cls, path: Path, model: FGRColBERT, options: Mapping[str, Any]) -> None:
        """Convert a portable (version 1) index directory into a persistent one, atomically."""
        old = cls.load(path, model=model)
        with atomic_directory(path, marker=MANIFEST) as tmp:  # tmp is empty: the new index is created in it
            options = {"lexical_fields": old.index.lexical_fields, **options}  # the saved index's BM25 fields
            index = PersistentIndex(tmp, dim=old.index.dim, relevance_dim=old.index.relevance_dim,
                                    dtype=old.index.dtype, model=cls._model_record(old.model), **options)
            ids = old.index.ids()
            for a in range(0, len(ids), 1024):
                batch = ids[a: a + 1024]
                index.add(old.index.get(batch), [old.index.tokens(doc_id).encoding() for doc_id in batch])
            index.close()

    def optimize(self, **kwargs: Any) -> None:
        """Compact a persistent index and update its quantiser (see :meth:`PersistentIndex.optimize`)."""
        if not hasattr(self.index, "optimize"):
            raise InvalidInputError(f"the {self.index.backend} index has nothing to optimize")
        self.index.optimize(**kwargs)

    def close(self) -> None:
        """Release the index's files and connections (persistent indexes)."""
        close = getattr(self.index, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> FGRRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def load(cls, path: str | Path, *, model: FGRColBERT | None = None, verify: bool = True,
             allow_download: bool = False, **kwargs: Any) -> FGRRetriever:
        """Open an index saved by :meth:`save` (read into memory) or a persistent index (opened in
        place, as :meth:`open` does, so later changes are written to it).

        Without ``model``, the recorded model is loaded (the bundled default when none was
        recorded); a recorded hub id is only downloaded with ``allow_download=True``. A model whose
        fingerprint differs from the one that built the index raises :class:`ModelMismatchError`:
        its vectors would not be comparable. ``verify`` checks the files' SHA-256 sums against the
        manifest (detects truncated or altered files).
        """
        path = Path(path)
        manifest = cls.read_manifest(path)
        model = cls._recorded_model(manifest, model, allow_download, path)
        if manifest.get("version") == PERSISTENT_VERSION:
            return cls.open(path, model=model, create=False, **kwargs)
        if manifest.get("backend") != EmbeddedIndex.backend:
            raise IndexCorruptedError(f"{path} uses backend {manifest.get('backend')!r}; open it with that backend")
        files = manifest.get("files") or {}
        for name in files:
            if name not in (VECTORS_FILE, DOCUMENTS_FILE):
                raise IndexCorruptedError(f"{path / MANIFEST} names an unexpected file {name!r}")
            check_file_name(name, path)
        if verify:
            for name, digest in files.items():
                if not (path / name).exists():
                    raise IndexCorruptedError(f"{path / name} is missing")
                if sha256_file(path / name) != digest:
                    raise IndexCorruptedError(f"{path / name} does not match its checksum (damaged or altered)")
        index = EmbeddedIndex.load(path)
        if len(index) != manifest.get("documents", len(index)):
            raise IndexCorruptedError(f"{path}: manifest says {manifest.get('documents')} documents, found {len(index)}")
        return cls(model=model, index=index, **kwargs)
