"""A RAG chatbot over the demo knowledge base, built as a LangChain chain with FGRColBERTRetriever.

    .venv/bin/python examples/rag_chatbot_langchain.py                       # chat in the terminal
    .venv/bin/python examples/rag_chatbot_langchain.py -q "Can I swim with my watch?"   # one shot

The chain retrieves with :class:`langchain_fgr.FGRColBERTRetriever`, lays out only the evidence
of the hits as numbered, cited context (:func:`langchain_fgr.format_evidence`, within a token
budget) and asks the chat model configured in the environment (see ``--help``). With no model
configured it still answers: extractively, quoting the best evidence, and saying so. Every
answer is followed by the highlighted evidence of the sources it cites.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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
from langchain_core.documents import Document  # noqa: E402
from langchain_core.output_parsers import StrOutputParser  # noqa: E402
from langchain_core.runnables import Runnable, RunnableLambda, RunnableParallel, RunnablePassthrough  # noqa: E402
from langchain_fgr import FGRColBERTRetriever, create_evidence_prompt, format_evidence  # noqa: E402
from langchain_fgr.prompts import evidence_sources  # noqa: E402

from fgr_retriever.evidence.extractive import extractive_answer  # noqa: E402


def chat_model_from_environment() -> Any | None:
    """The LangChain chat model named by ``FGR_CHAT_MODEL`` (None when it is not set)."""
    settings = llm_settings()
    if not settings["model"]:
        return None
    from fgr_retriever.distill.labeling import chat_model_from_spec, openai_compatible

    if settings["base_url"] or ":" not in settings["model"]:
        # an OpenAI-compatible server, or OpenAI itself (needs langchain-openai)
        limit = {"max_tokens": settings["max_tokens"]} if settings["max_tokens"] else {}
        return openai_compatible(settings["base_url"], settings["model"], settings["api_key"], temperature=0.0, **limit)
    limit = {"max_tokens": settings["max_tokens"]} if settings["max_tokens"] else {}
    return chat_model_from_spec(settings["model"], temperature=0.0, **limit)  # provider:model (needs langchain)


def build_chain(retriever: FGRColBERTRetriever, llm: Any | None, *, max_tokens: int) -> Runnable:
    """question -> {"question", "documents", "answer", "sources"} (sources: what the answer cites)."""
    retrieve = RunnableParallel(question=RunnablePassthrough(), documents=retriever)

    def sources_for(documents: list[Document], citations) -> list[CitedSource]:
        texts = {s.id: s for s in evidence_sources(documents)}
        return [CitedSource(label=c.label, id=c.id, title=c.title, text=texts[c.id].text, spans=c.spans)
                for c in citations]

    if llm is None:
        def answer_extractively(inputs: dict) -> dict:
            answer = extractive_answer(evidence_sources(inputs["documents"]))
            return {"answer": answer.text, "sources": sources_for(inputs["documents"], answer.citations)}

        return retrieve | RunnablePassthrough.assign(result=RunnableLambda(answer_extractively))

    generate = create_evidence_prompt() | llm | StrOutputParser()

    def answer_with_llm(inputs: dict) -> dict:
        context = format_evidence(inputs["documents"], max_tokens=max_tokens)
        try:
            answer = generate.invoke({"context": context.text, "question": inputs["question"]})
        except Exception as exc:  # any failure of the model or its server: the user still gets an answer
            warn_unreachable(getattr(llm, "model_name", None) or type(llm).__name__, exc)
            fallback = extractive_answer(evidence_sources(inputs["documents"]))
            return {"answer": as_fallback(fallback.text), "generator": "extractive",
                    "sources": sources_for(inputs["documents"], fallback.citations)}
        cited = context.cited_in(answer) or list(context.citations)
        return {"answer": answer, "sources": sources_for(inputs["documents"], cited)}

    return retrieve | RunnablePassthrough.assign(result=RunnableLambda(answer_with_llm))


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__.split("\n\n")[0]).parse_args(argv)
    if args.index:  # a saved index: nothing to encode at start-up
        retriever = FGRColBERTRetriever(index_path=check_index(args.index), k=args.k)
        count = len(retriever.retriever)
    else:
        rows = read_knowledge_base(args.kb)
        documents = [Document(page_content=r["text"], id=r["id"],
                              metadata={**(r.get("metadata") or {}), "title": r.get("title") or r["id"]})
                     for r in rows]
        retriever = FGRColBERTRetriever.from_documents(documents, k=args.k)
        count = len(documents)
    llm = chat_model_from_environment()
    chain = build_chain(retriever, llm, max_tokens=args.max_tokens)
    generator = "extractive" if llm is None else llm_settings()["model"]

    def answer(question: str) -> ChatTurn:
        out = chain.invoke(question)
        return ChatTurn(question=question, answer=out["result"]["answer"],
                        generator=out["result"].get("generator", generator), sources=tuple(out["result"]["sources"]))

    banner = (f"LangChain RAG chatbot over {count} documents; generator: "
              + ("none configured, answering extractively" if llm is None else generator))
    return run(args, answer, banner=banner)


if __name__ == "__main__":
    sys.exit(main())
