"""Reading files into documents: one loader per format, folders walked, bad files reported.

Formats: ``.txt`` and ``.md`` (one document per file), ``.jsonl`` / ``.jsonl.gz`` / ``.json``
(records with ``text`` and optional ``id``, ``title``, ``metadata``), ``.csv`` (one document per
row; you choose the text and metadata columns), ``.html`` / ``.htm`` (visible text, through
BeautifulSoup) and ``.pdf`` (text per page, through pypdf). HTML and PDF need the ``ingest``
extra: ``pip install "fgr-retriever[ingest]"``.

Folders are walked in a stable order, skipping hidden entries (``.git/``, ``.venv/``,
``.DS_Store``). A file that cannot be read (not UTF-8, empty, malformed, unsupported) is
skipped and recorded in :attr:`LoadReport.skipped` with the reason, unless ``strict=True``, in
which case the first one raises :class:`InvalidInputError` naming the file.

Every document's metadata says where it came from: ``source`` (the path relative to the folder
given) and, for records, ``record`` (the line or row number); PDF text keeps ``page_starts``,
the character offset where each page begins in the document text.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from .._io import iter_jsonl
from ..errors import FGRError, InvalidInputError, MissingDependencyError
from ..types import Document

__all__ = ["SUPPORTED_SUFFIXES", "LoadReport", "load_documents", "read_documents"]

SUPPORTED_SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz", ".json", ".csv", ".html", ".htm", ".pdf")


@dataclass
class LoadReport:
    """What :func:`load_documents` read: the documents, and the files it skipped and why."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    unsupported: dict[str, int] = field(default_factory=dict)  # suffix -> files of that type in folders
    files_read: int = 0

    def summary(self) -> str:
        """One line, then one line per skipped file and one for files of other types."""
        lines = [f"read {len(self.documents)} documents from {self.files_read} files"]
        if self.skipped:
            lines[0] += f"; skipped {len(self.skipped)} unreadable files:"
            lines += [f"  {path}: {reason}" for path, reason in self.skipped]
        if self.unsupported:
            kinds = ", ".join(f"{n} {suffix or '(no suffix)'}" for suffix, n in sorted(self.unsupported.items()))
            lines.append(f"  not read (unsupported types): {kinds}")
        return "\n".join(lines)


_LONGEST_FIRST = sorted(SUPPORTED_SUFFIXES, key=len, reverse=True)  # ".jsonl.gz" before ".gz"-less ones


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in _LONGEST_FIRST if name.endswith(s)), None)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _files(paths: Sequence[Path], report: LoadReport) -> Iterator[tuple[Path, Path]]:
    """``(file, root)`` for files given directly and supported, visible files under folders."""
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
            for p in found:
                if _suffix(p):
                    yield p, path
                else:  # counted, not an error: folders hold images, code and the like
                    report.unsupported[p.suffix.lower()] = report.unsupported.get(p.suffix.lower(), 0) + 1
        elif path.is_file():
            if not _suffix(path):
                # a file named explicitly is an error, not something to skip quietly
                raise InvalidInputError(f"{path}: unsupported file type (use {', '.join(SUPPORTED_SUFFIXES)})")
            yield path, path.parent
        else:
            raise InvalidInputError(f"{path}: no such file or directory")


def _skip(report: LoadReport, path: Path, reason: str, strict: bool) -> None:
    if strict:
        raise InvalidInputError(f"{path}: {reason}")
    report.skipped.append((str(path), reason))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"not UTF-8 text ({exc.reason} at byte {exc.start}); convert it, "
                                "e.g. iconv -f latin1 -t utf-8") from None


def _record(rec: object, where: str, rel: str, n: int) -> Document:
    if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
        raise InvalidInputError(f"{where}: each record must be an object with a string 'text'")
    meta = rec.get("metadata") or {}
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{where}: 'metadata' must be an object")
    meta = {**meta, "source": rel, "record": n}
    if rec.get("title") is not None:
        meta.setdefault("title", rec["title"])
    return Document(id=str(rec.get("id") or f"{rel}:{n}"), text=rec["text"], metadata=meta)


def _load_jsonl(path: Path, rel: str, **_) -> list[Document]:
    return [_record(rec, f"{path}:{n}", rel, n) for n, rec in iter_jsonl(path)]


def _load_json(path: Path, rel: str, **_) -> list[Document]:
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    records = data if isinstance(data, list) else [data]
    return [_record(rec, f"{path}[{i}]", rel, i + 1) for i, rec in enumerate(records)]


def _load_text(path: Path, rel: str, **_) -> list[Document]:
    return [Document(id=rel, text=_read_text(path), metadata={"source": rel})]


