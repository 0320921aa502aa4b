"""Shared fixtures: tiny random-config BERTs (fast) and the real default model (integration)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Haystack reports usage to PostHog from a background thread; tests send nothing anywhere
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never reach the network: any socket connection fails loudly."""

    def guard(*args, **kwargs):
        raise RuntimeError("network access is blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture(scope="session")
def tiny_model():
    """A 2-layer, 32-wide random BERT with the real uncased vocabulary; seeded, so deterministic."""
    from fgr_retriever.testing import tiny_model

    return tiny_model()


@pytest.fixture(scope="session")
def default_model():
    from fgr_retriever import FGRColBERT

    return FGRColBERT.from_pretrained()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the checkout in ../shared/data)")
    return SHARED_DATA
