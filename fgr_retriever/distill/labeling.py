"""Teacher labelling: an LLM marks the passage spans that answer a query (the distillation labels).

:class:`TeacherLabeler` sends each (query, passage) pair to any LangChain chat model, asks for the
verbatim evidence phrases as JSON, places them in the passage with
:func:`~fgr_retriever.distill.span_location.locate_spans` (exact, normalised, then approximate matching;
strings that do not occur are dropped, never given made-up offsets) and appends one
highlight-JSONL record per finished pair to the output file. The output is resumable: a second
run skips ids that are already there, so an interrupted job is finished by running it again.

Nothing here imports LangChain at module import time; the model object you pass in is used only
through its ``ainvoke`` method, with messages given as ``(role, text)`` tuples.

>>> from langchain_core.language_models.fake_chat_models import FakeListChatModel  # doctest: +SKIP
>>> labeler = TeacherLabeler(model=FakeListChatModel(responses=['{"spans": ["Paris"]}']))  # doctest: +SKIP
>>> labeler.label_pair("capital of France?", "Paris is the capital.").span_texts  # doctest: +SKIP
['Paris']
>>> stats = labeler.label("pairs.jsonl", "teacher.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .._io import iter_jsonl
from ..errors import FGRError, InvalidInputError, MissingDependencyError
from .span_location import TIERS, SpanLocation, locate_spans

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "DEFAULT_USER_TEMPLATE",
    "LabelingError",
    "ResponseFormatError",
    "PairLabel",
    "LabelStats",
    "TeacherLabeler",
    "parse_spans_response",
    "chat_model_from_spec",
    "openai_compatible",
    "chat_model_from_env",
    "require_langchain_core",
]

logger = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = """\
You mark evidence for a search engine. You get a query and a passage. Copy the exact pieces of \
the passage that answer the query, or that a reader needs to see to answer it.

Rules:
- Copy every piece verbatim from the passage: the same words, spelling, capitalisation and \
punctuation. Do not paraphrase, shorten with "...", translate or correct anything.
- Be fine-grained: prefer short phrases (the answer and the few words that make it an answer) \
over whole sentences. Quote a whole sentence only when all of it is needed.
- There may be several pieces; list each one separately, in passage order.
- If the passage does not answer the query, give an empty list.
- Reply with JSON only, no other text: {"spans": ["first piece", "second piece"]}"""

DEFAULT_USER_TEMPLATE = """\
Query: {query}

Passage:
<<<
{passage}
>>>

Reply with JSON only: {{"spans": [...]}}"""

_FIX_FORMAT = ('Your reply could not be read ({error}). Reply again with JSON only, exactly in the form '
               '{{"spans": ["piece copied from the passage", ...]}}, or {{"spans": []}} if nothing answers the query.')
_FIX_INVENTED = ("None of these pieces occur in the passage: {pieces}. Copy the pieces character for "
                 'character from the passage and reply with JSON only: {{"spans": [...]}}, or '
                 '{{"spans": []}} if nothing in the passage answers the query.')


class LabelingError(FGRError):
    """Labelling cannot go on (e.g. the model fails pair after pair: a wrong key or URL)."""


class ResponseFormatError(ValueError):
    """The model's reply holds no readable ``{"spans": [...]}`` answer."""


# ----------------------------------------------------------------------------- reply parsing
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)  # reasoning models' scratchpad
_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.S)
_SPAN_KEYS = ("spans", "evidence", "quotes")
_ITEM_KEYS = ("text", "span", "quote")


