"""Reading documents from files for indexing: ``.txt``, ``.md`` (one document each) and
``.jsonl`` / ``.jsonl.gz`` (one document per line: ``text`` plus optional ``id``, ``title``,
``metadata``)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from .._io import iter_jsonl
from ..errors import InvalidInputError
from ..types import Document

__all__ = ["read_documents", "SUPPORTED_SUFFIXES"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUPPORTED_SUFFIXES if name.endswith(s)), None)


def _files(paths: list[Path]) -> Iterator[tuple[Path, Path]]:
    """Yield ``(file, root)``: files given directly, or supported files under given folders."""
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p))
            if not found:
                raise InvalidInputError(f"{path} holds no {', '.join(SUPPORTED_SUFFIXES)} files")
            for p in found:
                yield p, path
        elif path.is_file():
            if not _suffix(path):
                raise InvalidInputError(f"{path}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
            yield path, path.parent
        else:
            raise InvalidInputError(f"{path}: no such file or directory")


def _read_jsonl(path: Path, rel: str) -> Iterator[Document]:
    for n, rec in iter_jsonl(path):
        if not isinstance(rec.get("text"), str):
            raise InvalidInputError(f"{path}:{n}: each line must be an object with a string 'text'")
        meta = rec.get("metadata") or {}
        if not isinstance(meta, dict):
            raise InvalidInputError(f"{path}:{n}: 'metadata' must be an object")
        meta = {**meta, "source": rel}
        if rec.get("title") is not None:
            meta.setdefault("title", rec["title"])
        yield Document(id=str(rec.get("id") or f"{rel}:{n}"), text=rec["text"], metadata=meta)


def read_documents(paths: list[str | Path]) -> list[Document]:
    """All documents in ``paths`` (files or folders), in a stable order."""
    docs: list[Document] = []
    for path, root in _files([Path(p) for p in paths]):
        rel = path.relative_to(root).as_posix() if path != root else path.name
        if _suffix(path) in (".jsonl", ".jsonl.gz"):
            docs.extend(_read_jsonl(path, rel))
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInputError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                                    "convert it, e.g. iconv -f latin1 -t utf-8") from None
        if not text.strip():
            raise InvalidInputError(f"{path} is empty")
        docs.append(Document(id=rel, text=text, metadata={"source": rel}))
    return docs
