"""Indexing throughput and search latency with and without highlighting."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Sequence

from ..errors import InvalidInputError
from .reports import EfficiencyReport

if TYPE_CHECKING:
    from ..model.encoder import FGRColBERT


def measure_efficiency(model: FGRColBERT, texts: Sequence[str], queries: Sequence[str], *, k: int = 10,
                       batch_size: int = 32) -> EfficiencyReport:
    """Index ``texts`` in an in-memory :class:`FGRRetriever` (timed), then time each query's search
    with highlighting on and off; latencies are medians in milliseconds."""
    from ..retriever import FGRRetriever

    if not texts or not queries:
        raise InvalidInputError("measure_efficiency needs at least one text and one query")
    retriever = FGRRetriever(model=model, batch_size=batch_size, show_progress_bar=False)
    start = time.perf_counter()
    retriever.add_documents(list(texts), ids=[str(i) for i in range(len(texts))])
    encode_s = time.perf_counter() - start
    retriever.search(queries[0], k=k)  # warm-up: first calls pay one-off allocation costs

    def latencies(highlight: bool) -> list[float]:
        out = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, k=k, highlight=highlight)
            out.append((time.perf_counter() - t0) * 1000)
        return out

    off = statistics.median(latencies(False))
    on = statistics.median(latencies(True))
    return EfficiencyReport(n_documents=len(texts), n_queries=len(queries), k=k, encode_seconds=encode_s,
                            docs_per_second=len(texts) / encode_s if encode_s > 0 else float("inf"),
                            search_ms_highlight=on, search_ms_no_highlight=off,
                            highlight_overhead_ratio=on / off if off > 0 else float("nan"))
