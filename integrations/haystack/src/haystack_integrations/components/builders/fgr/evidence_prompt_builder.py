"""``FGREvidencePromptBuilder``: retrieved documents -> a numbered, evidence-trimmed context block."""

# Postponed annotations are fine here: Haystack 3.x resolves string annotations of run() with
# typing.get_type_hints, so every name used in run()'s signature is imported at runtime below.
from __future__ import annotations

import inspect
from typing import Any, Literal

from haystack import Document, component, default_from_dict, default_to_dict

from fgr_retriever.evidence.prompting import DEFAULT_PROMPT_TEMPLATE, EvidenceSource, build_context
from haystack_integrations.document_stores.fgr._validation import check_int

__all__ = ["FGREvidencePromptBuilder", "DEFAULT_RAG_TEMPLATE"]

# Follow the core's default (chosen by its prompt-trimming benchmark) rather than a copy of it.
_CONTEXT_WORDS = inspect.signature(build_context).parameters["context_words"].default

#: The core's default RAG instructions as a Jinja template with `context` and `query` variables,
#: for `PromptBuilder(template=...)` or `ChatPromptBuilder(template=[ChatMessage.from_user(...)])`.
DEFAULT_RAG_TEMPLATE = (
    DEFAULT_PROMPT_TEMPLATE.replace("{context}", "{{ context }}").replace("{question}", "{{ query }}")
)


@component
class FGREvidencePromptBuilder:
    """
    Turns retrieved documents into a compact, cited context block for a prompt.

    Each document becomes a numbered entry (`[1] <title or id>`) holding only its evidence spans
    (from the `evidence_spans` metadata written by the FGR retriever or ranker) widened by a few words
    of context, so the generator reads the words that matter instead of whole documents. Connect
    `context` to a `PromptBuilder` or `ChatPromptBuilder` template variable; `citations` maps each
    `[n]` back to its document id and spans; `documents` lists the cited documents in citation order
    (so `[n]` is `documents[n-1]`, as `AnswerBuilder`'s reference pattern expects).

    Usage example:

    ```python
    from haystack import Document
    from haystack_integrations.components.builders.fgr import FGREvidencePromptBuilder

    doc = Document(
        id="returns",
        content="Our boutiques open at ten. Returns are accepted within 30 days of delivery. Gift wrap is free.",
        meta={"evidence_spans": [{"start": 48, "end": 62, "text": "within 30 days", "score": 0.9}]},
    )
    result = FGREvidencePromptBuilder(context_words=2).run(documents=[doc])
    print(result["context"])
    # [1] returns
    # … are accepted within 30 days of delivery. …
    ```
    """

    def __init__(
        self,
        *,
        mode: Literal["evidence", "full"] = "evidence",
        context_words: int = _CONTEXT_WORDS,
        max_tokens: int | None = None,
        without_evidence: Literal["skip", "full"] = "skip",
    ) -> None:
        """
        Create the builder.

        :param mode: `"evidence"` keeps each document's highlighted spans with `context_words` words
            around them; `"full"` keeps whole documents (a baseline for comparison).
        :param context_words: Words of context on each side of a span (default: the core's
            `build_context` default).
        :param max_tokens: Budget (whitespace words) for the whole block, filled in rank order; what no
            longer fits is listed in `omitted`.
        :param without_evidence: In `"evidence"` mode, what to do with a document that has no span:
            `"skip"` it (the model saw nothing relevant in it) or include its `"full"` text.
        """
        if mode not in ("evidence", "full"):
            raise ValueError(f"mode must be 'evidence' or 'full', got {mode!r}")
        if without_evidence not in ("skip", "full"):
            raise ValueError(f"without_evidence must be 'skip' or 'full', got {without_evidence!r}")
        check_int("context_words", context_words, minimum=0)
        check_int("max_tokens", max_tokens, allow_none=True)
        self.mode = mode
        self.context_words = context_words
        self.max_tokens = max_tokens
        self.without_evidence = without_evidence

    def to_dict(self) -> dict[str, Any]:
        """Serialise the builder's settings."""
        return default_to_dict(
            self,
            mode=self.mode,
            context_words=self.context_words,
            max_tokens=self.max_tokens,
            without_evidence=self.without_evidence,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGREvidencePromptBuilder:
        """Rebuild a builder from :meth:`to_dict` output."""
        return default_from_dict(cls, data)

    @component.output_types(context=str, citations=list[dict[str, Any]], documents=list[Document], omitted=list[str])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """
        Build the context block.

        :param documents: Retrieved documents, best first, ideally carrying FGR evidence metadata.
        :returns: `context` (the text block), `citations` (`{"number", "label", "id", "title", "spans"}`
            per entry), `documents` (the cited documents in citation order) and `omitted` (ids of
            documents left out: no text, no evidence with `without_evidence="skip"`, or over budget).
        """
        sources, by_id, omitted = [], {}, []
        for doc in documents:
            # spans point into the full text, which the retriever keeps in meta when it trimmed content
            source = EvidenceSource.from_fields(id=doc.id, text=doc.content or "", metadata=doc.meta)
            if not source.text.strip():
                omitted.append(doc.id)
                continue
            sources.append(source)
            by_id.setdefault(doc.id, doc)
        context = build_context(sources, mode=self.mode, context_words=self.context_words,
                                max_tokens=self.max_tokens, without_evidence=self.without_evidence)
        return {
            "context": context.text,
            "citations": [citation.to_dict() for citation in context.citations],
            "documents": [by_id[citation.id] for citation in context.citations],
            "omitted": omitted + list(context.omitted),
        }
