"""Highlight evaluation runs: a model or any span predictor, scored per unit type into reports."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping, Sequence

from .calibration import best_threshold, precision_recall_curve
from .highlight_data import HighlightExample
from .highlight_metrics import highlight_metrics
from .reports import HighlightReport
from .units import UNITS, SpanPredictor, UnitScores, score_with_model, score_with_spans

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT


def _reports_from_scores(system: str, scored: Mapping[str, UnitScores], *, threshold: float, curve: bool,
                         source: str | None, seconds: float | None) -> dict[str, HighlightReport]:
    out = {}
    for unit, sc in scored.items():
        bt = best_threshold(sc) if curve and len(sc.scores) else None
        out[unit] = HighlightReport(
            system=system, unit=unit, metrics=highlight_metrics(sc, threshold=threshold),
            best_threshold=bt, best=highlight_metrics(sc, threshold=bt) if bt is not None else None,
            curve=precision_recall_curve(sc) if curve else None, source=source, seconds=seconds)
    return out


def evaluate_highlights(model: FGRColBERT, examples: Sequence[HighlightExample], *,
                        units: str | Sequence[str] = UNITS, threshold: float | None = None, tokenizer=None,
                        batch_size: int = 32, system: str = "model", source: str | None = None,
                        show_progress_bar: bool = False) -> dict[str, HighlightReport]:
    """Highlight metrics of ``model`` on ``examples`` per unit type: at ``threshold`` (default:
    the model's), plus the PR curve and the micro-F1-best threshold on these examples."""
    threshold = model._check_threshold(threshold)
    start = time.perf_counter()
    scored = score_with_model(model, examples, units=units, tokenizer=tokenizer, batch_size=batch_size,
                              show_progress_bar=show_progress_bar)
    return _reports_from_scores(system, scored, threshold=threshold, curve=True, source=source,
                                seconds=time.perf_counter() - start)


def evaluate_span_predictor(examples: Sequence[HighlightExample],
                            predictor: SpanPredictor | Sequence[Sequence[tuple[int, int]]], *,
                            units: str | Sequence[str] = UNITS, tokenizer=None, system: str = "spans",
                            source: str | None = None) -> dict[str, HighlightReport]:
    """Highlight metrics of any span predictor (callable ``(query, passage) -> [(start, end)]`` or
    precomputed spans per example), e.g. LLM labels or a baseline."""
    start = time.perf_counter()
    scored = score_with_spans(examples, predictor, units=units, tokenizer=tokenizer)
    return _reports_from_scores(system, scored, threshold=0.5, curve=False, source=source,
                                seconds=time.perf_counter() - start)
