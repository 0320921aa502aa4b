"""Evidence-trimmed prompts for LCEL chains: the generator reads the highlighted words, cited.

Retrieved documents (from :class:`~langchain_fgr.FGRColBERTRetriever` or after
:class:`~langchain_fgr.FGREvidenceCompressor`) carry evidence metadata; these helpers turn them
into the core's numbered context block (:func:`fgr_retriever.evidence.prompting.build_context`), where
``[n]`` cites the n-th document, and into a chat prompt. :func:`extractive_answer_runnable` is
the no-LLM fallback: it answers with the best evidence quotes.

>>> from langchain_core.documents import Document
>>> text = "Returns are accepted within 30 days of delivery. Gift wrap is free."
>>> doc = Document(page_content=text, id="returns", metadata={
...     "relevance_score": 7.5,
...     "evidence_spans": [{"start": 21, "end": 35, "text": "within 30 days", "score": 0.9}]})
>>> context = format_evidence([doc], context_words=2)
>>> print(context.text)
[1] returns
… are accepted within 30 days of delivery. …
>>> context.citation(1).id
'returns'
>>> messages = create_evidence_prompt().invoke({"context": context.text, "question": "How long for returns?"})
>>> messages.to_messages()[-1].content.endswith("Question: How long for returns?\\nAnswer:")
True

A retrieval-augmented chain (``llm`` is any chat model)::

    from langchain_core.runnables import RunnablePassthrough
    chain = ({"context": retriever | evidence_context_runnable(max_tokens=400),
              "question": RunnablePassthrough()}
             | create_evidence_prompt() | llm)
    # without a model: answer with the evidence itself
    fallback = {"documents": retriever, "question": RunnablePassthrough()} | extractive_answer_runnable()
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from fgr_retriever.errors import InvalidInputError
from fgr_retriever.evidence.extractive import extractive_answer
from fgr_retriever.evidence.prompting import DEFAULT_PROMPT_TEMPLATE, EvidenceContext, EvidenceSource, build_context
from fgr_retriever.evidence.text import count_words
from langchain_core.documents import Document
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from ._convert import check_documents

__all__ = [
    "format_evidence",
    "evidence_sources",
    "evidence_context_runnable",
    "create_evidence_prompt",
    "extractive_answer_runnable",
    "DEFAULT_SYSTEM_MESSAGE",
]

# the core tunes this default on its prompt-trimming benchmark; follow it rather than copy it
_CONTEXT_WORDS: int = inspect.signature(build_context).parameters["context_words"].default

#: The system message of :func:`create_evidence_prompt`; the human message is the core's
#: :data:`~fgr_retriever.evidence.prompting.DEFAULT_PROMPT_TEMPLATE` (evidence, question, citation rule).
DEFAULT_SYSTEM_MESSAGE = (
    "You answer questions from the numbered evidence you are given and nothing else. Every claim "
    "carries the bracketed number of the evidence it comes from, such as [2]. When the evidence is "
    "silent on the question, reply that it does not say."
)


def evidence_sources(documents: Sequence[Document]) -> list[EvidenceSource]:
    """LangChain documents as the core's prompt sources, in the given order.

    Spans are read from the evidence metadata and checked against the full text (``full_text``
    when the document was trimmed); a document without it has no spans. A document without an
    id is named by its position (``"0"``, ``"1"`` ...), as the core's ``rerank`` does.
    """
    docs = check_documents(documents)
    return [EvidenceSource.from_fields(id=doc.id or str(i), text=doc.page_content, metadata=doc.metadata or {})
            for i, doc in enumerate(docs)]


def format_evidence(documents: Sequence[Document], *, mode: Literal["evidence", "full"] = "evidence",
                    context_words: int = _CONTEXT_WORDS, max_tokens: int | None = None,
                    without_evidence: Literal["skip", "full"] = "skip",
                    token_counter: Callable[[str], int] | None = None) -> EvidenceContext:
    """The numbered context block for ``documents`` (best first), with citations and size.

    ``mode="evidence"`` keeps each document's highlighted spans widened by ``context_words``
    words (default: the core's :func:`~fgr_retriever.evidence.prompting.build_context` default); ``"full"``
    keeps whole documents. ``max_tokens`` caps the whole block as counted by
    ``token_counter`` (default: whitespace words). A document with no evidence (none was
    highlighted, or it comes from a retriever without evidence metadata) is skipped or included
    in full, per ``without_evidence``. ``EvidenceContext.citations[n - 1].id`` is the id of the
    document cited as ``[n]``; ``omitted`` lists the ids left out.
    """
    return build_context(evidence_sources(documents), mode=mode, context_words=context_words,
                         max_tokens=max_tokens, without_evidence=without_evidence,
                         token_counter=token_counter or count_words)


def evidence_context_runnable(*, mode: Literal["evidence", "full"] = "evidence",
                              context_words: int = _CONTEXT_WORDS, max_tokens: int | None = None,
                              without_evidence: Literal["skip", "full"] = "skip",
                              token_counter: Callable[[str], int] | None = None
                              ) -> RunnableLambda[Sequence[Document], str]:
    """A runnable mapping a list of documents to the context string of :func:`format_evidence`.

    Options are checked now, so a bad ``mode`` fails when the chain is built, not when it runs.

    >>> from langchain_core.documents import Document
    >>> to_context = evidence_context_runnable(without_evidence="full")
    >>> print(to_context.invoke([Document(page_content="Gift wrap is free.", id="wrap")]))
    [1] wrap
    Gift wrap is free.
    """
    build_context([], mode=mode, max_tokens=max_tokens, without_evidence=without_evidence)  # validates

    def to_context(documents: Sequence[Document]) -> str:
        return format_evidence(documents, mode=mode, context_words=context_words, max_tokens=max_tokens,
                               without_evidence=without_evidence, token_counter=token_counter).text

    return RunnableLambda(to_context, name="format_evidence")


def create_evidence_prompt(*, system_message: str | None = DEFAULT_SYSTEM_MESSAGE,
                           template: str = DEFAULT_PROMPT_TEMPLATE) -> ChatPromptTemplate:
    """A chat prompt with ``{context}`` and ``{question}`` variables that asks for ``[n]`` citations.

    ``template`` is the human message (f-string syntax: write other literal braces doubled);
    ``system_message=None`` leaves the system message out.

    >>> sorted(create_evidence_prompt().input_variables)
    ['context', 'question']
    """
    if "{context}" not in template or "{question}" not in template:
        raise InvalidInputError("template must contain {context} and {question}")
    messages: list[tuple[str, str]] = []
    if system_message is not None:
        # the system text is fixed: escape braces so it is never read as a template variable
        messages.append(("system", system_message.replace("{", "{{").replace("}", "}}")))
    messages.append(("human", template))
    return ChatPromptTemplate.from_messages(messages)


def _question_and_documents(value: Any) -> Sequence[Document]:
    if isinstance(value, Mapping):
        if "documents" not in value:
            raise InvalidInputError("expected a mapping with 'documents' (and 'question'), or a list of documents; "
                                    f"got keys {sorted(value)}")
        return value["documents"]
    return value


def extractive_answer_runnable(*, max_quotes: int = 3, context_words: int = 4,
                               max_sources: int = 3) -> RunnableLambda[Any, str]:
    """A runnable that answers without a language model: the best evidence quotes, cited ``[n]``.

    Its input is ``{"question": ..., "documents": [...]}`` or just the list of documents (best
    first, with evidence metadata); its output is the core's
    :func:`~fgr_retriever.evidence.extractive.extractive_answer` text, which says it is extractive.

    >>> from langchain_core.documents import Document
    >>> doc = Document(page_content="Returns are accepted within 30 days.", id="returns",
    ...                metadata={"evidence_spans": [{"start": 21, "end": 35, "text": "within 30 days", "score": 0.8}]})
    >>> print(extractive_answer_runnable().invoke({"question": "How long?", "documents": [doc]}))
    (No language model is configured; these are the passages that best match the question.)
    [1] "Returns are accepted within 30 days." (returns)
    """
    if max_quotes < 1 or max_sources < 1:
        raise InvalidInputError("max_quotes and max_sources must be >= 1")

    def answer(value: Any) -> str:
        sources = evidence_sources(_question_and_documents(value))
        return extractive_answer(sources, max_quotes=max_quotes, context_words=context_words,
                                 max_sources=max_sources).text

    return RunnableLambda(answer, name="extractive_answer")
