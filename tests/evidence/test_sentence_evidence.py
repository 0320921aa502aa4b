"""Sentence segmentation and sentence-level evidence decoding (unit tests, tiny model)."""

from __future__ import annotations

import numpy as np
import pytest

from fgr_retriever import FGRConfig, FGRRetriever, InvalidInputError, Span
from fgr_retriever.evidence.sentence_decoding import calibrated, select_units, text_units, unit_scores, unit_spans
from fgr_retriever.evidence.sentences import split_clauses, split_sentences
from fgr_retriever.evidence.text import answer_in_spans
from fgr_retriever.testing import tiny_model


def texts(text, ranges):
    return [text[s:e] for s, e in ranges]


# ------------------------------------------------------------------ segmentation
@pytest.mark.parametrize("text, expected", [
    ("Orders placed before 2 p.m. Paris time ship today. Weight: 0.9 kg.",
     ["Orders placed before 2 p.m. Paris time ship today.", "Weight: 0.9 kg."]),
    ("It holds No. 5 parfum. Dr. Smith signed it.", ["It holds No. 5 parfum.", "Dr. Smith signed it."]),
    ("Price: €3,450. Call us!", ["Price: €3,450.", "Call us!"]),
    ("Strap: leather\nColour: Noir\n\nWeight: 0.9 kg", ["Strap: leather", "Colour: Noir", "Weight: 0.9 kg"]),
])
def test_sentences_keep_abbreviations_decimals_and_units_and_break_at_lines(text, expected):
    assert texts(text, split_sentences(text)) == expected


def test_sentence_offsets_are_exact_and_cover_every_character():
    text = "  Café — naïve “quote” 😀 here.  Second sentence ünïcode!\n\tThird\u00a0line  "
    ranges = split_sentences(text)
    assert all(text[s:e] == text[s:e].strip() and e > s for s, e in ranges)
    covered = "".join(text[s:e] for s, e in ranges)
    assert "".join(text.split()) == "".join(covered.split())  # no non-space character lost
    assert ranges == sorted(ranges) and all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("text", ["", "   ", "\n\n"])
def test_blank_text_has_no_sentences(text):
    assert split_sentences(text) == []


def test_clauses_cut_only_long_sentences_and_not_times():
    long = ("The bag weighs 0.9 kg and is 28 cm wide; the strap is adjustable, detachable and made of "
            "leather from Italy: ask in store. Doors open at 10:30 daily.")
    assert texts(long, split_clauses(long)) == [
        "The bag weighs 0.9 kg and is 28 cm wide;",
        "the strap is adjustable, detachable and made of leather from Italy:",
        "ask in store.", "Doors open at 10:30 daily."]
    short = "Care: dry clean only."
    assert texts(short, split_clauses(short)) == ["Care: dry clean only."]


# ------------------------------------------------------------------ scoring
def test_unit_scores_take_the_best_token_per_query_token_then_average():
    units = [(0, 10), (11, 20), (21, 25)]
    offsets = np.array([[-1, -1], [0, 4], [5, 10], [11, 15], [16, 20], [0, 4]])
    sims = np.array([[0.9, 0.9], [0.1, 0.5], [0.3, 0.2], [0.8, 0.0], [0.4, 0.6], [0.6, 0.1]])
    scores = unit_scores(sims, offsets, units)
    # unit 0: rows 1, 2, 5 -> max per query token (0.6, 0.5); unit 1: rows 3, 4 -> (0.8, 0.6)
    assert scores[:2] == pytest.approx([0.55, 0.7])
    assert scores[2] == -np.inf  # no scored token: never chosen


def test_calibrated_is_a_probability_and_minus_inf_is_zero():
    p = calibrated(np.array([-np.inf, 0.0, 0.5, 1.0]), scale=10.0, bias=-5.0)
    assert p[0] == 0.0 and p[2] == pytest.approx(0.5) and np.all(np.diff(p) > 0)


@pytest.mark.parametrize("probs, threshold, ratio, expected", [
    ([0.2, 0.9, 0.85, 0.1], 0.5, 0.9, [1, 2]),
    ([0.2, 0.9, 0.85, 0.1], 0.5, 1.0, [1]),
    ([0.2, 0.3], 0.5, 0.9, []),
    ([0.0, 0.0], 0.0, 0.9, []),  # nothing scored at all is never evidence
    ([], 0.1, 0.9, []),
])
def test_select_units(probs, threshold, ratio, expected):
    assert select_units(np.array(probs), threshold=threshold, ratio=ratio) == expected


def test_unit_spans_slice_the_text():
    text = "One. Two words. Three."
    units = text_units(text, "sentence")
    spans = unit_spans(text, units, np.array([0.1, 0.8, 0.3]), [1])
    assert spans == [Span(start=5, end=15, text="Two words.", score=0.8)]


