"""Haystack ranker that re-scores documents with FGR-ColBERT and marks their evidence."""

from .ranker import FGRColBERTRanker

__all__ = ["FGRColBERTRanker"]