def _coerce_spans(obj: Any) -> list[str] | None:
    """The span strings of a decoded JSON value, or ``None`` when it is not an answer."""
    if isinstance(obj, dict):
        key = next((k for k in obj if isinstance(k, str) and k.lower() in _SPAN_KEYS), None)
        if key is None:
            return None
        value = obj[key]
        if isinstance(value, str):  # one span given without the list
            value = [value]
        if not isinstance(value, list):
            return None
        out = []
        for item in value:
            if isinstance(item, dict):
                item = next((item[k] for k in _ITEM_KEYS if isinstance(item.get(k), str)), None)
            if isinstance(item, bool) or item is None or isinstance(item, (list, dict)):
                return None
            out.append(str(item))  # numbers ("1998") are legitimate quotes
        return [s for s in out if s.strip()]
    if isinstance(obj, list) and all(isinstance(s, str) for s in obj):
        # a bare list of strings is an answer too; a list of numbers in prose ("[1]") is not
        return [s for s in obj if s.strip()]
    return None


def parse_spans_response(text: str) -> list[str]:
    """Read the span strings from a model reply; raise :class:`ResponseFormatError` if there are none.

    Accepts the JSON object alone, inside a Markdown code fence, or after/before prose; a
    reasoning model's ``<think>`` block is ignored. ``{"spans": []}`` is a valid answer (no
    evidence) and returns ``[]``.

    >>> parse_spans_response('Sure! ```json\\n{"spans": ["in 1998"]}\\n```')
    ['in 1998']
    >>> parse_spans_response('{"spans": []}')
    []
    """
    text = _THINK.sub("", text or "").strip()
    if not text:
        raise ResponseFormatError("the reply is empty")
    for candidate in [text, *(m.group(1).strip() for m in _FENCE.finditer(text))]:
        try:
            spans = _coerce_spans(json.loads(candidate))
        except json.JSONDecodeError:
            continue
        if spans is not None:
            return spans
    # a JSON object embedded in prose: decode from each "{". Bare lists are accepted only as the
    # whole reply (above): inside prose or a broken object, "[...]" is too often something else.
    decoder = json.JSONDecoder()
    for tries, match in enumerate(re.finditer(r"\{", text)):
        if tries >= 200:  # a reply is short; this only bounds pathological input
            break
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        spans = _coerce_spans(obj)
        if spans is not None:
            return spans
    raise ResponseFormatError('no JSON object of the form {"spans": [...]} found')


