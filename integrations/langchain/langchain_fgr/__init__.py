"""LangChain integration of fgr-retriever: a retriever, an evidence compressor and prompt helpers.

Importing the package is cheap; each name loads its module (and PyTorch) on first use.

>>> import langchain_fgr
>>> sorted(langchain_fgr.__all__)[:3]
['FGRColBERTRetriever', 'FGREvidenceCompressor', '__version__']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compressors import FGREvidenceCompressor
    from .prompts import (
        create_evidence_prompt,
        evidence_context_runnable,
        extractive_answer_runnable,
        format_evidence,
    )
    from .retrievers import FGRColBERTRetriever

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "FGRColBERTRetriever": "retrievers",
    "FGREvidenceCompressor": "compressors",
    "format_evidence": "prompts",
    "evidence_context_runnable": "prompts",
    "create_evidence_prompt": "prompts",
    "extractive_answer_runnable": "prompts",
}

__all__ = ["__version__", *_EXPORTS]


def _require(package: str, pip_name: str) -> None:
    """Fail with an install hint instead of a bare ModuleNotFoundError deep in an import."""
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise  # the package is there but something it imports is not: show the real error
        message = f"langchain-fgr needs {pip_name}; install it with: pip install '{pip_name}'"
        try:
            from fgr_retriever.errors import MissingDependencyError
        except ModuleNotFoundError:
            raise ImportError(message) from exc
        raise MissingDependencyError(message) from exc


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _require("langchain_core", "langchain-core>=0.3")
    _require("fgr_retriever", "fgr-retriever")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
