"""Choosing a highlight threshold: precision/recall curves and the micro-F1-best threshold."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import InvalidInputError
from .highlight_data import HighlightExample
from .highlight_metrics import HighlightMetrics, f1_from_counts, highlight_metrics
from .units import Unit, UnitScores, score_with_model

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT


@dataclass(frozen=True)
class PRCurve:
    """Micro precision/recall/F1 at decreasing thresholds (``positive_rate``: share of units predicted)."""

    thresholds: list[float]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    positive_rate: list[float]

    def to_dict(self) -> dict[str, Any]:
        return {k: [round(float(x), 6) for x in v] for k, v in asdict(self).items()}


def _curve_all(scores: UnitScores) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact micro P/R/F1 at every distinct score used as threshold (descending), from one sort."""
    s, g = scores.scores, scores.gold
    if len(s) == 0:
        z = np.zeros(0)
        return z, z, z, z, z
    order = np.argsort(-s, kind="stable")
    s_sorted, tp_cum = s[order], np.cumsum(g[order])
    # the last position of each run of equal scores: "score >= t" includes the whole run
    last = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
    thresholds = s_sorted[last]
    n_pred = last + 1
    tp = tp_cum[last].astype(np.float64)
    fp = n_pred - tp
    fn = g.sum() - tp
    precision = tp / n_pred
    recall = tp / g.sum() if g.sum() else np.zeros_like(tp)
    return thresholds, precision, recall, f1_from_counts(tp, fp, fn), n_pred / len(s)


def precision_recall_curve(scores: UnitScores, *, max_points: int = 101) -> PRCurve:
    """The micro PR curve, subsampled to at most ``max_points`` thresholds taken at evenly spaced
    quantiles of the distinct scores (all of them when there are fewer)."""
    t, p, r, f, rate = _curve_all(scores)
    if len(t) > max_points:
        keep = np.unique(np.round(np.linspace(0, len(t) - 1, max_points)).astype(np.int64))
        t, p, r, f, rate = (x[keep] for x in (t, p, r, f, rate))
    return PRCurve(thresholds=t.tolist(), precision=p.tolist(), recall=r.tolist(), f1=f.tolist(),
                   positive_rate=rate.tolist())


def best_threshold(scores: UnitScores) -> float:
    """The threshold that maximises micro-F1, searched over every distinct score (exact). On ties
    the highest threshold wins (fewer highlighted words for the same F1)."""
    t, _, _, f, _ = _curve_all(scores)
    if len(t) == 0:
        raise InvalidInputError("no units to calibrate a threshold on")
    return float(t[int(np.argmax(f))])  # t is descending, argmax takes the first maximum


def calibrate_threshold(model: FGRColBERT, examples: Sequence[HighlightExample], *, unit: Unit = "wordpiece",
                        tokenizer=None, batch_size: int = 32, show_progress_bar: bool = False
                        ) -> tuple[float, HighlightMetrics]:
    """The micro-F1-best threshold of ``model`` on ``examples`` and the metrics it gives there."""
    sc = score_with_model(model, examples, units=unit, tokenizer=tokenizer, batch_size=batch_size,
                          show_progress_bar=show_progress_bar)[unit]
    t = best_threshold(sc)
    return t, highlight_metrics(sc, threshold=t)
