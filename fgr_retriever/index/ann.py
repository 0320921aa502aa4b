"""Approximate candidate generation over token vectors: faiss IVF with product quantisation.

Every stored token vector gets a compact PQ code in an inverted file, labelled with the catalogue
entry (document version) it belongs to. A query's token vectors each fetch their nearest codes;
a document's approximate score is the ColBERT sum, over query tokens, of its best retrieved code
(query tokens that retrieved none of its codes contribute the weakest score they retrieved, an
upper-bound-style estimate that keeps long documents from being favoured). The best documents by
that estimate are the candidates that :mod:`~fgr_retriever.index.persistent` re-scores exactly
from their full vectors, so ranking quality comes from exact MaxSim and the quantiser only has to
keep the true top-k among the candidates.

Parameters follow the corpus size (``AnnParams.for_tokens``); every one can be overridden. The
quantiser is trained once (a *template*: coarse centroids and PQ codebooks) and filled in *parts*,
each an immutable faiss file covering a range of entries, so new documents are folded in without
rewriting the codes already written. Files are faiss's own binary format (no pickle) and are read
memory-mapped.

faiss-cpu is an optional dependency (``pip install "fgr-retriever[ann]"``); without it an index
stays exact.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import IndexCorruptedError, InvalidInputError, MissingDependencyError

__all__ = ["AnnParams", "require_faiss", "train_template", "build_part", "read_part", "candidate_scores"]


def require_faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError(
            "approximate search needs faiss-cpu: pip install \"fgr-retriever[ann]\" "
            "(or use the index exactly: approximate=False)"
        ) from None
    return faiss


@dataclass(frozen=True)
class AnnParams:
    """Settings of the token quantiser and of approximate search.

    Attributes:
        nlist: inverted lists (coarse centroids); about ``2 * sqrt(tokens)``, a power of two.
        code_bytes: PQ code size per token (sub-quantisers of 8 bits); must divide ``dim``.
        nprobe: lists visited per query token.
        neighbours: codes retrieved per query token.
        candidates: documents re-scored exactly (at least ``4 * k`` are used).
        train_tokens: vectors sampled to train the quantiser.
    """

    nlist: int
    code_bytes: int
    nprobe: int = 32
    neighbours: int = 256
    candidates: int = 128
    train_tokens: int = 0

    @classmethod
    def for_tokens(cls, n_tokens: int, dim: int, overrides: Mapping[str, Any] | None = None) -> AnnParams:
        """Defaults for a corpus of ``n_tokens`` stored token vectors of size ``dim``."""
        nlist = 2 ** int(round(math.log2(max(2 * math.sqrt(max(n_tokens, 1)), 64))))
        nlist = int(min(max(nlist, 64), 16384))
        code_bytes = next((m for m in (48, 32, 24, 16, 12, 8, 4, 2, 1) if dim % m == 0 and dim // m <= 16), 1)
        params = cls(nlist=nlist, code_bytes=code_bytes, train_tokens=min(n_tokens, max(40 * nlist, 1 << 16)))
        if overrides:
            unknown = set(overrides) - set(asdict(params))
            if unknown:
                raise InvalidInputError(f"unknown approximate-search setting(s) {sorted(unknown)}; "
                                        f"use {sorted(asdict(params))}")
            params = replace(params, **dict(overrides))
        params.validate(dim)
        return params

    def validate(self, dim: int) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "train_tokens" else 1):
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
        if dim % self.code_bytes:
            raise InvalidInputError(f"code_bytes={self.code_bytes} must divide the vector size {dim}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def train_template(sample: np.ndarray, params: AnnParams, *, seed: int = 0) -> Any:
    """An empty, trained IVF-PQ index (inner product) for vectors like ``sample`` [n, dim] float32."""
    faiss = require_faiss()
    dim = sample.shape[1]
    nlist = min(params.nlist, max(1, sample.shape[0] // 39))  # faiss wants >= 39 points per centroid
    index = faiss.index_factory(dim, f"IVF{nlist},PQ{params.code_bytes}", faiss.METRIC_INNER_PRODUCT)
    ivf = faiss.extract_index_ivf(index)
    ivf.cp.niter = 10  # coarse k-means converges early on normalised token vectors; halves training time
    ivf.cp.seed = seed
    # small corpora train on fewer points than faiss recommends; the exact re-scoring absorbs it
    ivf.cp.min_points_per_centroid = 1
    ivf_pq = faiss.downcast_index(ivf)
    if hasattr(ivf_pq, "pq"):
        ivf_pq.pq.cp.min_points_per_centroid = 1
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def build_part(template_path: Path, batches: Iterable[tuple[np.ndarray, np.ndarray]], out: Path) -> int:
    """Encode ``(vectors, entry labels)`` batches with the trained template into file ``out``;
    returns the number of codes written."""
    faiss = require_faiss()
    index = faiss.read_index(str(template_path))
    if index.ntotal:
        raise IndexCorruptedError(f"{template_path} is not an empty quantiser template")
    for vectors, labels in batches:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(labels, dtype=np.int64))
    faiss.write_index(index, str(out))
    return int(index.ntotal)


def read_part(path: Path) -> Any:
    faiss = require_faiss()
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:  # faiss reports every read failure as RuntimeError
        raise IndexCorruptedError(f"{path} is not a readable quantiser file: {exc}") from None


def candidate_scores(parts: list[Any], query: np.ndarray, params: AnnParams) -> tuple[np.ndarray, np.ndarray]:
    """Approximate MaxSim of the entries that ``query`` [Lq, dim] retrieves from ``parts``.

    Returns ``(labels, scores)`` of every entry that appeared among the neighbours, unsorted.
    """
    q = np.ascontiguousarray(query, dtype=np.float32)
    dists, labels = [], []
    for part in parts:
        part.nprobe = params.nprobe
        d, i = part.search(q, params.neighbours)
        dists.append(d)
        labels.append(i)
    d = np.concatenate(dists, axis=1)
    i = np.concatenate(labels, axis=1)
    valid = i >= 0
    if not valid.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    # a query token that did not reach a document is credited its weakest retrieved similarity
    floor = np.where(valid, d, np.inf).min(axis=1)
    floor[~np.isfinite(floor)] = 0.0
    rows = np.broadcast_to(np.arange(q.shape[0])[:, None], i.shape)[valid]
    labs, sims = i[valid], d[valid]
    uniq, inverse = np.unique(labs, return_inverse=True)
    best = np.full((q.shape[0], len(uniq)), -np.inf, dtype=np.float32)
    np.maximum.at(best, (rows, inverse), sims.astype(np.float32))
    best = np.where(np.isfinite(best), best, floor[:, None])
    return uniq, best.sum(axis=0)
