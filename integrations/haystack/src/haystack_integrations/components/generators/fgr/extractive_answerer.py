"""``FGRExtractiveAnswerer``: an answer made of the best evidence quotes, for pipelines without an LLM."""

# Postponed annotations are fine here: Haystack 3.x resolves string annotations of run() with
# typing.get_type_hints, so every name used in run()'s signature is imported at runtime below.
from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.dataclasses import ChatMessage

from fgr_retriever.evidence.extractive import extractive_answer
from fgr_retriever.evidence.prompting import EvidenceSource
from haystack_integrations.document_stores.fgr._validation import check_int

__all__ = ["FGRExtractiveAnswerer"]


@component
class FGRExtractiveAnswerer:
    """
    Answers with quotes of the best evidence spans, cited, without any language model.

    It stands in for a chat generator in RAG pipelines that must run offline or without an API key:
    the reply (one assistant `ChatMessage` in `replies`, like a chat generator's) says plainly that it
    is extractive, quotes the evidence of the best documents (the sentence around each document's
    highest-scoring span, as the core `extractive_answer` does), and cites them as `[n]`. `reply.meta["citations"]` maps each `[n]` to its document id
    and span. Documents need the evidence metadata of the FGR retriever or ranker; without any span,
    the start of the best document is quoted and the reply says so.

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.components.generators.fgr import FGRExtractiveAnswerer

    doc = Document(
        id="returns",
        content="Returns are accepted within 30 days of delivery, unworn and with their tags.",
        meta={"evidence_spans": [{"start": 21, "end": 35, "text": "within 30 days", "score": 0.8}]},
    )
    reply = FGRExtractiveAnswerer().run(documents=[doc], query="How long do I have?")["replies"][0]
    print(reply.text)
    # (No language model is configured; these are the passages that best match the question.)
    # [1] "Returns are accepted within 30 days of delivery, unworn and with their tags." (returns)
    ```
    """

    def __init__(
        self,
        *,
        max_quotes: int = 3,
        max_sources: int = 3,
        context_words: int | None = None,
        max_words: int | None = None,
    ) -> None:
        """
        Create the answerer.

        :param max_quotes: At most this many quotes, one per document, best-scoring first.
        :param max_sources: Only the first `max_sources` documents (best first) are considered.
        :param context_words: Words of context around a span when a quote cannot be its whole sentence;
            `None` uses the core `extractive_answer` default.
        :param max_words: Longest sentence quoted whole; `None` uses the core default.
        """
        check_int("max_quotes", max_quotes)
        check_int("max_sources", max_sources)
        check_int("context_words", context_words, minimum=0, allow_none=True)
        check_int("max_words", max_words, allow_none=True)
        self.max_quotes = max_quotes
        self.max_sources = max_sources
        self.context_words = context_words
        self.max_words = max_words

    def to_dict(self) -> dict[str, Any]:
        """Serialise the answerer's settings."""
        return default_to_dict(
            self,
            max_quotes=self.max_quotes,
            max_sources=self.max_sources,
            context_words=self.context_words,
            max_words=self.max_words,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGRExtractiveAnswerer:
        """Rebuild an answerer from :meth:`to_dict` output."""
        return default_from_dict(cls, data)

    @component.output_types(replies=list[ChatMessage])
    def run(self, documents: list[Document], query: str | None = None) -> dict[str, list[ChatMessage]]:
        """
        Quote the evidence of `documents`.

        :param documents: Retrieved or re-ranked documents, best first, with FGR evidence metadata.
            Documents without text are ignored.
        :param query: The question; not needed to quote (the spans already answer it), recorded in the
            reply's meta so the reply is self-describing.
        :returns: `{"replies": [ChatMessage]}`: one assistant message; its meta has `citations`.
        """
        sources = []
        for doc in documents:
            source = EvidenceSource.from_fields(id=doc.id, text=doc.content or "", metadata=doc.meta)
            if source.text.strip():
                sources.append(source)
        # unset options are left out so the core's own (benchmark-tuned) defaults apply
        options = {"context_words": self.context_words, "max_words": self.max_words}
        answer = extractive_answer(sources, max_quotes=self.max_quotes, max_sources=self.max_sources,
                                   **{k: v for k, v in options.items() if v is not None})
        meta: dict[str, Any] = {
            "model": "fgr-extractive",
            "finish_reason": "stop",
            "citations": [citation.to_dict() for citation in answer.citations],
        }
        if query is not None:
            meta["query"] = query
        return {"replies": [ChatMessage.from_assistant(answer.text, meta=meta)]}