def _message_text(message: Any) -> str:
    """Plain text of a chat model reply (string content or a list of content blocks)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type", "text") == "text":
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return str(content)


def _model_name(model: Any) -> str:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    llm_type = getattr(model, "_llm_type", None)
    return llm_type if isinstance(llm_type, str) and llm_type else type(model).__name__


# ---------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PairLabel:
    """The teacher's label for one pair: merged ``spans`` with ``span_texts``, plus provenance.

    ``quotes`` are the strings the model returned, ``location`` how each was placed, ``attempts``
    how many model calls it took. ``spans == []`` means the model found no evidence.
    """

    spans: list[tuple[int, int]]
    span_texts: list[str]
    quotes: list[str]
    location: SpanLocation
    attempts: int

    def teacher_metadata(self, model_name: str) -> dict[str, Any]:
        return {
            "model": model_name,
            "raw_spans": list(self.quotes),
            "tiers": list(self.location.tiers),
            "dropped": list(self.location.dropped),
            "attempts": self.attempts,
        }


@dataclass
class LabelStats:
    """Counts of one labelling run.

    ``labelled`` records were written this run, ``no_evidence`` of them with ``spans == []``.
    ``failed`` pairs were not written (``failures`` maps their id to the reason); running the same
    job again retries them. ``skipped`` ids were already in the output (or repeated in the
    input). ``tiers`` counts placed quotes per matching tier, ``dropped_spans`` the quoted strings
    that do not occur in the passage.

    >>> LabelStats(labelled=2, no_evidence=1).summary().splitlines()[0]
    'labelled 2 pairs (1 with no evidence), 0 failed, 0 skipped (already done)'
    """

    input_records: int = 0
    skipped: int = 0
    labelled: int = 0
    no_evidence: int = 0
    failed: int = 0
    retries: int = 0
    dropped_spans: int = 0
    tiers: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [
            f"labelled {self.labelled} pairs ({self.no_evidence} with no evidence), {self.failed} failed, "
            f"{self.skipped} skipped (already done)",
            "quoted spans placed: " + ", ".join(f"{t} {self.tiers.get(t, 0)}" for t in TIERS)
            + f"; dropped (not in the passage) {self.dropped_spans}",
            f"model calls retried: {self.retries}",
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


class _PairFailure(Exception):
    def __init__(self, reason: str, *, model_error: bool, dropped: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.model_error = model_error
        self.dropped = dropped


# ------------------------------------------------------------------------------ JSONL files
_LINE_UNSAFE = re.compile("[\u0080-\u009f\u2028\u2029]")


def _dump_line(record: Mapping[str, Any]) -> str:
    # Like the shared data: C1 controls and U+2028/2029 are escaped so splitlines() is safe.
    text = json.dumps(record, ensure_ascii=False)
    return _LINE_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _iter_input(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        raise InvalidInputError(f"input file not found: {path}")
    for lineno, record in iter_jsonl(path):
        yield f"{path}:{lineno}", record


def _check_record(record: Mapping[str, Any], where: str) -> None:
    missing = [k for k in ("id", "query", "passage") if k not in record]
    if missing:
        raise InvalidInputError(f"{where}: missing field(s) {', '.join(missing)} (need id, query, passage)")
    if not isinstance(record["query"], str) or not isinstance(record["passage"], str):
        raise InvalidInputError(f"{where}: query and passage must be strings")


def _done_ids(out: Path) -> set[str]:
    """Ids already in ``out``, repairing a last line cut short by a crash.

    Records are appended whole, so only the final line can be partial. If it is not valid JSON
    it is cut off (that pair is labelled again); if it is valid but lacks its newline, the newline
    is added so the next record starts on its own line. A broken line elsewhere was not written
    by us and is reported instead of guessed at.
    """
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("%s: removing an incomplete last line left by an interrupted run", out)
            with open(out, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        else:
            with open(out, "ab") as fh:
                fh.write(b"\n")
    done: set[str] = set()
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidInputError(f"{out}:{lineno}: existing output line is not valid JSON; "
                                    "fix or delete it before resuming") from None
        if isinstance(record, dict) and "id" in record:
            done.add(str(record["id"]))
    return done


# ---------------------------------------------------------------------------------- labeler
class TeacherLabeler:
    """Label (query, passage) pairs with evidence spans from a LangChain chat model.

    ``model`` is any LangChain chat model (or runnable) with ``ainvoke``, e.g.
    ``init_chat_model("openai:gpt-4o-mini", temperature=0)`` or :func:`openai_compatible`.
    A reply that is not readable JSON, or whose quotes are all absent from the passage, is
    retried up to ``max_retries`` times (waiting ``retry_backoff * 2**k`` seconds, telling the
    model what was wrong); after that the pair is recorded as failed and not written. Model
    exceptions (timeouts, rate limits) are retried the same way; ``max_consecutive_errors`` pairs
    failing in a row on exceptions stop the run with :class:`LabelingError` (a wrong key or URL
    would otherwise fail every pair slowly).

    >>> labeler = TeacherLabeler(model=my_chat_model, concurrency=4)      # doctest: +SKIP
    >>> labeler.label("squad.jsonl.gz", "teacher.jsonl", limit=100).labelled  # doctest: +SKIP
    100
    """

    def __init__(
        self,
        *,
        model: Any,
        model_name: str | None = None,
        concurrency: int = 8,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        max_consecutive_errors: int = 20,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        user_template: str = DEFAULT_USER_TEMPLATE,
        max_edit_ratio: float = 0.1,
        min_fuzzy_chars: int = 8,
        keep_fields: bool = True,
        show_progress: bool = True,
    ) -> None:
        if not callable(getattr(model, "ainvoke", None)):
            raise InvalidInputError(f"model must be a LangChain chat model (with ainvoke), got {type(model).__name__}")
        if int(concurrency) < 1:
            raise InvalidInputError("concurrency must be at least 1")
        if int(max_retries) < 0:
            raise InvalidInputError("max_retries must be >= 0")
        if retry_backoff < 0:
            raise InvalidInputError("retry_backoff must be >= 0")
        if "{query}" not in user_template or "{passage}" not in user_template:
            raise InvalidInputError("user_template must contain {query} and {passage}")
        self.model = model
        self.model_name = model_name or _model_name(model)
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.retry_backoff = float(retry_backoff)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.system_prompt = system_prompt
        self.user_template = user_template
        self.max_edit_ratio = max_edit_ratio
        self.min_fuzzy_chars = min_fuzzy_chars
        self.keep_fields = keep_fields
        self.show_progress = show_progress

    @property
    def source(self) -> str:
        """The ``source`` field of written records: ``llm:<model name>``."""
        return f"llm:{self.model_name}"

    # ------------------------------------------------------------------ one pair
    def _messages(self, query: str, passage: str) -> list[tuple[str, str]]:
        # (role, text) tuples are accepted by every LangChain chat model and keep this module free
        # of a langchain import.
        return [("system", self.system_prompt),
                ("human", self.user_template.format(query=query, passage=passage))]

    async def _label_pair(self, query: str, passage: str, stats: LabelStats | None = None) -> PairLabel:
        base = self._messages(query, passage)
        messages = base
        reason, model_error, dropped = "no attempt made", False, 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                if stats is not None:
                    stats.retries += 1
                if self.retry_backoff:
                    await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
            try:
                reply = await self.model.ainvoke(messages)
            except Exception as exc:  # any provider error: timeouts, rate limits, HTTP errors
                reason, model_error = f"model error: {type(exc).__name__}: {exc}", True
                messages = base
                continue
            model_error = False
            text = _message_text(reply)
            try:
                quotes = parse_spans_response(text)
            except ResponseFormatError as exc:
                reason = f"unreadable reply: {exc}: {text[:200]!r}"
                messages = [*base, ("ai", text), ("human", _FIX_FORMAT.format(error=exc))]
                continue
            location = locate_spans(passage, quotes, max_edit_ratio=self.max_edit_ratio,
                                    min_fuzzy_chars=self.min_fuzzy_chars)
            if quotes and not location.found_any:
                # "[]" must mean "no evidence"; quotes we cannot find are not that, so ask again
                dropped = len(location.dropped)
                reason = f"none of the {len(quotes)} quoted spans occur in the passage: {quotes[:3]!r}"
                pieces = "; ".join(json.dumps(q, ensure_ascii=False) for q in quotes[:5])
                messages = [*base, ("ai", text), ("human", _FIX_INVENTED.format(pieces=pieces))]
                continue
            return PairLabel(spans=location.spans, span_texts=location.span_texts, quotes=quotes,
                             location=location, attempts=attempt + 1)
        raise _PairFailure(reason, model_error=model_error, dropped=dropped)

    async def alabel_pair(self, query: str, passage: str) -> PairLabel:
        """Label one pair; raises :class:`LabelingError` when every attempt failed."""
        try:
            return await self._label_pair(query, passage)
        except _PairFailure as exc:
            raise LabelingError(exc.reason) from None

    def label_pair(self, query: str, passage: str) -> PairLabel:
        """Synchronous :meth:`alabel_pair`.

        >>> TeacherLabeler(model=fake).label_pair("who?", "Ada wrote it.").span_texts  # doctest: +SKIP
        ['Ada']
        """
        return _run_sync(self.alabel_pair(query, passage))

    # ------------------------------------------------------------------ many pairs
    def _record(self, item: Mapping[str, Any], label: PairLabel) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": item["id"],
            "query": item["query"],
            "passage": item["passage"],
            "spans": [[s, e] for s, e in label.spans],
            "span_texts": label.span_texts,
            "source": self.source,
        }
        if self.keep_fields:
            # extra input fields (title, answers, ...) ride along; the gold spans are replaced
            for key, value in item.items():
                if key not in record and key != "teacher":
                    record[key] = value
        record["teacher"] = label.teacher_metadata(self.model_name)
        return record

    async def alabel(
        self,
        inputs: str | os.PathLike | Iterable[Mapping[str, Any]],
        out: str | os.PathLike,
        *,
        limit: int | None = None,
    ) -> LabelStats:
        """Label every pair of ``inputs`` not yet in ``out`` and append the records to ``out``.

        ``inputs`` is a JSONL / JSONL.gz path (objects with ``id``, ``query``, ``passage``; a
        highlight file works as is) or an iterable of such mappings. ``limit`` takes only the
        first ``limit`` input records, so re-running with the same limit finishes the same set.
        Records are written as pairs finish (not in input order), one flushed line each.
        """
        out = Path(out)
        if out.name.lower().endswith(".gz"):
            raise InvalidInputError(f"{out}: write plain .jsonl (records are appended line by line); "
                                    "compress it when labelling is finished")
        if limit is not None and limit < 1:
            raise InvalidInputError("limit must be at least 1")
        if isinstance(inputs, (str, os.PathLike)):
            in_path = Path(inputs)
            if in_path.resolve() == out.resolve():
                raise InvalidInputError("the output file must differ from the input file")
            source: Iterable[tuple[str, Any]] = _iter_input(in_path)
        else:
            source = ((f"input record {n + 1}", item) for n, item in enumerate(inputs))

        stats = LabelStats()
        done = _done_ids(out)
        pending: list[Mapping[str, Any]] = []
        seen: set[str] = set()
        for n, (where, item) in enumerate(source):
            if limit is not None and n >= limit:
                break
            if not isinstance(item, Mapping):
                raise InvalidInputError(f"{where}: a {type(item).__name__}, not a mapping")
            _check_record(item, where)
            stats.input_records += 1
            key = str(item["id"])
            if key in done or key in seen:
                stats.skipped += 1
                continue
            seen.add(key)
            pending.append(item)

        out.absolute().parent.mkdir(parents=True, exist_ok=True)
        semaphore = asyncio.Semaphore(self.concurrency)
        consecutive_errors = 0

        async def work(item: Mapping[str, Any]) -> tuple[Mapping[str, Any], PairLabel | _PairFailure]:
            async with semaphore:
                try:
                    return item, await self._label_pair(item["query"], item["passage"], stats)
                except _PairFailure as exc:
                    return item, exc

        from tqdm import tqdm

        tasks = [asyncio.ensure_future(work(item)) for item in pending]
        try:
            with open(out, "a", encoding="utf-8", newline="\n") as fh, \
                    tqdm(total=len(tasks), desc="labelling", unit="pair", disable=not self.show_progress) as bar:
                for next_done in asyncio.as_completed(tasks):
                    item, result = await next_done
                    bar.update(1)
                    if isinstance(result, _PairFailure):
                        stats.failed += 1
                        stats.dropped_spans += result.dropped
                        stats.failures[str(item["id"])] = result.reason
                        logger.warning("labelling %s failed: %s", item["id"], result.reason)
                        bar.set_postfix(failed=stats.failed)
                        consecutive_errors = consecutive_errors + 1 if result.model_error else 0
                        if self.max_consecutive_errors and consecutive_errors >= self.max_consecutive_errors:
                            raise LabelingError(f"the model failed {consecutive_errors} pairs in a row; "
                                                f"last error: {result.reason}")
                        continue
                    consecutive_errors = 0
                    fh.write(_dump_line(self._record(item, result)))
                    fh.flush()  # a crash loses at most the line being written
                    stats.labelled += 1
                    stats.no_evidence += not result.spans
                    stats.dropped_spans += len(result.location.dropped)
                    for tier, count in result.location.tier_counts.items():
                        stats.tiers[tier] = stats.tiers.get(tier, 0) + count
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return stats

    def label(
        self,
        inputs: str | os.PathLike | Iterable[Mapping[str, Any]],
        out: str | os.PathLike,
        *,
        limit: int | None = None,
    ) -> LabelStats:
        """Synchronous :meth:`alabel` (also works inside a running event loop, e.g. Jupyter)."""
        return _run_sync(self.alabel(inputs, out, limit=limit))


def _run_sync(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # a loop is already running in this thread (notebooks): run ours in a worker thread
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# ------------------------------------------------------------------------- model factories
def require_langchain_core() -> None:
    """Raise :class:`MissingDependencyError` with install instructions if langchain-core is missing."""
    try:
        import langchain_core  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "LLM labelling needs langchain-core: pip install 'fgr-retriever[label]'") from None


def chat_model_from_spec(spec: str, *, temperature: float = 0.0, **kwargs: Any) -> Any:
    """A chat model from a ``provider:model`` string via ``langchain.chat_models.init_chat_model``.

    >>> model = chat_model_from_spec("openai:gpt-4o-mini")  # doctest: +SKIP
    """
    require_langchain_core()
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        raise MissingDependencyError(
            "--model provider:model needs the 'langchain' package: pip install langchain "
            "plus the provider's package (e.g. langchain-openai); or use --base-url with --model-name "
            "for an OpenAI-compatible server") from None
    try:
        return init_chat_model(spec, temperature=temperature, **kwargs)
    except ImportError as exc:  # the provider integration package is missing
        raise MissingDependencyError(f"cannot create {spec!r}: {exc}") from None
    except ValueError as exc:
        raise InvalidInputError(f"cannot create chat model {spec!r}: {exc}") from None


def openai_compatible(base_url: str | None, model: str, api_key: str | None = None, *,
                      temperature: float = 0.0, timeout: float = 120.0, **kwargs: Any) -> Any:
    """A ``langchain_openai.ChatOpenAI`` for OpenAI or any OpenAI-compatible server (vLLM, Ollama...).

    Local servers usually need no key; a placeholder is sent then, because the client insists.

    >>> model = openai_compatible("http://localhost:8000/v1", "Qwen/Qwen2.5-7B-Instruct")  # doctest: +SKIP
    """
    require_langchain_core()
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise MissingDependencyError(
            "an OpenAI-compatible model needs langchain-openai: pip install langchain-openai") from None
    if api_key is None and base_url and not os.environ.get("OPENAI_API_KEY"):
        api_key = "not-needed"
    options: dict[str, Any] = {"model": model, "temperature": temperature, "timeout": timeout, **kwargs}
    if base_url:
        options["base_url"] = base_url
    if api_key is not None:
        options["api_key"] = api_key
    return ChatOpenAI(**options)


def chat_model_from_env(*, temperature: float = 0.0, **kwargs: Any) -> Any:
    """:func:`openai_compatible` configured from the environment.

    ``FGR_LABEL_MODEL`` (required) names the model, ``FGR_LABEL_BASE_URL`` (else
    ``OPENAI_BASE_URL``) the server and ``FGR_LABEL_API_KEY`` (else ``OPENAI_API_KEY``) the key.

    >>> os.environ["FGR_LABEL_MODEL"] = "gpt-4o-mini"; model = chat_model_from_env()  # doctest: +SKIP
    """
    name = os.environ.get("FGR_LABEL_MODEL")
    if not name:
        raise InvalidInputError("set FGR_LABEL_MODEL (and FGR_LABEL_BASE_URL / FGR_LABEL_API_KEY as needed)")
    base_url = os.environ.get("FGR_LABEL_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    api_key = os.environ.get("FGR_LABEL_API_KEY") or os.environ.get("OPENAI_API_KEY")
    return openai_compatible(base_url, name, api_key, temperature=temperature, **kwargs)
