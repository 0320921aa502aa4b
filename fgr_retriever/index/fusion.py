"""Fusing the late-interaction and the BM25 ranking of the same candidates (hybrid search).

Two fusions, both over the *union* of the two systems' candidates, with each candidate scored by
both systems (a document that BM25 found is re-scored by MaxSim from its stored vectors, and the
other way round), so neither side has to guess a missing score:

* ``"rrf"``, reciprocal rank fusion: ``w / (k + rank_late) + (1 - w) / (k + rank_bm25)``, with
  ``k = 60`` as in Cormack et al. (2009); a document that matches no query word has no BM25 rank
  and gets nothing from that side. Insensitive to the scale of either score.
* ``"relative_score"``: each score min-max normalised over the candidates, then
  ``w * late + (1 - w) * bm25``. Keeps how *much* better one document is than the next.

``w`` (``weight``) is the late-interaction side's share. The defaults (``relative_score``,
``w = 0.7``) were chosen on calibration halves of TREC DL 2020, HotpotQA and MS MARCO queries;
the figures are in ``docs/benchmarks.md`` (Hybrid retrieval).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..errors import InvalidInputError

__all__ = ["HybridConfig", "FUSIONS", "MODES", "fuse", "reciprocal_rank_fusion", "relative_score_fusion"]

FUSIONS = ("rrf", "relative_score")
MODES = ("late", "hybrid", "lexical")


@dataclass(frozen=True)
class HybridConfig:
    """How hybrid and lexical searches run.

    Args:
        fusion: ``"relative_score"`` (default) or ``"rrf"`` (see the module doc).
        weight: the late-interaction side's share in ``[0, 1]`` (default 0.7: late interaction
            is the stronger side on every measured set; BM25 adds exact terms).
        rrf_k: the rank offset of reciprocal rank fusion.
        depth: candidates taken from each side before fusing (at least ``k``).
        exact_boost: documents that contain an identifier of the query (``MV-OND28``) or a
            "quoted phrase" rank first, when at most ``exact_max_docs`` documents contain it.
        exact_max_docs: above this many matches a string is not treated as an identifier.
    """

    fusion: str = "relative_score"
    weight: float = 0.7
    rrf_k: int = 60
    depth: int = 100
    exact_boost: bool = True
    exact_max_docs: int = 10

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise InvalidInputError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not 0 <= self.weight <= 1:
            raise InvalidInputError(f"weight must be a number in [0, 1], got {self.weight!r}")
        for name in ("rrf_k", "depth", "exact_max_docs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"{name} must be a positive int, got {value!r}")


def _ranks(scores: Mapping[str, float], order: Sequence[str]) -> dict[str, int]:
    # ties keep the candidates' order (late-interaction hits first), so results are deterministic
    position = {d: i for i, d in enumerate(order)}
    ranked = sorted(scores, key=lambda d: (-scores[d], position.get(d, len(position))))
    return {d: r for r, d in enumerate(ranked, 1)}


def reciprocal_rank_fusion(late: Mapping[str, float], lexical: Mapping[str, float], *, weight: float = 0.5,
                           k: int = 60, order: Sequence[str] = ()) -> dict[str, float]:
    """RRF of two score maps; documents absent from a map (or with a BM25 of 0) get nothing from it."""
    late_rank = _ranks(late, order)
    lex_rank = _ranks({d: s for d, s in lexical.items() if s > 0}, order)
    out: dict[str, float] = {}
    for d in dict.fromkeys([*late, *lexical]):
        s = 0.0
        if d in late_rank:
            s += weight / (k + late_rank[d])
        if d in lex_rank:
            s += (1 - weight) / (k + lex_rank[d])
        out[d] = s
    return out


def _min_max(scores: Mapping[str, float], ids: Sequence[str], missing: float) -> dict[str, float]:
    values = [scores.get(d, missing) for d in ids]
    lo, hi = min(values), max(values)
    span = hi - lo
    return {d: (v - lo) / span if span > 0 else (1.0 if v > 0 else 0.0) for d, v in zip(ids, values)}


def relative_score_fusion(late: Mapping[str, float], lexical: Mapping[str, float], *,
                          weight: float = 0.5) -> dict[str, float]:
    """Min-max normalise each side over the union of candidates, then take the weighted sum.

    A candidate with no BM25 score matched no query word: its BM25 is 0. Every candidate has a
    late-interaction score (the caller computes the missing ones from stored vectors).
    """
    ids = list(dict.fromkeys([*late, *lexical]))
    if not ids:
        return {}
    missing_late = [d for d in ids if d not in late]
    if missing_late:
        raise InvalidInputError(f"no late-interaction score for {missing_late[:3]}")
    a = _min_max(late, ids, 0.0)
    b = _min_max(lexical, ids, 0.0)
    return {d: weight * a[d] + (1 - weight) * b[d] for d in ids}


def fuse(late: Mapping[str, float], lexical: Mapping[str, float], config: HybridConfig,
         order: Sequence[str] = ()) -> dict[str, float]:
    """The fused score of every candidate under ``config``."""
    if config.fusion == "rrf":
        return reciprocal_rank_fusion(late, lexical, weight=config.weight, k=config.rrf_k, order=order)
    return relative_score_fusion(late, lexical, weight=config.weight)
