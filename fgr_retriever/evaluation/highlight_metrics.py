"""Highlight metrics over scored units.

Metrics: micro precision/recall/F1 pooled over all units of all passages (the FGR paper's
metric), macro-F1 (mean of per-passage F1 where a passage with no gold unit and no prediction
scores 1, and any other passage without a true positive scores 0), and how often nothing is
predicted, reported separately for passages with and without gold evidence (SQuAD 2.0
unanswerable questions should get no highlight at all).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .reports import rounded
from .units import UnitScores


@dataclass(frozen=True)
class HighlightMetrics:
    """Highlight quality at one threshold. Rates are ``None`` when no passage is in the group."""

    unit: str
    threshold: float
    n_passages: int
    n_units: int
    n_gold_units: int
    n_predicted_units: int
    precision: float
    recall: float
    micro_f1: float
    macro_f1: float
    empty_rate: float | None
    empty_rate_gold_empty: float | None
    empty_rate_gold_nonempty: float | None
    n_passages_gold_empty: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("precision", "recall", "micro_f1", "macro_f1", "empty_rate", "empty_rate_gold_empty",
                  "empty_rate_gold_nonempty"):
            d[k] = rounded(d[k])
        return d


def f1_from_counts(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    tp, fp, fn = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    # nothing gold and nothing predicted is a perfect answer, not 0/0
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1e-300), 1.0)


def highlight_metrics(scores: UnitScores, *, threshold: float) -> HighlightMetrics:
    """Micro/macro metrics of ``scores`` with units predicted at ``score >= threshold``."""
    pred = scores.scores >= threshold
    gold = scores.gold
    n = scores.n_examples
    idx = scores.example_index
    tp_p = np.bincount(idx, weights=(pred & gold), minlength=n)
    fp_p = np.bincount(idx, weights=(pred & ~gold), minlength=n)
    fn_p = np.bincount(idx, weights=(~pred & gold), minlength=n)
    tp, fp, fn = tp_p.sum(), fp_p.sum(), fn_p.sum()
    no_pred = (tp_p + fp_p) == 0
    gold_empty = (tp_p + fn_p) == 0

    def rate(mask: np.ndarray) -> float | None:
        return float(no_pred[mask].mean()) if mask.any() else None

    return HighlightMetrics(
        unit=scores.unit, threshold=float(threshold), n_passages=n, n_units=int(len(gold)),
        n_gold_units=int(gold.sum()), n_predicted_units=int(pred.sum()),
        precision=float(tp / (tp + fp)) if tp + fp else 0.0,
        recall=float(tp / (tp + fn)) if tp + fn else 0.0,
        micro_f1=float(f1_from_counts(tp, fp, fn)),
        macro_f1=float(f1_from_counts(tp_p, fp_p, fn_p).mean()) if n else 0.0,
        empty_rate=rate(np.ones(n, dtype=bool)), empty_rate_gold_empty=rate(gold_empty),
        empty_rate_gold_nonempty=rate(~gold_empty), n_passages_gold_empty=int(gold_empty.sum()),
    )
