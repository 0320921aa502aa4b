"""The fine-grained relevance head: per-document-token probability of answering the query.

For every document token ``j``: ``p_j = sigmoid(a * max_i cos(q_i, d_j) + b)`` over the query
positions ``i`` selected by ``relevance_query_tokens``. In the default ``"shared"`` mode the
cosines are the very ones ColBERT's MaxSim ranks with, so highlighting needs no extra vectors.

The head takes plain numbers rather than an ``FGRConfig`` so that the evidence package never
imports the model package (the encoder builds the head from its config).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RelevanceHead"]


class RelevanceHead(nn.Module):
    def __init__(self, *, mode: str, scale: float, bias: float, hidden_size: int, dim: int,
                 relevance_dim: int) -> None:
        super().__init__()
        self.mode = mode
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))
        if self.mode == "projection":
            self.proj = nn.Linear(hidden_size, relevance_dim, bias=False)
        elif self.mode == "residual_ffn":
            self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            # start as the identity so an untrained head behaves like "shared"
            nn.init.zeros_(self.ffn[2].weight)
            nn.init.zeros_(self.ffn[2].bias)

    @property
    def needs_own_vectors(self) -> bool:
        return self.mode != "shared"

    def vectors(self, hidden: torch.Tensor, projected: torch.Tensor) -> torch.Tensor | None:
        """Token vectors for the head, or ``None`` when it reuses the retrieval vectors."""
        if self.mode == "projection":
            return F.normalize(self.proj(hidden), dim=-1)
        if self.mode == "residual_ffn":
            return F.normalize(projected + self.ffn(projected), dim=-1)
        return None

    def logits(self, max_cos: torch.Tensor) -> torch.Tensor:
        return self.scale * max_cos + self.bias

    def probabilities(self, max_cos: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(max_cos.float()))
