"""Experiment (not part of the library): re-score the sentences of the shown documents with a small
cross-encoder, the "precise" evidence mode. Measured in ``benchmarks/results/evidence_quality.json``
(system ``precise``): trained with the GPU time that was left (400 steps of 64, top layer only) it
scored *below* the late-interaction default on every dev set, so it is not shipped; the code stays
so the experiment can be rerun with more compute (``train.py`` beside this file).

Late interaction scores a sentence from vectors computed *without* the query, which is what makes
evidence free at search time and also what limits it: the encoder cannot read the question while
it reads the passage. :class:`PreciseEvidenceModel` reads both together (``[CLS] query [SEP]
sentences [SEP]``), pools the hidden states of each sentence's tokens and turns them into one
evidence probability per sentence. It runs once per shown document, like a re-ranker: an opt-in
second pass (``evidence="precise"``) for prompts, where an LLM call dwarfs its cost, never needed
for ranking.

Long texts are cut into windows of whole sentences that fit ``max_length`` tokens with the query,
so a sentence is always scored in one piece (a sentence longer than a window is cut).

The model is all-MiniLM-L6-v2 with its top layers and a linear head trained on the same sentence
labels as the default model (``train.py``).

>>> model = PreciseEvidenceModel.from_pretrained("runs/precise/final")  # doctest: +SKIP
>>> model.highlight("How heavy is the bag?", "The bag is calfskin. Weight: 0.9 kg.")  # doctest: +SKIP
[Span(start=21, end=36, text='Weight: 0.9 kg.', score=0.93)]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from fgr_retriever._io import atomic_directory, read_json
from fgr_retriever.errors import InvalidInputError, ModelLoadError
from fgr_retriever.evidence.sentence_decoding import select_units, text_units, unit_spans
from fgr_retriever.types import Span
from fgr_retriever.validation import check_threshold

__all__ = ["PreciseConfig", "PreciseEvidenceModel"]

CONFIG_FILE = "fgr_precise.json"
HEAD_FILE = "fgr_precise_head.safetensors"


@dataclass(frozen=True, kw_only=True)
class PreciseConfig:
    """Settings of the precise evidence model (saved as ``fgr_precise.json``).

    Attributes:
        max_length: tokens of one cross-encoder input (query, sentences and specials).
        query_maxlen: query tokens kept (longer queries are cut).
        unit: ``"sentence"`` or ``"clause"``: what is scored.
        threshold: the best unit must reach this probability for a text to show evidence.
        ratio: other units within this share of the best one's probability are evidence too.
    """

    max_length: int = 256
    query_maxlen: int = 32
    unit: str = "sentence"
    threshold: float = 0.5
    ratio: float = 0.9

    def __post_init__(self) -> None:
        if self.query_maxlen < 1 or self.max_length < self.query_maxlen + 16:
            raise InvalidInputError("max_length must leave at least 16 tokens for the text after the query")
        if self.unit not in ("sentence", "clause"):
            raise InvalidInputError(f"unit must be 'sentence' or 'clause', got {self.unit!r}")
        if not 0.0 <= self.threshold < 1.0 or not 0.0 < self.ratio <= 1.0:
            raise InvalidInputError("threshold must be in [0, 1) and ratio in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreciseConfig:
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ModelLoadError(f"{CONFIG_FILE} has unknown keys {unknown}")
        return cls(**data)


@dataclass(frozen=True)
class PreciseBatch:
    """Cross-encoder inputs and, per row, which tokens belong to which unit."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor
    members: list[torch.Tensor]  # per row: [K, L] float, each unit's tokens (rows sum to 1)
    unit_index: list[list[int]]  # per row: the text's unit index of each of the K rows


