"""The model configuration saved as ``fgr_config.json`` next to the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal, Mapping

from ..errors import InvalidInputError, ModelLoadError

__all__ = ["FGRConfig", "FORMAT_VERSION", "EVIDENCE_UNITS", "EvidenceUnit"]

FORMAT_VERSION = 1

RelevanceMode = Literal["shared", "projection", "residual_ffn"]
RelevanceQueryTokens = Literal["content", "all"]
EvidenceUnit = Literal["sentence", "clause", "word"]
EVIDENCE_UNITS = ("sentence", "clause", "word")


@dataclass(frozen=True, kw_only=True)
class FGRConfig:
    """Everything, besides weights, that decides what the model computes.

    Attributes:
        query_maxlen: query length in tokens *including* ``[CLS]``, marker and ``[SEP]``;
            shorter queries are padded with ``[MASK]`` (ColBERT's query augmentation).
        query_max_tokens: the longest query searched, in tokens including specials. A query
            longer than ``query_maxlen`` (a customer e-mail, a pasted paragraph) is encoded at its
            own length up to this (never less than ``query_maxlen``, never more than the encoder's
            position embeddings), and cut beyond it with a ``UserWarning``. Training always cuts at
            ``query_maxlen``.
        doc_maxlen: window length in tokens including specials; longer texts are split into
            overlapping windows.
        doc_window_overlap: tokens shared by consecutive windows of a long text.
        dim: size of the token vectors (the projection's output).
        query_marker / doc_marker: tokens inserted after ``[CLS]`` (``None`` for none).
        attend_to_expansion_tokens: whether real query tokens attend to the ``[MASK]`` padding.
        mask_punctuation: drop punctuation tokens of documents from scoring (ColBERT's skiplist).
        relevance_mode: ``"shared"`` reuses the retrieval vectors (adds no index storage);
            ``"projection"`` adds a separate projection; ``"residual_ffn"`` adds a residual FFN on
            the un-normalised vectors. Both alternatives store a second vector per document token.
        relevance_dim: output size of the ``"projection"`` head.
        relevance_query_tokens: which query positions take part in the per-token max:
            ``"content"`` (real query wordpieces only) or ``"all"`` (also specials and ``[MASK]``).
        relevance_scale / relevance_bias: initial ``a`` and ``b`` of ``sigmoid(a * cos + b)``;
            the trained values live in the weights.
        threshold: calibrated probability above which a word is highlighted (``unit="word"``).
        evidence_unit: what evidence is made of by default: ``"sentence"`` (the best sentence and
            those close to it), ``"clause"`` (long sentences cut at ``;`` and ``:``) or ``"word"``
            (every word above ``threshold``, FGR-ColBERT's original decoding).
        sentence_scale / sentence_bias: Platt calibration of a sentence's score (the mean, over
            the query's tokens, of their best cosine in the sentence) into a probability.
        sentence_threshold: a passage shows evidence only when its best sentence reaches this
            probability (so passages that do not answer get nothing highlighted).
        sentence_ratio: other sentences are evidence too when their probability is at least
            this share of the best one's.
    """

    query_maxlen: int = 32
    query_max_tokens: int = 256
    doc_maxlen: int = 180
    doc_window_overlap: int = 32
    dim: int = 128
    query_marker: str | None = "[unused0]"
    doc_marker: str | None = "[unused1]"
    attend_to_expansion_tokens: bool = False
    mask_punctuation: bool = True
    relevance_mode: RelevanceMode = "shared"
    relevance_dim: int = 128
    relevance_query_tokens: RelevanceQueryTokens = "content"
    relevance_scale: float = 10.0
    relevance_bias: float = -5.0
    threshold: float = 0.5
    evidence_unit: EvidenceUnit = "sentence"
    sentence_scale: float = 10.0
    sentence_bias: float = -5.0
    sentence_threshold: float = 0.5
    sentence_ratio: float = 0.9

    def __post_init__(self) -> None:
        specials = 2 + (self.query_marker is not None)
        if self.query_maxlen < specials + 1:
            raise InvalidInputError(f"query_maxlen must be at least {specials + 1}, got {self.query_maxlen}")
        if isinstance(self.query_max_tokens, bool) or not isinstance(self.query_max_tokens, int) \
                or self.query_max_tokens < 1:
            raise InvalidInputError(f"query_max_tokens must be a positive int, got {self.query_max_tokens!r}")
        if self.query_max_tokens < self.query_maxlen:
            # never shorter than the fixed query length (a model loaded with query_maxlen 300 still loads)
            object.__setattr__(self, "query_max_tokens", self.query_maxlen)
        dspecials = 2 + (self.doc_marker is not None)
        if self.doc_maxlen < dspecials + 8:
            raise InvalidInputError(f"doc_maxlen must be at least {dspecials + 8}, got {self.doc_maxlen}")
        if not 0 <= self.doc_window_overlap < self.doc_maxlen - dspecials:
            raise InvalidInputError("doc_window_overlap must be >= 0 and smaller than the window content")
        if self.dim < 1 or self.relevance_dim < 1:
            raise InvalidInputError("dim and relevance_dim must be positive")
        if self.relevance_mode not in ("shared", "projection", "residual_ffn"):
            raise InvalidInputError(f"unknown relevance_mode {self.relevance_mode!r}")
        if self.relevance_query_tokens not in ("content", "all"):
            raise InvalidInputError(f"unknown relevance_query_tokens {self.relevance_query_tokens!r}")
        if not 0.0 < self.threshold < 1.0:
            raise InvalidInputError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.evidence_unit not in EVIDENCE_UNITS:
            raise InvalidInputError(f"evidence_unit must be one of {EVIDENCE_UNITS}, got {self.evidence_unit!r}")
        if not 0.0 <= self.sentence_threshold < 1.0 or not 0.0 < self.sentence_ratio <= 1.0:
            raise InvalidInputError("sentence_threshold must be in [0, 1) and sentence_ratio in (0, 1]")
        if not self.sentence_scale > 0:
            raise InvalidInputError(f"sentence_scale must be positive, got {self.sentence_scale}")

    @property
    def doc_window_content(self) -> int:
        """Room for text tokens in one document window."""
        return self.doc_maxlen - 2 - (self.doc_marker is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FGRConfig:
        data = dict(data)
        version = data.pop("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise ModelLoadError(
                f"fgr_config.json has format_version {version}; this fgr-retriever reads {FORMAT_VERSION}. "
                "Upgrade fgr-retriever or re-save the model."
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelLoadError(f"fgr_config.json has unknown keys {unknown}")
        return cls(**data)

    def replace(self, **changes: Any) -> FGRConfig:
        return replace(self, **changes)
