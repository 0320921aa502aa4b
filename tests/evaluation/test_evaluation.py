"""Evaluation: highlight units and metrics, baselines, BEIR loading, retrieval metrics, rankers, CLI."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from fgr_retriever import cli
from fgr_retriever import evaluation as ev
from fgr_retriever.errors import InvalidInputError


# ----------------------------------------------------------------------------- helpers
def write_jsonl(path, records, *, gz: bool = False):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


HIGHLIGHT_RECORDS = [
    {"id": "a", "query": "how long is the warranty", "passage": "Our watches carry a two-year warranty. Straps are leather.",
     "spans": [[20, 38]]},
    {"id": "b", "query": "what colour is the sky", "passage": "Cats sleep a lot. The sky is blue on clear days.",
     "spans": [[18, 33]]},
    {"id": "c", "query": "who wrote hamlet", "passage": "Bananas are yellow.", "spans": []},
]


def unit_scores(per_passage):
    """UnitScores from [(gold list, score list), ...] with dummy offsets."""
    offs = [np.array([[2 * i, 2 * i + 1] for i in range(len(g))], dtype=np.int64).reshape(-1, 2) for g, _ in per_passage]
    return ev.UnitScores.build("word", [str(i) for i in range(len(per_passage))], offs,
                               [np.array(g, dtype=bool) for g, _ in per_passage],
                               [np.array(s, dtype=float) for _, s in per_passage])


def make_beir(root, *, run=True, gz=True):
    root.mkdir()
    corpus = [
        {"_id": "d1", "title": "Warranty", "text": "Watches carry a two-year warranty against defects."},
        {"_id": "d2", "title": "", "text": "Silk scarves should be dry-cleaned only."},
        {"_id": "d3", "title": "Shipping", "text": "Orders ship from Orleans within two days."},
        {"_id": "d4", "title": "", "text": "Returns are accepted within thirty days of delivery."},
    ]
    write_jsonl(root / ("corpus.jsonl.gz" if gz else "corpus.jsonl"), corpus, gz=gz)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "how long is the watch warranty"},
                                         {"_id": "q2", "text": "how do I clean silk"},
                                         {"_id": "q3", "text": "unjudged query"}])
    (root / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\toutside\t1\nq1\td3\t0\n"
                                    "q2\td2\t1\nq3\td4\t0\n", encoding="utf-8")
    if run:
        (root / "run.bm25.tsv").write_text(
            "q1\tQ0\td3\t1\t9.0\tbm25\nq1\tQ0\td1\t2\t8.0\tbm25\nq1\tQ0\td2\t3\t1.0\tbm25\n"
            "q2\tQ0\td4\t1\t5.0\tbm25\nq2\tQ0\td2\t2\t5.0\tbm25\nq2\tQ0\td1\t3\t1.0\tbm25\n", encoding="utf-8")
    return root


# ------------------------------------------------------------------- highlight reading
def test_read_highlight_file_plain_gz_and_limit(tmp_path):
    plain = write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS)
    packed = write_jsonl(tmp_path / "h.jsonl.gz", HIGHLIGHT_RECORDS, gz=True)
    a, b = ev.read_highlight_file(plain), ev.read_highlight_file(packed)
    assert a == b and len(a) == 3
    assert a[0] == ev.HighlightExample(id="a", query=HIGHLIGHT_RECORDS[0]["query"],
                                       passage=HIGHLIGHT_RECORDS[0]["passage"], spans=((20, 38),))
    assert a[2].spans == ()
    assert [e.id for e in ev.read_highlight_file(plain, limit=2)] == ["a", "b"]


@pytest.mark.parametrize("line, message", [
    ('{"query": "q", "passage": "p"', "h.jsonl:2: not valid JSON"),
    ('{"query": "q", "passage": "abc"}', "h.jsonl:2: missing key(s) ['spans']"),
    ('{"query": "q", "passage": "abc", "spans": [[1, 4]]}', "out of range"),
    ('{"query": "q", "passage": "abc", "spans": [[2, 2]]}', "out of range"),
    ('{"query": "q", "passage": "abc", "spans": [["1", 2]]}', "not a [start, end] pair"),
    ('{"query": " ", "passage": "abc", "spans": []}', "'query' must be a non-empty string"),
    ('[1, 2]', "must be a JSON object"),
])
def test_read_highlight_file_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(HIGHLIGHT_RECORDS[0]) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        ev.read_highlight_file(path)
    assert message in str(info.value)


def test_read_highlight_file_non_utf8_and_missing(tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_bytes(json.dumps(HIGHLIGHT_RECORDS[0]).encode() + b"\n" + '{"query": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(InvalidInputError, match=r"h\.jsonl:2: not UTF-8"):
        ev.read_highlight_file(path)
    with pytest.raises(InvalidInputError, match="no such file"):
        ev.read_highlight_file(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidInputError, match="cannot read"):
        ev.read_highlight_file(tmp_path / "bad.jsonl.gz")


# ------------------------------------------------------------------------------- units
def test_units_exclude_punctuation(tiny_model):
    text = "Hello, world! -- cashmere 1,200"
    assert ev.word_units(text).tolist() == [[0, 6], [7, 13], [17, 25], [26, 31]]  # the lone "--" is dropped
    pieces = ev.wordpiece_units([text], tiny_model.tokenizer.hf)[0]
    texts = [text[s:e] for s, e in pieces.tolist()]
    assert "," not in texts and "!" not in texts and "-" not in texts
    assert texts[:2] == ["Hello", "world"] and texts[-2:] == ["1", "200"]


def test_gold_overlap_rule():
    units = np.array([[0, 5], [6, 10], [11, 15]])
    # partial overlap counts; a span that only touches a unit's edge does not
    assert ev.gold_labels(units, [(4, 6)]).tolist() == [True, False, False]
    assert ev.gold_labels(units, [(10, 11)]).tolist() == [False, False, False]
    assert ev.gold_labels(units, [(7, 8), (0, 15)]).tolist() == [True, True, True]
    assert ev.gold_labels(units, []).tolist() == [False, False, False]


def test_unit_scores_max_over_overlapping_tokens():
    units = np.array([[0, 8], [9, 12], [13, 20]])
    tokens = np.array([[0, 4], [4, 8], [9, 12]])
    probs = np.array([0.2, 0.7, 0.4])
    assert ev.unit_scores_from_tokens(units, tokens, probs).tolist() == pytest.approx([0.7, 0.4, 0.0])
    # a token spanning two units scores both
    assert ev.unit_scores_from_tokens(units, np.array([[5, 10]]), np.array([0.9])).tolist() == pytest.approx([0.9, 0.9, 0.0])


# ----------------------------------------------------------------------------- metrics
def test_micro_macro_and_empty_conventions():
    scores = unit_scores([
        ([1, 1, 0, 0], [0.9, 0.2, 0.8, 0.1]),  # tp 1, fp 1, fn 1 -> F1 0.5
        ([0, 0], [0.1, 0.1]),                  # no gold, no prediction -> 1
        ([0, 0], [0.7, 0.1]),                  # no gold but a prediction -> 0
        ([1], [0.2]),                          # gold but no prediction -> 0
    ])
    m = ev.highlight_metrics(scores, threshold=0.5)
    assert (m.n_passages, m.n_units, m.n_gold_units, m.n_predicted_units) == (4, 9, 3, 3)
    assert m.precision == pytest.approx(1 / 3) and m.recall == pytest.approx(1 / 3)
    assert m.micro_f1 == pytest.approx(2 * 1 / (2 * 1 + 2 + 2))
    assert m.macro_f1 == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert m.empty_rate == pytest.approx(0.5)
    assert m.empty_rate_gold_empty == pytest.approx(0.5) and m.n_passages_gold_empty == 2
    assert m.empty_rate_gold_nonempty == pytest.approx(0.5)
    # the threshold is inclusive, as in highlight()
    assert ev.highlight_metrics(scores, threshold=0.9).n_predicted_units == 1
    d = m.to_dict()
    assert d["micro_f1"] == round(1 / 3, 4) and json.dumps(d)


def test_metrics_when_nothing_is_gold_or_predicted():
    scores = unit_scores([([0, 0], [0.1, 0.2])])
    m = ev.highlight_metrics(scores, threshold=0.5)
    assert m.micro_f1 == 1.0 and m.macro_f1 == 1.0 and m.empty_rate_gold_empty == 1.0
    assert m.empty_rate_gold_nonempty is None and m.precision == 0.0


def test_pr_curve_and_best_threshold():
    scores = unit_scores([([1, 0], [0.9, 0.8]), ([1, 0], [0.7, 0.1])])
    curve = ev.precision_recall_curve(scores)
    assert curve.thresholds == pytest.approx([0.9, 0.8, 0.7, 0.1])
    assert curve.f1 == pytest.approx([2 / 3, 0.5, 0.8, 2 / 3])
    assert curve.precision == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert curve.recall == pytest.approx([0.5, 0.5, 1.0, 1.0])
    assert curve.positive_rate == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert ev.best_threshold(scores) == pytest.approx(0.7)
    # ties: the higher threshold wins
    tie = unit_scores([([1, 0, 1], [0.9, 0.5, 0.5])])  # t=0.9: F1 2/3; t=0.5: F1 0.8
    assert ev.best_threshold(tie) == 0.5
    assert ev.precision_recall_curve(tie).thresholds == [0.9, 0.5]
    flat = unit_scores([([1, 0], [0.6, 0.3])])
    assert ev.best_threshold(flat) == 0.6


def test_curve_matches_pointwise_metrics_and_is_capped():
    rng = np.random.default_rng(0)
    passages = [(rng.random(n) < 0.3, np.round(rng.random(n), 2)) for n in rng.integers(1, 30, size=40)]
    scores = unit_scores(passages)
    curve = ev.precision_recall_curve(scores, max_points=10_000)
    for t, f, p in zip(curve.thresholds, curve.f1, curve.precision):
        m = ev.highlight_metrics(scores, threshold=t)
        assert m.micro_f1 == pytest.approx(f) and m.precision == pytest.approx(p)
    best = ev.best_threshold(scores)
    assert ev.highlight_metrics(scores, threshold=best).micro_f1 == pytest.approx(max(curve.f1))
    assert len(ev.precision_recall_curve(scores, max_points=11).thresholds) <= 11


# --------------------------------------------------------------------------- baselines
def test_split_sentences_and_overlap_baseline():
    text = "Cats sleep a lot.  The sky is blue! Is it?\nYes, the sky."
    sents = ev.split_sentences(text)
    assert [text[s:e] for s, e in sents] == ["Cats sleep a lot.", "The sky is blue!", "Is it?", "Yes, the sky."]
    # "sky" and "blue" beat "sky" alone; stopwords ("the", "is") do not count
    assert ev.best_overlap_sentence_spans("is the sky blue", text) == [sents[1]]
    # ties go to the earliest sentence, also when nothing overlaps
    assert ev.best_overlap_sentence_spans("sky", text) == [sents[1]]
    assert ev.best_overlap_sentence_spans("the and", text) == [sents[0]]
    assert ev.select_all_spans("q", text) == [(0, len(text))]
    assert ev.best_overlap_sentence_spans("q", "") == []
    assert ev.first_sentence_spans("q", text) == [sents[0]] and ev.first_sentence_spans("q", " ") == []


def test_baselines_and_span_predictor(tmp_path, tiny_model):
    examples = ev.read_highlight_file(write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS))
    res = ev.evaluate_baselines(examples, units="word", tokenizer=tiny_model.tokenizer.hf)
    sel = res["select_all"]["word"].metrics
    assert sel.recall == 1.0 and sel.empty_rate_gold_empty == 0.0
    # 2 + 4 gold words among 9 + 11 + 3 words
    assert sel.precision == pytest.approx(6 / 23)
    ov = res["best_overlap_sentence"]["word"].metrics
    # a: "Our watches carry a two-year warranty." (6 words, 2 gold); b: "The sky is blue on clear days."
    # (7 words, 4 gold); c: no overlap, so its first sentence (3 words, none gold)
    assert ov.recall == 1.0 and ov.precision == pytest.approx(6 / 16)
    # a perfect oracle, given as precomputed spans and as a callable
    oracle = [list(e.spans) for e in examples]
    rep = ev.evaluate_span_predictor(examples, oracle, units=["wordpiece", "word"], tokenizer=tiny_model.tokenizer.hf)
    for r in rep.values():
        assert r.metrics.micro_f1 == 1.0 and r.metrics.macro_f1 == 1.0 and r.metrics.empty_rate_gold_empty == 1.0
    nothing = ev.evaluate_span_predictor(examples, lambda q, p: [], units="word")["word"].metrics
    assert nothing.micro_f1 == 0.0 and nothing.macro_f1 == pytest.approx(1 / 3)
    with pytest.raises(InvalidInputError, match="2 span lists for 3 examples"):
        ev.evaluate_span_predictor(examples, oracle[:2], units="word")
    with pytest.raises(InvalidInputError, match="unit must be"):
        ev.evaluate_span_predictor(examples, oracle, units="sentence")


# ------------------------------------------------------------------------ model scoring
def test_model_scores_match_token_scores_and_highlight(tmp_path, tiny_model):
    examples = ev.read_highlight_file(write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS))
    # a long passage exercises windows (the tiny model's windows hold 21 tokens)
    long = ev.HighlightExample(id="long", query="warranty watches", passage=" ".join(["watches carry warranty."] * 20),
                               spans=((0, 7),))
    examples.append(long)
    scored = ev.score_with_model(tiny_model, examples)
    for i, ex in enumerate(examples):
        wp = scored["wordpiece"]
        mine = wp.scores[wp.example_index == i]
        ref = [t.score for t in tiny_model.token_scores(ex.query, ex.passage)]
        assert mine == pytest.approx(ref, abs=1e-6)
        words = scored["word"]
        spans = tiny_model.highlight(ex.query, ex.passage, threshold=0.5)
        predicted = ev.gold_labels(words.offsets[i], [(s.start, s.end) for s in spans])
        assert (predicted == (words.scores[words.example_index == i] >= 0.5)).all()
    reports = ev.evaluate_highlights(tiny_model, examples, units=["wordpiece", "word"],
                                     threshold=0.5, system="tiny")
    for rep in reports.values():
        assert rep.best.micro_f1 >= rep.metrics.micro_f1
        assert rep.curve and max(rep.curve.f1) == pytest.approx(rep.best.micro_f1)
        assert json.dumps(rep.to_dict())
    t, m = ev.calibrate_threshold(tiny_model, examples)
    assert t == reports["wordpiece"].best_threshold and m.micro_f1 == reports["wordpiece"].best.micro_f1


# ------------------------------------------------------------------------ retrieval metrics
def test_ndcg_counts_judged_documents_outside_the_corpus():
    judged = {"a": 1, "c": 2, "z": 0}
    assert ev.ndcg_at_k(["a", "b"], judged, 10) == pytest.approx(1 / (2 + 1 / math.log2(3)))
    assert ev.ndcg_at_k(["c", "a"], judged, 10) == pytest.approx(1.0)
    assert ev.ndcg_at_k(["b", "c"], judged, 1) == 0.0
    assert ev.ndcg_at_k(["c", "c", "a"], judged, 10) == pytest.approx(1.0)  # a duplicate counts once
    assert ev.ndcg_at_k(["a"], {"a": 0}, 10) == 0.0


def test_mrr_and_recall_with_relevance_level():
    judged = {"a": 1, "b": 2, "out": 3}
    assert ev.mrr_at_k(["x", "a", "b"], judged, 10) == pytest.approx(0.5)
    assert ev.mrr_at_k(["x", "a", "b"], judged, 10, relevance_level=2) == pytest.approx(1 / 3)
    assert ev.mrr_at_k(["x", "a"], judged, 1) == 0.0
    assert ev.recall_at_k(["a", "b", "x"], judged, 2) == pytest.approx(2 / 3)  # "out" is not retrievable
    assert ev.recall_at_k(["a", "b"], judged, 10, relevance_level=2) == pytest.approx(1 / 2)
    assert ev.recall_at_k(["a"], {"a": 0}, 10) == 0.0


# ---------------------------------------------------------------------------- BEIR loading
def test_load_beir(tmp_path):
    ds = ev.load_beir(make_beir(tmp_path / "beir"))
    assert ds.name == "beir" and list(ds.queries) == ["q1", "q2", "q3"]
    assert ds.text("d1") == "Warranty. Watches carry a two-year warranty against defects."
    assert ds.text("d2") == "Silk scarves should be dry-cleaned only."
    assert ds.qrels["q1"] == {"d1": 2, "outside": 1, "d3": 0}
    # equal scores: document id descending, as trec_eval sorts
    assert ds.run == {"q1": ["d3", "d1", "d2"], "q2": ["d4", "d2", "d1"]}
    assert ev.load_beir(make_beir(tmp_path / "plain", run=False, gz=False)).run is None


def test_load_beir_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="no such directory"):
        ev.load_beir(tmp_path / "nope")
    root = make_beir(tmp_path / "b")
    (root / "queries.jsonl").unlink()
    with pytest.raises(InvalidInputError, match="missing queries.jsonl"):
        ev.load_beir(root)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "x"}])
    with open(root / "queries.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{broken\n")
    with pytest.raises(InvalidInputError, match=r"queries\.jsonl:2: not valid JSON"):
        ev.load_beir(root)
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "x"}])
    (root / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"qrels\.tsv:2: score 'high' is not an integer"):
        ev.load_beir(root)
    (root / "qrels.tsv").write_text("q1 0 d1 1\nq1 0 d2 0\n", encoding="utf-8")  # TREC qrels, no header
    assert ev.load_beir(root).qrels == {"q1": {"d1": 1, "d2": 0}}
    (root / "run.bm25.tsv").write_text("q1 Q0 d1 1\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"run\.bm25\.tsv:1: expected TREC run format"):
        ev.load_beir(root)
    (root / "run.bm25.tsv").unlink()
    write_jsonl(root / "corpus.jsonl.gz", [{"_id": "d1", "text": "a"}, {"_id": "d1", "text": "b"}], gz=True)
    with pytest.raises(InvalidInputError, match="duplicate document id 'd1'"):
        ev.load_beir(root)


# ------------------------------------------------------------------------ retrieval eval
def test_bm25_evaluation_by_hand(tmp_path):
    ds = ev.load_beir(make_beir(tmp_path / "beir"))
    rep = ev.evaluate_retrieval(ds, "bm25", mode="rerank", k_values=(1, 2))
    assert rep.n_queries == 2 and list(rep.per_query) == ["q1", "q2"]  # q3 has no relevant judgement
    q1 = rep.per_query["q1"]
    # ranking d3(0) d1(2) d2; ideal 2, 1 ("outside" counts)
    assert q1["ndcg@10"] == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert q1["mrr@10"] == pytest.approx(0.5) and q1["recall@1"] == 0.0 and q1["recall@2"] == pytest.approx(0.5)
    assert rep.per_query["q2"]["mrr@10"] == pytest.approx(0.5)
    assert rep.metrics["mrr@10"] == pytest.approx(0.5)
    assert ev.evaluate_retrieval(ds, "bm25", depth=1).per_query["q1"]["mrr@10"] == 0.0
    # relevance level 2: q2's only judgement (grade 1) is no longer relevant, so q2 is skipped
    strict = ev.evaluate_retrieval(ds, "bm25", relevance_level=2)
    assert list(strict.per_query) == ["q1"] and strict.per_query["q1"]["recall@10"] == 1.0
    assert list(ev.evaluate_retrieval(ds, "bm25", max_queries=1).per_query) == ["q1"]
    assert list(ev.evaluate_retrieval(ds, "bm25", query_ids=["q2", "q3"]).per_query) == ["q2"]
    with pytest.raises(InvalidInputError, match="unknown query id"):
        ev.evaluate_retrieval(ds, "bm25", query_ids=["q9"])
    with pytest.raises(InvalidInputError, match="mode must be"):
        ev.evaluate_retrieval(ds, "bm25", mode="hybrid")
    norun = ev.load_beir(make_beir(tmp_path / "norun", run=False))
    with pytest.raises(InvalidInputError, match="cannot be re-ranked"):
        ev.evaluate_retrieval(norun, "bm25", mode="rerank")
    assert json.dumps(rep.to_dict())


def test_fgr_ranker_rerank_full_and_encodes_once(tmp_path, tiny_model, monkeypatch):
    ds = ev.load_beir(make_beir(tmp_path / "beir"))
    calls = []
    original = type(tiny_model).encode_documents

    def counting(self, texts, **kw):
        calls.append(len(texts))
        return original(self, texts, **kw)

    monkeypatch.setattr(type(tiny_model), "encode_documents", counting)
    ranker = ev.FGRRanker(tiny_model, storage_dtype="float32")  # exact, to compare with text_score
    rerank = ev.evaluate_retrieval(ds, ranker, mode="rerank")
    full = ev.evaluate_retrieval(ds, ranker, mode="full")
    assert sum(calls) == 4  # d1..d4 each encoded once across both modes
    for qid in ("q1", "q2"):
        cands = ds.run[qid]
        scores = original(tiny_model, [ds.text(d) for d in cands])
        q = tiny_model.encode_queries(ds.queries[qid])[0]
        expect = [d for _, d in sorted(((-tiny_model.text_score(q, e), i), d) for i, (d, e) in enumerate(zip(cands, scores)))]
        got = ranker.rank(ds, [qid], mode="rerank", depth=100, k=10)[qid]
        assert got == expect
        assert sorted(ranker.rank(ds, [qid], mode="full", depth=100, k=10)[qid]) == ["d1", "d2", "d3", "d4"]
    assert rerank.ranker == "fgr" and full.mode == "full" and full.n_queries == 2
    assert 0.0 <= full.metrics["ndcg@10"] <= 1.0


def test_dense_ranker_finds_the_obvious_document(tmp_path):
    ds = ev.load_beir(make_beir(tmp_path / "beir"))
    ranker = ev.DenseRanker()
    rep = ev.evaluate_retrieval(ds, ranker, mode="full")
    assert rep.per_query["q1"]["mrr@10"] == 1.0 and rep.per_query["q2"]["mrr@10"] == 1.0
    assert ev.evaluate_retrieval(ds, ranker, mode="rerank").per_query["q2"]["mrr@10"] == 1.0
    with pytest.raises(InvalidInputError, match="no directory"):
        ev.DenseRanker(tmp_path / "missing")


def test_measure_efficiency(tiny_model):
    rep = ev.measure_efficiency(tiny_model, ["cashmere care guide", "returns within thirty days", "silk scarves"],
                                ["how do I wash cashmere", "returns"], k=2)
    assert rep.n_documents == 3 and rep.docs_per_second > 0
    assert rep.search_ms_highlight > 0 and rep.search_ms_no_highlight > 0
    assert rep.highlight_overhead_ratio == pytest.approx(rep.search_ms_highlight / rep.search_ms_no_highlight)
    with pytest.raises(InvalidInputError):
        ev.measure_efficiency(tiny_model, [], ["q"])


# -------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    from fgr_retriever.testing import tiny_model as make_tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny"
    make_tiny_model().save_pretrained(path)
    return path


def test_cli_eval_end_to_end(tmp_path, saved_tiny, capsys):
    hl = write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS)
    beir = make_beir(tmp_path / "beir")
    out = tmp_path / "res" / "results.json"
    code = cli.main(["eval", "--model", str(saved_tiny), "--highlight", str(hl), "--retrieval", str(beir),
                     "--mode", "both", "--baselines", "--efficiency", "--threshold", "0.4", "--quiet",
                     "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "micro-F1" in printed and "nDCG@10" in printed and "select_all" in printed and "Efficiency" in printed
    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["threshold"] == 0.4
    systems = {(h["system"], h["unit"]) for h in res["highlight"]}
    assert systems == {(s, u) for s in ("model", "select_all", "first_sentence", "best_overlap_sentence")
                       for u in ("wordpiece", "word")}
    sel = next(h for h in res["highlight"] if h["system"] == "select_all" and h["unit"] == "word")
    assert sel["metrics"]["recall"] == 1.0
    runs = {(r["ranker"], r["mode"]) for r in res["retrieval"]}
    assert runs == {("fgr", "rerank"), ("fgr", "full"), ("bm25", "rerank"), ("dense", "rerank"), ("dense", "full")}
    bm25 = next(r for r in res["retrieval"] if r["ranker"] == "bm25")
    assert bm25["metrics"]["mrr@10"] == 0.5 and set(bm25["per_query"]) == {"q1", "q2"}
    assert res["efficiency"]["n_documents"] == 4


def test_cli_calibrate_and_write_threshold_round_trip(tmp_path, saved_tiny, capsys):
    import shutil

    from fgr_retriever import FGRColBERT

    model_dir = tmp_path / "model"
    shutil.copytree(saved_tiny, model_dir)
    hl = write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS)
    out = tmp_path / "r.json"
    assert cli.main(["eval", "--model", str(model_dir), "--calibrate-on", str(hl), "--write-threshold",
                     "--highlight", str(hl), "--unit", "wordpiece", "--quiet", "--out", str(out)]) == 0
    res = json.loads(out.read_text(encoding="utf-8"))
    t = res["calibration"]["threshold"]
    assert res["threshold"] == t and t != 0.5 and res["calibration"]["written_to"].endswith("fgr_config.json")
    assert res["highlight"][0]["metrics"]["threshold"] == t
    # calibrating on the evaluated file: its own best threshold is the calibrated one
    assert res["highlight"][0]["best_threshold"] == t
    assert FGRColBERT.from_pretrained(model_dir).threshold == t
    assert "wrote threshold" in capsys.readouterr().out


def test_cli_eval_errors(tmp_path, saved_tiny, capsys):
    hl = write_jsonl(tmp_path / "h.jsonl", HIGHLIGHT_RECORDS)
    # the bundled default model is never modified (refused before any model loads)
    assert cli.main(["eval", "--calibrate-on", str(hl), "--write-threshold"]) == 1
    assert "bundled default model" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(saved_tiny), "--write-threshold", "--highlight", str(hl)]) == 1
    assert "needs --calibrate-on" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(saved_tiny)]) == 1
    assert "nothing to evaluate" in capsys.readouterr().err
    norun = make_beir(tmp_path / "norun", run=False)
    assert cli.main(["eval", "--model", str(saved_tiny), "--retrieval", str(norun), "--mode", "rerank"]) == 1
    assert "no run.bm25.tsv" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{nope\n", encoding="utf-8")
    assert cli.main(["eval", "--model", str(saved_tiny), "--highlight", str(bad)]) == 1
    assert "bad.jsonl:1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["eval", "--unit", "sentence"])
    assert info.value.code == 2
    # a model directory without fgr_config.json cannot take a threshold
    from fgr_retriever.cli.evaluate import write_threshold

    with pytest.raises(InvalidInputError, match="fgr_config.json"):
        write_threshold(tmp_path, 0.3)
    with pytest.raises(InvalidInputError, match="strictly between"):
        write_threshold(saved_tiny, 1.0)


# ------------------------------------------------------------------------- shared data
def test_shared_bm25_trec_dl20_ndcg(shared_data):
    ds = ev.load_beir(shared_data / "retrieval" / "trec-dl20")
    rep = ev.evaluate_retrieval(ds, "bm25", mode="rerank")
    assert rep.n_queries == 54
    assert rep.metrics["ndcg@10"] == pytest.approx(0.4796, abs=5e-5)


def test_shared_msmarco_human_baselines(shared_data):
    examples = ev.read_highlight_file(shared_data / "highlight" / "msmarco-human-dev.jsonl")
    assert len(examples) == 120
    res = ev.evaluate_baselines(examples, units="wordpiece")
    assert res["select_all"]["wordpiece"].metrics.micro_f1 == pytest.approx(0.461, abs=0.01)
    assert res["best_overlap_sentence"]["wordpiece"].metrics.micro_f1 == pytest.approx(0.508, abs=0.01)
    assert res["first_sentence"]["wordpiece"].metrics.micro_f1 == pytest.approx(0.443, abs=0.01)
