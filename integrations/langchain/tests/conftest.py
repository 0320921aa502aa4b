"""Fixtures of the LangChain integration tests: no network, a tiny seeded model, a small corpus."""

from __future__ import annotations

import inspect
import os

import pytest
from pytest_socket import disable_socket, enable_socket

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector, name, obj):
    """Run this folder's coroutine tests with pytest-asyncio (the project uses strict mode).

    LangChain's standard suite defines ``async def`` tests without the ``asyncio`` mark; marking
    them here, rather than the whole class, leaves its synchronous tests unmarked. ``trylast``
    puts this wrapper inside pytest-asyncio's, so the mark is in place when it looks for it.
    """
    outcome = yield
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if (isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj)
                and item.get_closest_marker("asyncio") is None):
            item.add_marker(pytest.mark.asyncio)


@pytest.fixture(autouse=True)
def _no_network():
    """Every test runs with internet sockets refused (unix sockets stay: asyncio needs them)."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture(scope="session")
def tiny_model():
    """A 2-layer random FGRColBERT: fast and deterministic; its rankings mean nothing."""
    from fgr_retriever.testing import tiny_model as make

    return make()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_model):
    """The tiny model saved to a directory, so it loads by path (and an index records that path)."""
    path = tmp_path_factory.mktemp("tiny-model") / "model"
    tiny_model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def default_model():
    """The real bundled model (offline, a few seconds to load): only for ``integration`` tests."""
    from fgr_retriever import FGRColBERT

    return FGRColBERT.from_pretrained()


@pytest.fixture(scope="session")
def other_tiny_model():
    """A tiny model with a different config: its vectors are not comparable with tiny_model's."""
    from fgr_retriever.testing import tiny_model as make

    return make(doc_maxlen=32)


@pytest.fixture
def corpus():
    """Six short shop texts with metadata (a nested dict included) and ids."""
    texts = [
        "Returns are accepted within 30 days of delivery, unworn and with their original tags attached.",
        "Silk scarves should be dry-cleaned only and never put in the washing machine or the dryer.",
        "Our boutiques open at ten on weekdays, at noon on Sundays, and close on public holidays.",
        "Cashmere sweaters are washed by hand in cold water and then dried flat on a towel.",
        "Gift wrapping is free for every order placed before the fifteenth of December.",
        "Leather bags are conditioned twice a year with a neutral balm and stored in a dust bag.",
    ]
    ids = ["returns", "silk", "hours", "cashmere", "gifts", "leather"]
    metadatas = [
        {"category": "policy", "rank": 1, "tags": ["returns"], "owner": {"team": "service"}},
        {"category": "care", "rank": 2, "tags": ["silk"], "owner": {"team": "atelier"}},
        {"category": "stores", "rank": 3, "tags": [], "owner": {"team": "retail"}},
        {"category": "care", "rank": 4, "tags": ["wool"], "owner": {"team": "atelier"}},
        {"category": "policy", "rank": 5, "tags": ["gifts"], "owner": {"team": "service"}},
        {"category": "care", "rank": 6, "tags": ["leather"], "owner": {"team": "atelier"}},
    ]
    return {"texts": texts, "ids": ids, "metadatas": metadatas}