def _load_csv(path: Path, rel: str, *, text_columns: Sequence[str] | None = None,
              metadata_columns: Sequence[str] | None = None, id_column: str | None = None, **_) -> list[Document]:
    rows = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    columns = rows.fieldnames or []
    text_cols = list(text_columns) if text_columns else (["text"] if "text" in columns else [])
    if not text_cols:
        raise InvalidInputError(f"no 'text' column; choose the text column(s) among {columns} (--csv-text-column)")
    missing = [c for c in [*text_cols, *(metadata_columns or []), *([id_column] if id_column else [])]
               if c not in columns]
    if missing:
        raise InvalidInputError(f"no column(s) {missing}; the columns are {columns}")
    id_col = id_column or ("id" if "id" in columns and "id" not in text_cols else None)
    meta_cols = list(metadata_columns) if metadata_columns is not None else \
        [c for c in columns if c not in text_cols and c != id_col]
    docs = []
    for n, row in enumerate(rows, 2):  # row 1 is the header
        # several text columns become "column: value" lines, so the model sees what each value is
        parts = [(c, (row.get(c) or "").strip()) for c in text_cols]
        text = parts[0][1] if len(parts) == 1 else "\n".join(f"{c}: {v}" for c, v in parts if v)
        meta = {c: row.get(c) for c in meta_cols}
        meta.update(source=rel, record=n)
        docs.append(Document(id=str(row.get(id_col) or f"{rel}:{n}") if id_col else f"{rel}:{n}",
                             text=text, metadata=meta))
    return docs


_BLOCK_TAGS = ["p", "div", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th", "section", "article",
               "header", "footer", "main", "nav", "aside", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5",
               "h6", "title", "figcaption", "address", "hr"]


def _load_html(path: Path, rel: str, **_) -> list[Document]:
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise MissingDependencyError("reading HTML needs beautifulsoup4: pip install 'fgr-retriever[ingest]'") from None
    soup = BeautifulSoup(path.read_bytes(), "html.parser")  # the parser detects the encoding
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    # block elements become lines; inline ones (<b>, <a>, <span>) stay inside their sentence
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    text = "\n".join(line for line in lines if line)
    meta = {"source": rel, **({"title": title} if title else {})}
    return [Document(id=rel, text=text, metadata=meta)]


def _load_pdf(path: Path, rel: str, **_) -> list[Document]:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise MissingDependencyError("reading PDF needs pypdf: pip install 'fgr-retriever[ingest]'") from None
    try:
        reader = PdfReader(path)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise InvalidInputError(f"cannot read this PDF ({type(exc).__name__}: {exc})") from None
    text, starts = "", []
    for page in pages:
        starts.append(len(text) + (2 if text else 0))
        text = f"{text}\n\n{page}" if text else page
    return [Document(id=rel, text=text, metadata={"source": rel, "page_starts": starts})]


_LOADERS = {".txt": _load_text, ".md": _load_text, ".jsonl": _load_jsonl, ".jsonl.gz": _load_jsonl,
            ".json": _load_json, ".csv": _load_csv, ".html": _load_html, ".htm": _load_html, ".pdf": _load_pdf}


def load_documents(paths: str | Path | Sequence[str | Path], *, strict: bool = False,
                   csv_text_columns: Sequence[str] | None = None, csv_metadata_columns: Sequence[str] | None = None,
                   csv_id_column: str | None = None) -> LoadReport:
    """Read every supported file in ``paths`` (files or folders) into documents.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "care.md").write_text("Wash cashmere by hand in cold water.")
    >>> _ = (folder / "broken.txt").write_bytes(b"caf\\xe9")
    >>> report = load_documents(folder)
    >>> [d.id for d in report.documents], [reason[:14] for _, reason in report.skipped]
    (['care.md'], ['not UTF-8 text'])
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    report = LoadReport()
    for path, root in _files([Path(p) for p in paths], report):
        rel = path.relative_to(root).as_posix() if path != root else path.name
        try:
            docs = _LOADERS[_suffix(path)](path, rel, text_columns=csv_text_columns,
                                           metadata_columns=csv_metadata_columns, id_column=csv_id_column)
        except MissingDependencyError:
            raise
        except FGRError as exc:
            _skip(report, path, str(exc), strict)
            continue
        docs = [d for d in docs if d.text.strip()]
        if not docs:
            _skip(report, path, "no text", strict)
            continue
        report.files_read += 1
        report.documents.extend(docs)
    return report


def read_documents(paths: str | Path | Sequence[str | Path]) -> list[Document]:
    """All documents in ``paths``; any unreadable file raises (``load_documents(strict=True)``)."""
    return load_documents(paths, strict=True).documents
