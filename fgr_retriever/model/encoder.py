"""``FGRColBERT``: a ColBERT encoder whose similarity matrix also says which words are relevant."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal, Sequence, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import InvalidInputError
from ..evidence.answer import AnswerHead, run_head
from ..evidence.head import RelevanceHead
from ..evidence.sentence_decoding import calibrated, select_units, text_units, unit_scores, unit_spans
from ..evidence.word_decoding import WordPooling, check_pooling, combine_windows, spans_from_tokens, token_scores
from ..types import Span, TokenScore
from ..validation import check_threshold
from .config import EVIDENCE_UNITS, FGRConfig
from .scoring import window_maxsim
from .tokenization import ColBERTTokenizer, QueryInputs, WindowInputs, check_texts

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["FGRColBERT", "QueryEncoding", "TextEncoding"]

Precision = Literal["auto", "float32", "bfloat16"]


@dataclass(frozen=True)
class QueryEncoding:
    """One encoded query: ``vectors [max(query_maxlen, query length), dim]`` (L2-normalised) and
    the positions the relevance head looks at."""

    vectors: torch.Tensor
    relevance_mask: torch.Tensor
    relevance_vectors: torch.Tensor | None = None


@dataclass(frozen=True)
class TextEncoding:
    """One encoded text: the scored tokens of all its windows, back to back.

    ``window_lengths`` says how many rows belong to each window; ``offsets [T, 2]`` are character
    ranges into the text (``-1`` for ``[CLS]``, markers and ``[SEP]``).
    """

    vectors: torch.Tensor
    offsets: torch.Tensor
    window_lengths: tuple[int, ...]
    relevance_vectors: torch.Tensor | None = None

    @property
    def window_starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.window_lengths)[:-1]]).astype(np.int64)


class FGRColBERT(nn.Module):
    """ColBERT late interaction plus FGR token relevance, over any BERT-like encoder.

    Ranking is ColBERT's MaxSim; for every document token the relevance head turns the best cosine
    with the query into a probability, from the same similarity matrix.

    >>> from fgr_retriever import FGRColBERT
    >>> model = FGRColBERT.from_pretrained()  # the bundled default model, offline
    >>> spans = model.highlight("How long is the warranty?",
    ...                         "Our watches carry a two-year warranty against defects.")
    >>> all(span.text in "Our watches carry a two-year warranty against defects." for span in spans)
    True
    """

    def __init__(self, *, encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: FGRConfig,
                 name_or_path: str | None = None, precision: Precision = "auto") -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.tokenizer = ColBERTTokenizer(tokenizer, config)
        hidden = int(encoder.config.hidden_size)
        self.projection = nn.Linear(hidden, config.dim, bias=False)
        if hidden == config.dim:
            # no random layer on top of a ready encoder: start as the identity
            with torch.no_grad():
                self.projection.weight.copy_(torch.eye(hidden))
        self.relevance = RelevanceHead(
            mode=config.relevance_mode, scale=config.relevance_scale, bias=config.relevance_bias,
            hidden_size=hidden, dim=config.dim, relevance_dim=config.relevance_dim)
        # the answer tier (evidence/answer.py): optional, trained separately on the stored vectors
        self.answer_head: AnswerHead | None = None
        self.name_or_path = name_or_path
        self.precision = precision
        self._fingerprint: tuple[int, str] | None = None
        self.eval()

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, *, device: str | torch.device | None = None,
                        trust_remote_code: bool = False, precision: Precision = "auto", **overrides) -> FGRColBERT:
        """Load a model.

        ``name_or_path`` may be ``None`` (the bundled default model, offline), a directory saved by
        :meth:`save_pretrained`, a Stanford ColBERT checkpoint directory, a PyLate /
        sentence-transformers directory, a plain Hugging Face encoder directory, or a Hugging Face
        hub id (downloaded when the network allows). ``overrides`` replace config fields
        (e.g. ``doc_maxlen=300``).
        """
        from .serialization import load_model

        model = load_model(name_or_path, model_cls=cls, trust_remote_code=trust_remote_code, overrides=overrides)
        model.precision = precision
        if device is not None:
            model.to(device)
        return model

    def save_pretrained(self, path: str | Path) -> Path:
        """Write config, weights and tokenizer to ``path`` atomically (see :mod:`fgr_retriever.model.serialization`)."""
        from .serialization import save_model

        return save_model(self, Path(path))

    # ------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def threshold(self) -> float:
        return self.config.threshold

    def fingerprint(self) -> str:
        """A hash of config and weights; an index records it to detect a model/index mismatch."""
        version = sum(p._version for p in self.parameters())
        if self._fingerprint is None or self._fingerprint[0] != version:
            h = hashlib.blake2b(digest_size=16)
            cfg = self.config.to_dict()
            for key in ("threshold", "evidence_unit", "sentence_scale", "sentence_bias", "sentence_threshold",
                        "sentence_ratio", "query_max_tokens"):
                cfg.pop(key)  # evidence decoding and query settings change spans and queries, not stored vectors
            h.update(json.dumps(cfg, sort_keys=True).encode())
            for name, tensor in sorted(self.state_dict().items()):
                if name.startswith(("relevance.", "answer_head.")) or ".pooler." in f".{name}":
                    # the heads do not change stored vectors, and neither does BERT's pooler
                    # (which transformers initialises randomly when a checkpoint has none)
                    continue
                h.update(name.encode())
                h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
            self._fingerprint = (version, h.hexdigest())
        return self._fingerprint[1]

    # ----------------------------------------------------------------- forward
    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        device = self.device.type
        precision = self.precision
        if precision == "auto":
            precision = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
        if precision == "bfloat16":
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                yield
        else:
            yield

    def _project(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.device
        hidden = self.encoder(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).last_hidden_state
        return hidden, self.projection(hidden)

    def forward_queries(self, inputs: QueryInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Differentiable query encoding: ``([B, Lq, dim], relevance vectors or None)``."""
        hidden, projected = self._project(inputs.input_ids, inputs.attention_mask)
        return F.normalize(projected, dim=-1), self.relevance.vectors(hidden, projected)

    def forward_windows(self, inputs: WindowInputs) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Differentiable document-window encoding: ``([W, L, dim], relevance vectors or None)``."""
        hidden, projected = self._project(inputs.input_ids, inputs.attention_mask)
        return F.normalize(projected, dim=-1), self.relevance.vectors(hidden, projected)

    # ---------------------------------------------------------------- encoding
    def _query_max_tokens(self) -> int:
        # never past the encoder's position embeddings, whatever the config says
        positions = getattr(self.encoder.config, "max_position_embeddings", None) or self.config.query_max_tokens
        return max(self.config.query_maxlen, min(self.config.query_max_tokens, positions))

    def encode_queries(self, queries: str | Sequence[str], *, batch_size: int = 64) -> list[QueryEncoding]:
        """Encode queries (inference).

        Queries up to ``query_maxlen`` tokens are padded to it with ``[MASK]`` (ColBERT's query
        augmentation); longer ones keep their length, up to ``config.query_max_tokens``, beyond
        which they are cut with a ``UserWarning``. ``QueryEncoding.vectors`` has one row per
        position: ``max(query_maxlen, query length)``.
        """
        queries = check_texts(queries, what="query")
        for i, q in enumerate(queries):
            if not q.strip():
                raise InvalidInputError(f"query {i} is empty")
        out: list[QueryEncoding] = []
        with torch.inference_mode(), self._autocast():
            for b in range(0, len(queries), batch_size):
                inputs = self.tokenizer.queries(queries[b: b + batch_size], max_tokens=self._query_max_tokens())
                vecs, rel = self.forward_queries(inputs)
                lengths = inputs.attention_mask.sum(dim=1).clamp(min=self.config.query_maxlen).tolist()
                for row in range(vecs.shape[0]):
                    n = int(lengths[row])  # drop the [PAD] a longer query in the batch added
                    out.append(QueryEncoding(
                        vectors=vecs[row, :n].float(),
                        relevance_mask=inputs.relevance_mask[row, :n].to(vecs.device),
                        relevance_vectors=None if rel is None else rel[row, :n].float(),
                    ))
        return out

    def encode_documents(self, texts: str | Sequence[str], *, batch_size: int = 32,
                         show_progress_bar: bool = False) -> list[TextEncoding]:
        """Encode texts of any length (inference): long texts become overlapping windows.

        Windows of all texts are batched by length, which keeps padding (wasted compute) low.
        Vectors come back on the CPU in float32.
        """
        texts = check_texts(texts, what="text")
        if not texts:
            return []
        pieces = self.tokenizer.pieces(texts)
        items = [(t, w) for t, p in enumerate(pieces) for w in range(len(p.windows))]
        size = [pieces[t].windows[w][1] - pieces[t].windows[w][0] for t, w in items]
        order = sorted(range(len(items)), key=lambda i: -size[i])
        done: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = {}
        # the bar counts tokens, the actual work: windows run longest first, so a bar counting
        # finished texts would sit near 0 % for most of a run over long documents
        bar = tqdm(total=sum(size), desc="Encoding", unit="tok", unit_scale=True, disable=not show_progress_bar)
        texts_done = 0
        remaining = [len(p.windows) for p in pieces]
        with torch.inference_mode(), self._autocast():
            for b in range(0, len(order), batch_size):
                batch = order[b: b + batch_size]
                inputs = self.tokenizer.windows([(pieces[items[i][0]], items[i][1]) for i in batch])
                vecs, rel = self.forward_windows(inputs)
                keep = inputs.keep_mask.to(vecs.device)
                for row, i in enumerate(batch):
                    k = keep[row]
                    done[i] = (vecs[row][k].float().cpu(), inputs.offsets[row][keep[row].cpu()],
                               None if rel is None else rel[row][k].float().cpu())
                    t = items[i][0]
                    remaining[t] -= 1
                    texts_done += remaining[t] == 0
                bar.update(sum(size[i] for i in batch))
                bar.set_postfix_str(f"{texts_done}/{len(texts)} texts", refresh=False)
        bar.close()
        out: list[TextEncoding] = []
        pos = 0
        for p in pieces:
            parts = [done[pos + w] for w in range(len(p.windows))]
            pos += len(p.windows)
            out.append(TextEncoding(
                vectors=torch.cat([x[0] for x in parts]),
                offsets=torch.cat([x[1] for x in parts]),
                window_lengths=tuple(int(x[0].shape[0]) for x in parts),
                relevance_vectors=None if parts[0][2] is None else torch.cat([x[2] for x in parts]),
            ))
        return out

    # ------------------------------------------------------------------ scores
    def _head_inputs(self, query: QueryEncoding, vectors: torch.Tensor,
                     relevance_vectors: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.relevance.needs_own_vectors:
            if relevance_vectors is None or query.relevance_vectors is None:
                raise InvalidInputError(f"relevance_mode={self.config.relevance_mode!r} needs relevance vectors")
            q, d = query.relevance_vectors, relevance_vectors
        else:
            q, d = query.vectors, vectors
        return q[query.relevance_mask.to(q.device)], d

    def token_similarities(self, query: QueryEncoding, vectors: torch.Tensor,
                           relevance_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Cosines ``[T, Q]`` of each document token row with each query position the relevance
        head looks at (float32, CPU): what token probabilities and sentence scores are made of."""
        q, d = self._head_inputs(query, vectors, relevance_vectors)
        if q.shape[0] == 0 or d.shape[0] == 0:
            return torch.zeros(d.shape[0], q.shape[0])
        with torch.inference_mode():
            return (d.float() @ q.to(d.device).float().T).cpu()

    def token_probabilities(self, query: QueryEncoding, vectors: torch.Tensor,
                            relevance_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Relevance probability of each document token row in ``vectors`` (``[T]``, float32).

        In the default ``shared`` mode this is ``sigmoid(a * max_i cos(q_i, d_j) + b)`` over the
        query's content positions: the same cosines MaxSim ranks with.
        """
        sims = self.token_similarities(query, vectors, relevance_vectors)
        if sims.shape[1] == 0:
            return torch.zeros(sims.shape[0])
        with torch.inference_mode():
            best = sims.max(dim=1).values
            return self.relevance.probabilities(best.to(self.relevance.scale.device)).float().cpu()

    def unit_probabilities(self, query: QueryEncoding, text: str, vectors: torch.Tensor, offsets: torch.Tensor,
                           relevance_vectors: torch.Tensor | None = None, *,
                           unit: str = "sentence") -> tuple[list[tuple[int, int]], np.ndarray]:
        """The sentences (or clauses) of ``text`` and each one's calibrated evidence probability."""
        units = text_units(text, unit)
        sims = self.token_similarities(query, vectors, relevance_vectors).numpy()
        raw = unit_scores(sims, offsets.numpy(), units)
        return units, calibrated(raw, scale=self.config.sentence_scale, bias=self.config.sentence_bias)

    @staticmethod
    def text_score(query: QueryEncoding, encoding: TextEncoding) -> float:
        """MaxSim of an encoded text: its best window's score."""
        return float(window_maxsim(query.vectors.cpu(), encoding.vectors, encoding.window_starts).max())

    def spans_from_vectors(self, query: QueryEncoding, text: str, vectors: torch.Tensor, offsets: torch.Tensor,
                           relevance_vectors: torch.Tensor | None, *, threshold: float | None = None,
                           pooling: WordPooling = "max", unit: str | None = None) -> list[Span]:
        """Evidence spans of ``text`` from its (stored or fresh) token vectors and offsets.

        ``unit`` (default: the model's ``evidence_unit``) decides what a span is: a sentence, a
        clause or a run of words; ``threshold`` (default: the model's, for that unit) is the
        probability the best sentence, or each word, must reach.
        """
        unit, threshold = self.resolve_evidence(unit, threshold)
        check_pooling(pooling)
        if unit == "word":
            probs = self.token_probabilities(query, vectors, relevance_vectors)
            offs, merged = combine_windows([(offsets.numpy(), probs.numpy())])
            return spans_from_tokens(text, offs, merged, threshold=threshold, pooling=pooling)
        units, probs = self.unit_probabilities(query, text, vectors, offsets, relevance_vectors, unit=unit)
        chosen = select_units(probs, threshold=threshold, ratio=self.config.sentence_ratio)
        return unit_spans(text, units, probs, chosen)

    def answer_spans(self, query: QueryEncoding, text: str, vectors: torch.Tensor, offsets: torch.Tensor,
                     evidence: Sequence[Span], *, threshold: float | None = None) -> list[Span]:
        """The answer inside each evidence span (the second highlight tier), from the same stored
        vectors; at most one per span, none where the head is unsure or the model has no answer
        head (see :mod:`fgr_retriever.evidence.answer`)."""
        if self.answer_head is None or not evidence:
            return []
        return run_head(self.answer_head, text, evidence, vectors.cpu(), offsets.cpu().numpy(), query.vectors.cpu(),
                        query.relevance_mask.cpu(), threshold=check_threshold(threshold))

    def tiers_from_vectors(self, query: QueryEncoding, text: str, vectors: torch.Tensor, offsets: torch.Tensor,
                           relevance_vectors: torch.Tensor | None, *, threshold: float | None = None,
                           unit: str | None = None) -> tuple[list[Span], list[Span]]:
        """Both highlight tiers from stored vectors: the evidence spans and the answer inside each
        (sentence and clause evidence only: a word span is already as narrow as an answer)."""
        unit, threshold = self.resolve_evidence(unit, threshold)
        spans = self.spans_from_vectors(query, text, vectors, offsets, relevance_vectors, threshold=threshold,
                                        unit=unit)
        answers = self.answer_spans(query, text, vectors, offsets, spans) if unit != "word" else []
        return spans, answers

    def resolve_evidence(self, unit: str | None, threshold: float | None) -> tuple[str, float]:
        """``(unit, threshold)`` with the model's defaults filled in; bad values raise
        :class:`InvalidInputError`."""
        unit = self.config.evidence_unit if unit is None else unit
        if unit not in EVIDENCE_UNITS:
            raise InvalidInputError(f"unit must be one of {EVIDENCE_UNITS}, got {unit!r}")
        checked = check_threshold(threshold)
        if checked is None:
            checked = self.config.threshold if unit == "word" else self.config.sentence_threshold
        return unit, checked

    def score(self, query: str, texts: str | Sequence[str], *, batch_size: int = 32) -> list[float]:
        """MaxSim scores of ``texts`` for ``query`` (a long text scores as its best window)."""
        q = self.encode_queries(query)[0]
        return [self.text_score(q, enc) for enc in self.encode_documents(texts, batch_size=batch_size)]

    def _token_level(self, query: str, text: str):
        q = self.encode_queries(query)[0]
        enc = self.encode_documents(text)[0]
        probs = self.token_probabilities(q, enc.vectors, enc.relevance_vectors)
        return combine_windows([(enc.offsets.numpy(), probs.numpy())])

    def token_scores(self, query: str, text: str) -> list[TokenScore]:
        """Per-wordpiece relevance probabilities with character offsets (punctuation excluded
        when ``mask_punctuation`` is on), for evaluation curves and custom decoders."""
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be str, got {type(text).__name__}")
        if not text.strip():
            return []
        offsets, probs = self._token_level(query, text)
        return token_scores(text, offsets, probs)

    @overload
    def highlight(self, query: str, text: str, *, threshold: float | None = ..., pooling: WordPooling = ...,
                  batch_size: int = ..., unit: str | None = ...) -> list[Span]: ...
    @overload
    def highlight(self, query: str, text: Sequence[str], *, threshold: float | None = ...,
                  pooling: WordPooling = ..., batch_size: int = ..., unit: str | None = ...) -> list[list[Span]]: ...

    def highlight(self, query, text, *, threshold=None, pooling="max", batch_size=32, unit=None):
        """Evidence spans of ``text`` (or of each text in a list) for ``query``.

        By default (``unit="sentence"``) every sentence is scored against the query and the
        evidence is the best sentence plus those within the model's calibrated ratio of it, or
        nothing when even the best is below ``threshold`` (see :mod:`fgr_retriever.evidence.sentence_decoding`).
        ``unit="clause"`` also cuts long sentences at ``;`` and ``:``. ``unit="word"`` is
        FGR-ColBERT's word decoding: word pieces are pooled into words (``pooling``), words at or
        above ``threshold`` are kept and consecutive ones merge. Spans always carry character
        offsets into the original string.
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        single = isinstance(text, str)
        texts = check_texts(text, what="text")
        unit, threshold = self.resolve_evidence(unit, threshold)
        check_pooling(pooling)  # before any encoding, also when every text is blank
        out: list[list[Span]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if todo:
            q = self.encode_queries(query)[0]
            encodings = self.encode_documents([texts[i] for i in todo], batch_size=batch_size)
            for i, enc in zip(todo, encodings):
                out[i] = self.spans_from_vectors(q, texts[i], enc.vectors, enc.offsets, enc.relevance_vectors,
                                                 threshold=threshold, pooling=pooling, unit=unit)
        return out[0] if single else out

    def highlight_with_answers(self, query: str, text: str, *, threshold: float | None = None,
                               unit: str | None = None) -> tuple[list[Span], list[Span]]:
        """Both highlight tiers of one text: the evidence spans (as :meth:`highlight`) and the
        answer inside each (:meth:`answer_spans`; empty without an answer head or for
        ``unit="word"``), from one encoding.

        >>> model = FGRColBERT.from_pretrained()
        >>> spans, answers = model.highlight_with_answers("How heavy is it?", "Colour: black. Weight: 0.9 kg.")
        >>> [a.text for a in answers]
        ['0.9 kg']
        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("query must be a non-empty string")
        if not isinstance(text, str):
            raise InvalidInputError(f"text must be str, got {type(text).__name__}")
        unit, threshold = self.resolve_evidence(unit, threshold)
        if not text.strip():
            return [], []
        q = self.encode_queries(query)[0]
        enc = self.encode_documents(text)[0]
        return self.tiers_from_vectors(q, text, enc.vectors, enc.offsets, enc.relevance_vectors, threshold=threshold,
                                       unit=unit)

    def _check_threshold(self, threshold: float | None) -> float:
        checked = check_threshold(threshold)
        return self.config.threshold if checked is None else checked
