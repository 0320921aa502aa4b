"""Training FGR-ColBERT: ``(1 - λ) · L_rank + λ · L_token + μ · L_sentence`` on one similarity matrix.

``L_rank`` is ColBERT's contrastive loss: every query's MaxSim scores against all passages of the
batch (its positive, its hard negatives and everybody else's passages), cross-entropy towards its
positive; with teacher scores, a KL term pulls the student's distribution over the example's own
passages towards the teacher's. ``L_token`` is binary cross-entropy of the relevance head on the
document tokens of labelled passages: a token is positive when its characters overlap an evidence
span; punctuation and special tokens are left out, exactly as at inference. Passages labelled
"no evidence" (``spans == ()``) contribute all-zero labels, which is what teaches the model to
highlight nothing where nothing answers.

``L_sentence`` teaches the encoder to rank the sentences *inside* a passage, which is what evidence
decoding needs and what neither of the others teaches: every sentence of a labelled positive gets
a score, the MaxSim of the query's real tokens against that sentence's tokens (the very score the
sentence decoder uses at inference), and a softmax over the passage's sentences is pushed to put
its mass on the evidence sentences (a listwise loss). With ``token_target="sentence"`` the token
labels are widened to whole evidence sentences too, so short answer spans (SQuAD) teach the same
sentence-sized target as sentence-labelled sources (WikiQA, SelQA, HotpotQA).

>>> from fgr_retriever.distill.training import TrainingConfig
>>> TrainingConfig(steps=10, token_loss_weight=0.5).token_loss_weight
0.5
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._io import atomic_directory, atomic_write_text, read_json
from ..errors import InvalidInputError
from ..evidence.sentence_decoding import token_units
from ..evidence.sentences import split_sentences
from ..model.encoder import FGRColBERT
from ..model.tokenization import ColBERTTokenizer
from .training_data import TrainingExample, TrainingPassage

__all__ = ["TrainingConfig", "Trainer", "token_labels", "evidence_sentences"]

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "training_config.json"
LOG_FILE = "training_log.jsonl"


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything that decides a training run; saved as ``training_config.json`` with every checkpoint.

    Attributes:
        steps: optimiser steps.
        batch_size: queries per step (each brings its positive and hard negatives).
        grad_accumulation: micro-batches per optimiser step (the batch is split, not repeated).
        token_loss_weight: λ in ``(1 - λ) · L_rank + λ · L_token``.
        kl_weight: weight of the teacher-score KL term inside ``L_rank`` (used when examples
            carry ``teacher_scores``).
        lr / head_lr: learning rate of encoder and projection / of the relevance head.
        warmup_ratio: linear warm-up share of the steps, then linear decay to zero.
        freeze_layers: freeze the embeddings and this many lower transformer layers.
        train_doc_maxlen: window length during training (shorter is faster; inference keeps
            the model's ``doc_maxlen``).
        max_negatives: hard negatives used per example.
        bf16: bfloat16 autocast (worth it on GPUs; no faster on most CPUs).
        seed: data order, negatives and dropout.
        save_every: steps between checkpoints (the final model is always saved).
        model_overrides: config fields changed on the base model before training
            (e.g. ``{"relevance_query_tokens": "all"}``).
        sentence_loss_weight: μ, the weight of the listwise within-passage sentence loss.
        sentence_temperature: sentence scores (mean over query tokens of the best cosine in the
            sentence) are divided by this before the softmax.
        token_target: ``"span"`` labels the tokens of the evidence spans; ``"sentence"`` the
            tokens of every sentence that holds evidence.
    """

    steps: int = 1000
    batch_size: int = 16
    grad_accumulation: int = 1
    token_loss_weight: float = 0.5
    kl_weight: float = 1.0
    lr: float = 3e-5
    head_lr: float = 1e-2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    freeze_layers: int = 0
    train_doc_maxlen: int = 128
    max_negatives: int = 1
    bf16: bool = False
    seed: int = 0
    save_every: int = 200
    max_grad_norm: float = 1.0
    model_overrides: Mapping[str, Any] | None = None
    sentence_loss_weight: float = 0.0
    sentence_temperature: float = 0.05
    token_target: str = "span"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.grad_accumulation < 1:
            raise InvalidInputError("steps, batch_size and grad_accumulation must be at least 1")
        if self.batch_size < self.grad_accumulation:
            raise InvalidInputError("batch_size must be at least grad_accumulation")
        if not 0.0 <= self.token_loss_weight <= 1.0:
            raise InvalidInputError(f"token_loss_weight (λ) must be in [0, 1], got {self.token_loss_weight}")
        if self.lr <= 0 or self.head_lr <= 0:
            raise InvalidInputError("learning rates must be positive")
        if self.freeze_layers < 0 or self.max_negatives < 0 or self.save_every < 1:
            raise InvalidInputError("freeze_layers and max_negatives must be >= 0, save_every >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise InvalidInputError("warmup_ratio must be in [0, 1)")
        if self.sentence_loss_weight < 0 or self.sentence_temperature <= 0:
            raise InvalidInputError("sentence_loss_weight must be >= 0 and sentence_temperature > 0")
        if self.token_target not in ("span", "sentence"):
            raise InvalidInputError(f"token_target must be 'span' or 'sentence', got {self.token_target!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_overrides"] = dict(self.model_overrides or {})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown training config keys {unknown}")
        return cls(**data)


def token_labels(offsets: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """1.0 for tokens whose character range ``[start, end)`` overlaps a span, else 0.0.

    ``offsets`` is ``[..., 2]`` with ``-1`` for specials and padding (never positive).
    """
    start, end = offsets[..., 0], offsets[..., 1]
    out = torch.zeros(start.shape, dtype=torch.float32)
    for s, e in spans:
        out = torch.maximum(out, ((start < e) & (end > s) & (start >= 0)).float())
    return out


def evidence_sentences(text: str, spans: Sequence[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[bool]]:
    """The sentences of ``text`` and, for each, whether it overlaps an evidence span."""
    sentences = split_sentences(text)
    return sentences, [any(s < e2 and e > s2 for s2, e2 in spans) for s, e in sentences]


@dataclass
class _Batch:
    queries: list[str]
    passages: list[TrainingPassage]
    positive_column: list[int]  # per query
    own_columns: list[list[int]]  # per query: its positive and negatives
    owner: list[int]  # per passage: the query it belongs to
    rank_rows: list[int]
    excluded: list[list[int]]  # per query: columns that are not negatives for it
    teacher: list[tuple[float, ...] | None]


def _collate(examples: Sequence[TrainingExample], max_negatives: int) -> _Batch:
    queries, passages, pos_col, own, owner, rank_rows, teacher = [], [], [], [], [], [], []
    for row, ex in enumerate(examples):
        queries.append(ex.query)
        start = len(passages)
        for p in (ex.positive, *ex.negatives[:max_negatives]):
            passages.append(p)
            owner.append(row)
        pos_col.append(start)
        own.append(list(range(start, len(passages))))
        if ex.rank:
            rank_rows.append(row)
        scores = ex.teacher_scores[: 1 + max_negatives] if ex.teacher_scores else None
        teacher.append(scores)
    excluded = []
    for row, ex in enumerate(examples):
        # the same paragraph can sit in a batch twice (two questions about it), and a multi-hop
        # question has two gold paragraphs: neither may be pushed down as a negative
        relevant = {ex.positive.text} | set(ex.also_relevant)
        excluded.append([c for c, p in enumerate(passages) if c != pos_col[row] and p.text in relevant])
    return _Batch(queries, passages, pos_col, own, owner, rank_rows, excluded, teacher)


class Trainer:
    """Trains an :class:`FGRColBERT` in place, with checkpoints and resume.

    >>> trainer = Trainer(model=model, examples=examples, config=TrainingConfig(steps=100),
    ...                   output_dir="runs/fgr")  # doctest: +SKIP
    >>> trainer.train()  # doctest: +SKIP
    """

    def __init__(self, *, model: FGRColBERT, examples: Sequence[TrainingExample], config: TrainingConfig,
                 output_dir: str | Path, log: Callable[[dict], None] | None = None,
                 show_progress_bar: bool = True) -> None:
        if not examples:
            raise InvalidInputError("no training examples")
        if not any(ex.rank for ex in examples) and config.token_loss_weight < 1.0:
            raise InvalidInputError("no example can be ranked (every positive lacks evidence); "
                                    "set token_loss_weight=1 to train the token head only")
        self.model = model
        self.examples = list(examples)
        self.config = config
        self.output_dir = Path(output_dir)
        self.log = log
        self.show_progress_bar = show_progress_bar
        if config.model_overrides:
            self._apply_overrides(dict(config.model_overrides))
        # training windows are shorter than inference windows; a separate tokenizer keeps the
        # model's own configuration untouched
        self._train_tokenizer = ColBERTTokenizer(model.tokenizer.hf, model.config.replace(
            doc_maxlen=min(config.train_doc_maxlen, model.config.doc_maxlen),
            doc_window_overlap=min(model.config.doc_window_overlap, config.train_doc_maxlen // 4)))
        self._freeze(config.freeze_layers)
        head = [p for p in model.relevance.parameters() if p.requires_grad]
        head_ids = {id(p) for p in head}
        body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
        decay = [p for p in body if p.ndim >= 2]
        no_decay = [p for p in body if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": config.weight_decay, "lr": config.lr},
                  {"params": no_decay, "weight_decay": 0.0, "lr": config.lr},
                  {"params": head, "weight_decay": 0.0, "lr": config.head_lr}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        warmup = int(config.warmup_ratio * config.steps)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.step = 0

    # ------------------------------------------------------------------ setup
    def _apply_overrides(self, overrides: dict[str, Any]) -> None:
        structural = {"dim", "relevance_mode", "relevance_dim"} & set(overrides)
        if structural:
            raise InvalidInputError(f"model_overrides cannot change {sorted(structural)}: they decide the weights' "
                                    "shapes; build a new model instead")
        model = self.model
        model.config = model.config.replace(**overrides)
        model.tokenizer = ColBERTTokenizer(model.tokenizer.hf, model.config)
        with torch.no_grad():
            # a new starting point for the head's a and b replaces the loaded values
            if "relevance_scale" in overrides:
                model.relevance.scale.fill_(float(overrides["relevance_scale"]))
            if "relevance_bias" in overrides:
                model.relevance.bias.fill_(float(overrides["relevance_bias"]))

    def _freeze(self, n: int) -> None:
        if n == 0:
            return
        enc = self.model.encoder
        layers = getattr(getattr(enc, "encoder", None), "layer", None)
        embeddings = getattr(enc, "embeddings", None)
        if layers is None or embeddings is None:
            raise InvalidInputError(f"freeze_layers needs a BERT-like encoder; {type(enc).__name__} has no "
                                    "encoder.layer / embeddings")
        if n > len(layers):
            raise InvalidInputError(f"freeze_layers={n} but the encoder has {len(layers)} layers")
        for module in [embeddings, *layers[:n]]:
            for p in module.parameters():
                p.requires_grad_(False)

    def _order(self, epoch: int) -> list[int]:
        order = list(range(len(self.examples)))
        random.Random(self.config.seed * 1_000_003 + epoch).shuffle(order)
        return order

    def _examples_for(self, step: int) -> list[TrainingExample]:
        """The batch of ``step``: a pure function of seed and step, so a resumed run sees the same data."""
        bs = self.config.batch_size
        per_epoch = max(1, len(self.examples) // bs)
        epoch, pos = divmod(step, per_epoch)
        order = self._order(epoch)
        return [self.examples[i] for i in order[pos * bs: (pos + 1) * bs]]

    # ------------------------------------------------------------------ inputs
    def _window(self, passage: TrainingPassage, rng: random.Random):
        pieces = self._train_tokenizer.pieces([passage.text])[0]
        w = 0
        if len(pieces.windows) > 1:
            if passage.spans:
                first = passage.spans[0][0]
                # the first window that holds the start of the evidence
                for k, (a, b) in enumerate(pieces.windows):
                    if a < len(pieces.offsets) and pieces.offsets[min(b, len(pieces.offsets)) - 1][1] > first:
                        w = k
                        break
            else:
                w = rng.randrange(len(pieces.windows))
        return pieces, w

    def _loss(self, batch: _Batch, rng: random.Random) -> tuple[torch.Tensor, dict[str, float]]:
        model, cfg = self.model, self.config
        tok = self._train_tokenizer
        q_in = tok.queries(batch.queries)
        windows = [self._window(p, rng) for p in batch.passages]
        d_in = tok.windows(windows)
        with model._autocast() if not cfg.bf16 else torch.autocast(model.device.type, dtype=torch.bfloat16):
            q, _ = model.forward_queries(q_in)
            d, _ = model.forward_windows(d_in)
        q, d = q.float(), d.float()
        keep = d_in.keep_mask.to(d.device)
        # sim[b, n, i, j]: query b token i vs passage n token j
        sim = torch.einsum("bid,njd->bnij", q, d)
        sim = sim.masked_fill(~keep[None, :, None, :], -1e4)
        stats: dict[str, float] = {}
        loss = torch.zeros((), device=d.device)
        if cfg.token_loss_weight < 1.0 and batch.rank_rows:
            scores = sim.max(dim=3).values.sum(dim=2)  # [B, N] MaxSim
            rows = torch.tensor(batch.rank_rows, device=d.device)
            logits = scores[rows].clone()
            for r, row in enumerate(batch.rank_rows):
                if batch.excluded[row]:
                    logits[r, batch.excluded[row]] = -1e4
            target = torch.tensor([batch.positive_column[row] for row in batch.rank_rows], device=d.device)
            rank_loss = F.cross_entropy(logits, target)
            stats["rank_loss"] = float(rank_loss.detach())
            stats["rank_acc"] = float((logits.argmax(dim=1) == target).float().mean())
            kl_rows = [row for row in batch.rank_rows if batch.teacher[row]]
            if kl_rows and cfg.kl_weight > 0:
                kl = torch.zeros((), device=d.device)
                for row in kl_rows:
                    cols = batch.own_columns[row][: len(batch.teacher[row])]
                    student = F.log_softmax(scores[row, cols], dim=0)
                    teacher = F.softmax(torch.tensor(batch.teacher[row], device=d.device), dim=0)
                    kl = kl + F.kl_div(student, teacher, reduction="sum")
                kl = kl / len(kl_rows)
                stats["kl_loss"] = float(kl.detach())
                rank_loss = rank_loss + cfg.kl_weight * kl
            loss = loss + (1.0 - cfg.token_loss_weight) * rank_loss
        labelled = [n for n, p in enumerate(batch.passages) if p.spans is not None]
        if cfg.token_loss_weight > 0.0 and labelled:
            idx = torch.tensor(labelled, device=d.device)
            owners = torch.tensor([batch.owner[n] for n in labelled], device=d.device)
            rel = q_in.relevance_mask.to(d.device)[owners]  # [P, Lq]
            own_sim = sim[owners, idx]  # [P, Lq, L]
            own_sim = own_sim.masked_fill(~rel[:, :, None], -1e4)
            best = own_sim.max(dim=1).values  # [P, L]
            logits = model.relevance.logits(best)
            labels = torch.stack([token_labels(d_in.offsets[n], self._label_spans(batch.passages[n]))
                                  for n in labelled]).to(d.device)
            mask = keep[idx]
            token_loss = F.binary_cross_entropy_with_logits(logits[mask], labels[mask])
            stats["token_loss"] = float(token_loss.detach())
            stats["token_pos_rate"] = float(labels[mask].mean())
            loss = loss + cfg.token_loss_weight * token_loss
        if cfg.sentence_loss_weight > 0.0:
            sentence_loss, hits = self._sentence_loss(batch, sim, q_in.relevance_mask.to(d.device), d_in.offsets)
            if sentence_loss is not None:
                stats["sentence_loss"] = float(sentence_loss.detach())
                stats["sentence_top1"] = hits
                loss = loss + cfg.sentence_loss_weight * sentence_loss
        return loss, stats

    def _label_spans(self, passage: TrainingPassage) -> Sequence[tuple[int, int]]:
        spans = passage.spans or ()
        if self.config.token_target == "sentence" and spans:
            sentences, evidence = evidence_sentences(passage.text, spans)
            return [sent for sent, ev in zip(sentences, evidence) if ev]
        return spans

    def _sentence_loss(self, batch: _Batch, sim: torch.Tensor, relevance_mask: torch.Tensor,
                       offsets: torch.Tensor) -> tuple[torch.Tensor | None, float]:
        """Listwise loss over the sentences of each labelled positive's training window."""
        losses, hits = [], []
        for row, col in enumerate(batch.positive_column):
            passage = batch.passages[col]
            if not passage.spans:
                continue
            sentences, evidence = evidence_sentences(passage.text, passage.spans)
            ids = torch.from_numpy(token_units(offsets[col].numpy(), sentences)).to(sim.device)
            present = sorted(set(ids[ids >= 0].tolist()))
            positive = [k for k in present if evidence[k]]
            if len(present) < 2 or not positive or len(positive) == len(present):
                continue  # nothing to rank inside this window
            member = torch.stack([ids == k for k in present])  # [K, L]
            rows = sim[row, col][relevance_mask[row]]  # [Lq_real, L]
            per_sentence = rows[:, None, :].masked_fill(~member[None], -1e4).max(dim=2).values  # [Lq_real, K]
            logits = per_sentence.mean(dim=0) / self.config.sentence_temperature
            target = torch.tensor([evidence[k] for k in present], device=sim.device)
            losses.append(torch.logsumexp(logits, 0) - torch.logsumexp(logits[target], 0))
            hits.append(float(target[int(logits.argmax())]))
        if not losses:
            return None, 0.0
        return torch.stack(losses).mean(), sum(hits) / len(hits)

    # ------------------------------------------------------------------- loop
    def train(self, *, resume: bool = False) -> FGRColBERT:
        cfg = self.config
        if resume:
            self._resume()
        elif self.output_dir.exists() and any(self.output_dir.iterdir()):
            raise InvalidInputError(f"{self.output_dir} is not empty; pass resume=True (--resume) to continue "
                                    "that run, or choose another output directory")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.output_dir / CONFIG_FILE, json.dumps(cfg.to_dict(), indent=2) + "\n")
        self.model.train()
        bar = tqdm(total=cfg.steps, initial=self.step, desc="Training", unit="step",
                   disable=not self.show_progress_bar)
        started = time.perf_counter()
        while self.step < cfg.steps:
            torch.manual_seed(cfg.seed * 1_000_003 + self.step)
            rng = random.Random(cfg.seed * 7_919 + self.step)
            examples = self._examples_for(self.step)
            chunk = math.ceil(len(examples) / cfg.grad_accumulation)
            totals: dict[str, float] = {}
            self.optimizer.zero_grad(set_to_none=True)
            for a in range(0, len(examples), chunk):
                part = examples[a: a + chunk]
                loss, stats = self._loss(_collate(part, cfg.max_negatives), rng)
                (loss * len(part) / len(examples)).backward()
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value * len(part) / len(examples)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            record = {"step": self.step, "lr": self.scheduler.get_last_lr()[0], **{k: round(v, 5) for k, v in totals.items()},
                      "scale": round(self.model.relevance.scale.item(), 4), "bias": round(self.model.relevance.bias.item(), 4),
                      "elapsed_s": round(time.perf_counter() - started, 1)}
            with open(self.output_dir / LOG_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
            if self.log:
                self.log(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in totals.items() if k.endswith("loss")})
            bar.update(1)
            if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                self._checkpoint()
        bar.close()
        self.model.eval()
        self.model.save_pretrained(self.output_dir / "final")
        return self.model

    def _checkpoint(self) -> None:
        target = self.output_dir / "checkpoint"
        with atomic_directory(target, marker=STATE_FILE) as tmp:
            self.model.save_pretrained(tmp / "model")
            torch.save({"step": self.step, "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict()}, tmp / STATE_FILE)
            atomic_write_text(tmp / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2) + "\n")

    def _resume(self) -> None:
        ckpt = self.output_dir / "checkpoint"
        if not (ckpt / STATE_FILE).is_file():
            raise InvalidInputError(f"nothing to resume: {ckpt / STATE_FILE} does not exist")
        saved = TrainingConfig.from_dict(read_json(ckpt / CONFIG_FILE, InvalidInputError, "training config"))
        if saved.to_dict() != self.config.to_dict():
            raise InvalidInputError(f"the checkpoint in {ckpt} was trained with a different configuration; "
                                    "resume with the same options")
        loaded = FGRColBERT.from_pretrained(ckpt / "model")
        own = self.model.state_dict()
        # a reloaded BERT may grow a (randomly initialised, unused) pooler the model never had
        state = {k: v for k, v in loaded.state_dict().items() if k in own}
        self.model.load_state_dict(state)
        self.model.config = loaded.config
        # weights_only: the state holds tensors and plain containers, nothing to unpickle blindly
        state = torch.load(ckpt / STATE_FILE, map_location=self.model.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        log = self.output_dir / LOG_FILE
        if log.exists():
            # drop log lines of steps after the checkpoint: they will be trained again
            lines = [ln for ln in log.read_text(encoding="utf-8").splitlines()
                     if ln.strip() and json.loads(ln).get("step", 0) <= self.step]
            atomic_write_text(log, "".join(ln + "\n" for ln in lines))


def trainable_summary(model: FGRColBERT) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"parameters": total, "trainable": trainable}
