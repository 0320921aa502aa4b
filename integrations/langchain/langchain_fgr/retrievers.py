"""``FGRColBERTRetriever``: an fgr-retriever index as a LangChain retriever, evidence included.

Every returned :class:`~langchain_core.documents.Document` has the stored id and metadata plus
the shared evidence schema of :mod:`fgr_retriever.evidence.metadata`: ``relevance_score``,
``evidence_spans`` (character offsets into the full text), ``answer_spans`` (the answer inside
the evidence, same shape) and, when ``evidence_only`` trimmed the text, ``full_text``.

>>> from langchain_fgr import FGRColBERTRetriever
>>> retriever = FGRColBERTRetriever.from_texts(
...     ["Returns are accepted within 30 days of delivery.",
...      "Silk scarves should be dry-cleaned only.",
...      "Our boutiques open at ten on weekdays."],
...     metadatas=[{"topic": "policy"}, {"topic": "care"}, {"topic": "stores"}],
...     ids=["returns", "silk", "hours"], k=1)
>>> doc = retriever.invoke("How many days do I have to send something back?")[0]
>>> doc.id, doc.metadata["topic"]
('returns', 'policy')
>>> span = doc.metadata["evidence_spans"][0]
>>> doc.page_content[span["start"]:span["end"]] == span["text"]
True
>>> [d.id for d in retriever.invoke("how to clean silk", k=2, filter={"topic": {"$ne": "policy"}})]
['silk', 'hours']
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fgr_retriever.errors import IndexCorruptedError, IndexNotFoundError, IndexStoreError, InvalidInputError
from fgr_retriever.index.filters import compile_filter
from fgr_retriever.index.fusion import MODES
from fgr_retriever.model import FGRColBERT
from fgr_retriever.retriever import FGRRetriever
from fgr_retriever.validation import check_k, check_query, check_threshold
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, field_validator

from ._concurrency import acall_locked, call_locked
from ._convert import check_documents, core_input, to_langchain

__all__ = ["FGRColBERTRetriever"]

#: per-call options of ``invoke``/``ainvoke`` (anything else is a ``TypeError``)
CALL_OPTIONS = ("k", "filter", "evidence_only", "threshold", "highlight", "mode")
# LangChain forwards ``verbose`` from invoke() kwargs to every retriever; it means nothing here
_IGNORED_CALL_KWARGS = frozenset({"verbose"})


class _Unset:
    """Marks a per-call option that was not given (``None`` is a meaningful value for some)."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()

DocumentPredicate = Callable[[Document], bool]


def _check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return value


def _check_filter(spec: object) -> Mapping[str, Any] | DocumentPredicate | None:
    if spec is None or (callable(spec) and not isinstance(spec, Mapping)):
        return spec  # type: ignore[return-value]
    if not isinstance(spec, Mapping):
        raise InvalidInputError(f"filter must be a mapping, a callable or None, got {type(spec).__name__}")
    compile_filter(spec)  # raises InvalidInputError for unknown operators, before any search
    return spec


def _core_filter(spec: Mapping[str, Any] | DocumentPredicate | None) -> Any:
    """Mappings go to the core as they are; a callable sees each candidate as a LangChain document."""
    if spec is None or isinstance(spec, Mapping):
        return spec

    def keep(stored: Any) -> bool:
        # a shallow copy of the metadata: the predicate must not be able to rebind stored keys
        return bool(spec(Document(id=stored.id, page_content=stored.text, metadata=dict(stored.metadata))))

    return keep


def _check_mode(mode: object) -> str | None:
    if mode is not None and mode not in MODES:
        raise InvalidInputError(f"mode must be one of {MODES} or None, got {mode!r}")
    return mode  # type: ignore[return-value]


def _resolve_model(model: FGRColBERT | str | os.PathLike[str] | None) -> FGRColBERT | None:
    if model is None or isinstance(model, FGRColBERT):
        return model
    if isinstance(model, (str, os.PathLike)):
        return FGRColBERT.from_pretrained(model)
    raise InvalidInputError(f"model must be an FGRColBERT, a model directory or name, or None; "
                            f"got {type(model).__name__}")


