"""Haystack retriever for FGRColBERTDocumentStore."""

from .retriever import FGRColBERTRetriever

__all__ = ["FGRColBERTRetriever"]
