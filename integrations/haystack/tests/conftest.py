"""Shared fixtures for the Haystack integration tests: tiny saved models (fast) and a few documents."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket

import pytest

# set before haystack is imported: it reads them at import time (telemetry posts to PostHog
# from a background thread; tests send nothing anywhere)
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from haystack import Document  # noqa: E402


@pytest.fixture(autouse=True)
def _block_network(monkeypatch):
    """Nothing here may reach the network: every socket connection fails loudly."""

    def refuse(*args, **kwargs):
        raise RuntimeError("network access is blocked in the Haystack integration tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP threads waiting
    for each other make every encode several times slower; restored after each test so other test
    folders in the same run keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A tiny random model saved to disk: components name models by path, so it must be loadable by one."""
    from fgr_retriever.testing import tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_model().save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> str:
    """A second tiny model with different vectors (another config), for model/index mismatches."""
    from fgr_retriever.testing import tiny_model

    path = tmp_path_factory.mktemp("models") / "tiny-other"
    tiny_model(doc_maxlen=32).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def _pinned_tiny_model(tiny_model_dir):
    """Keeps the tiny model alive for the session, so the components' shared model cache reuses it."""
    from haystack_integrations.document_stores.fgr._models import load_model

    return load_model(tiny_model_dir)


@pytest.fixture
def make_store(tiny_model_dir, _pinned_tiny_model):
    """Factory for stores on the tiny model; keyword arguments go to FGRColBERTDocumentStore."""
    from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore

    def make(**kwargs):
        kwargs.setdefault("model", tiny_model_dir)
        return FGRColBERTDocumentStore(**kwargs)

    return make


@pytest.fixture
def make_qdrant_store(tiny_model_dir, _pinned_tiny_model):
    """Factory for Qdrant stores on the tiny model (qdrant-client's local mode; `location=":memory:"`
    unless url/path/location is given); every store made is closed afterwards, which frees a `path`."""
    pytest.importorskip("qdrant_client")
    from haystack_integrations.document_stores.fgr import FGRColBERTQdrantDocumentStore

    made = []

    def make(**kwargs):
        kwargs.setdefault("model", tiny_model_dir)
        if not {"url", "path", "location"} & set(kwargs):
            kwargs["location"] = ":memory:"
        made.append(FGRColBERTQdrantDocumentStore(**kwargs))
        return made[-1]

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store):
    return make_store()


@pytest.fixture
def shop_docs() -> list[Document]:
    return [
        Document(id="returns", content="Returns are accepted within 30 days of delivery, unworn and with tags.",
                 meta={"category": "policy", "year": 2024}),
        Document(id="silk", content="Silk scarves should be dry-cleaned only; never wring them.",
                 meta={"category": "care", "year": 2023}),
        Document(id="cashmere", content="Wash cashmere by hand in cold water and dry it flat.",
                 meta={"category": "care", "year": 2024}),
        Document(id="shipping", content="Standard shipping takes three to five working days in Europe.",
                 meta={"category": "policy", "year": 2022}),
    ]


@pytest.fixture
def filled_store(store, shop_docs):
    store.write_documents(shop_docs)
    return store


@pytest.fixture
def run_docstring_example():
    """Runs the ```python example of a class docstring and checks the output it shows (its ``# ...`` lines)."""

    def run(component_cls) -> None:
        block = re.search(r"```python\n(.*?)```", component_cls.__doc__, re.S).group(1)
        code = "\n".join(line[4:] for line in block.splitlines())
        expected = [line.strip()[2:] for line in code.splitlines() if line.strip().startswith("# ")]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"<{component_cls.__name__} docstring>", "exec"), {})
        assert out.getvalue().splitlines() == expected

    return run
