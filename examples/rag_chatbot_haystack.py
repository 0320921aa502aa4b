"""A RAG chatbot over the demo knowledge base, built as a Haystack pipeline with FGR components.

    .venv/bin/python examples/rag_chatbot_haystack.py                        # chat in the terminal
    .venv/bin/python examples/rag_chatbot_haystack.py -q "Can I swim with my watch?"    # one shot

The pipeline: ``FGRColBERTRetriever`` (over an ``FGRColBERTDocumentStore``) → 
``FGREvidencePromptBuilder`` (numbered, cited evidence within a token budget) → Haystack's
``ChatPromptBuilder`` → ``OpenAIChatGenerator``, pointed at OpenAI or at any OpenAI-compatible
server configured in the environment (see ``--help``). With no model configured the generator is
replaced by ``FGRExtractiveAnswerer``, which quotes the best evidence and says so. Every answer
is followed by the highlighted evidence of the sources it cites.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

# this demo runs offline: no usage telemetry (set HAYSTACK_TELEMETRY_ENABLED yourself to override)
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # chat_shell, when run from anywhere

from chat_shell import (  # noqa: E402
    ChatTurn,
    CitedSource,
    as_fallback,
    check_index,
    llm_settings,
    parser,
    read_knowledge_base,
    run,
    warn_unreachable,
)
from haystack import Document, Pipeline  # noqa: E402
from haystack.components.builders import ChatPromptBuilder  # noqa: E402
from haystack.dataclasses import ChatMessage  # noqa: E402
from haystack_integrations.components.builders.fgr import DEFAULT_RAG_TEMPLATE, FGREvidencePromptBuilder  # noqa: E402
from haystack_integrations.components.generators.fgr import FGRExtractiveAnswerer  # noqa: E402
from haystack_integrations.components.retrievers.fgr import FGRColBERTRetriever  # noqa: E402
from haystack_integrations.document_stores.fgr import FGRColBERTDocumentStore  # noqa: E402

from fgr_retriever import Span, full_text_of  # noqa: E402


def generator_from_environment() -> Any | None:
    """An ``OpenAIChatGenerator`` for the model named by ``FGR_CHAT_MODEL`` (None when unset)."""
    settings = llm_settings()
    if not settings["model"]:
        return None
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.utils import Secret

    # local servers need no key, but the client insists on one
    key = Secret.from_token(settings["api_key"] or "not-needed")
    return OpenAIChatGenerator(model=settings["model"].split(":", 1)[-1], api_base_url=settings["base_url"],
                               api_key=key, generation_kwargs={"temperature": 0.0, **(
                                   {"max_tokens": settings["max_tokens"]} if settings["max_tokens"] else {})})


def build_pipeline(store: FGRColBERTDocumentStore, generator: Any | None, *, k: int, max_tokens: int) -> Pipeline:
    rag = Pipeline()
    rag.add_component("retriever", FGRColBERTRetriever(document_store=store, top_k=k))
    rag.add_component("evidence", FGREvidencePromptBuilder(max_tokens=max_tokens))
    rag.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user(DEFAULT_RAG_TEMPLATE)],
                                                  required_variables=["context", "query"]))
    rag.connect("retriever.documents", "evidence.documents")
    rag.connect("evidence.context", "prompt.context")
    if generator is not None:
        rag.add_component("llm", generator)
        rag.connect("prompt.prompt", "llm.messages")
    else:
        rag.add_component("llm", FGRExtractiveAnswerer())
        rag.connect("retriever.documents", "llm.documents")
    return rag


def to_turn(question: str, result: dict, generator: str) -> ChatTurn:
    reply = result["llm"]["replies"][0]
    documents = {d.id: d for d in result["retriever"]["documents"]}
    if generator == "extractive":
        citations = reply.meta["citations"]
    else:  # the sources the answer cites, or all of the context when it cites none
        available = {c["number"]: c for c in result["evidence"]["citations"]}
        cited = [available[int(n)] for n in dict.fromkeys(re.findall(r"\[(\d+)\]", reply.text)) if int(n) in available]
        citations = cited or list(available.values())
    sources = []
    for c in citations:
        doc = documents[c["id"]]
        sources.append(CitedSource(label=c["label"], id=c["id"], title=c.get("title"),
                                   text=full_text_of(doc.content or "", doc.meta),
                                   spans=tuple(Span.from_dict(s) for s in c["spans"])))
    return ChatTurn(question=question, answer=reply.text, generator=generator, sources=tuple(sources))


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    if args.index:  # a saved index: nothing to encode at start-up
        store = FGRColBERTDocumentStore(index_path=str(check_index(args.index)))
    else:
        rows = read_knowledge_base(args.kb)
        store = FGRColBERTDocumentStore()
        store.write_documents([Document(id=r["id"], content=r["text"],
                                        meta={**(r.get("metadata") or {}), "title": r.get("title") or r["id"]})
                               for r in rows])
    generator = generator_from_environment()
    name = "extractive" if generator is None else llm_settings()["model"]
    rag = build_pipeline(store, generator, k=args.k, max_tokens=args.max_tokens)
    extractive = rag if generator is None else build_pipeline(store, None, k=args.k, max_tokens=args.max_tokens)

    def answer(question: str) -> ChatTurn:
        inputs = {"retriever": {"query": question}, "prompt": {"query": question}}
        try:
            result = rag.run(inputs, include_outputs_from={"retriever", "evidence"})
        except Exception as exc:  # the LLM or its server failed: the user still gets an answer
            if generator is None:
                raise
            warn_unreachable(name, exc)
            turn = to_turn(question, extractive.run(inputs, include_outputs_from={"retriever", "evidence"}),
                           "extractive")
            return replace(turn, answer=as_fallback(turn.answer))
        return to_turn(question, result, name)

    banner = (f"Haystack RAG chatbot over {store.count_documents()} documents; generator: "
              + ("none configured, answering extractively" if generator is None else name))
    return run(args, answer, banner=banner)


if __name__ == "__main__":
    sys.exit(main())
