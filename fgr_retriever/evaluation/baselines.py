"""Span baselines a trained highlighter has to beat: everything, the best-overlap sentence, the first sentence."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..evidence.sentences import split_sentences
from .highlight_data import HighlightExample
from .highlights import evaluate_span_predictor
from .reports import HighlightReport
from .units import UNITS, SpanPredictor


_STOPWORDS = frozenset("""
a an the of to in on for and or nor is are was were be been being am what which who whom whose when where
why how does do did done can could should would will shall may might must it its it's this that these those
as at by from with about into onto than then there their they them he she his her hers him you your yours
i me my we our us not no if but so such has have had having also just any all each more most other some
s t
""".split())
_TOKEN = re.compile(r"\w+")
# a sentence ends at . ! ? (and closing quotes/brackets after it) followed by whitespace, or at a newline


def _content_words(text: str) -> set[str]:
    return {w for w in _TOKEN.findall(text.lower()) if w not in _STOPWORDS}


def select_all_spans(query: str, passage: str) -> list[tuple[int, int]]:
    """Baseline: the whole passage is evidence."""
    return [(0, len(passage))] if passage else []


def best_overlap_sentence_spans(query: str, passage: str) -> list[tuple[int, int]]:
    """Baseline: the sentence sharing the most distinct non-stopword query words (lowercased) with
    the query; ties go to the earliest sentence."""
    sentences = split_sentences(passage)
    if not sentences:
        return []
    q = _content_words(query)
    overlaps = [len(q & _content_words(passage[s:e])) for s, e in sentences]
    return [sentences[int(np.argmax(overlaps))]]  # argmax returns the first maximum


def first_sentence_spans(query: str, passage: str) -> list[tuple[int, int]]:
    """Baseline: the passage's first sentence (strong where answers lead, as in Wikipedia summaries)."""
    return split_sentences(passage)[:1]


BASELINES: dict[str, SpanPredictor] = {
    "select_all": select_all_spans,
    "first_sentence": first_sentence_spans,
    "best_overlap_sentence": best_overlap_sentence_spans,
}


def evaluate_baselines(examples: Sequence[HighlightExample], *, units: str | Sequence[str] = UNITS,
                       tokenizer=None, source: str | None = None) -> dict[str, dict[str, HighlightReport]]:
    """:data:`BASELINES` evaluated on ``examples``: ``{baseline: {unit: report}}``."""
    return {name: evaluate_span_predictor(examples, fn, units=units, tokenizer=tokenizer, system=name, source=source)
            for name, fn in BASELINES.items()}
