"""Cutting long documents into passages the size the model reads, at sentence boundaries.

A search hit should be a passage, not a 500 KB file: its score then says where the answer is,
and its evidence is a sentence of a passage instead of a few words of a book. The splitter
packs whole sentences (BlingFire, the segmenter evidence uses) until the next one would pass
``max_tokens``, prefers to end a passage at a paragraph break once it is half full, and starts
the next passage with the last sentences of the previous one, up to ``overlap_tokens``. A
sentence longer than the budget is cut between words.

Each passage keeps its place in the original: ``start`` and ``end`` (character offsets into
the source document's text), ``chunk`` (0-based) and ``chunks``, so an evidence span at
``[a, b)`` of a passage is ``[start + a, start + b)`` of the source. PDF passages also get the
``page`` they start on.
"""

from __future__ import annotations

import bisect
import re
from typing import Any, Callable, Sequence

from ..errors import InvalidInputError
from ..evidence.sentences import split_sentences
from ..types import Document

__all__ = ["split_text", "chunk_documents", "wordpiece_counter", "estimate_tokens"]

TokenCounter = Callable[[str], int]

_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: 4 wordpieces per 3 words (English prose with BERT's vocabulary)."""
    return -(-4 * len(_WORD.findall(text)) // 3)


def wordpiece_counter(tokenizer: Any) -> TokenCounter:
    """A token counter from a Hugging Face tokenizer (e.g. ``model.tokenizer.hf``): exact budgets."""
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return count


def _pieces(text: str, start: int, end: int, max_tokens: int, count: TokenCounter) -> list[tuple[int, int, int]]:
    """``(start, end, tokens)`` of a sentence, cut between words when it passes the budget."""
    n = count(text[start:end])
    if n <= max_tokens:
        return [(start, end, n)]
    out: list[tuple[int, int, int]] = []
    cur_s = cur_e = None
    cur_n = 0
    for m in _WORD.finditer(text, start, end):
        w = count(m.group())
        if cur_s is not None and cur_n + w > max_tokens:
            out.append((cur_s, cur_e, cur_n))
            cur_s = None
        if cur_s is None:
            cur_s, cur_n = m.start(), 0
        cur_e, cur_n = m.end(), cur_n + w
    if cur_s is not None:
        out.append((cur_s, cur_e, cur_n))
    return out


def split_text(text: str, *, max_tokens: int, overlap_tokens: int = 0,
               count_tokens: TokenCounter = estimate_tokens) -> list[tuple[int, int]]:
    """``[start, end)`` character ranges of the passages of ``text`` (see the module docstring).

    >>> text = "First sentence here. Second one is here.\\n\\nA new paragraph starts. It ends."
    >>> [text[s:e] for s, e in split_text(text, max_tokens=12)]
    ['First sentence here. Second one is here.', 'A new paragraph starts. It ends.']
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidInputError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if isinstance(overlap_tokens, bool) or not isinstance(overlap_tokens, int) or not 0 <= overlap_tokens < max_tokens:
        raise InvalidInputError(f"overlap_tokens must be an int in [0, max_tokens), got {overlap_tokens!r}")
    units: list[tuple[int, int, int, bool]] = []  # start, end, tokens, starts a paragraph
    prev_end = 0
    for s, e in split_sentences(text):
        new_paragraph = bool(units) and _PARAGRAPH_BREAK.search(text, prev_end, s) is not None
        for i, (a, b, n) in enumerate(_pieces(text, s, e, max_tokens, count_tokens)):
            units.append((a, b, n, new_paragraph and i == 0))
        prev_end = e
    passages: list[tuple[int, int]] = []
    current: list[tuple[int, int, int, bool]] = []
    total = 0
    for unit in units:
        _, _, n, paragraph = unit
        full = total + n > max_tokens
        if current and (full or (paragraph and total >= max_tokens // 2)):
            passages.append((current[0][0], current[-1][1]))
            # carry the last sentences over, as many as fit the overlap and leave room for this one
            carried: list[tuple[int, int, int, bool]] = []
            kept = 0
            for prev in reversed(current[1:]):
                if kept + prev[2] > overlap_tokens or kept + prev[2] + n > max_tokens:
                    break
                carried.insert(0, prev)
                kept += prev[2]
            current, total = carried, kept
        current.append(unit)
        total += n
    if current:
        passages.append((current[0][0], current[-1][1]))
    return passages


def chunk_documents(documents: Sequence[Document], *, max_tokens: int, overlap_tokens: int = 0,
                    count_tokens: TokenCounter = estimate_tokens) -> list[Document]:
    """Passages of ``documents``: a document that fits stays whole (same id and text); a longer
    one becomes ``id#0``, ``id#1``, … with the metadata of its source plus ``chunk``,
    ``chunks``, ``start`` and ``end``.

    PDF text (metadata ``page_starts``): every passage gets ``page``, the page it starts on; a
    PDF that stays whole also keeps ``page_starts``, so a span anywhere in it maps to its page.
    """
    out: list[Document] = []
    for doc in documents:
        spans = split_text(doc.text, max_tokens=max_tokens, overlap_tokens=overlap_tokens, count_tokens=count_tokens)
        meta = dict(doc.metadata)
        page_starts = meta.pop("page_starts", None)
        if len(spans) <= 1:
            if page_starts:
                meta.update(page=1, page_starts=page_starts)
            out.append(Document(id=doc.id, text=doc.text, metadata=meta))
            continue
        for i, (s, e) in enumerate(spans):
            extra: dict[str, Any] = {"chunk": i, "chunks": len(spans), "start": s, "end": e}
            if page_starts:
                extra["page"] = bisect.bisect_right(page_starts, s)
            out.append(Document(id=f"{doc.id}#{i}", text=doc.text[s:e], metadata={**meta, **extra}))
    return out