def test_answer_in_spans():
    text = "Returns within 30 days. Refunds within 10 days."
    first = Span(start=0, end=23, text=text[:23], score=0.9)
    assert answer_in_spans(text, [first], "30 days")
    assert not answer_in_spans(text, [first], "10 days")
    assert answer_in_spans(text, [first], "within")  # any occurrence inside a span counts
    with pytest.raises(InvalidInputError):
        answer_in_spans(text, [first], "")


# ------------------------------------------------------------------ model and retriever
TEXT = "Cashmere is combed in spring. Wash it by hand in cold water. Dry it flat on a towel."


@pytest.fixture(scope="module")
def sentence_model():
    return tiny_model(evidence_unit="sentence", sentence_threshold=0.0, sentence_ratio=1.0)


def test_highlight_returns_whole_sentences_with_calibrated_scores(sentence_model):
    spans = sentence_model.highlight("how to wash cashmere", TEXT)
    assert spans and all(s.text in texts(TEXT, split_sentences(TEXT)) for s in spans)
    q = sentence_model.encode_queries("how to wash cashmere")[0]
    enc = sentence_model.encode_documents(TEXT)[0]
    units, probs = sentence_model.unit_probabilities(q, TEXT, enc.vectors, enc.offsets)
    best = int(np.argmax(probs))
    assert spans[0].start == units[best][0] and spans[0].score == pytest.approx(probs[best], abs=1e-6)


def test_threshold_above_the_best_sentence_gives_no_evidence(sentence_model):
    assert sentence_model.highlight("how to wash cashmere", TEXT, threshold=1.0) == []


def test_ratio_below_one_keeps_more_sentences():
    strict = tiny_model(evidence_unit="sentence", sentence_threshold=0.0, sentence_ratio=1.0)
    loose = tiny_model(evidence_unit="sentence", sentence_threshold=0.0, sentence_ratio=0.01)
    assert len(loose.highlight("wash", TEXT)) >= len(strict.highlight("wash", TEXT))
    assert len(loose.highlight("wash", TEXT)) == 3


def test_unit_argument_switches_decoding(sentence_model):
    words = sentence_model.highlight("wash", TEXT, unit="word", threshold=0.0)
    assert words and all(s.text in TEXT for s in words)
    clauses = sentence_model.highlight("wash", TEXT, unit="clause")
    assert all(s.text in texts(TEXT, split_clauses(TEXT)) for s in clauses)
    with pytest.raises(InvalidInputError):
        sentence_model.highlight("wash", TEXT, unit="paragraph")
    with pytest.raises(InvalidInputError):
        sentence_model.highlight("wash", TEXT, threshold=1.5)


def test_long_text_sentences_span_windows(sentence_model):
    # the tiny model's windows hold 21 tokens: these sentences straddle window boundaries
    long = " ".join(f"Sentence number {i} talks about trains and weather in the north." for i in range(8))
    spans = sentence_model.highlight("trains", long, threshold=0.0)
    assert spans and all(long[s.start:s.end] == s.text for s in spans)
    assert all(s.text.startswith("Sentence number") and s.text.endswith(".") for s in spans)


def test_retriever_uses_the_models_unit_and_accepts_overrides(sentence_model):
    r = FGRRetriever(model=sentence_model)
    r.add_documents([TEXT, "Silk is dry-cleaned. Never wring silk."], ids=["cashmere", "silk"])
    for hit in r.search("wash cashmere", k=2):
        assert all(s.text in texts(hit.text, split_sentences(hit.text)) for s in hit.spans)
    for hit in r.search("wash cashmere", k=2, unit="word", threshold=0.0):
        fresh = sentence_model.highlight("wash cashmere", hit.text, unit="word", threshold=0.0)
        assert [(s.start, s.end) for s in hit.spans] == [(s.start, s.end) for s in fresh]
    reranked = r.rerank("wash cashmere", [TEXT], unit="sentence", threshold=1.0)
    assert reranked[0].spans == ()
    with pytest.raises(InvalidInputError):
        r.search("wash", unit="token")


def test_config_validates_sentence_settings():
    with pytest.raises(InvalidInputError):
        FGRConfig(evidence_unit="paragraph")
    with pytest.raises(InvalidInputError):
        FGRConfig(sentence_ratio=0.0)
    with pytest.raises(InvalidInputError):
        FGRConfig(sentence_threshold=1.0)
    with pytest.raises(InvalidInputError):
        FGRConfig(sentence_scale=-1.0)
    cfg = FGRConfig(sentence_threshold=0.3)
    assert FGRConfig.from_dict(cfg.to_dict()) == cfg
    # an older fgr_config.json without the new keys still loads, with sentence evidence
    old = {k: v for k, v in cfg.to_dict().items() if not k.startswith(("sentence_", "evidence_"))}
    assert FGRConfig.from_dict(old).evidence_unit == "sentence"


def test_evidence_settings_do_not_change_the_fingerprint():
    a = tiny_model(sentence_threshold=0.1, sentence_scale=3.0, evidence_unit="sentence")
    b = tiny_model(sentence_threshold=0.7, sentence_ratio=0.5)
    assert a.fingerprint() == b.fingerprint()