def _open_core(index_path: str | os.PathLike[str] | None, model: Any, core_kwargs: Mapping[str, Any], *,
               create: bool = True) -> FGRRetriever:
    """An in-memory core retriever, or the persistent index at ``index_path`` (created when missing
    or empty unless ``create`` is false; a portable copy written by ``save`` is converted in place).

    A directory that holds other files is never turned into an index: that raises
    :class:`~fgr_retriever.errors.IndexNotFoundError`, so a typo cannot start an index over someone's files.
    """
    model = _resolve_model(model)
    if index_path is None:
        return FGRRetriever(model=model, **core_kwargs)
    path = Path(index_path)
    options = dict(core_kwargs)
    if not create:
        options["create"] = False
    try:
        return FGRRetriever.open(path, model=model, **options)
    except IndexStoreError as exc:
        if (isinstance(exc, (IndexNotFoundError, IndexCorruptedError)) or (path / "index.json").exists()
                or not path.exists()):
            raise
        raise IndexNotFoundError(f"{path} exists but holds no fgr-retriever index (and is not empty); "
                                 "choose an empty or new directory") from None


def _live_path(retriever: FGRRetriever) -> Path | None:
    """Where the core retriever's index lives on disk (persistent indexes), else ``None``."""
    path = getattr(retriever.index, "path", None)
    return None if path is None else Path(path)


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return Path(a).resolve() == Path(b).resolve()


