"""The search server: JSON API through FastAPI's test client, and the page in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from fgr_retriever import FGRRetriever  # noqa: E402
from fgr_retriever.server import create_app  # noqa: E402

DOCS = [
    {"id": "care", "text": "Suede should be brushed with a crepe brush. Keep it away from rain.",
     "metadata": {"title": "Suede care", "category": "care"}},
    {"id": "returns", "text": "Returns are accepted within 30 days of delivery.",
     "metadata": {"title": "Returns", "category": "policy"}},
    {"id": "ship/fr", "text": "Orders ship from Orléans in 2 days.", "metadata": {"category": "policy"}},
]


@pytest.fixture
def client(tiny_model):
    retriever = FGRRetriever(model=tiny_model)
    retriever.add_documents([d["text"] for d in DOCS], ids=[d["id"] for d in DOCS],
                            metadata=[d["metadata"] for d in DOCS])
    return TestClient(create_app(retriever, title="Shop search"))


def test_search_returns_hits_with_spans_and_marked_html(client):
    body = client.get("/search", params={"q": "suede brush", "k": 2, "threshold": 0.01}).json()
    assert body["query"] == "suede brush" and len(body["results"]) == 2
    first = body["results"][0]
    assert {"id", "text", "score", "rank", "spans", "evidence", "metadata", "html"} <= set(first)
    assert first["spans"] and first["html"].count("<mark") == len(first["spans"])
    for span in first["spans"]:
        assert first["text"][span["start"]:span["end"]] == span["text"]


def test_search_filter_unit_and_errors(client):
    body = client.get("/search", params={"q": "days", "filter": json.dumps({"category": "policy"})}).json()
    assert {r["id"] for r in body["results"]} == {"returns", "ship/fr"}
    assert client.get("/search", params={"q": "x", "filter": "{bad"}).status_code == 422
    bad = client.get("/search", params={"q": "x", "unit": "paragraph"})
    assert bad.status_code == 422 and "paragraph" in bad.json()["detail"]
    assert client.get("/search", params={"q": "   "}).status_code == 422
    assert client.get("/search", params={"q": "x", "k": 0}).status_code == 422


def test_highlight_documents_health_page_and_openapi(client):
    h = client.post("/highlight", json={"query": "rain", "text": "Keep it away from rain. It stains.",
                                        "threshold": 0.01}).json()
    assert h["unit"] in ("sentence", "clause", "word") and h["spans"] and "<mark" in h["html"]
    doc = client.get("/documents/ship/fr").json()  # ids may hold slashes
    assert doc == {"id": "ship/fr", "text": DOCS[2]["text"], "metadata": DOCS[2]["metadata"]}
    missing = client.get("/documents/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.get("/healthz").json() == {"ok": True, "documents": 3}
    page = client.get("/")
    assert page.status_code == 200 and "<title>Shop search</title>" in page.text and "/search?" in page.text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/highlight", "/documents/{doc_id}"} <= set(paths)


def _with_answer_head(model):
    """A random answer head that always answers (threshold 0): plumbing, not quality."""
    import torch

    from fgr_retriever.evidence.answer import AnswerHead

    torch.manual_seed(0)
    model.answer_head = AnswerHead(dim=model.dim, hidden=16, layers=1, heads=2, threshold=0.0).eval()
    return model


def test_answers_are_served_and_marked_inside_the_evidence():
    from fgr_retriever.testing import tiny_model

    retriever = FGRRetriever(model=_with_answer_head(tiny_model(evidence_unit="sentence", sentence_threshold=0.0)))
    retriever.add_documents([d["text"] for d in DOCS], ids=[d["id"] for d in DOCS])
    client = TestClient(create_app(retriever))
    first = client.get("/search", params={"q": "suede brush", "k": 1}).json()["results"][0]
    assert first["answers"] and first["html"].count('<mark class="answer"') == len(first["answers"])
    for answer in first["answers"]:
        assert first["text"][answer["start"]:answer["end"]] == answer["text"]
        assert any(s["start"] <= answer["start"] and answer["end"] <= s["end"] for s in first["spans"])
    h = client.post("/highlight", json={"query": "rain", "text": "Keep it away from rain. It stains."}).json()
    assert h["answers"] and '<mark class="answer"' in h["html"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """``fgr-retriever serve`` in a subprocess, on a free local port, over a tiny model's index."""
    from fgr_retriever.testing import tiny_model

    tmp = tmp_path_factory.mktemp("live")
    model = _with_answer_head(tiny_model(evidence_unit="sentence", sentence_threshold=0.0))
    retriever = FGRRetriever(model=model)
    retriever.add_documents([d["text"] for d in DOCS], ids=[d["id"] for d in DOCS],
                            metadata=[d["metadata"] for d in DOCS])
    retriever.save(tmp / "idx")
    model_dir = model.save_pretrained(tmp / "model")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "fgr_retriever.cli", "serve", str(tmp / "idx"), "--port",
                               str(port), "--model", str(model_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("the server exited: " + server.stdout.read())
                time.sleep(0.5)
        else:
            pytest.fail("the server did not start listening")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_cli_search_asks_a_running_server(live_server, monkeypatch, capsys):
    monkeypatch.undo()  # a real local socket
    from fgr_retriever import cli

    assert cli.main(["search", live_server, "suede brush", "-k", "2", "--json", "--threshold", "0.01"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and hits[0]["spans"] and hits[0]["answers"]  # the saved model's answer head came along
    assert cli.main(["search", live_server, "days", "--json", "--filter", '{"category": "policy"}']) == 0
    assert {h["id"] for h in json.loads(capsys.readouterr().out)} == {"returns", "ship/fr"}
    assert cli.main(["search", live_server, "x", "--threshold", "2"]) == 1
    assert "the server refused the search (422)" in capsys.readouterr().err


@pytest.mark.integration
def test_the_page_in_a_real_browser(live_server, tmp_path, monkeypatch):
    """Headless Chromium loads the page, which queries the API; the rendered DOM must hold the
    evidence <mark> and, inside it, the answer's <mark class="answer">."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here: install it (apt-get install chromium) to run the browser test")
    monkeypatch.undo()
    url = f"{live_server}/?q=suede+brush"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    shot = tmp_path / "search-page.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1000,800", url],
                   capture_output=True, text=True, timeout=120)
    assert 'class="hit"' in dom, dom[-2000:]
    assert "<mark>" in dom  # the evidence, highlighted by the page from the API's spans
    assert re.search(r'<mark>[^<]*<mark class="answer">[^<]+</mark>', dom), dom[-2000:]  # the answer inside it
    assert shot.exists() and shot.stat().st_size > 5000  # a rendered page, kept in the test's tmp_path
    # the ranking mode travels in the link: BM25 alone finds only the document with the word
    dom = subprocess.run([*common, "--dump-dom", f"{live_server}/?q=Orl%C3%A9ans&mode=lexical"],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count('class="hit"') == 1 and "ship/fr" in dom, dom[-2000:]


def test_search_modes(client):
    page = client.get("/").text
    assert '<select name="mode"' in page and 'params.set("mode", mode)' in page
    body = client.get("/search", params={"q": "Orléans", "mode": "lexical"}).json()
    assert [r["id"] for r in body["results"]] == ["ship/fr"]
    hybrid = client.get("/search", params={"q": "crepe brush", "mode": "hybrid", "fusion": "rrf", "k": 3}).json()
    assert len(hybrid["results"]) == 3
    bad = client.get("/search", params={"q": "x", "mode": "bm25"})
    assert bad.status_code == 422 and "mode" in bad.json()["detail"]
