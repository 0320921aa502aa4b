"""Teacher labelling with LangChain's fake chat models: parsing, retries, tiers, resume, CLI."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.chat_models import BaseChatModel  # noqa: E402
from langchain_core.language_models.fake_chat_models import FakeListChatModel  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402

from fgr_retriever import cli  # noqa: E402
from fgr_retriever.distill import labeling  # noqa: E402
from fgr_retriever.distill.labeling import (  # noqa: E402
    LabelingError,
    ResponseFormatError,
    TeacherLabeler,
    parse_spans_response,
)
from fgr_retriever.errors import InvalidInputError, MissingDependencyError  # noqa: E402

PASSAGE = "Marie Curie discovered polonium and radium in 1898. She won the Nobel Prize in Physics in 1903."


class ScriptedChatModel(BaseChatModel):
    """A fake chat model that answers from the passage it is shown and records every call.

    ``answers`` maps a passage to the list of replies given on successive calls for it (the last
    one repeats); a reply that is an Exception instance is raised. ``delay`` makes calls overlap.
    """

    answers: dict[str, list[Any]] = {}
    delay: float = 0.0
    calls: list[list[tuple[str, str]]] = []
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _reply(self, messages: list[BaseMessage]):
        human = messages[1].content
        passage = human.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
        seen = sum(1 for c in self.calls if c[1][1] == human)
        self.calls.append([(m.type, m.content) for m in messages])
        script = self.answers[passage]
        reply = script[min(seen, len(script) - 1)]
        if isinstance(reply, Exception):
            raise reply
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        return self._reply(messages)

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay * random.random())
            return self._reply(messages)
        finally:
            self.in_flight -= 1


def fake_list(*responses: str) -> FakeListChatModel:
    return FakeListChatModel(responses=list(responses))


def make_labeler(model, **kwargs) -> TeacherLabeler:
    kwargs.setdefault("retry_backoff", 0)
    kwargs.setdefault("show_progress", False)
    return TeacherLabeler(model=model, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pair(i: Any = "p1", passage: str = PASSAGE, query: str = "What did Marie Curie discover?", **extra):
    return {"id": i, "query": query, "passage": passage, **extra}


# ------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize("reply, expected", [
    ('{"spans": ["polonium", "radium"]}', ["polonium", "radium"]),
    ('```json\n{"spans": ["in 1898"]}\n```', ["in 1898"]),
    ('Here is the answer:\n```\n{"spans": ["a"]}\n```\nHope it helps.', ["a"]),
    ('Sure! The evidence is {"spans": ["x y"]} as requested.', ["x y"]),
    ('<think>maybe {"spans": ["wrong"]}</think>{"spans": ["right"]}', ["right"]),
    ('{"spans": []}', []),
    ('{"spans": ["", "  ", "kept"]}', ["kept"]),
    ('{"Spans": "single"}', ["single"]),
    ('{"spans": [{"text": "dict item"}, 1898]}', ["dict item", "1898"]),
    ('["bare", "list"]', ["bare", "list"]),
])
def test_parse_spans_response_accepts_common_shapes(reply, expected):
    assert parse_spans_response(reply) == expected


@pytest.mark.parametrize("reply", [
    "", "I think the answer is polonium.", '{"spans": ["unterminated}', '{"answer": "x"}',
    "See [1] and [2].", '{"spans": null}', '{"spans": [["nested"]]}',
])
def test_parse_spans_response_rejects_malformed(reply):
    with pytest.raises(ResponseFormatError):
        parse_spans_response(reply)


# --------------------------------------------------------------------------- one pair
def test_good_json_exact_spans_record(tmp_path):
    model = fake_list('{"spans": ["polonium and radium", "in 1898"]}')
    out = tmp_path / "teacher.jsonl"
    stats = make_labeler(model).label([pair(title="Curie")], out)
    (rec,) = read_jsonl(out)
    assert rec["spans"] == [[23, 42], [43, 50]]
    assert rec["span_texts"] == ["polonium and radium", "in 1898"]
    assert all(PASSAGE[s:e] == t for (s, e), t in zip(rec["spans"], rec["span_texts"]))
    assert rec["source"] == "llm:fake-list-chat-model"
    assert rec["title"] == "Curie"  # extra input fields ride along
    assert rec["teacher"]["raw_spans"] == ["polonium and radium", "in 1898"]
    assert rec["teacher"]["tiers"] == ["exact", "exact"] and rec["teacher"]["attempts"] == 1
    assert (stats.labelled, stats.failed, stats.no_evidence, stats.tiers["exact"]) == (1, 0, 0, 2)


def test_code_fenced_json_with_prose():
    model = fake_list('Sure, here you go:\n```json\n{"spans": ["Nobel Prize in Physics"]}\n```')
    label = make_labeler(model).label_pair("Which prize?", PASSAGE)
    assert label.span_texts == ["Nobel Prize in Physics"] and label.attempts == 1


def test_malformed_then_good_retries_with_feedback():
    model = ScriptedChatModel(answers={PASSAGE: ["polonium, I think", '{"spans": ["polonium"]}']})
    label = make_labeler(model, max_retries=2).label_pair("q?", PASSAGE)
    assert label.span_texts == ["polonium"] and label.attempts == 2
    second = model.calls[1]
    # the retry shows the model its unreadable reply and asks for JSON again
    assert second[2] == ("ai", "polonium, I think")
    assert second[3][0] == "human" and '{"spans"' in second[3][1]


def test_always_malformed_records_failure_without_crashing(tmp_path):
    bad = ScriptedChatModel(answers={"bad passage": ["no json here"], PASSAGE: ['{"spans": ["radium"]}']})
    out = tmp_path / "t.jsonl"
    stats = make_labeler(bad, max_retries=2).label([pair("bad", "bad passage"), pair("good")], out)
    assert stats.failed == 1 and stats.labelled == 1 and stats.retries == 2
    assert "bad" in stats.failures and "unreadable" in stats.failures["bad"]
    assert [r["id"] for r in read_jsonl(out)] == ["good"]  # failures are not written
    assert sum(1 for c in bad.calls if "bad passage" in c[1][1]) == 3  # 1 + max_retries


def test_retry_backoff_is_exponential(monkeypatch):
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr(labeling.asyncio, "sleep", fake_sleep)
    labeler = TeacherLabeler(model=fake_list("nope"), max_retries=3, retry_backoff=0.25, show_progress=False)
    with pytest.raises(LabelingError, match="unreadable"):
        labeler.label_pair("q", PASSAGE)
    assert slept == [0.25, 0.5, 1.0]


def test_model_exception_is_retried_then_succeeds():
    model = ScriptedChatModel(answers={PASSAGE: [TimeoutError("slow"), '{"spans": ["1903"]}']})
    label = make_labeler(model, max_retries=1).label_pair("when?", PASSAGE)
    assert label.span_texts == ["1903"] and label.attempts == 2


def test_persistent_model_errors_abort_the_run(tmp_path):
    model = ScriptedChatModel(answers={f"passage {i}": [ConnectionError("401 bad key")] for i in range(6)})
    labeler = make_labeler(model, max_retries=0, max_consecutive_errors=3, concurrency=1)
    with pytest.raises(LabelingError, match="3 pairs in a row.*401 bad key"):
        labeler.label([pair(i, f"passage {i}") for i in range(6)], tmp_path / "o.jsonl")
    assert len(model.calls) < 6


def test_invented_spans_dropped_and_counted(tmp_path):
    model = fake_list('{"spans": ["polonium", "uranium and thorium", "in the year 1898 exactly"]}')
    stats = make_labeler(model).label([pair()], tmp_path / "o.jsonl")
    (rec,) = read_jsonl(tmp_path / "o.jsonl")
    assert rec["span_texts"] == ["polonium"]
    assert rec["teacher"]["dropped"] == ["uranium and thorium", "in the year 1898 exactly"]
    assert rec["teacher"]["tiers"] == ["exact", None, None]
    assert stats.dropped_spans == 2 and stats.labelled == 1


def test_only_invented_spans_is_a_failure_not_no_evidence(tmp_path):
    model = ScriptedChatModel(answers={PASSAGE: ['{"spans": ["Albert Einstein"]}']})
    stats = make_labeler(model, max_retries=1).label([pair()], tmp_path / "o.jsonl")
    assert stats.failed == 1 and stats.labelled == 0 and stats.no_evidence == 0
    assert stats.dropped_spans == 1
    assert read_jsonl(tmp_path / "o.jsonl") == []  # never written as spans == []
    # the retry tells the model which pieces it made up
    assert model.calls[1][-1][0] == "human" and "None of these pieces occur" in model.calls[1][-1][1]
    assert "Albert Einstein" in model.calls[1][-1][1]


def test_case_changed_and_requoted_spans_use_normalized_tier():
    passage = "The “Big Apple” is NEW YORK CITY’s nickname."
    model = fake_list('{"spans": ["\\"big apple\\"", "New York City\'s  nickname"]}')
    label = make_labeler(model).label_pair("nickname?", passage)
    assert label.location.tier_counts == {"exact": 0, "normalized": 2, "fuzzy": 0}
    assert label.span_texts == ["“Big Apple”", "NEW YORK CITY’s nickname"]


def test_typos_use_fuzzy_tier(tmp_path):
    model = fake_list('{"spans": ["won the Nobel Prise in Physics"]}')
    stats = make_labeler(model).label([pair()], tmp_path / "o.jsonl")
    (rec,) = read_jsonl(tmp_path / "o.jsonl")
    assert rec["span_texts"] == ["won the Nobel Prize in Physics"]
    assert rec["teacher"]["tiers"] == ["fuzzy"] and stats.tiers["fuzzy"] == 1


def test_empty_list_is_a_no_evidence_label(tmp_path):
    stats = make_labeler(fake_list('{"spans": []}')).label([pair()], tmp_path / "o.jsonl")
    (rec,) = read_jsonl(tmp_path / "o.jsonl")
    assert rec["spans"] == [] and rec["span_texts"] == []
    assert (stats.labelled, stats.no_evidence, stats.failed) == (1, 1, 0)


# ----------------------------------------------------------------------- files, resume
def write_pairs(path: Path, n: int) -> list[dict]:
    pairs = [pair(f"q{i}", f"Passage number {i} says the answer is {i * 7}.", f"question {i}") for i in range(n)]
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for p in pairs:
            fh.write(json.dumps(p) + "\n")
    return pairs


def answer_model(pairs: list[dict], **kwargs) -> ScriptedChatModel:
    return ScriptedChatModel(answers={p["passage"]: [json.dumps({"spans": [p["passage"].split()[-1][:-1]]})]
                                      for p in pairs}, **kwargs)


def test_resume_after_partial_file_with_truncated_last_line(tmp_path):
    src = tmp_path / "pairs.jsonl.gz"
    pairs = write_pairs(src, 4)
    out = tmp_path / "teacher.jsonl"
    first = answer_model(pairs)
    make_labeler(first).label(src, out, limit=2)
    done = out.read_text(encoding="utf-8")
    assert len(done.splitlines()) == 2
    # simulate a crash in the middle of writing the third record
    out.write_text(done + '{"id": "q2", "query": "question 2", "passa', encoding="utf-8")

    model = answer_model(pairs)
    stats = make_labeler(model).label(src, out)
    assert stats.skipped == 2 and stats.labelled == 2
    assert len(model.calls) == 2  # only the missing pairs were sent to the model
    records = read_jsonl(out)  # every line parses: the partial line was removed
    assert sorted(r["id"] for r in records) == ["q0", "q1", "q2", "q3"]
    for r in records:
        (s, e), = r["spans"]
        assert r["passage"][s:e] == r["span_texts"][0] == str(int(r["id"][1:]) * 7)

    # a third run has nothing left to do
    again = answer_model(pairs)
    assert make_labeler(again).label(src, out).skipped == 4 and again.calls == []


def test_resume_keeps_complete_last_line_without_newline(tmp_path):
    pairs = [pair("a"), pair("b")]
    out = tmp_path / "o.jsonl"
    make_labeler(fake_list('{"spans": ["radium"]}')).label(pairs[:1], out)
    out.write_text(out.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    stats = make_labeler(fake_list('{"spans": ["radium"]}')).label(pairs, out)
    assert stats.skipped == 1 and stats.labelled == 1
    assert [r["id"] for r in read_jsonl(out)] == ["a", "b"]


def test_corrupt_line_in_the_middle_is_reported(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_text('{"id": "a"}\nnot json\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match=":2:"):
        make_labeler(fake_list('{"spans": []}')).label([pair("c")], out)


def test_input_validation(tmp_path):
    labeler = make_labeler(fake_list('{"spans": []}'))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "query": "q"}) + "\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"bad.jsonl:1: missing field\(s\) passage"):
        labeler.label(bad, tmp_path / "o.jsonl")
    with pytest.raises(InvalidInputError, match="plain .jsonl"):
        labeler.label([pair()], tmp_path / "o.jsonl.gz")
    with pytest.raises(InvalidInputError, match="not found"):
        labeler.label(tmp_path / "missing.jsonl", tmp_path / "o.jsonl")
    with pytest.raises(InvalidInputError):
        TeacherLabeler(model=object())
    with pytest.raises(InvalidInputError):
        TeacherLabeler(model=fake_list("x"), concurrency=0)


def test_duplicate_input_ids_labelled_once(tmp_path):
    model = fake_list('{"spans": ["radium"]}')
    stats = make_labeler(model).label([pair("a"), pair("a"), pair("b")], tmp_path / "o.jsonl")
    assert stats.labelled == 2 and stats.skipped == 1


def test_line_separators_are_escaped(tmp_path):
    passage = "first\u2028second\x85third answer"
    make_labeler(fake_list('{"spans": ["answer"]}')).label([pair("u", passage)], tmp_path / "o.jsonl")
    text = (tmp_path / "o.jsonl").read_text(encoding="utf-8")
    assert len(text.splitlines()) == 1 and "\\u2028" in text
    (rec,) = read_jsonl(tmp_path / "o.jsonl")
    assert rec["passage"] == passage and rec["passage"][slice(*rec["spans"][0])] == "answer"


def test_concurrency_preserves_correctness(tmp_path):
    random.seed(3)
    pairs = [pair(f"q{i}", f"Item {i}: the code is {1000 + i} today.") for i in range(40)]
    model = ScriptedChatModel(answers={p["passage"]: [json.dumps({"spans": [f"code is {1000 + i}"]})]
                                       for i, p in enumerate(pairs)}, delay=0.01)
    stats = make_labeler(model, concurrency=6).label(pairs, tmp_path / "o.jsonl")
    assert stats.labelled == 40 and stats.failed == 0
    assert 1 < model.max_in_flight <= 6
    records = read_jsonl(tmp_path / "o.jsonl")
    assert sorted(r["id"] for r in records) == sorted(p["id"] for p in pairs)
    for r in records:
        assert r["span_texts"] == [f"code is {1000 + int(r['id'][1:])}"]
        assert r["passage"][slice(*r["spans"][0])] == r["span_texts"][0]


def test_sync_label_inside_running_event_loop(tmp_path):
    labeler = make_labeler(fake_list('{"spans": ["radium"]}'))

    async def notebook_cell():
        return labeler.label([pair()], tmp_path / "o.jsonl")

    assert asyncio.run(notebook_cell()).labelled == 1


# ------------------------------------------------------------------------ factories, CLI
def test_factories_report_missing_packages(monkeypatch):
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    with pytest.raises(MissingDependencyError, match="pip install langchain-openai"):
        labeling.openai_compatible("http://localhost:1/v1", "m")
    monkeypatch.setitem(sys.modules, "langchain", None)
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(MissingDependencyError, match="'langchain' package"):
        labeling.chat_model_from_spec("openai:gpt-4o-mini")
    monkeypatch.delenv("FGR_LABEL_MODEL", raising=False)
    with pytest.raises(InvalidInputError, match="FGR_LABEL_MODEL"):
        labeling.chat_model_from_env()


def test_cli_label_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    src = tmp_path / "pairs.jsonl.gz"
    pairs = write_pairs(src, 3)
    made = []

    def factory(spec, *, temperature):
        made.append((spec, temperature))
        model = answer_model(pairs)
        made.append(model)
        return model

    monkeypatch.setattr(labeling, "chat_model_from_spec", factory)
    out = tmp_path / "teacher.jsonl"
    argv = ["label", str(src), "--out", str(out), "--model", "fake:teacher", "--concurrency", "2", "--quiet"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "labelled 3 pairs (0 with no evidence), 0 failed" in printed
    assert made[0] == ("fake:teacher", 0.0)
    records = read_jsonl(out)
    assert {r["source"] for r in records} == {"llm:fake:teacher"}
    assert all(r["passage"][slice(*r["spans"][0])] == r["span_texts"][0] for r in records)

    assert cli.main(argv + ["--temperature", "0.3"]) == 0
    assert "0 failed, 3 skipped" in capsys.readouterr().out
    assert made[-1].calls == [] and made[-2] == ("fake:teacher", 0.3)


def test_cli_base_url_and_api_key_env(tmp_path, monkeypatch, capsys):
    src = tmp_path / "pairs.jsonl"
    pairs = write_pairs(src, 2)
    seen = {}

    def factory(base_url, model, api_key, *, temperature):
        seen.update(base_url=base_url, model=model, api_key=api_key)
        return answer_model(pairs)

    monkeypatch.setattr(labeling, "openai_compatible", factory)
    monkeypatch.setenv("MY_KEY", "sk-test")
    out = tmp_path / "o.jsonl"
    assert cli.main(["label", str(src), "--out", str(out), "--base-url", "http://localhost:8000/v1",
                     "--model-name", "qwen", "--api-key-env", "MY_KEY", "--limit", "1", "--quiet"]) == 0
    assert seen == {"base_url": "http://localhost:8000/v1", "model": "qwen", "api_key": "sk-test"}
    assert [r["source"] for r in read_jsonl(out)] == ["llm:qwen"]

    monkeypatch.delenv("MY_KEY")
    assert cli.main(["label", str(src), "--out", str(out), "--base-url", "http://x/v1", "--model-name", "qwen",
                     "--api-key-env", "MY_KEY", "--quiet"]) == 1
    assert "MY_KEY is not set" in capsys.readouterr().err
    assert cli.main(["label", str(tmp_path / "nope.jsonl"), "--out", str(out), "--model", "a:b"]) == 1
    assert "input file not found" in capsys.readouterr().err


def test_cli_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["label", "in.jsonl", "--out", str(tmp_path / "o.jsonl"), "--base-url", "http://x/v1"])
    assert exc.value.code == 2 and "--model-name" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["label", "in.jsonl", "--out", "o.jsonl"])  # neither --model nor --base-url
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["label", "in.jsonl", "--out", "o.jsonl", "--model", "a:b", "--concurrency", "0"])
    assert exc.value.code == 2


def test_cli_missing_langchain_core_is_a_friendly_error(tmp_path, monkeypatch, capsys):
    src = tmp_path / "in.jsonl"
    write_pairs(src, 1)
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    code = cli.main(["label", str(src), "--out", str(tmp_path / "o.jsonl"), "--model", "openai:gpt-4o-mini"])
    assert code == 1
    assert "pip install 'fgr-retriever[label]'" in capsys.readouterr().err


def test_package_imports_without_langchain():
    code = ("import sys\n"
            "for name in ('langchain', 'langchain_core', 'langchain_openai'): sys.modules[name] = None\n"
            "import fgr_retriever, fgr_retriever.distill.labeling, fgr_retriever.distill.span_location, fgr_retriever.cli.label\n"
            "from fgr_retriever import cli\n"
            "cli.build_parser()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
