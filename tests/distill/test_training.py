"""Training data, losses, the trainer (checkpoints, resume, freezing), the train CLI and weight deltas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fgr_retriever import FGRColBERT
from fgr_retriever.cli import main
from fgr_retriever.distill.training import Trainer, TrainingConfig, _collate, evidence_sentences, token_labels
from fgr_retriever.distill.training_data import (
    TrainingExample,
    TrainingPassage,
    article_split,
    read_training_file,
    shared_data_examples,
)
from fgr_retriever.errors import InvalidInputError, ModelLoadError
from fgr_retriever.model.delta import apply_delta, make_delta, read_delta, write_delta
from fgr_retriever.testing import tiny_model as make_tiny_model

PASSAGES = [
    ("when was the bridge built", "The old stone bridge was built in 1742 by the town masons.", "1742"),
    ("who painted the chapel ceiling", "The chapel ceiling was painted by Anna Berg over three summers.", "Anna Berg"),
    ("what colour is the tower", "The tower is painted a deep green that fades in the sun.", "deep green"),
    ("how tall is the lighthouse", "At forty metres the lighthouse is the tallest on the coast.", "forty metres"),
]


def examples(with_negative_only: bool = True) -> list[TrainingExample]:
    out = []
    for query, text, answer in PASSAGES:
        start = text.index(answer)
        out.append(TrainingExample(query=query, positive=TrainingPassage(text=text, spans=((start, start + len(answer)),)),
                                   negatives=(TrainingPassage(text="Bread is baked every morning at dawn.", spans=None),)))
    if with_negative_only:
        out.append(TrainingExample(query="who owns the mill", rank=False,
                                   positive=TrainingPassage(text="The mill stands by the river.", spans=())))
    return out


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ------------------------------------------------------------------ labels and batches
def test_token_labels_use_character_overlap_and_never_mark_specials():
    offsets = torch.tensor([[-1, -1], [0, 3], [4, 9], [9, 10], [11, 15], [-1, -1]])
    labels = token_labels(offsets, [(5, 9)])
    assert labels.tolist() == [0, 0, 1, 0, 0, 0]
    # touching is not overlapping; two spans are both honoured
    assert token_labels(offsets, [(3, 4), (10, 12)]).tolist() == [0, 0, 0, 0, 1, 0]
    assert token_labels(offsets, []).sum() == 0


def test_collate_excludes_the_same_paragraph_and_other_gold_paragraphs_from_negatives():
    shared = TrainingPassage(text="Shared paragraph.", spans=((0, 6),))
    other_gold = TrainingPassage(text="Second gold paragraph.", spans=((0, 6),))
    batch = _collate([
        TrainingExample(query="a", positive=shared, also_relevant=frozenset({other_gold.text})),
        TrainingExample(query="b", positive=shared),
        TrainingExample(query="c", positive=other_gold, rank=True),
        TrainingExample(query="d", positive=TrainingPassage(text="Nothing.", spans=()), rank=False),
    ], max_negatives=1)
    assert batch.positive_column == [0, 1, 2, 3]
    assert batch.rank_rows == [0, 1, 2]
    assert batch.excluded[0] == [1, 2]  # the duplicate paragraph and the other gold paragraph
    assert batch.excluded[1] == [0]
    assert batch.excluded[2] == []


# ------------------------------------------------------------------ training files
def test_read_training_file_accepts_labels_negatives_and_teacher_scores(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [
        {"query": "q", "passage": "Ada wrote it.", "spans": [[0, 3]],
         "negatives": [{"passage": "Other text."}, {"passage": "No answer here.", "spans": []}],
         "teacher_scores": [3.0, 1.0, 0.5]},
        {"query": "q2", "passage": "Nothing relevant.", "spans": []},
    ])
    first, second = read_training_file(path)
    assert first.rank and first.positive.spans == ((0, 3),)
    assert first.negatives[0].spans is None and first.negatives[1].spans == ()
    assert first.teacher_scores == (3.0, 1.0, 0.5)
    assert not second.rank and second.positive.spans == ()


@pytest.mark.parametrize("record, message", [
    ({"query": "q", "passage": "abc", "spans": [[0, 9]]}, "bad span"),
    ({"query": "q", "passage": "abc"}, "'spans' is required"),
    ({"query": "", "passage": "abc", "spans": []}, "non-empty"),
    ({"query": "q", "passage": "abc", "spans": [[0, 1]], "teacher_scores": [1.0, 2.0]}, "one number per passage"),
    ({"query": "q", "passage": "abc", "spans": [], "negatives": ["x"]}, r"negatives\[0\]"),
])
def test_read_training_file_rejects_bad_records_with_the_line(tmp_path, record, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [record])
    with pytest.raises(InvalidInputError, match=message) as info:
        read_training_file(path)
    assert "bad.jsonl:1" in str(info.value)


def test_read_training_file_rejects_non_utf8_and_missing_files(tmp_path):
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"query": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match="not UTF-8"):
        read_training_file(bad)
    with pytest.raises(InvalidInputError, match="does not exist"):
        read_training_file(tmp_path / "missing.jsonl")


def test_article_split_is_stable_and_roughly_one_in_five():
    titles = [f"Article {i}" for i in range(2000)]
    dev = sum(article_split(t) == "dev" for t in titles)
    assert 300 < dev < 500
    assert [article_split(t) for t in titles[:50]] == [article_split(t) for t in titles[:50]]


def test_shared_data_splits_do_not_share_articles_or_questions(shared_data):
    train = shared_data_examples(shared_data, split="train", sources=("squad-v1.1", "nq", "hotpotqa"))
    dev = shared_data_examples(shared_data, split="dev", sources=("squad-v1.1", "nq", "hotpotqa"))
    assert train and dev
    # SQuAD and NQ split by article: no paragraph on both sides
    for source in ("squad-v1.1", "nq-open-oracle"):
        train_passages = {ex.positive.text for ex in train if ex.source == source}
        dev_passages = {ex.positive.text for ex in dev if ex.source == source}
        assert train_passages and dev_passages and not train_passages & dev_passages
    # HotpotQA splits by question (paragraphs recur across questions)
    assert not {ex.query for ex in train} & {ex.query for ex in dev}
    hotpot = [ex for ex in train if ex.source == "hotpotqa"]
    # every HotpotQA distractor negative is labelled "no evidence"
    assert hotpot and all(neg.spans == () for ex in hotpot for neg in ex.negatives)


# ------------------------------------------------------------------ trainer
def test_training_lowers_the_loss_and_only_touches_unfrozen_layers(tmp_path):
    model = make_tiny_model()
    frozen_before = model.encoder.encoder.layer[0].attention.self.query.weight.detach().clone()
    top_before = model.encoder.encoder.layer[1].attention.self.query.weight.detach().clone()
    config = TrainingConfig(steps=30, batch_size=5, lr=3e-3, head_lr=3e-2, freeze_layers=1, warmup_ratio=0.0,
                            save_every=100, train_doc_maxlen=24)
    Trainer(model=model, examples=examples(), config=config, output_dir=tmp_path / "run",
            show_progress_bar=False).train()
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    assert len(log) == 30
    first = sum(r["rank_loss"] + r["token_loss"] for r in log[:5])
    last = sum(r["rank_loss"] + r["token_loss"] for r in log[-5:])
    assert last < first
    assert torch.equal(model.encoder.encoder.layer[0].attention.self.query.weight, frozen_before)
    assert not torch.equal(model.encoder.encoder.layer[1].attention.self.query.weight, top_before)
    reloaded = FGRColBERT.from_pretrained(tmp_path / "run" / "final")
    assert reloaded.fingerprint() == model.fingerprint()
    saved = json.loads((tmp_path / "run" / "training_config.json").read_text())
    assert saved["freeze_layers"] == 1 and saved["steps"] == 30


def test_lambda_zero_leaves_the_head_and_lambda_one_trains_it(tmp_path):
    model = make_tiny_model()
    Trainer(model=model, examples=examples(), config=TrainingConfig(steps=3, batch_size=5, token_loss_weight=0.0),
            output_dir=tmp_path / "a", show_progress_bar=False).train()
    assert model.relevance.scale.item() == 8.0 and model.relevance.bias.item() == -2.0
    model = make_tiny_model()
    Trainer(model=model, examples=examples(), config=TrainingConfig(steps=3, batch_size=5, token_loss_weight=1.0),
            output_dir=tmp_path / "b", show_progress_bar=False).train()
    assert model.relevance.bias.item() != -2.0
    log = [json.loads(line) for line in (tmp_path / "b" / "training_log.jsonl").read_text().splitlines()]
    assert all("rank_loss" not in r and "token_loss" in r for r in log)


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    config = TrainingConfig(steps=4, batch_size=2, save_every=2, lr=1e-3, seed=3)
    straight = make_tiny_model()
    Trainer(model=straight, examples=examples(), config=config, output_dir=tmp_path / "straight",
            show_progress_bar=False).train()

    interrupted = make_tiny_model()
    first_half = TrainingConfig(**{**config.to_dict(), "steps": 4})
    trainer = Trainer(model=interrupted, examples=examples(), config=first_half, output_dir=tmp_path / "resumed",
                      show_progress_bar=False)
    # stop after the step-2 checkpoint, as if the process had died
    original = trainer._checkpoint

    def stop_after_checkpoint():
        original()
        raise KeyboardInterrupt

    trainer._checkpoint = stop_after_checkpoint
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    resumed = make_tiny_model()
    Trainer(model=resumed, examples=examples(), config=config, output_dir=tmp_path / "resumed",
            show_progress_bar=False).train(resume=True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name
    log = (tmp_path / "resumed" / "training_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2, 3, 4]


def test_resume_refuses_a_different_configuration_and_fresh_runs_refuse_used_dirs(tmp_path):
    config = TrainingConfig(steps=2, batch_size=2, save_every=1)
    Trainer(model=make_tiny_model(), examples=examples(), config=config, output_dir=tmp_path / "run",
            show_progress_bar=False).train()
    with pytest.raises(InvalidInputError, match="not empty"):
        Trainer(model=make_tiny_model(), examples=examples(), config=config, output_dir=tmp_path / "run",
                show_progress_bar=False).train()
    other = TrainingConfig(steps=2, batch_size=2, save_every=1, lr=1e-4)
    with pytest.raises(InvalidInputError, match="different configuration"):
        Trainer(model=make_tiny_model(), examples=examples(), config=other, output_dir=tmp_path / "run",
                show_progress_bar=False).train(resume=True)
    with pytest.raises(InvalidInputError, match="nothing to resume"):
        Trainer(model=make_tiny_model(), examples=examples(), config=config, output_dir=tmp_path / "empty",
                show_progress_bar=False).train(resume=True)


def test_teacher_scores_add_a_kl_term(tmp_path):
    data = [TrainingExample(query=ex.query, positive=ex.positive, negatives=ex.negatives, teacher_scores=(5.0, 0.0))
            for ex in examples(with_negative_only=False)]
    Trainer(model=make_tiny_model(), examples=data, config=TrainingConfig(steps=2, batch_size=4),
            output_dir=tmp_path / "kl", show_progress_bar=False).train()
    log = [json.loads(line) for line in (tmp_path / "kl" / "training_log.jsonl").read_text().splitlines()]
    assert all(r["kl_loss"] >= 0 for r in log)


def test_overrides_apply_to_config_and_head_but_not_shapes(tmp_path):
    model = make_tiny_model()
    Trainer(model=model, examples=examples(), output_dir=tmp_path / "o", show_progress_bar=False,
            config=TrainingConfig(steps=1, batch_size=2, model_overrides={"relevance_query_tokens": "all",
                                                                          "relevance_bias": -1.0}))
    assert model.config.relevance_query_tokens == "all"
    assert model.tokenizer.queries(["a b"]).relevance_mask.all()
    assert model.relevance.bias.item() == -1.0
    with pytest.raises(InvalidInputError, match="shapes"):
        Trainer(model=make_tiny_model(), examples=examples(), output_dir=tmp_path / "p", show_progress_bar=False,
                config=TrainingConfig(steps=1, model_overrides={"dim": 8}))


@pytest.mark.parametrize("options, message", [
    ({"token_loss_weight": 1.5}, "λ"),
    ({"steps": 0}, "at least 1"),
    ({"batch_size": 2, "grad_accumulation": 4}, "grad_accumulation"),
    ({"warmup_ratio": 1.0}, "warmup_ratio"),
    ({"sentence_loss_weight": -1.0}, "sentence_loss_weight"),
    ({"sentence_temperature": 0.0}, "sentence_temperature"),
    ({"token_target": "paragraph"}, "token_target"),
])
def test_training_config_validation(options, message):
    with pytest.raises(InvalidInputError, match=message):
        TrainingConfig(**options)


def test_token_only_data_needs_lambda_one(tmp_path):
    only_negatives = [ex for ex in examples() if not ex.rank]
    with pytest.raises(InvalidInputError, match="token_loss_weight=1"):
        Trainer(model=make_tiny_model(), examples=only_negatives, config=TrainingConfig(steps=1),
                output_dir=tmp_path / "x", show_progress_bar=False)


# ------------------------------------------------------------------ sentence evidence
SENTENCE_PASSAGES = [
    ("when was the bridge built", "The town has a river. The old stone bridge was built in 1742. Tourists like it.",
     "1742"),
    ("who painted the ceiling", "The chapel is small. Its ceiling was painted by Anna Berg. Mass is at nine.",
     "Anna Berg"),
    ("what colour is the tower", "The tower is painted deep green. It fades in the sun. Visits are free.",
     "deep green"),
    ("how tall is the lighthouse", "The coast is rocky. At forty metres the lighthouse is the tallest. Birds nest.",
     "forty metres"),
]


def sentence_examples() -> list[TrainingExample]:
    out = []
    for query, text, answer in SENTENCE_PASSAGES:
        start = text.index(answer)
        out.append(TrainingExample(query=query, positive=TrainingPassage(text=text, spans=((start, start + len(answer)),))))
    return out


def test_evidence_sentences_mark_the_sentences_that_hold_a_span():
    text = "The town has a river. The old stone bridge was built in 1742. Tourists like it."
    sentences, evidence = evidence_sentences(text, [(text.index("1742"), text.index("1742") + 4)])
    assert [text[s:e] for s, e in sentences] == ["The town has a river.", "The old stone bridge was built in 1742.",
                                                  "Tourists like it."]
    assert evidence == [False, True, False]
    assert evidence_sentences(text, [])[1] == [False, False, False]


def test_sentence_target_widens_token_labels_to_the_sentence(tmp_path):
    trainer = Trainer(model=make_tiny_model(), examples=sentence_examples(), show_progress_bar=False,
                      config=TrainingConfig(steps=1, token_target="sentence"), output_dir=tmp_path / "s")
    passage = sentence_examples()[0].positive
    (start, end), = trainer._label_spans(passage)
    assert passage.text[start:end] == "The old stone bridge was built in 1742."
    spans_only = Trainer(model=make_tiny_model(), examples=sentence_examples(), show_progress_bar=False,
                         config=TrainingConfig(steps=1), output_dir=tmp_path / "t")
    assert spans_only._label_spans(passage) == passage.spans


def test_sentence_loss_teaches_the_encoder_to_rank_evidence_sentences(tmp_path):
    model = make_tiny_model(evidence_unit="sentence")
    config = TrainingConfig(steps=40, batch_size=4, lr=3e-3, head_lr=3e-2, warmup_ratio=0.0, save_every=100,
                            train_doc_maxlen=24, sentence_loss_weight=1.0, token_loss_weight=0.2,
                            token_target="sentence")
    Trainer(model=model, examples=sentence_examples(), config=config, output_dir=tmp_path / "run",
            show_progress_bar=False).train()
    log = [json.loads(line) for line in (tmp_path / "run" / "training_log.jsonl").read_text().splitlines()]
    assert all("sentence_loss" in r and 0.0 <= r["sentence_top1"] <= 1.0 for r in log)
    assert sum(r["sentence_loss"] for r in log[-5:]) < sum(r["sentence_loss"] for r in log[:5])
    # what was learnt is what the decoder reads: the answer's sentence ranks first
    for query, text, answer in SENTENCE_PASSAGES:
        q = model.encode_queries(query)[0]
        enc = model.encode_documents(text)[0]
        units, probs = model.unit_probabilities(q, text, enc.vectors, enc.offsets)
        assert answer in text[slice(*units[int(probs.argmax())])]


def test_new_shared_sources_split_by_question_and_keep_negatives(shared_data):
    sources = ("squad-v1.1-train", "wikiqa", "selqa")
    train = shared_data_examples(shared_data, split="train", sources=sources)
    dev = shared_data_examples(shared_data, split="dev", sources=sources)
    assert {ex.source for ex in train} == {"squad-v1.1-train", "wikiqa", "selqa"}
    assert not any(ex.source == "squad-v1.1-train" for ex in dev)  # its dev side is another file
    for source in ("wikiqa", "selqa"):
        assert not {ex.query for ex in train if ex.source == source} & {ex.query for ex in dev if ex.source == source}
    unanswered = [ex for ex in train if ex.source == "wikiqa" and not ex.rank]
    assert unanswered and all(ex.positive.spans == () for ex in unanswered)


# ------------------------------------------------------------------ CLI
def test_train_cli_end_to_end(tmp_path, capsys):
    base = make_tiny_model().save_pretrained(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", [
        {"query": q, "passage": t, "spans": [[t.index(a), t.index(a) + len(a)]]} for q, t, a in PASSAGES])
    code = main(["train", "--base", str(base), "--train-file", str(data), "--out", str(tmp_path / "run"),
                 "--steps", "2", "--batch-size", "2", "--override", "relevance_query_tokens=all", "--quiet"])
    assert code == 0
    assert "trained model:" in capsys.readouterr().out
    trained = FGRColBERT.from_pretrained(tmp_path / "run" / "final")
    assert trained.config.relevance_query_tokens == "all"
    assert len((tmp_path / "run" / "training_log.jsonl").read_text().splitlines()) == 2
    assert main(["train", "--out", str(tmp_path / "x")]) == 1
    assert "no training data" in capsys.readouterr().err
    code = main(["train", "--base", str(base), "--train-file", str(data), "--out", str(tmp_path / "run2"),
                 "--steps", "1", "--batch-size", "2", "--mu", "1.0", "--token-target", "sentence",
                 "--sentence-temperature", "0.1", "--quiet"])
    assert code == 0
    saved = json.loads((tmp_path / "run2" / "training_config.json").read_text())
    assert (saved["sentence_loss_weight"], saved["token_target"], saved["sentence_temperature"]) == (1.0, "sentence", 0.1)


# ------------------------------------------------------------------ weight deltas
def test_delta_round_trip_restores_the_trained_weights(tmp_path):
    reference = make_tiny_model()
    trained = make_tiny_model()
    with torch.no_grad():
        trained.encoder.encoder.layer[1].output.dense.weight.add_(0.01)
        trained.relevance.bias.fill_(-3.25)
    delta = make_delta(trained.state_dict(), reference.state_dict())
    assert set(delta) == {"encoder.encoder.layer.1.output.dense.weight", "relevance.bias"}
    assert delta["encoder.encoder.layer.1.output.dense.weight"].dtype == torch.float16
    digest = write_delta(delta, tmp_path / "delta.safetensors", metadata={"base": "tiny"})
    rebuilt = make_tiny_model()
    apply_delta(rebuilt, read_delta(tmp_path / "delta.safetensors", sha256=digest))
    assert torch.allclose(rebuilt.encoder.encoder.layer[1].output.dense.weight,
                          trained.encoder.encoder.layer[1].output.dense.weight, atol=1e-5)
    assert rebuilt.relevance.bias.item() == -3.25


def test_delta_refuses_damage_and_mismatches(tmp_path):
    delta = {"encoder.encoder.layer.1.output.dense.weight": torch.zeros(3, 3, dtype=torch.float16)}
    digest = write_delta(delta, tmp_path / "d.safetensors", metadata={})
    with pytest.raises(ModelLoadError, match="shape"):
        apply_delta(make_tiny_model(), read_delta(tmp_path / "d.safetensors"))
    with pytest.raises(ModelLoadError, match="unknown tensors"):
        apply_delta(make_tiny_model(), {"nope.weight": torch.zeros(1)})
    (tmp_path / "d.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="damaged"):
        read_delta(tmp_path / "d.safetensors", sha256=digest)
    with pytest.raises(ModelLoadError, match="cannot read"):
        read_delta(tmp_path / "d.safetensors")
    with pytest.raises(ModelLoadError, match="missing"):
        read_delta(tmp_path / "absent.safetensors")