class PreciseEvidenceModel(nn.Module):
    """A cross-encoder that gives every sentence of a text a probability of answering the query."""

    def __init__(self, *, encoder, tokenizer, config: PreciseConfig) -> None:
        super().__init__()
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError("the precise evidence model needs a fast tokenizer for character offsets")
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.config = config
        self.head = nn.Linear(int(encoder.config.hidden_size), 1)
        self.eval()

    # ------------------------------------------------------------------ inputs
    def plan(self, query: str, text: str, units: Sequence[tuple[int, int]]) -> list[tuple[list[int], list[int],
                                                                                      list[tuple[int, int]]]]:
        """Windows of whole units: ``(unit indices, token ids, token offsets)`` per window."""
        tok = self.tokenizer
        q_len = len(tok(query, add_special_tokens=False, truncation=True,
                        max_length=self.config.query_maxlen)["input_ids"])
        room = self.config.max_length - q_len - 3
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        ids, offs = enc["input_ids"], enc["offset_mapping"]
        starts = np.asarray([o[0] for o in offs], dtype=np.int64)
        windows: list[tuple[list[int], list[int], list[tuple[int, int]]]] = []
        cur_units: list[int] = []
        cur_ids: list[int] = []
        cur_offs: list[tuple[int, int]] = []
        for k, (s, e) in enumerate(units):
            lo, hi = int(np.searchsorted(starts, s, "left")), int(np.searchsorted(starts, e, "left"))
            u_ids, u_offs = ids[lo:hi][:room], [tuple(o) for o in offs[lo:hi]][:room]
            if not u_ids:
                continue
            if cur_ids and len(cur_ids) + len(u_ids) > room:
                windows.append((cur_units, cur_ids, cur_offs))
                cur_units, cur_ids, cur_offs = [], [], []
            cur_units.append(k)
            cur_ids += u_ids
            cur_offs += u_offs
        if cur_ids:
            windows.append((cur_units, cur_ids, cur_offs))
        return windows

    def batch(self, queries: Sequence[str], windows: Sequence[tuple[list[int], list[int], list[tuple[int, int]]]],
              units: Sequence[Sequence[tuple[int, int]]]) -> PreciseBatch:
        """Tensors for ``windows``: row ``r`` pairs ``queries[r]`` with ``windows[r]``, whose text
        has the units ``units[r]``."""
        tok = self.tokenizer
        heads = []
        for query in queries:
            q_ids = tok(query, add_special_tokens=False, truncation=True,
                        max_length=self.config.query_maxlen)["input_ids"]
            heads.append([tok.cls_token_id, *q_ids, tok.sep_token_id])
        rows = [h + w_ids + [tok.sep_token_id] for h, (_, w_ids, _) in zip(heads, windows)]
        length = max(len(r) for r in rows)
        n = len(rows)
        input_ids = torch.full((n, length), tok.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, length), dtype=torch.long)
        types = torch.zeros((n, length), dtype=torch.long)
        members, unit_index = [], []
        for r, (row, (w_units, _, w_offs)) in enumerate(zip(rows, windows)):
            first = len(heads[r])
            input_ids[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
            types[r, first: len(row)] = 1
            member = torch.zeros((len(w_units), length))
            for k, u in enumerate(w_units):
                s, e = units[r][u]
                for j, (a, b) in enumerate(w_offs):
                    if a >= s and b <= e and b > a:
                        member[k, first + j] = 1.0
            member = member / member.sum(dim=1, keepdim=True).clamp(min=1.0)
            members.append(member)
            unit_index.append(list(w_units))
        return PreciseBatch(input_ids, attention, types, members, unit_index)

    # ----------------------------------------------------------------- forward
    def unit_logits(self, batch: PreciseBatch) -> list[torch.Tensor]:
        """Per row, one logit per unit of the window (differentiable)."""
        device = next(self.parameters()).device
        hidden = self.encoder(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                              token_type_ids=batch.token_type_ids.to(device)).last_hidden_state
        out = []
        for r, member in enumerate(batch.members):
            pooled = member.to(device=device, dtype=hidden.dtype) @ hidden[r]  # [K, H]
            out.append(self.head(pooled).squeeze(-1).float())
        return out

    def unit_probabilities(self, query: str, texts: Sequence[str], *, batch_size: int = 16
                           ) -> list[tuple[list[tuple[int, int]], np.ndarray]]:
        """Per text, its units and each unit's evidence probability (a unit that did not fit any
        window gets 0)."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        all_units = [text_units(t, self.config.unit) for t in texts]
        probs = [np.zeros(len(u)) for u in all_units]
        jobs = [(i, w) for i, t in enumerate(texts) for w in self.plan(query, t, all_units[i])]
        with torch.inference_mode():
            for b in range(0, len(jobs), batch_size):
                chunk = jobs[b: b + batch_size]
                batch = self.batch([query] * len(chunk), [w for _, w in chunk], [all_units[i] for i, _ in chunk])
                for (i, _), units_in, logits in zip(chunk, batch.unit_index, self.unit_logits(batch)):
                    p = torch.sigmoid(logits).cpu().numpy()
                    for k, u in enumerate(units_in):
                        probs[i][u] = max(probs[i][u], float(p[k]))
        return list(zip(all_units, probs))

    def highlight(self, query: str, texts: str | Sequence[str], *, threshold: float | None = None,
                  ratio: float | None = None) -> list[Span] | list[list[Span]]:
        """Evidence spans of one text (or of each text in a list): the best unit and those within
        ``ratio`` of it, or nothing when the best is below ``threshold``."""
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise InvalidInputError("texts must be strings")
        threshold = self.config.threshold if check_threshold(threshold) is None else float(threshold)
        ratio = self.config.ratio if ratio is None else float(ratio)
        out = []
        for text, (units, probs) in zip(items, self.unit_probabilities(query, items)):
            out.append(unit_spans(text, units, probs, select_units(probs, threshold=threshold, ratio=ratio)))
        return out[0] if single else out

    # ------------------------------------------------------------ persistence
    def save_pretrained(self, path: str | Path) -> Path:
        """Encoder, tokenizer, head and config, written atomically to directory ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        with atomic_directory(path, marker=CONFIG_FILE) as tmp:
            self.encoder.save_pretrained(str(tmp))
            self.tokenizer.save_pretrained(str(tmp))
            save_file({k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()},
                      str(tmp / HEAD_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path, **overrides: Any) -> PreciseEvidenceModel:
        """A model saved by :meth:`save_pretrained`; ``overrides`` replace config fields."""
        from fgr_retriever.model.serialization import _load_encoder, _tensors

        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise ModelLoadError(f"{path} is not a precise evidence model directory (no {CONFIG_FILE})")
        encoder, tokenizer = _load_encoder(path, trust_remote_code=False)
        config = replace(PreciseConfig.from_dict(read_json(path / CONFIG_FILE, ModelLoadError, "precise config")),
                         **overrides)
        model = cls(encoder=encoder, tokenizer=tokenizer, config=config)
        model.head.load_state_dict(_tensors(path / HEAD_FILE))
        return model.eval()
