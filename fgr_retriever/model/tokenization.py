"""ColBERT input building on top of a Hugging Face fast tokenizer.

Queries: ``[CLS] [Q] q1 .. qn [SEP] [MASK] ...`` padded with ``[MASK]`` to ``query_maxlen``.
Documents: ``[CLS] [D] d1 .. dm [SEP]``; a text longer than one window is split into overlapping
windows that start and end on word boundaries, and every token keeps its character offsets
into the caller's string so that scores map back to the exact original characters.
"""

from __future__ import annotations

import string
import unicodedata
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import InvalidInputError, ModelLoadError
from .config import FGRConfig

__all__ = ["ColBERTTokenizer", "QueryInputs", "TextPieces", "WindowInputs"]


@dataclass(frozen=True)
class QueryInputs:
    input_ids: torch.Tensor  # [B, query_maxlen]
    attention_mask: torch.Tensor  # [B, query_maxlen]
    relevance_mask: torch.Tensor  # [B, query_maxlen] bool: positions used by the token head


@dataclass(frozen=True)
class TextPieces:
    """One text tokenised without specials, and how it is cut into windows."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    windows: list[tuple[int, int]]  # [start, end) token ranges


@dataclass(frozen=True)
class WindowInputs:
    input_ids: torch.Tensor  # [W, L]
    attention_mask: torch.Tensor  # [W, L]
    keep_mask: torch.Tensor  # [W, L] bool: tokens that are stored and scored
    offsets: torch.Tensor  # [W, L, 2] int32 character offsets, -1 for specials/padding


def _is_punctuation_token(token: str) -> bool:
    piece = token[2:] if token.startswith("##") else token
    if not piece:
        return False
    return all(ch in string.punctuation or unicodedata.category(ch).startswith("P") for ch in piece)


class ColBERTTokenizer:
    """Builds ColBERT query and document inputs.

    >>> from transformers import AutoTokenizer  # doctest: +SKIP
    >>> tok = ColBERTTokenizer(AutoTokenizer.from_pretrained(path), FGRConfig())  # doctest: +SKIP
    """

    def __init__(self, tokenizer, config: FGRConfig) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise ModelLoadError(
                "fgr-retriever needs a fast (Rust) tokenizer for character offsets; "
                f"{type(tokenizer).__name__} is not one. Save the model with a tokenizer.json."
            )
        self.hf = tokenizer
        self.config = config
        for name in ("cls_token_id", "sep_token_id"):
            if getattr(tokenizer, name) is None:
                raise ModelLoadError(f"the tokenizer has no {name.replace('_id', '')}; a BERT-like tokenizer is required")
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.mask_id = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else self.pad_id
        self.query_marker_id = self._marker_id(config.query_marker)
        self.doc_marker_id = self._marker_id(config.doc_marker)
        vocab = tokenizer.get_vocab()
        size = max(len(tokenizer), max(vocab.values()) + 1)
        self.skip = torch.zeros(size, dtype=torch.bool)
        if config.mask_punctuation:
            punct = [i for tok, i in vocab.items() if _is_punctuation_token(tok)]
            self.skip[punct] = True
        self.special_ids = set(tokenizer.all_special_ids) | {
            i for i in (self.query_marker_id, self.doc_marker_id) if i is not None
        }

    def _marker_id(self, marker: str | None) -> int | None:
        if marker is None:
            return None
        for candidate in (marker, marker.strip()):
            idx = self.hf.convert_tokens_to_ids(candidate)
            if idx is not None and idx != self.hf.unk_token_id:
                return int(idx)
        raise ModelLoadError(f"marker token {marker!r} is not in the tokenizer's vocabulary")

    # ------------------------------------------------------------------ queries
    def queries(self, queries: Sequence[str], *, max_tokens: int | None = None) -> QueryInputs:
        """Query inputs: ``[CLS] marker tokens [SEP]``, padded with ``[MASK]`` to ``query_maxlen``.

        A query longer than ``query_maxlen`` is cut there, or, with ``max_tokens`` (inference:
        ``config.query_max_tokens``), kept at its own length up to ``max_tokens``; the batch is
        then as wide as its longest query, and shorter rows end in ``[PAD]`` that nothing
        attends to. A query cut short raises a ``UserWarning`` that says by how much.
        """
        cfg = self.config
        specials = 2 + (self.query_marker_id is not None)
        limit = cfg.query_maxlen if max_tokens is None else max(max_tokens, cfg.query_maxlen)
        enc = self.hf(list(queries), add_special_tokens=False, truncation=False, verbose=False)
        rows = []
        for i, toks in enumerate(enc["input_ids"]):
            if len(toks) > limit - specials:
                if max_tokens is not None:
                    warnings.warn(f"query {i} has {len(toks) + specials} tokens; only the first {limit} are "
                                  "searched (FGRConfig.query_max_tokens)", UserWarning, stacklevel=3)
                toks = toks[: limit - specials]
            rows.append(toks)
        n = len(queries)
        width = max([cfg.query_maxlen] + [len(t) + specials for t in rows])
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        ids[:, : cfg.query_maxlen] = self.mask_id
        attn = torch.zeros((n, width), dtype=torch.long)
        rel = torch.zeros((n, width), dtype=torch.bool)
        for row, toks in enumerate(rows):
            seq = [self.cls_id] + ([self.query_marker_id] if self.query_marker_id is not None else []) + toks + [self.sep_id]
            ids[row, : len(seq)] = torch.tensor(seq)
            attn[row, : len(seq)] = 1
            first = len(seq) - 1 - len(toks)
            rel[row, first : first + len(toks)] = True
            if cfg.attend_to_expansion_tokens:
                attn[row, : max(len(seq), cfg.query_maxlen)] = 1
        if cfg.relevance_query_tokens == "all":
            rel[:, : cfg.query_maxlen] = True
            for row, toks in enumerate(rows):
                rel[row, : len(toks) + specials] = True
        return QueryInputs(input_ids=ids, attention_mask=attn, relevance_mask=rel)

    # ---------------------------------------------------------------- documents
    def pieces(self, texts: Sequence[str]) -> list[TextPieces]:
        """Tokenise whole texts (no truncation) and plan their windows."""
        enc = self.hf(list(texts), add_special_tokens=False, return_offsets_mapping=True,
                      truncation=False, verbose=False)
        out = []
        for i in range(len(texts)):
            ids = enc["input_ids"][i]
            offsets = [tuple(o) for o in enc["offset_mapping"][i]]
            word_ids = enc.word_ids(i)
            out.append(TextPieces(ids=ids, offsets=offsets, windows=self._plan_windows(word_ids)))
        return out

    def _plan_windows(self, word_ids: list[int | None]) -> list[tuple[int, int]]:
        n = len(word_ids)
        size = self.config.doc_window_content
        if n <= size:
            return [(0, n)]

        def word_start(pos: int, floor: int) -> int:
            # move back to the first piece of the word so no word is split across windows
            while pos > floor and word_ids[pos] is not None and word_ids[pos] == word_ids[pos - 1]:
                pos -= 1
            return pos

        windows = []
        start = 0
        while True:
            end = min(start + size, n)
            if end < n:
                snapped = word_start(end, start + size // 2)
                end = snapped if snapped > start + size // 2 else end
            windows.append((start, end))
            if end >= n:
                return windows
            nxt = word_start(max(end - self.config.doc_window_overlap, start + 1), start + 1)
            start = max(nxt, start + 1)

    def windows(self, items: Sequence[tuple[TextPieces, int]]) -> WindowInputs:
        """Model inputs for a batch of ``(pieces, window_number)``."""
        seqs, offs = [], []
        head = [self.cls_id] + ([self.doc_marker_id] if self.doc_marker_id is not None else [])
        for pieces, w in items:
            a, b = pieces.windows[w]
            seqs.append(head + pieces.ids[a:b] + [self.sep_id])
            offs.append([(-1, -1)] * len(head) + pieces.offsets[a:b] + [(-1, -1)])
        length = max(len(s) for s in seqs)
        n = len(seqs)
        ids = torch.full((n, length), self.pad_id, dtype=torch.long)
        attn = torch.zeros((n, length), dtype=torch.long)
        offsets = torch.full((n, length, 2), -1, dtype=torch.int32)
        for row, (seq, off) in enumerate(zip(seqs, offs)):
            ids[row, : len(seq)] = torch.tensor(seq)
            attn[row, : len(seq)] = 1
            offsets[row, : len(off)] = torch.tensor(off, dtype=torch.int32)
        keep = attn.bool() & ~self.skip[ids.clamp(max=len(self.skip) - 1)]
        return WindowInputs(input_ids=ids, attention_mask=attn, keep_mask=keep, offsets=offsets)


def check_texts(texts: object, *, what: str = "text") -> list[str]:
    """Normalise ``str | Sequence[str]`` to a list and reject anything else with a clear error."""
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise InvalidInputError(f"{what} must be str, got bytes; decode it first (e.g. data.decode('utf-8'))")
    try:
        items = list(texts)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidInputError(f"{what} must be a string or a list of strings, got {type(texts).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidInputError(f"{what}[{i}] must be str, got {type(item).__name__}")
    return items
