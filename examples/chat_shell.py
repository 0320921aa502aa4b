"""The terminal side of the RAG chatbot examples, shared by the LangChain and Haystack versions.

Each version turns a question into a :class:`ChatTurn` (its answer, whether an LLM or the
extractive fallback wrote it, and the sources it cites); this module does the rest: command-line
options, the interactive loop, one-shot mode (``--question``, used by the tests) and printing the
highlighted evidence of each cited source.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from fgr_retriever import Span, render_ansi, render_markdown

HERE = Path(__file__).resolve().parent
KNOWLEDGE_BASE = HERE / "knowledge_base.jsonl"

#: Environment variables that configure the generator (both versions read the same ones).
LLM_ENV_HELP = """\
generator (LLM), from the environment:
  FGR_CHAT_MODEL      model name, e.g. gpt-4o-mini, or provider:model for LangChain's
                      init_chat_model (e.g. ollama:llama3.1, anthropic:claude-sonnet-4-5)
  FGR_CHAT_BASE_URL   an OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio ...);
                      OPENAI_BASE_URL is used when this is not set
  FGR_CHAT_API_KEY    its key; OPENAI_API_KEY is used when this is not set
  FGR_CHAT_MAX_TOKENS the longest answer, in tokens (default: the server's limit)
With no FGR_CHAT_MODEL the bot still runs: it answers extractively, quoting the best evidence."""


@dataclass(frozen=True)
class CitedSource:
    label: str  # "[1]"
    id: str
    title: str | None
    text: str  # the full text the spans index
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class ChatTurn:
    question: str
    answer: str
    generator: str  # "extractive" or the LLM's name
    sources: tuple[CitedSource, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "generator": self.generator,
                "sources": [{"label": s.label, "id": s.id, "title": s.title,
                             "evidence_spans": [span.to_dict() for span in s.spans]} for s in self.sources]}


def llm_settings() -> dict[str, str | None]:
    """The generator configured in the environment (``model`` is None when there is none)."""
    return {"model": os.environ.get("FGR_CHAT_MODEL") or None,
            "base_url": os.environ.get("FGR_CHAT_BASE_URL") or os.environ.get("OPENAI_BASE_URL") or None,
            "api_key": os.environ.get("FGR_CHAT_API_KEY") or os.environ.get("OPENAI_API_KEY") or None,
            "max_tokens": _positive_int("FGR_CHAT_MAX_TOKENS")}


def _positive_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"error: {name} must be a positive whole number, got {raw!r}")
    return int(raw)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, epilog=LLM_ENV_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-q", "--question", action="append",
                   help="answer this question and exit (repeatable); without it, chat interactively")
    p.add_argument("--kb", type=Path, default=KNOWLEDGE_BASE, help="knowledge base JSONL (id, title, text, metadata)")
    p.add_argument("--index", type=Path, help="a saved index to search instead of indexing --kb at every start "
                                              "(build it with: fgr-retriever index FILES --out DIR)")
    p.add_argument("-k", type=int, default=4, help="documents retrieved per question (default 4)")
    p.add_argument("--max-tokens", type=int, default=600, help="token budget of the evidence in the prompt")
    p.add_argument("--json", action="store_true", help="print each turn as one JSON line (one-shot mode)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    return p


def read_knowledge_base(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise SystemExit(f"{path}:{n}: not valid JSON ({exc.msg})") from None
    if not rows:
        raise SystemExit(f"{path} holds no documents")
    return rows


def check_index(path: Path) -> Path:
    """``path`` if it holds a saved index, else exit with a message saying how to build one."""
    if not (path / "index.json").is_file():
        raise SystemExit(f"no fgr-retriever index at {path}; build one with: "
                         f"fgr-retriever index examples/knowledge_base.jsonl --out {path}")
    return path


def as_fallback(answer: str) -> str:
    """An extractive answer given because the LLM failed says so, not that none is configured."""
    return answer.replace("(No language model is configured", "(The language model did not answer", 1)


def warn_unreachable(generator: str, exc: BaseException) -> None:
    """One line on stderr when the LLM fails, before the turn is answered extractively instead."""
    reason = " ".join(str(exc).split())[:160] or type(exc).__name__
    print(f"warning: the LLM ({generator}) did not answer ({type(exc).__name__}: {reason}); "
          "answering extractively", file=sys.stderr)


def snippet(source: CitedSource, *, colour: bool, width: int = 90) -> str:
    """The part of the source around its spans, highlighted (the whole text if it is short)."""
    text, spans = source.text, list(source.spans)
    if spans:
        start = max(0, min(s.start for s in spans) - width)
        end = min(len(text), max(s.end for s in spans) + width)
        start = text.rfind(" ", 0, start) + 1 if start else 0
        cut = text.find(" ", end)
        end = len(text) if cut < 0 else cut
        shifted = [Span(start=s.start - start, end=s.end - start, text=s.text, score=s.score) for s in spans
                   if s.start >= start and s.end <= end]
        body = text[start:end]
        shown = render_ansi(body, shifted) if colour else render_markdown(body, shifted)
        return ("… " if start else "") + shown + (" …" if end < len(text) else "")
    words = text.split()
    return " ".join(words[:40]) + (" …" if len(words) > 40 else "")


def print_turn(turn: ChatTurn, *, colour: bool, out=sys.stdout) -> None:
    print(turn.answer, file=out)
    if turn.sources:
        print("\nevidence used:" if turn.generator != "extractive" else "\nsources:", file=out)
        for s in turn.sources:
            print(f"  {s.label} {s.title or s.id} ({s.id})", file=out)
            print(f"      {snippet(s, colour=colour)}", file=out)
    print(file=out)


def run(args: argparse.Namespace, answer: Callable[[str], ChatTurn], *, banner: str) -> int:
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    if args.question:
        for q in args.question:
            turn = answer(q)
            if args.json:
                print(json.dumps(turn.to_dict(), ensure_ascii=False))
            else:
                print(f"? {q}")
                print_turn(turn, colour=colour)
        return 0
    print(banner)
    print("Ask a question about the shop (empty line or Ctrl-D to quit).\n")
    while True:
        try:
            q = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not q:
            return 0
        print_turn(answer(q), colour=colour)


def cited_sources(labels_ids: Sequence[tuple[str, str, str | None, str, Sequence[Span]]]) -> tuple[CitedSource, ...]:
    return tuple(CitedSource(label=l, id=i, title=t, text=x, spans=tuple(s)) for l, i, t, x, s in labels_ids)
