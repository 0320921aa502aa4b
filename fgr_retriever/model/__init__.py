"""The encoder: text in, L2-normalised token vectors out.

Owns: :class:`FGRConfig` (``config``), the ColBERT tokenizer wrapper (``tokenization``), the
network and its encode/score/highlight methods (``encoder``), MaxSim arithmetic (``scoring``),
and every on-disk model format: loading and saving (``serialization``) and the bundled default
model's weight delta (``delta``).

May import: the foundation modules (``errors``, ``types``, ``validation``, ``_io``) and
``fgr_retriever.evidence`` (the head and the decoders the highlight methods run). Never imports
``index``, ``retriever`` or the tool packages (``distill``, ``evaluation``, ``cli``).
"""

from __future__ import annotations

from .config import FGRConfig
from .encoder import FGRColBERT, QueryEncoding, TextEncoding

__all__ = ["FGRColBERT", "FGRConfig", "QueryEncoding", "TextEncoding"]
