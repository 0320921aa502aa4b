"""Evaluation: how well a model highlights evidence and ranks documents, against baselines.

Owns, one concern per module:

- highlights: ``highlight_data`` (gold-span JSONL), ``units`` (wordpiece/word units and their
  scores), ``highlight_metrics`` (micro/macro F1), ``calibration`` (PR curves, best threshold),
  ``highlights`` (evaluation runs), ``baselines`` (span baselines);
- retrieval: ``beir`` (BEIR folders), ``retrieval_metrics`` (nDCG, MRR, Recall like trec_eval),
  ``rankers`` (BM25 run, FGR-ColBERT, dense baseline), ``retrieval`` (evaluation runs);
- ``efficiency`` (throughput and latency) and ``reports`` (the JSON-ready result records).

May import: the runtime (``model``, ``evidence``, ``index``, ``retriever``, foundation modules).
The runtime never imports this package. The names below are re-exported so that
``from fgr_retriever import evaluation as ev`` reaches all of it.
"""

from __future__ import annotations

from ..evidence.sentences import split_sentences
from .baselines import (
    BASELINES,
    best_overlap_sentence_spans,
    evaluate_baselines,
    first_sentence_spans,
    select_all_spans,
)
from .beir import BeirDataset, document_text, load_beir, select_queries
from .calibration import PRCurve, best_threshold, calibrate_threshold, precision_recall_curve
from .efficiency import measure_efficiency
from .highlight_data import HighlightExample, read_highlight_file
from .highlight_metrics import HighlightMetrics, highlight_metrics
from .highlights import evaluate_highlights, evaluate_span_predictor
from .rankers import BM25RunRanker, DenseRanker, FGRRanker, Ranker
from .reports import EfficiencyReport, HighlightReport, RetrievalReport
from .retrieval import evaluate_retrieval
from .retrieval_metrics import mrr_at_k, ndcg_at_k, recall_at_k
from .units import (
    UnitScores,
    default_tokenizer,
    gold_labels,
    model_token_probabilities,
    score_with_model,
    score_with_spans,
    unit_scores_from_tokens,
    word_units,
    wordpiece_units,
)

__all__ = [
    "HighlightExample", "UnitScores", "HighlightMetrics", "PRCurve", "HighlightReport",
    "read_highlight_file", "wordpiece_units", "word_units", "gold_labels", "unit_scores_from_tokens",
    "model_token_probabilities", "score_with_model", "score_with_spans", "highlight_metrics",
    "precision_recall_curve", "best_threshold", "evaluate_highlights", "evaluate_span_predictor",
    "evaluate_baselines", "calibrate_threshold", "select_all_spans", "best_overlap_sentence_spans",
    "split_sentences", "first_sentence_spans", "BASELINES", "default_tokenizer",
    "BeirDataset", "load_beir", "document_text", "ndcg_at_k", "mrr_at_k", "recall_at_k",
    "Ranker", "BM25RunRanker", "FGRRanker", "DenseRanker", "RetrievalReport", "evaluate_retrieval",
    "select_queries", "EfficiencyReport", "measure_efficiency",
]
