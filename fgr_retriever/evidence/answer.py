"""The answer inside the evidence: a second, narrower highlight tier.

Evidence sentences say *where* a document answers; readers also want the words that *are* the
answer (``Weight: 0.9 kg.`` → ``0.9 kg``). The stored token vectors alone do not separate those
words from the rest of the sentence (measured: the best cosine with the query ranks answer words
no better than chance, AUC 0.52 on SQuAD, because answers are what the query does *not* say).
So a small trained head reads them:

* every token of an evidence sentence is described by its stored vector ``d``, the query vectors
  it attends to ``a`` (softmax over its cosines), ``d * a`` and its best cosine with the query's
  real tokens and with all query positions;
* a two-layer transformer over the sentence's tokens (plus one "no answer" slot) gives start
  and end logits, as in extractive question answering;
* the best span is shown when its probability ``P(start) * P(end)`` reaches ``threshold``.

It runs on the vectors the index already stores and the query vectors already computed for
ranking: no extra storage and no second encoder pass, only a few milliseconds per shown hit.
The head saves and loads itself (one safetensors file, its settings in the header; nothing is
unpickled).

>>> import torch
>>> head = AnswerHead(dim=8, hidden=16, layers=1, heads=2)
>>> start, end = head(torch.randn(1, 5, 8), torch.ones(1, 5, dtype=torch.bool),
...                   torch.randn(1, 3, 8), torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))
>>> tuple(start.shape)  # one "no answer" slot, then the five tokens
(1, 6)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInputError, ModelLoadError
from ..types import Span
from .text import widen_to_units

__all__ = ["AnswerHead", "best_answer", "sentence_rows", "ANSWER_HEAD_FILE"]

ANSWER_HEAD_FILE = "answer_head.safetensors"
_FORMAT = "fgr-answer-head/1"


class AnswerHead(nn.Module):
    """Start/end logits for the answer inside one evidence sentence.

    ``forward(doc [B, T, dim], doc_mask [B, T], query [B, Q, dim], query_mask [B, Q],
    real_mask [B, Q])`` returns ``(start, end)`` logits ``[B, T + 1]``; slot 0 is "no answer".
    ``query_mask`` marks the query rows that exist (batches pad), ``real_mask`` the rows of the
    query's own words (not ``[MASK]`` expansion).
    """

    def __init__(self, *, dim: int, hidden: int = 128, layers: int = 2, heads: int = 4, max_tokens: int = 256,
                 max_answer_tokens: int = 24, threshold: float = 0.5) -> None:
        super().__init__()
        self.settings = {"dim": int(dim), "hidden": int(hidden), "layers": int(layers), "heads": int(heads),
                         "max_tokens": int(max_tokens), "max_answer_tokens": int(max_answer_tokens),
                         "threshold": float(threshold)}
        self.inputs = nn.Linear(3 * dim + 2, hidden)
        self.position = nn.Embedding(max_tokens, hidden)
        self.null = nn.Parameter(torch.zeros(hidden))
        self.query_summary = nn.Linear(dim, hidden)
        # sharp attention over the query rows: cosines live in [-1, 1]
        self.temperature = nn.Parameter(torch.tensor(10.0))
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.1,
                                           batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, 2)

    @property
    def threshold(self) -> float:
        return float(self.settings["threshold"])

    @property
    def max_tokens(self) -> int:
        return int(self.settings["max_tokens"])

    def forward(self, doc: torch.Tensor, doc_mask: torch.Tensor, query: torch.Tensor, query_mask: torch.Tensor,
                real_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        doc, query = doc.float(), query.float()
        sims = doc @ query.transpose(1, 2)  # [B, T, Q]
        neg = torch.finfo(sims.dtype).min
        valid = query_mask[:, None, :]
        attn = torch.softmax((self.temperature * sims).masked_fill(~valid, neg), dim=-1)
        attended = attn @ query
        real = (query_mask & real_mask)[:, None, :]
        best_real = sims.masked_fill(~real, -1.0).max(dim=-1).values
        best_all = sims.masked_fill(~valid, -1.0).max(dim=-1).values
        x = self.inputs(torch.cat([doc, attended, doc * attended, best_real[..., None], best_all[..., None]], dim=-1))
        x = x + self.position(torch.arange(doc.shape[1], device=doc.device).clamp(max=self.max_tokens - 1))[None]
        weights = (query_mask & real_mask).float()
        pooled = (query * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0)
        null = (self.null + self.query_summary(pooled))[:, None, :]
        h = self.body(torch.cat([null, x], dim=1),
                      src_key_padding_mask=~torch.cat([torch.ones_like(doc_mask[:, :1]), doc_mask], dim=1))
        logits = self.out(h).masked_fill(~torch.cat([torch.ones_like(doc_mask[:, :1]), doc_mask], dim=1)[..., None],
                                         neg)
        return logits[..., 0], logits[..., 1]

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the head to ``path`` (a safetensors file; settings in its header)."""
        from safetensors.torch import save

        from .._io import atomic_write_bytes

        path = Path(path)
        tensors = {k: v.detach().cpu().float().contiguous() for k, v in self.state_dict().items()}
        atomic_write_bytes(path, save(tensors, metadata={"format": _FORMAT, "settings": json.dumps(self.settings)}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> AnswerHead:
        """Read a head written by :meth:`save`; a foreign or damaged file raises :class:`ModelLoadError`."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != _FORMAT:
                    raise ModelLoadError(f"{path} is not an fgr-retriever answer head (format {meta.get('format')!r})")
                settings: dict[str, Any] = json.loads(meta["settings"])
                state = {k: f.get_tensor(k) for k in f.keys()}
        except (OSError, SafetensorError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"{path} is not a readable answer head: {exc}") from None
        head = cls(**settings)
        missing, unexpected = head.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelLoadError(f"{path} does not match its settings (missing {missing}, unexpected {unexpected})")
        head.eval()
        return head


def sentence_rows(offsets: np.ndarray, start: int, end: int, limit: int) -> np.ndarray:
    """Indices of the stored rows whose tokens lie in ``[start, end)``, in text order, each
    character range once (a token stored by two overlapping windows keeps its first row), at
    most ``limit``."""
    s, e = offsets[:, 0].astype(np.int64), offsets[:, 1].astype(np.int64)
    inside = np.flatnonzero((s >= start) & (e <= end) & (e > s))
    if not len(inside):
        return inside
    keys = s[inside] * (1 << 32) + e[inside]
    _, first = np.unique(keys, return_index=True)  # sorted by (start, end): text order
    return inside[first][:limit]


def _joins(text: str, i: int) -> bool:
    """Whether ``text[i]`` belongs to the word around it: letters and digits, and the separators
    inside numbers (``0.9``, ``1,200``, ``10:30``)."""
    c = text[i]
    return c.isalnum() or (c in ".,:/" and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit())


def _word_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened to whole words (a head may start or end inside one)."""
    while start > 0 and _joins(text, start - 1) and _joins(text, start):
        start -= 1
    while end < len(text) and _joins(text, end) and _joins(text, end - 1):
        end += 1
    return start, end


def best_answer(text: str, token_offsets: np.ndarray, start_logits: torch.Tensor, end_logits: torch.Tensor, *,
                threshold: float, max_answer_tokens: int) -> Span | None:
    """The best answer span of one sentence (``token_offsets [T, 2]`` of its rows, logits
    ``[T + 1]`` with slot 0 "no answer"), or ``None`` when its probability is under ``threshold``.

    The span is widened to whole words and keeps a number's unit (``0.9`` → ``0.9 kg``)."""
    if threshold < 0 or threshold > 1:
        raise InvalidInputError(f"answer threshold must be in [0, 1], got {threshold!r}")
    n = len(token_offsets)
    if n == 0:
        return None
    ps = torch.softmax(start_logits.float(), -1)[1: n + 1]
    pe = torch.softmax(end_logits.float(), -1)[1: n + 1]
    joint = ps[:, None] * pe[None, :]
    allowed = torch.triu(torch.ones(n, n, dtype=torch.bool)) & ~torch.triu(torch.ones(n, n, dtype=torch.bool),
                                                                          diagonal=max_answer_tokens)
    joint = joint.masked_fill(~allowed, 0.0)
    flat = int(torch.argmax(joint))
    i, j = divmod(flat, n)
    p = float(joint[i, j])
    if p < threshold:
        return None
    a, b = _word_bounds(text, int(token_offsets[i, 0]), int(token_offsets[j, 1]))
    a, b = widen_to_units(text, a, b)
    return Span(start=a, end=b, text=text[a:b], score=round(p, 6))


def run_head(head: AnswerHead, text: str, evidence: Sequence[Span], vectors: torch.Tensor, offsets: np.ndarray,
             query: torch.Tensor, real_mask: torch.Tensor, *, threshold: float | None = None) -> list[Span]:
    """The answer spans of ``text``: at most one per evidence span, in text order.

    ``vectors [T, dim]``/``offsets [T, 2]`` are the text's stored rows, ``query [Q, dim]`` its
    query vectors and ``real_mask [Q]`` the query's own words."""
    threshold = head.threshold if threshold is None else threshold
    groups = [(span, sentence_rows(offsets, span.start, span.end, head.max_tokens)) for span in evidence]
    groups = [(span, rows) for span, rows in groups if len(rows)]
    if not groups:
        return []
    width = max(len(rows) for _, rows in groups)
    dim = vectors.shape[1]
    doc = torch.zeros(len(groups), width, dim)
    mask = torch.zeros(len(groups), width, dtype=torch.bool)
    for g, (_, rows) in enumerate(groups):
        doc[g, : len(rows)] = vectors[torch.from_numpy(rows)].float()
        mask[g, : len(rows)] = True
    q = query.float()[None].expand(len(groups), -1, -1)
    qmask = torch.ones(len(groups), q.shape[1], dtype=torch.bool)
    with torch.inference_mode():
        start, end = head(doc, mask, q, qmask, real_mask[None].expand(len(groups), -1))
    out: list[Span] = []
    for g, (span, rows) in enumerate(groups):
        found = best_answer(text, offsets[rows], start[g], end[g], threshold=threshold,
                            max_answer_tokens=int(head.settings["max_answer_tokens"]))
        if found is not None and span.start <= found.start and found.end <= span.end:
            out.append(found)
    return out


def answer_loss(start: torch.Tensor, end: torch.Tensor, target_start: torch.Tensor,
                target_end: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the ``T + 1`` slots for start and end (target 0 = no answer)."""
    return 0.5 * (F.cross_entropy(start, target_start) + F.cross_entropy(end, target_end))