class FGRColBERTRetriever(BaseRetriever):
    """LangChain retriever over an fgr-retriever (FGR-ColBERT) index, with evidence spans.

    Build one with :meth:`from_texts`, :meth:`from_documents` or :meth:`from_index`, or wrap an
    existing core :class:`~fgr_retriever.FGRRetriever` (``FGRColBERTRetriever(retriever=core)``).
    Called directly, the constructor opens the persistent index at ``index_path`` (creating it
    with ``model`` when the directory is missing or empty) or, without ``index_path``, starts an
    in-memory index with ``model`` (default: the bundled model, offline).

    ``k``, ``filter``, ``evidence_only``, ``threshold``, ``highlight`` and ``mode`` are defaults;
    each can be overridden per call: ``retriever.invoke(query, k=2, filter={"lang": "en"})``.
    ``mode="hybrid"`` fuses late interaction with BM25 (references and rare words rank first),
    ``"lexical"`` is BM25 alone; the fusion itself is the core retriever's ``hybrid=``
    (:class:`~fgr_retriever.index.fusion.HybridConfig`), e.g.
    ``from_texts(texts, mode="hybrid", hybrid=HybridConfig(fusion="rrf"))``. ``filter``
    is a MongoDB-style mapping on metadata (see :mod:`fgr_retriever.index.filters`) or a callable that
    receives each candidate as a LangChain ``Document`` (full text, stored metadata; it must not
    modify it) and returns ``True`` to keep it. ``filter=None`` in a call switches the default
    filter off.

    With ``index_path`` set, the index is a persistent one (:meth:`fgr_retriever.FGRRetriever.open`):
    every add and delete is written to it incrementally (only the new vectors; nothing is
    rewritten) and is durable when the call returns, so there is nothing to save. Several
    retrievers and processes may read one ``index_path`` while one of them writes. A directory
    written by :meth:`save` (the portable format) is converted in place the first time it is
    opened this way. Searches and changes hold a lock on the model, so one retriever may be used
    from several threads and from async code at once; ``ainvoke`` runs the search in a worker
    thread and never blocks the event loop.

    >>> from fgr_retriever.testing import tiny_model
    >>> from langchain_core.documents import Document
    >>> retriever = FGRColBERTRetriever.from_documents(
    ...     [Document(page_content="Cashmere is washed by hand in cold water.", id="cashmere")],
    ...     model=tiny_model(), k=2, evidence_only=True)
    >>> retriever.add_texts(["Suede is brushed in one direction."], metadatas=[{"care": "dry"}], ids=["suede"])
    ['suede']
    >>> sorted(d.id for d in retriever.invoke("how do I wash cashmere"))
    ['cashmere', 'suede']
    >>> retriever.delete(["suede"])
    >>> [d.id for d in retriever.invoke("how do I wash cashmere")]
    ['cashmere']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    retriever: FGRRetriever = Field(repr=False, exclude=True)
    """The core retriever: model, index and evidence settings (``context_words`` ...)."""
    k: int = 4
    """Number of documents returned."""
    filter: dict[str, Any] | Callable[[Document], bool] | None = None
    """Default metadata filter (mapping) or predicate over LangChain documents."""
    evidence_only: bool = False
    """Return the evidence (highlighted words with context) as ``page_content``; ``full_text``
    then holds the whole text. Documents with no highlighted span keep their full text."""
    threshold: float | None = None
    """Token probability above which a word is evidence; ``None``: the model's own threshold."""
    highlight: bool = True
    """Compute evidence spans; ``False`` ranks identically and leaves ``evidence_spans`` empty."""
    mode: str | None = None
    """``"late"``, ``"hybrid"`` or ``"lexical"`` ranking; ``None``: the core retriever's ``mode``."""
    index_path: str | None = None
    """Directory of the persistent index (changes are durable when they return); ``None``: in memory."""

    def __init__(self, *, retriever: FGRRetriever | None = None,
                 model: FGRColBERT | str | os.PathLike[str] | None = None,
                 index_path: str | os.PathLike[str] | None = None, **data: Any) -> None:
        if retriever is None:
            # built before pydantic validation so that core errors (a missing or damaged index,
            # a model mismatch) reach the caller as their own types, not as a ValidationError
            retriever = _open_core(index_path, model, {})
        else:
            if model is not None:
                raise InvalidInputError("pass either retriever= or model=, not both (the retriever has its model)")
            live = _live_path(retriever)
            if index_path is None:
                index_path = live  # a persistent core retriever: record where its index lives
            elif live is None:
                raise InvalidInputError(
                    "index_path= names a persistent index, but retriever= keeps its index in memory; pass "
                    "FGRRetriever.open(index_path) as retriever=, or index_path= without retriever=")
            elif not _same_path(live, index_path):
                raise InvalidInputError(f"index_path={os.fspath(index_path)!r} is not where retriever='s index "
                                        f"lives ({live})")
        super().__init__(retriever=retriever, index_path=None if index_path is None else os.fspath(index_path),
                         **data)

    @field_validator("k")
    @classmethod
    def _validate_k(cls, value: int) -> int:
        return check_k(value)

    @field_validator("threshold")
    @classmethod
    def _validate_threshold(cls, value: float | None) -> float | None:
        return check_threshold(value)

    @field_validator("mode")
    @classmethod
    def _validate_mode(cls, value: str | None) -> str | None:
        return _check_mode(value)

    @field_validator("filter", mode="before")
    @classmethod
    def _validate_filter(cls, value: Any) -> Any:
        spec = _check_filter(value)
        return dict(spec) if isinstance(spec, Mapping) else spec

    def __repr_args__(self) -> Any:
        # the index may hold millions of documents: show how many, never what
        return [*super().__repr_args__(), ("documents", len(self.retriever))]

    # ----------------------------------------------------------- constructors
    @classmethod
    def _split_kwargs(cls, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Fields of this class (``k``, ``tags`` ...) vs. core retriever options (``context_words`` ...)."""
        if "retriever" in kwargs:
            raise InvalidInputError("retriever= is not accepted here; use FGRColBERTRetriever(retriever=...)")
        ours = {name: value for name, value in kwargs.items() if name in cls.model_fields}
        core = {name: value for name, value in kwargs.items() if name not in cls.model_fields}
        return ours, core

    @classmethod
    def _build(cls, *, model: Any, index_path: str | os.PathLike[str] | None,
               kwargs: Mapping[str, Any]) -> FGRColBERTRetriever:
        ours, core_kwargs = cls._split_kwargs(kwargs)
        return cls(retriever=_open_core(index_path, model, core_kwargs), index_path=index_path, **ours)

    @classmethod
    def from_texts(cls, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                   ids: Sequence[str] | None = None, *, model: FGRColBERT | str | os.PathLike[str] | None = None,
                   index_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> FGRColBERTRetriever:
        """Index ``texts`` (with optional ``metadatas`` and ``ids``) and return the retriever.

        ``kwargs`` are fields of this class (``k``, ``filter``, ``evidence_only`` ...) or options
        of the core :class:`~fgr_retriever.FGRRetriever` (``context_words``, ``batch_size``,
        ``storage_dtype``, ``evidence_max_tokens`` ...). With ``index_path``, the persistent
        index there is opened (or created) and ``texts`` are added to it, durably (same ids
        replace documents).
        """
        retriever = cls._build(model=model, index_path=index_path, kwargs=kwargs)
        retriever.add_texts(texts, metadatas=metadatas, ids=ids)
        return retriever

    @classmethod
    def from_documents(cls, documents: Sequence[Document], ids: Sequence[str] | None = None, *,
                       model: FGRColBERT | str | os.PathLike[str] | None = None,
                       index_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> FGRColBERTRetriever:
        """Index LangChain documents (ids from ``ids``, else ``doc.id``, else generated).

        Same options as :meth:`from_texts`.
        """
        retriever = cls._build(model=model, index_path=index_path, kwargs=kwargs)
        retriever.add_documents(documents, ids=ids)
        return retriever

    @classmethod
    def from_index(cls, path: str | os.PathLike[str], model: FGRColBERT | str | os.PathLike[str] | None = None,
                   **kwargs: Any) -> FGRColBERTRetriever:
        """Open the index at ``path``: a persistent index (written through ``index_path``) or a
        portable copy written by :meth:`save` or the core ``FGRRetriever.save``, which is converted
        in place, once, into a persistent index.

        Without ``model`` the model recorded in the index is loaded. A missing index raises
        :class:`~fgr_retriever.errors.IndexNotFoundError`, a different model
        :class:`~fgr_retriever.errors.ModelMismatchError`. Later changes are written to ``path``
        and are durable when they return.
        """
        ours, core_kwargs = cls._split_kwargs(kwargs)
        if ours.get("index_path") is not None and not _same_path(ours["index_path"], path):
            raise InvalidInputError(f"index_path={ours['index_path']!r} differs from the path opened ({path})")
        ours["index_path"] = path
        core = _open_core(path, model, core_kwargs, create=False)
        return cls(retriever=core, **ours)

    # -------------------------------------------------------------- documents
    def _model_lock_owner(self) -> Any:
        return self.retriever.model

    def _add_locked(self, inputs: list[Any], ids: Sequence[str] | None,
                    metadatas: Sequence[Mapping[str, Any] | None] | None) -> list[str]:
        # with a persistent index the change is on disk when this returns: nothing to save
        return self.retriever.add_documents(inputs, ids=ids, metadata=metadatas)

    def _document_inputs(self, documents: Sequence[Document], ids: Sequence[str] | None) -> list[dict[str, Any]]:
        docs = check_documents(documents)
        if ids is not None:
            if isinstance(ids, str):
                raise InvalidInputError("ids must be a list of strings, not one string")
            ids = list(ids)
            if len(ids) != len(docs):
                raise InvalidInputError(f"{len(ids)} ids for {len(docs)} documents")
        return [core_input(doc, None if ids is None else ids[i]) for i, doc in enumerate(docs)]

    def add_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """Index LangChain documents; returns their ids. An id already stored is replaced (upsert).

        Ids come from ``ids``, else ``doc.id``, else are generated. A document that carries
        evidence metadata from an earlier retrieval is indexed with its ``full_text`` and the
        stale evidence keys are dropped. Metadata must be JSON-serialisable. Nothing is stored
        if any document is invalid.
        """
        inputs = self._document_inputs(documents, ids)
        return call_locked(self._model_lock_owner(), self._add_locked, inputs, None, None)

    def add_texts(self, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                  ids: Sequence[str] | None = None) -> list[str]:
        """Index plain texts with optional per-text metadata and ids; returns the ids (upsert)."""
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError("texts must be a list of strings (wrap a single text in [...])")
        return call_locked(self._model_lock_owner(), self._add_locked, list(texts), ids, metadatas)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete documents by id. Unknown ids raise
        :class:`~fgr_retriever.errors.DocumentNotFoundError` and nothing is deleted."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        if ids:
            call_locked(self._model_lock_owner(), self._delete_locked, ids)

    def _delete_locked(self, ids: list[str]) -> None:
        self.retriever.delete(ids)

    def get_by_ids(self, ids: Sequence[str]) -> list[Document]:
        """The stored documents with these ids, in that order; unknown ids are skipped.

        ``page_content`` is the full text and the metadata carries no evidence keys.
        """
        ids = [ids] if isinstance(ids, str) else list(ids)
        stored = call_locked(self._model_lock_owner(), self._get_locked, ids)
        # the core hands out copies, so these documents share nothing with the index
        return [Document(id=d.id, page_content=d.text, metadata=dict(d.metadata)) for d in stored]

    def _get_locked(self, ids: list[str]) -> list[Any]:
        return self.retriever.get([i for i in ids if i in self.retriever])

    def _save_target(self, path: str | os.PathLike[str] | None, method: str) -> tuple[Path, bool]:
        """Where to save, and whether that is the live persistent index (then there is nothing to do)."""
        target = path if path is not None else self.index_path
        if target is None:
            raise InvalidInputError(f"no path: pass {method}(path) or set index_path")
        live = _live_path(self.retriever)
        if live is not None and _same_path(live, target):
            return live, True
        return Path(target), False

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write a portable copy of the index to ``path``, atomically, and return the path.

        With ``index_path`` every change is already on disk, so ``save()`` (or ``save(index_path)``)
        does nothing and returns ``index_path``; ``save(other_path)`` exports a portable copy
        (read back with :meth:`from_index` or the core ``FGRRetriever.load``).
        """
        target, live = self._save_target(path, "save")
        if live:
            return target
        return call_locked(self._model_lock_owner(), self.retriever.save, target)

    async def aadd_documents(self, documents: Sequence[Document], ids: Sequence[str] | None = None) -> list[str]:
        """:meth:`add_documents` in a worker thread."""
        inputs = self._document_inputs(documents, ids)
        return await acall_locked(self._model_lock_owner(), self._add_locked, inputs, None, None)

    async def aadd_texts(self, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                         ids: Sequence[str] | None = None) -> list[str]:
        """:meth:`add_texts` in a worker thread."""
        if isinstance(texts, (str, bytes)):
            raise InvalidInputError("texts must be a list of strings (wrap a single text in [...])")
        return await acall_locked(self._model_lock_owner(), self._add_locked, list(texts), ids, metadatas)

    async def adelete(self, ids: Sequence[str]) -> None:
        """:meth:`delete` in a worker thread."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        if ids:
            await acall_locked(self._model_lock_owner(), self._delete_locked, ids)

    async def asave(self, path: str | os.PathLike[str] | None = None) -> Path:
        """:meth:`save` in a worker thread."""
        target, live = self._save_target(path, "asave")
        if live:
            return target
        return await acall_locked(self._model_lock_owner(), self.retriever.save, target)

    # ----------------------------------------------------------------- search
    def _options(self, k: Any, filter: Any, evidence_only: Any, threshold: Any, highlight: Any,
                 extra: Mapping[str, Any], mode: Any = None) -> dict[str, Any]:
        """Per-call options merged over the defaults, all validated before any work starts."""
        unknown = sorted(set(extra) - _IGNORED_CALL_KWARGS)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected option(s) {unknown}; "
                            f"per-call options are {', '.join(CALL_OPTIONS)}")
        return {
            "k": check_k(self.k if k is None else k),
            "filter": _core_filter(_check_filter(self.filter if filter is _UNSET else filter)),
            "evidence_only": _check_flag("evidence_only",
                                         self.evidence_only if evidence_only is None else evidence_only),
            "threshold": check_threshold(self.threshold if threshold is _UNSET else threshold),
            "highlight": _check_flag("highlight", self.highlight if highlight is None else highlight),
            "mode": _check_mode(self.mode if mode is None else mode),
        }

    def _search(self, query: str, options: Mapping[str, Any]) -> list[Document]:
        results = call_locked(self._model_lock_owner(), self.retriever.search, query, k=options["k"],
                              filter=options["filter"], highlight=options["highlight"],
                              threshold=options["threshold"], mode=options["mode"])
        return [to_langchain(r, evidence_only=options["evidence_only"]) for r in results]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, filter: Any = _UNSET, evidence_only: bool | None = None,
                                threshold: Any = _UNSET, highlight: bool | None = None, mode: str | None = None,
                                **kwargs: Any) -> list[Document]:
        options = self._options(k, filter, evidence_only, threshold, highlight, kwargs, mode)
        return self._search(check_query(query), options)

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, filter: Any = _UNSET,
                                       evidence_only: bool | None = None, threshold: Any = _UNSET,
                                       highlight: bool | None = None, mode: str | None = None,
                                       **kwargs: Any) -> list[Document]:
        options = self._options(k, filter, evidence_only, threshold, highlight, kwargs, mode)
        query = check_query(query)
        # encoding and scoring take from milliseconds to seconds: keep them off the event loop
        return await asyncio.to_thread(self._search, query, options)
