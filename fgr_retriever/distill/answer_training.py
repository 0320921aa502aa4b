"""Training the answer head (:mod:`fgr_retriever.evidence.answer`) on extractive QA data.

The head reads what the index stores, so it is trained on exactly that: every passage is encoded
once with the frozen retrieval model (cached to disk in safetensors shards, resumable), every
question once, and the head learns, for the sentence holding the gold answer, which token starts
and which ends it. A share of the examples shows the head another sentence of the same passage
with "no answer" as the target, so it learns to stay silent where the evidence sentence does not
hold the answer (the sentence decoder sometimes picks a neighbour), and another share pairs the
question with the best-matching sentence of *another* passage on the same topic (same article)
that does not contain the answer: the case SQuAD 2.0 calls unanswerable, where the evidence tier
still shows a sentence and the answer tier must stay silent.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..evidence.answer import AnswerHead, answer_loss, sentence_rows
from ..evidence.sentence_decoding import text_units

__all__ = ["QAExample", "EncodedCache", "TrainingItem", "make_items", "train_answer_head", "encode_cached"]


@dataclass(frozen=True)
class QAExample:
    """A question, its passage, and the gold answer as a ``[start, end)`` character range."""

    id: str
    query: str
    passage: str
    answer: tuple[int, int] | None  # None: the passage does not answer
    group: str | None = None  # passages of one group (a SQuAD article) share a topic: hard negatives


@dataclass
class EncodedCache:
    """Frozen encodings: per passage its stored rows and offsets, per query its vectors and the
    positions of its own words."""

    passages: dict[str, tuple[torch.Tensor, np.ndarray]]
    queries: dict[str, tuple[torch.Tensor, torch.Tensor]]


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def encode_cached(model, examples: Sequence[QAExample], cache_dir: Path, *, shard: int = 2048) -> EncodedCache:
    """Encode every distinct passage and query of ``examples``, in shards saved under
    ``cache_dir`` (a run that stops resumes at the first missing shard). Vectors are kept in
    bfloat16, as the index stores them."""
    from safetensors.torch import load_file, save_file

    cache_dir.mkdir(parents=True, exist_ok=True)
    out = EncodedCache({}, {})
    for kind in ("passages", "queries"):
        texts = sorted({(e.passage if kind == "passages" else e.query) for e in examples})
        keys = [_key(t) for t in texts]
        shards = math.ceil(len(texts) / shard)
        for s in tqdm(range(shards), desc=f"Encoding {kind}", unit="shard"):
            part = slice(s * shard, (s + 1) * shard)
            name = hashlib.blake2b("".join(keys[part]).encode(), digest_size=8).hexdigest()
            path = cache_dir / f"{kind}-{name}.safetensors"
            if not path.exists():
                tensors: dict[str, torch.Tensor] = {}
                if kind == "passages":
                    for k, enc in zip(keys[part], model.encode_documents(texts[part], batch_size=64)):
                        tensors[f"{k}.v"] = enc.vectors.to(torch.bfloat16)
                        tensors[f"{k}.o"] = enc.offsets.to(torch.int32)
                else:
                    for k, enc in zip(keys[part], model.encode_queries(texts[part], batch_size=128)):
                        tensors[f"{k}.v"] = enc.vectors.to(torch.bfloat16)
                        tensors[f"{k}.r"] = enc.relevance_mask.to(torch.bool)
                tmp = path.with_suffix(".tmp")
                save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
                tmp.replace(path)
            loaded = load_file(str(path))
            for k in keys[part]:
                if kind == "passages":
                    out.passages[k] = (loaded[f"{k}.v"], loaded[f"{k}.o"].numpy().astype(np.int64))
                else:
                    out.queries[k] = (loaded[f"{k}.v"], loaded[f"{k}.r"])
    return out


@dataclass(frozen=True)
class TrainingItem:
    """One sentence shown to the head: its rows, the query, and the target slots (0 = none)."""

    passage: str
    rows: np.ndarray
    query: str
    start: int
    end: int


def _targets(offsets: np.ndarray, rows: np.ndarray, answer: tuple[int, int]) -> tuple[int, int] | None:
    toks = offsets[rows]
    hit = np.flatnonzero((toks[:, 1] > answer[0]) & (toks[:, 0] < answer[1]))
    if not len(hit):
        return None
    return int(hit[0]) + 1, int(hit[-1]) + 1  # slot 0 is "no answer"


def _best_sentence(passage: str, vectors: torch.Tensor, offsets: np.ndarray, query: torch.Tensor,
                   real: torch.Tensor) -> tuple[int, int] | None:
    """The sentence of ``passage`` the evidence decoder would rank first for the query."""
    from ..evidence.sentence_decoding import unit_scores

    units = text_units(passage, "sentence")
    if not units:
        return None
    sims = (vectors.float() @ query[real].float().T).numpy()
    scores = unit_scores(sims, offsets, units)
    best = int(np.argmax(scores))
    return units[best] if np.isfinite(scores[best]) else None


def make_items(examples: Iterable[QAExample], cache: EncodedCache, *, negative_share: float = 0.3,
               hard_negative_share: float = 0.5, max_tokens: int = 256, seed: int = 0) -> list[TrainingItem]:
    """The gold sentence of each answered example (targets: the answer's first and last token);
    for a ``negative_share`` of them another sentence of the passage (target: none); and for a
    ``hard_negative_share`` the best-matching sentence of another passage of the same ``group``
    that does not contain the answer text (target: none)."""
    examples = list(examples)
    rng = random.Random(seed)
    groups: dict[str, list[str]] = {}
    for e in examples:
        if e.group is not None and _key(e.passage) in cache.passages:
            members = groups.setdefault(e.group, [])
            if e.passage not in members:
                members.append(e.passage)
    items: list[TrainingItem] = []
    for e in examples:
        pk, qk = _key(e.passage), _key(e.query)
        _, offsets = cache.passages[pk]
        units = text_units(e.passage, "sentence")
        gold = [i for i, (s, t) in enumerate(units) if e.answer and s <= e.answer[0] < t]
        if gold:
            s, t = units[gold[0]]
            rows = sentence_rows(offsets, s, t, max_tokens)
            target = _targets(offsets, rows, e.answer) if len(rows) else None
            if target:
                items.append(TrainingItem(pk, rows, qk, *target))
        others = [i for i in range(len(units)) if i not in gold]
        if others and (e.answer is None or rng.random() < negative_share):
            s, t = units[rng.choice(others)]
            rows = sentence_rows(offsets, s, t, max_tokens)
            if len(rows) >= 3:
                items.append(TrainingItem(pk, rows, qk, 0, 0))
        siblings = [p for p in groups.get(e.group or "", ()) if p != e.passage]
        if siblings and e.answer and rng.random() < hard_negative_share:
            other = rng.choice(siblings)
            ok = _key(other)
            vectors, other_offsets = cache.passages[ok]
            qv, real = cache.queries[qk]
            best = _best_sentence(other, vectors, other_offsets, qv, real)
            answer_text = e.passage[e.answer[0]:e.answer[1]].lower()
            if best and answer_text not in other[best[0]:best[1]].lower():
                rows = sentence_rows(other_offsets, best[0], best[1], max_tokens)
                if len(rows) >= 3:
                    items.append(TrainingItem(ok, rows, qk, 0, 0))
    return items


def collate(batch: Sequence[TrainingItem], cache: EncodedCache):
    width = max(len(it.rows) for it in batch)
    qwidth = max(cache.queries[it.query][0].shape[0] for it in batch)
    dim = cache.queries[batch[0].query][0].shape[1]
    doc = torch.zeros(len(batch), width, dim)
    mask = torch.zeros(len(batch), width, dtype=torch.bool)
    query = torch.zeros(len(batch), qwidth, dim)
    qmask = torch.zeros(len(batch), qwidth, dtype=torch.bool)
    real = torch.zeros(len(batch), qwidth, dtype=torch.bool)
    for b, it in enumerate(batch):
        vecs, _ = cache.passages[it.passage]
        doc[b, : len(it.rows)] = vecs[torch.from_numpy(it.rows)].float()
        mask[b, : len(it.rows)] = True
        qv, qr = cache.queries[it.query]
        query[b, : qv.shape[0]] = qv.float()
        qmask[b, : qv.shape[0]] = True
        real[b, : qv.shape[0]] = qr
    starts = torch.tensor([it.start for it in batch])
    ends = torch.tensor([it.end for it in batch])
    return doc, mask, query, qmask, real, starts, ends


def train_answer_head(head: AnswerHead, items: Sequence[TrainingItem], cache: EncodedCache, *, epochs: float = 2.0,
                      batch_size: int = 64, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """AdamW with linear warm-up and cosine decay; returns the loss of every step."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    steps = max(1, int(epochs * len(items) / batch_size))
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    order: list[int] = []
    losses: list[float] = []
    head.train()
    bar = tqdm(range(steps), desc="Training answer head", unit="step")
    for _ in bar:
        if len(order) < batch_size:
            order += rng.sample(range(len(items)), len(items))
        batch = [items[i] for i in order[:batch_size]]
        del order[:batch_size]
        doc, mask, query, qmask, real, ts, te = collate(batch, cache)
        start, end = head(doc, mask, query, qmask, real)
        loss = answer_loss(start, end, ts, te)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    head.eval()
    return losses
