"""LangChain's standard retriever test suite, run against FGRColBERTRetriever with a tiny model."""

from __future__ import annotations

import functools
from typing import Any

from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_fgr import FGRColBERTRetriever


TEXTS = [
    "Returns are accepted within 30 days of delivery.",
    "Silk scarves should be dry-cleaned only.",
    "Our boutiques open at ten on weekdays.",
    "Cashmere is washed by hand in cold water.",
    "Gift wrapping is free before December.",
]


@functools.cache
def _core_retriever():
    """One indexed core retriever for the whole class: the suite builds many wrappers around it."""
    from fgr_retriever import FGRRetriever
    from fgr_retriever.testing import tiny_model

    core = FGRRetriever(model=tiny_model())
    core.add_documents(TEXTS, ids=[f"doc-{i}" for i in range(len(TEXTS))])
    return core


class TestFGRColBERTRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[FGRColBERTRetriever]:
        return FGRColBERTRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"retriever": _core_retriever(), "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how do I wash cashmere"
