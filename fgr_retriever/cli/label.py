"""``fgr-retriever label``: write teacher evidence labels for (query, passage) pairs with an LLM.

    fgr-retriever label pairs.jsonl.gz --out teacher.jsonl --model openai:gpt-4o-mini
    fgr-retriever label pairs.jsonl --out teacher.jsonl \\
        --base-url http://localhost:8000/v1 --model-name Qwen/Qwen2.5-7B-Instruct

The output is appended to pair by pair; running the same command again after an interruption
labels only what is missing (and retries pairs that failed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import InvalidInputError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def register(sub) -> None:
    sp = sub.add_parser(
        "label", help="label evidence spans of (query, passage) pairs with an LLM teacher",
        description="Ask an LLM which passage spans answer each query and write highlight JSONL "
                    "(resumable: ids already in --out are skipped).")
    sp.add_argument("input", metavar="INPUT", help="JSONL or JSONL.gz with id, query, passage (a highlight file works)")
    sp.add_argument("--out", required=True, help="output .jsonl (appended to; existing ids are skipped)")
    which = sp.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="provider:model for langchain's init_chat_model, e.g. openai:gpt-4o-mini")
    which.add_argument("--base-url", help="URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1")
    sp.add_argument("--model-name", help="model name on the --base-url server")
    sp.add_argument("--api-key-env", metavar="VAR",
                    help="environment variable holding the API key for --base-url (default: OPENAI_API_KEY if set)")
    sp.add_argument("--concurrency", type=_positive_int, default=8, help="requests in flight (default 8)")
    sp.add_argument("--max-retries", type=_non_negative_int, default=3,
                    help="retries per pair after an unreadable reply or a model error (default 3)")
    sp.add_argument("--limit", type=_positive_int, help="use only the first N input records")
    sp.add_argument("--temperature", type=float, default=0.0, help="sampling temperature (default 0)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_label, _label_parser=sp)


def _build_model(args: argparse.Namespace):
    from ..distill import labeling

    if args.model:
        return labeling.chat_model_from_spec(args.model, temperature=args.temperature)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise InvalidInputError(f"environment variable {args.api_key_env} is not set")
    return labeling.openai_compatible(args.base_url, args.model_name, api_key, temperature=args.temperature)


def cmd_label(args: argparse.Namespace) -> int:
    from ..distill import labeling

    if args.base_url and not args.model_name:
        args._label_parser.error("--base-url needs --model-name")
    if args.model and (args.model_name or args.api_key_env):
        args._label_parser.error("--model-name and --api-key-env go with --base-url, not --model")
    if not Path(args.input).is_file():  # before building a model, which may need keys or packages
        raise InvalidInputError(f"input file not found: {args.input}")
    labeling.require_langchain_core()
    model = _build_model(args)
    labeler = labeling.TeacherLabeler(
        model=model,
        model_name=args.model or args.model_name,
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        show_progress=not args.quiet,
    )
    stats = labeler.label(args.input, args.out, limit=args.limit)
    print(stats.summary())
    if stats.failures:
        shown = list(stats.failures.items())[:5]
        for pair_id, reason in shown:
            print(f"  failed {pair_id}: {reason}")
        if len(stats.failures) > len(shown):
            print(f"  ... and {len(stats.failures) - len(shown)} more")
        print("failed pairs were not written; run the same command again to retry them")
    print(f"output: {args.out}")
    return 0
