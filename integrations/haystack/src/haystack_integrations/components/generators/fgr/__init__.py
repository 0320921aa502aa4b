"""A no-LLM answer component: quotes the best evidence with citations."""

from .extractive_answerer import FGRExtractiveAnswerer

__all__ = ["FGRExtractiveAnswerer"]
