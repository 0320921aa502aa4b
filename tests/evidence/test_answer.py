"""The answer tier: the head, its decoding, persistence, training loop, and how results carry it."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import fgr_retriever.evidence.answer
from fgr_retriever import FGRColBERT, FGRRetriever, InvalidInputError, ModelLoadError, SearchResult, Span
from fgr_retriever.distill.answer_training import EncodedCache, TrainingItem, collate, make_items, train_answer_head
from fgr_retriever.evidence.answer import AnswerHead, best_answer, sentence_rows

TEXT = "Colour: black. Weight: 0.9 kg. Strap: leather."
# wordpiece-like character ranges of TEXT (punctuation left out, as the stored rows are)
OFFSETS = np.array([[0, 6], [8, 13], [15, 21], [23, 24], [24, 25], [25, 26], [27, 29], [31, 36], [38, 45]])


def test_doctest():
    assert doctest.testmod(fgr_retriever.evidence.answer).failed == 0


def _logits(n: int, start: int, end: int, strength: float = 8.0) -> tuple[torch.Tensor, torch.Tensor]:
    s, e = torch.zeros(n + 1), torch.zeros(n + 1)
    s[start + 1] = strength
    e[end + 1] = strength
    return s, e


def test_best_answer_widens_to_words_and_keeps_the_unit():
    s, e = _logits(len(OFFSETS), 3, 3)  # only the "0" of "0.9"
    span = best_answer(TEXT, OFFSETS, s, e, threshold=0.1, max_answer_tokens=8)
    assert span is not None and span.text == "0.9 kg" and TEXT[span.start:span.end] == "0.9 kg"


def test_best_answer_threshold_and_no_answer_slot():
    s, e = _logits(len(OFFSETS), 3, 5)
    assert best_answer(TEXT, OFFSETS, s, e, threshold=0.999, max_answer_tokens=8) is None
    # all mass on "no answer": nothing is marked even at a low threshold
    s0, e0 = torch.full((len(OFFSETS) + 1,), -9.0), torch.full((len(OFFSETS) + 1,), -9.0)
    s0[0] = e0[0] = 9.0
    assert best_answer(TEXT, OFFSETS, s0, e0, threshold=0.01, max_answer_tokens=8) is None
    with pytest.raises(InvalidInputError):
        best_answer(TEXT, OFFSETS, s, e, threshold=1.5, max_answer_tokens=8)


def test_best_answer_never_ends_before_it_starts_or_runs_too_long():
    s, e = _logits(len(OFFSETS), 6, 2)  # end before start: the joint argmax must respect order
    span = best_answer(TEXT, OFFSETS, s, e, threshold=0.0, max_answer_tokens=8)
    assert span is not None and span.start <= span.end
    s, e = _logits(len(OFFSETS), 0, 8)
    span = best_answer(TEXT, OFFSETS, s, e, threshold=0.0, max_answer_tokens=3)
    assert span is not None and span.text != TEXT.rstrip(".")  # at most 3 tokens


def test_sentence_rows_text_order_once_each_and_limited():
    offsets = np.array([[-1, -1], [0, 3], [4, 8], [9, 12], [-1, -1], [4, 8], [9, 12], [13, 15]])
    assert sentence_rows(offsets, 4, 12, 10).tolist() == [2, 3]  # the second window's copies are left out
    assert sentence_rows(offsets, 0, 15, 2).tolist() == [1, 2]
    assert sentence_rows(offsets, 20, 30, 5).tolist() == []


def test_padding_is_never_chosen():
    torch.manual_seed(0)
    head = AnswerHead(dim=8, hidden=16, layers=1, heads=2).eval()
    doc = torch.randn(2, 6, 8)
    mask = torch.tensor([[True] * 6, [True, True, False, False, False, False]])
    with torch.no_grad():
        start, end = head(doc, mask, torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool),
                          torch.ones(2, 3, dtype=torch.bool))
    assert torch.softmax(start[1], -1)[3:].max() == 0 and torch.softmax(end[1], -1)[3:].max() == 0


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(1)
    head = AnswerHead(dim=8, hidden=16, layers=1, heads=2, threshold=0.3).eval()
    path = head.save(tmp_path / "answer_head.safetensors")
    back = AnswerHead.load(path)
    assert back.settings == head.settings and back.threshold == 0.3
    args = (torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool), torch.randn(1, 3, 8),
            torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(head(*args), back(*args)))


def test_load_refuses_foreign_and_damaged_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelLoadError, match="not an fgr-retriever answer head"):
        AnswerHead.load(tmp_path / "other.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ModelLoadError):
        AnswerHead.load(tmp_path / "broken.safetensors")


def test_training_loop_learns_a_simple_answer():
    """Synthetic task: the answer is the one token whose vector points along the query's first
    real vector. The loop, collation and loss must learn it."""
    rng = torch.Generator().manual_seed(0)
    dim, n = 8, 240
    passages, queries, items = {}, {}, []
    for i in range(n):
        q = torch.nn.functional.normalize(torch.randn(4, dim, generator=rng), dim=-1)
        d = torch.nn.functional.normalize(torch.randn(7, dim, generator=rng), dim=-1)
        target = int(torch.randint(0, 7, (1,), generator=rng))
        d[target] = q[0]
        passages[f"p{i}"] = (d, np.stack([np.arange(7) * 2, np.arange(7) * 2 + 1], 1))
        queries[f"q{i}"] = (q, torch.tensor([True, True, False, False]))
        items.append(TrainingItem(f"p{i}", np.arange(7), f"q{i}", target + 1, target + 1))
    cache = EncodedCache(passages, queries)
    head = AnswerHead(dim=dim, hidden=32, layers=1, heads=2)
    losses = train_answer_head(head, items[:200], cache, epochs=12, batch_size=32, lr=3e-3)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    doc, mask, query, qmask, real, ts, _ = collate(items[200:], cache)
    with torch.no_grad():
        start, _ = head(doc, mask, query, qmask, real)
    assert (start.argmax(-1) == ts).float().mean() >= 0.8


def test_make_items_targets_the_answer_tokens_of_its_sentence():
    from fgr_retriever.distill.answer_training import QAExample, _key

    passage = "The bag is black. It weighs 0.9 kg in total."
    offsets = np.array([[0, 3], [4, 7], [8, 10], [11, 16], [18, 20], [21, 27], [28, 29], [29, 30], [30, 31],
                        [32, 34], [35, 37], [38, 43]])
    cache = EncodedCache({_key(passage): (torch.zeros(12, 4), offsets)}, {_key("how heavy"): (torch.zeros(3, 4),
                                                                                            torch.ones(3).bool())})
    ex = QAExample("1", "how heavy", passage, (28, 34))
    items = make_items([ex], cache, negative_share=1.0)
    pos = [i for i in items if i.start]
    neg = [i for i in items if not i.start]
    assert len(pos) == 1 and offsets[pos[0].rows][pos[0].start - 1].tolist() == [28, 29]
    assert offsets[pos[0].rows][pos[0].end - 1].tolist() == [32, 34]
    assert len(neg) == 1 and offsets[neg[0].rows].max() <= 16  # the other sentence


# --------------------------------------------------------------- model and retriever
@pytest.fixture
def model_with_head(tiny_model):
    from fgr_retriever.testing import tiny_model as make

    model = make(evidence_unit="sentence", sentence_threshold=0.0)
    torch.manual_seed(0)
    model.answer_head = AnswerHead(dim=model.dim, hidden=16, layers=1, heads=2, threshold=0.0).eval()
    return model


DOCS = ["Colour: black. Weight: 0.9 kg. Strap: leather.", "Returns are free within 30 days. Refunds take a week."]


def test_results_carry_answers_inside_their_evidence(model_with_head):
    retriever = FGRRetriever(model=model_with_head)
    retriever.add_documents(DOCS, ids=["bag", "returns"])
    for r in retriever.search("how heavy is the bag", k=2):
        assert r.spans and r.answers
        for a in r.answers:
            assert r.text[a.start:a.end] == a.text
            assert any(s.start <= a.start and a.end <= s.end for s in r.spans)
        assert SearchResult.from_dict(r.to_dict()) == r
    assert all(not r.answers for r in retriever.search("how heavy", k=2, highlight=False))
    assert all(not r.answers for r in retriever.search("how heavy", k=2, unit="word", threshold=0.0))
    reranked = retriever.rerank("how heavy is the bag", DOCS)
    assert all(r.answers for r in reranked)


def test_no_head_no_answers(tiny_model):
    retriever = FGRRetriever(model=tiny_model)
    retriever.add_documents(DOCS)
    assert all(r.answers == () for r in retriever.search("how heavy", k=2, unit="sentence", threshold=0.0))


def test_head_survives_save_and_load_and_leaves_the_fingerprint(tmp_path, model_with_head):
    from fgr_retriever.testing import tiny_model as make

    assert model_with_head.fingerprint() == make(evidence_unit="sentence", sentence_threshold=0.0).fingerprint()
    model_with_head.save_pretrained(tmp_path / "m")
    back = FGRColBERT.from_pretrained(tmp_path / "m")
    assert back.answer_head is not None and back.answer_head.settings == model_with_head.answer_head.settings
    spans, answers = back.highlight_with_answers("how heavy", DOCS[0])
    assert (spans, answers) == model_with_head.highlight_with_answers("how heavy", DOCS[0])
    assert answers and all(isinstance(a, Span) for a in answers)


def test_head_for_other_vectors_is_refused(tmp_path, model_with_head):
    model_with_head.save_pretrained(tmp_path / "m")
    other = AnswerHead(dim=model_with_head.dim + 1, hidden=16, layers=1, heads=2)
    other.save(tmp_path / "m" / "answer_head.safetensors")
    with pytest.raises(ModelLoadError, match="reads"):
        FGRColBERT.from_pretrained(tmp_path / "m")


def test_highlight_with_answers_input_checks(model_with_head):
    with pytest.raises(InvalidInputError):
        model_with_head.highlight_with_answers("", "text")
    with pytest.raises(InvalidInputError):
        model_with_head.highlight_with_answers("q", ["a list"])
    assert model_with_head.highlight_with_answers("q", "   ") == ([], [])
