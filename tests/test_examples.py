"""The RAG chatbot examples run offline: one-shot and interactive, extractive and with an LLM.

The one-shot runs use the real bundled model and the full demo knowledge base in a subprocess,
exactly as a user would start them. The LLM path is tested in-process with a fake chat model
(LangChain) and a fake chat generator component (Haystack): they check what the generator is
given (the cited evidence, not whole documents) and how its citations are mapped back.
"""

# no `from __future__ import annotations`: Haystack reads the fake component's run() annotations as
# real types when it connects sockets, and a component defined inside a test cannot resolve strings

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WATCH_QUESTION = "Is it okay to swim laps in the pool with my watch on?"
WATCH_DOCS = {"care-watch-water-resistance", "care-watch-leather-strap", "product-sablier-marin-40"}


def run_example(script: str, *args: str, stdin: str | None = None,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FGR_CHAT_", "OPENAI_"))}  # no LLM
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HAYSTACK_TELEMETRY_ENABLED="False", **extra)
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in (EXAMPLES / "knowledge_base.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    keep = [r for r in rows if r["id"] in WATCH_DOCS or r["id"].startswith("policy-")][:12]
    path = tmp_path_factory.mktemp("kb") / "kb.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
    return path


def examples_module(name: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.integration
@pytest.mark.parametrize("script", ["rag_chatbot_langchain.py", "rag_chatbot_haystack.py"])
def test_one_shot_answers_extractively_with_cited_evidence(script):
    proc = run_example(script, "--question", WATCH_QUESTION, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    turn = json.loads(proc.stdout.strip().splitlines()[-1])
    assert turn["generator"] == "extractive"
    assert turn["answer"].startswith("(No language model is configured")  # it says what it is doing
    ids = [s["id"] for s in turn["sources"]]
    assert "care-watch-water-resistance" in ids
    for source, label in zip(turn["sources"], ("[1]", "[2]", "[3]")):
        assert source["label"] == label and label in turn["answer"]
        assert source["evidence_spans"], "a quoted source has the span it quotes"


@pytest.mark.integration
@pytest.mark.parametrize("script", ["rag_chatbot_langchain.py", "rag_chatbot_haystack.py"])
def test_interactive_mode_answers_until_an_empty_line(script, small_kb):
    proc = run_example(script, "--kb", str(small_kb), "--color", "always",
                       stdin="Can I wear my watch in the pool?\n\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "you> " in proc.stdout and "answering extractively" in proc.stdout
    assert "No language model is configured" in proc.stdout
    assert "\x1b[" in proc.stdout  # highlighted evidence in terminal colours


def test_a_corrupt_knowledge_base_is_reported(tmp_path):
    bad = tmp_path / "kb.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{not json\n', encoding="utf-8")
    proc = run_example("rag_chatbot_langchain.py", "--kb", str(bad), "-q", "anything")
    assert proc.returncode != 0 and "kb.jsonl:2: not valid JSON" in proc.stderr


@pytest.mark.integration
def test_langchain_chain_gives_the_llm_cited_evidence(default_model, small_kb):
    from langchain_core.documents import Document
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_fgr import FGRColBERTRetriever

    bot = examples_module("rag_chatbot_langchain")
    shell = examples_module("chat_shell")
    rows = shell.read_knowledge_base(small_kb)
    retriever = FGRColBERTRetriever.from_documents(
        [Document(page_content=r["text"], id=r["id"], metadata={"title": r["title"]}) for r in rows],
        model=default_model, k=3)
    llm = FakeListChatModel(responses=["Only with the rubber strap [2]."])
    seen = []
    llm_spy = llm.with_listeners(on_start=lambda run: seen.append(run.inputs))
    out = bot.build_chain(retriever, llm_spy, max_tokens=200).invoke(WATCH_QUESTION)
    assert out["result"]["answer"] == "Only with the rubber strap [2]."
    [source] = out["result"]["sources"]  # only what the answer cites
    assert source.label == "[2]" and source.id in WATCH_DOCS
    prompt = json.dumps(seen[0], ensure_ascii=False)
    assert "Evidence:" in prompt and WATCH_QUESTION in prompt
    whole = sum(len(r["text"].split()) for r in rows if r["id"] in {d.id for d in out["documents"]})
    assert len(prompt.split()) < whole  # the evidence, not the whole documents


@pytest.mark.integration
def test_haystack_pipeline_gives_the_generator_cited_evidence(small_kb):
    from haystack import Document, component
    from haystack.dataclasses import ChatMessage
    from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

    bot = examples_module("rag_chatbot_haystack")
    shell = examples_module("chat_shell")

    @component
    class FakeChatGenerator:
        def __init__(self):
            self.prompts: list[str] = []

        @component.output_types(replies=list[ChatMessage])
        def run(self, messages: list[ChatMessage]):
            self.prompts.append(messages[-1].text)
            return {"replies": [ChatMessage.from_assistant("Rinse it after the sea [1].")]}

    store = FGRColBERTDocumentStore()
    store.write_documents([Document(id=r["id"], content=r["text"], meta={"title": r["title"]})
                           for r in shell.read_knowledge_base(small_kb)])
    fake = FakeChatGenerator()
    rag = bot.build_pipeline(store, fake, k=3, max_tokens=200)
    result = rag.run({"retriever": {"query": WATCH_QUESTION}, "prompt": {"query": WATCH_QUESTION}},
                     include_outputs_from={"retriever", "evidence"})
    turn = bot.to_turn(WATCH_QUESTION, result, "fake")
    assert turn.answer == "Rinse it after the sea [1]."
    assert [s.label for s in turn.sources] == ["[1]"]
    assert turn.sources[0].id == result["evidence"]["citations"][0]["id"]
    assert "[1]" in fake.prompts[0] and WATCH_QUESTION in fake.prompts[0]


@pytest.fixture(scope="module")
def saved_index(small_kb, tmp_path_factory) -> Path:
    from fgr_retriever.cli import main

    out = tmp_path_factory.mktemp("idx") / "kb-index"
    assert main(["index", str(small_kb), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.integration
@pytest.mark.parametrize("script", ["rag_chatbot_langchain.py", "rag_chatbot_haystack.py"])
def test_a_saved_index_is_opened_and_an_unreachable_llm_falls_back_to_quotes(script, saved_index):
    # an LLM is configured, but its server does not answer (nothing listens on port 9)
    proc = run_example(script, "--index", str(saved_index), "--question", WATCH_QUESTION, "--json",
                       env={"FGR_CHAT_MODEL": "some-model", "FGR_CHAT_BASE_URL": "http://127.0.0.1:9/v1",
                            "FGR_CHAT_API_KEY": "x"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: the LLM (some-model)")]
    assert len(warnings) == 1 and warnings[0].endswith("answering extractively")
    turn = json.loads(proc.stdout.strip().splitlines()[-1])
    assert turn["generator"] == "extractive"
    assert turn["answer"].startswith("(The language model did not answer")
    assert "care-watch-water-resistance" in [s["id"] for s in turn["sources"]]


def test_a_missing_index_is_reported(tmp_path):
    proc = run_example("rag_chatbot_langchain.py", "--index", str(tmp_path / "nope"), "-q", "anything")
    assert proc.returncode != 0 and "no fgr-retriever index at" in proc.stderr
