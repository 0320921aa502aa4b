"""Integration tests with the real bundled default model (offline, a few seconds each)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fgr_retriever import FGRColBERT, FGRRetriever, ModelMismatchError, cli
from fgr_retriever.evidence.text import answer_in_spans
from fgr_retriever.ingest import read_documents

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_default_model_is_offline_and_configured(default_model):
    assert default_model.dim == 384
    assert default_model.name_or_path is None
    assert default_model.config.query_marker == "[unused0]"
    assert 0.0 < default_model.threshold < 1.0
    # the trained delta is applied: the projection started as the identity and training moved it,
    # while the frozen lower layers are exactly the base package's
    assert not torch.equal(default_model.projection.weight, torch.eye(384))
    assert (default_model.projection.weight - torch.eye(384)).abs().max() < 0.5
    from safetensors.torch import load_file

    from fgr_retriever.model.serialization import base_weights_dir as base_model_path

    base = load_file(str(base_model_path() / "model.safetensors"))
    key = next(k for k in base if k.endswith("encoder.layer.0.attention.self.query.weight"))
    assert torch.equal(default_model.encoder.encoder.layer[0].attention.self.query.weight, base[key])
    top = next(k for k in base if k.endswith("encoder.layer.5.attention.self.query.weight"))
    assert not torch.equal(default_model.encoder.encoder.layer[5].attention.self.query.weight, base[top])


def test_default_model_refuses_a_damaged_delta(tmp_path, monkeypatch):
    import shutil

    from fgr_retriever.errors import ModelLoadError
    from fgr_retriever.model import serialization

    copy = tmp_path / "default_model"
    shutil.copytree(serialization.DEFAULT_MODEL_DIR, copy)
    data = bytearray((copy / "delta.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "delta.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(serialization, "DEFAULT_MODEL_DIR", copy)
    with pytest.raises(ModelLoadError, match="damaged"):
        FGRColBERT.from_pretrained()
    (copy / "delta.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        FGRColBERT.from_pretrained()


def test_default_model_ranks_and_highlights_the_answer(default_model):
    text = ("The boutique opens at ten. Our watches carry a five-year warranty covering the movement. "
            "Gift wrapping is free for every order.")
    scores = default_model.score("How long is the watch warranty?",
                                 [text, "Cashmere is combed from goats in spring."])
    assert scores[0] > scores[1]
    scores_by_piece = default_model.token_scores("How long is the watch warranty?", text)
    words: dict[str, float] = {}
    for t in scores_by_piece:  # pool pieces ("warrant" + "y") into whitespace words
        word = next(m.group() for m in re.finditer(r"\w+", text) if m.start() <= t.start < m.end()).lower()
        words[word] = max(words.get(word, 0.0), t.score)
    assert words["warranty"] > words["gift"]
    assert words["watches"] > words["boutique"]
    spans = default_model.highlight("How long is the watch warranty?", text)
    assert spans and all(text[s.start:s.end] == s.text for s in spans)
    assert any("warranty" in s.text for s in spans)


def test_demo_knowledge_base_retrieval(default_model):
    questions = json.loads((EXAMPLES / "demo_questions.json").read_text(encoding="utf-8"))
    retriever = FGRRetriever(model=default_model)
    retriever.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    assert len(retriever) >= 50
    top1, top5 = 0, 0
    for item in questions:
        results = retriever.search(item["question"], k=5)
        top1 += results[0].id == item["expected_id"]
        top5 += item["expected_id"] in [r.id for r in results]
        for r in results:
            assert all(r.text[s.start:s.end] == s.text for s in r.spans)
    # measured with the bundled model: 31/38 at rank 1, 37/38 in the top 5
    assert top1 / len(questions) >= 0.75 and top5 / len(questions) >= 0.95
    off = retriever.search(questions[0]["question"], k=5, highlight=False)
    on = retriever.search(questions[0]["question"], k=5)
    assert [r.id for r in off] == [r.id for r in on]


def test_product_references_rank_first_in_hybrid_mode(default_model):
    """Every product reference of the demo catalogue finds its product first in hybrid mode (late
    interaction alone: 23 of the 29, measured with the bundled model)."""
    retriever = FGRRetriever(model=default_model)
    retriever.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    refs = {m.group(1): d.id for d in retriever.get(retriever.index.ids())
            for m in re.finditer(r"Reference: ([A-Z0-9][A-Z0-9-]+[A-Z0-9])", d.text)}
    assert len(refs) >= 25
    for ref, doc_id in refs.items():
        results = retriever.search(f"Is {ref} available in another colour?", k=3, mode="hybrid")
        assert results[0].id == doc_id, (ref, [r.id for r in results])


def _demo_answer_containment(model) -> tuple[float, float, list[str], float]:
    """Share of demo questions whose answer lies inside the top document's evidence, the mean share
    of those documents that is highlighted, the questions missed, and the share whose marked
    answer (the second tier) overlaps the expected answer."""
    questions = json.loads((EXAMPLES / "demo_questions.json").read_text(encoding="utf-8"))
    assert len(questions) >= 20 and all(item.get("answer") for item in questions)
    retriever = FGRRetriever(model=model)
    retriever.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    found, shares, missed, hit = 0, [], [], 0
    for item in questions:
        assert item["answer"] in retriever.get([item["expected_id"]])[0].text  # the data itself is right
        top = retriever.search(item["question"], k=1)[0]
        ok = answer_in_spans(top.text, top.spans, item["answer"])
        found += ok
        if not ok:
            missed.append(item["question"])
        shares.append(sum(s.end - s.start for s in top.spans) / len(top.text))
        # every marked answer lies inside the evidence; count those that hit the expected answer
        assert all(any(s.start <= a.start and a.end <= s.end for s in top.spans) for a in top.answers)
        start = top.text.find(item["answer"])
        hit += any(a.start < start + len(item["answer"]) and start < a.end for a in top.answers) if start >= 0 else 0
    return found / len(questions), sum(shares) / len(shares), missed, hit / len(questions)


@pytest.fixture(scope="module")
def demo_containment(default_model):
    return _demo_answer_containment(default_model)


def test_demo_evidence_holds_the_answer_and_stays_short(demo_containment):
    """What the bundled model does today (24 of 38 answers inside the top document's evidence,
    14 % of the text highlighted); a regression below it fails."""
    found, share, missed, _ = demo_containment
    assert found >= 0.6, missed
    assert share <= 0.35


def test_demo_answer_tier_marks_the_answer(demo_containment):
    """The answer head marks (part of) the expected answer for 15 of 38 demo questions today
    (benchmarks/answer_tier.py); a regression below 12 fails."""
    assert demo_containment[3] >= 12 / 38


def test_default_model_marks_the_answer_inside_the_sentence(default_model):
    text = ("Returns are free for every order. Items can be sent back within 30 days of delivery, unworn and "
            "with their tags. Refunds reach your card within 10 business days.")
    spans, answers = default_model.highlight_with_answers("How long do I have to send a purchase back?", text)
    assert [s.text for s in spans] == ["Items can be sent back within 30 days of delivery, unworn and with their tags."]
    assert [a.text for a in answers] == ["within 30 days"]
    _, answers = default_model.highlight_with_answers("How heavy is it?", "Colour: black. Weight: 0.9 kg.")
    assert [a.text for a in answers] == ["0.9 kg"]  # the number keeps its unit
    assert default_model.answer_head is not None and default_model.answer_head.threshold == 0.02


@pytest.mark.xfail(strict=True, reason="issue 9 target (answer inside the top document's evidence for 85 % of "
                                       "the demo questions) is not met yet: 63 %, six of the misses are "
                                       "retrieval misses at rank 1")
def test_demo_evidence_target_of_85_percent(demo_containment):
    found, share, _, _ = demo_containment
    assert found >= 0.85 and share <= 0.35


def test_default_model_save_load_identical(tmp_path, default_model):
    out = default_model.save_pretrained(tmp_path / "model")
    again = FGRColBERT.from_pretrained(out)
    texts = ["Dry clean silk only.", "Returns within 30 days."]
    a = default_model.encode_documents(texts)
    b = again.encode_documents(texts)
    for x, y in zip(a, b):
        assert torch.equal(x.vectors, y.vectors) and torch.equal(x.offsets, y.offsets)
    assert again.fingerprint() == default_model.fingerprint()
    assert again.config == default_model.config


def test_index_built_with_default_rejects_other_model(tmp_path, default_model, tiny_model):
    r = FGRRetriever(model=default_model)
    r.add_documents(["Leather needs conditioning twice a year."], ids=["leather"])
    r.save(tmp_path / "idx")
    assert [x.id for x in FGRRetriever.load(tmp_path / "idx").search("leather care", k=1)] == ["leather"]
    with pytest.raises(ModelMismatchError):
        FGRRetriever.load(tmp_path / "idx", model=tiny_model)


def test_cli_demo_end_to_end(capsys):
    assert cli.main(["demo", "--color", "never", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert "Indexed" in out and out.count("Q: ") >= 5
    assert "[[" in out  # highlighted evidence is shown


def test_human_annotated_spans_smoke(shared_data, default_model):
    """Highlights of real MS MARCO passages are valid spans of the original strings."""
    records = [json.loads(line) for line in (shared_data / "highlight" / "msmarco-human-dev.jsonl")
               .read_text(encoding="utf-8").splitlines()[:10]]
    for rec in records:
        spans = default_model.highlight(rec["query"], rec["passage"])
        assert all(rec["passage"][s.start:s.end] == s.text and 0.0 <= s.score <= 1.0 for s in spans)


# A customer e-mail puts its question last. Cut at query_maxlen (32 tokens, ColBERT's fixed
# query length), all three lose the question and none of the answers is in the top 3.
LONG_QUESTIONS = [
    ("Hello, I ordered a present for my sister last month and she was delighted with it, thank you for the "
     "lovely packaging and the handwritten card. We are planning a trip to the mountains in the spring and she "
     "would like to take it along. My question is: how heavy is the Ondine 28 bag?", "product-ondine-28"),
    ("Good morning, I have been a loyal customer of your boutique in Paris for many years and I always "
     "appreciate the advice of your staff, especially during the holidays when the shop is so busy. I received "
     "a parcel yesterday but the item does not suit me. How many days do I have to return an item?",
     "policy-returns"),
    ("Dear team, my husband gave me a beautiful watch for our anniversary, and we have since moved house twice, "
     "so I am not sure where the papers are, but the watch still runs perfectly and I wear it every day. How "
     "long is the warranty on the watch?", "policy-watch-warranty"),
]


def test_long_questions_are_searched_whole(default_model):
    import warnings

    retriever = FGRRetriever(model=default_model)
    retriever.add_documents(read_documents([EXAMPLES / "knowledge_base.jsonl"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # under query_max_tokens: nothing is cut, nothing to warn about
        for question, expected in LONG_QUESTIONS:
            assert expected in [r.id for r in retriever.search(question, k=3)], question[-40:]
