"""Async paths: same results as sync, the event loop keeps running, concurrent use is serialised."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from langchain_core.documents import Document

from langchain_fgr import FGRColBERTRetriever, FGREvidenceCompressor

QUERY = "how do I wash a cashmere sweater"


@pytest.fixture
def retriever(tiny_model, corpus):
    return FGRColBERTRetriever.from_texts(corpus["texts"], metadatas=corpus["metadatas"], ids=corpus["ids"],
                                          model=tiny_model, k=3)


class _Overlap:
    """Wraps methods so that each call takes ``delay`` seconds and records how many ran at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.active = 0
        self.most = 0
        self.calls = 0
        self._guard = threading.Lock()

    def wrap(self, fn):
        def slow(*args, **kwargs):
            with self._guard:
                self.active += 1
                self.calls += 1
                self.most = max(self.most, self.active)
            try:
                time.sleep(self.delay)
                return fn(*args, **kwargs)
            finally:
                with self._guard:
                    self.active -= 1

        return slow


async def test_ainvoke_matches_invoke(retriever):
    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)
    options = {"k": 2, "filter": {"category": "care"}, "evidence_only": True, "threshold": 0.99}
    assert await retriever.ainvoke(QUERY, **options) == retriever.invoke(QUERY, **options)


async def test_ainvoke_validates_before_leaving_the_loop(retriever):
    from fgr_retriever.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="k must be"):
        await retriever.ainvoke(QUERY, k=-1)
    with pytest.raises(TypeError, match="unexpected option"):
        await retriever.ainvoke(QUERY, kk=1)


async def test_event_loop_keeps_running_during_a_search(retriever, monkeypatch):
    overlap = _Overlap(delay=0.4)
    monkeypatch.setattr(retriever.retriever, "search", overlap.wrap(retriever.retriever.search))
    ticks = 0
    searching = True

    async def ticker():
        nonlocal ticks
        while searching:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    try:
        before = ticks
        docs = await retriever.ainvoke(QUERY)
        during = ticks - before
    finally:
        searching = False
        await task
    assert len(docs) == 3 and overlap.calls == 1
    # a blocking search would have frozen the ticker for the whole 0.4 s
    assert during >= 10


async def test_concurrent_sync_and_async_calls_are_serialised(retriever, monkeypatch):
    core = retriever.retriever
    overlap = _Overlap(delay=0.02)
    monkeypatch.setattr(core, "search", overlap.wrap(core.search))
    monkeypatch.setattr(core, "add_documents", overlap.wrap(core.add_documents))
    expected = retriever.invoke(QUERY)
    overlap.calls = 0

    sync_results: list = []

    def sync_worker():
        for _ in range(3):
            sync_results.append(retriever.invoke(QUERY))

    threads = [threading.Thread(target=sync_worker) for _ in range(2)]
    for t in threads:
        t.start()
    outcomes = await asyncio.gather(*(retriever.ainvoke(QUERY) for _ in range(4)),
                                    retriever.aadd_texts(["Velvet is steamed."], ids=["velvet"]))
    await asyncio.to_thread(lambda: [t.join() for t in threads])

    assert overlap.most == 1 and overlap.calls == 11
    # the added text may land before or after a search; the corpus' top documents stay the same
    for docs in [*outcomes[:4], *sync_results]:
        assert [d.id for d in docs if d.id != "velvet"][:2] == [d.id for d in expected][:2]
    assert outcomes[4] == ["velvet"]


async def test_wrappers_and_compressor_sharing_a_model_share_one_lock(retriever, monkeypatch):
    twin = FGRColBERTRetriever(retriever=retriever.retriever)
    compressor = FGREvidenceCompressor.from_retriever(retriever)
    overlap = _Overlap(delay=0.05)
    monkeypatch.setattr(retriever.retriever, "search", overlap.wrap(retriever.retriever.search))
    monkeypatch.setattr(compressor._core, "rerank", overlap.wrap(compressor._core.rerank))
    docs = [Document(page_content="Wool is aired, not washed."), Document(page_content="Silk is dry-cleaned.")]
    await asyncio.gather(retriever.ainvoke(QUERY), twin.ainvoke(QUERY), compressor.acompress_documents(docs, QUERY),
                         asyncio.to_thread(compressor.compress_documents, docs, QUERY))
    assert overlap.calls == 4 and overlap.most == 1


async def test_async_document_management(tmp_path, tiny_model, corpus):
    path = tmp_path / "index"
    retriever = FGRColBERTRetriever.from_texts(corpus["texts"], ids=corpus["ids"], model=tiny_model)
    assert await retriever.aadd_documents([Document(page_content="Velvet is steamed.", id="velvet")]) == ["velvet"]
    await retriever.adelete(["silk"])
    assert "velvet" in retriever.retriever and "silk" not in retriever.retriever
    await retriever.asave(path)
    reopened = FGRColBERTRetriever.from_index(path, model=tiny_model)
    assert await reopened.ainvoke(QUERY) == await retriever.ainvoke(QUERY)
