"""Atomic file and directory writes, safe reads."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

from .errors import FGRError, InvalidInputError

__all__ = ["atomic_directory", "recover_directory", "atomic_write_text", "iter_jsonl", "read_lines", "read_json", "sha256_file"]


def _umask() -> int:
    """The process umask, without changing it (Linux reports it in /proc; elsewhere the classic
    set-and-restore, which is not thread-safe but only runs where /proc is missing)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _as_if_created_normally(path: Path, *, directory: bool) -> None:
    # mkstemp/mkdtemp create 0600/0700 whatever the umask: give the final file the permissions
    # open()/mkdir() would have, so another service user can read an index where the umask allows
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave its files alone
    return True


def _owner_pid(path: Path) -> int | None:
    """The pid recorded in a ``.NAME.tmp-PID-…`` / ``.NAME.old-PID-…`` name, if any."""
    parts = path.name.rsplit(".", 1)[-1].split("-")
    return int(parts[1]) if len(parts) > 2 and parts[1].isdigit() else None


def recover_directory(target: Path, *, marker: str) -> None:
    """Repair what a killed :func:`atomic_directory` left next to ``target``.

    A crash between its two renames leaves no ``target`` and the previous version moved aside
    as ``.NAME.old-PID-…``: it is put back. Temporary and moved-aside folders of processes that
    no longer run are deleted (those of running processes may be in use and are left alone).
    """
    target = Path(target)
    parent = target.absolute().parent
    if not parent.is_dir():
        return
    aside = [p for p in parent.glob(f".{target.name}.old-*") if p.is_dir()]
    if not target.exists():
        for old in sorted(aside, key=lambda p: p.stat().st_mtime, reverse=True):
            if (old / marker).exists():
                with contextlib.suppress(OSError):
                    os.rename(old, target)
                    _fsync_dir(parent)
                    aside.remove(old)
                break
    for leftover in aside + [p for p in parent.glob(f".{target.name}.tmp-*") if p.is_dir()]:
        pid = _owner_pid(leftover)
        if pid is not None and pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(target: Path, *, marker: str) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``target``; on success it replaces ``target``.

    ``target`` may be missing, empty, or a directory we wrote before (it holds ``marker``). Any
    other existing directory is refused, so saving never deletes a user's unrelated files. If the
    body raises, ``target`` is left exactly as it was.
    """
    target = Path(target)
    recover_directory(target, marker=marker)
    if target.exists():
        if not target.is_dir():
            raise FGRError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not (target / marker).exists():
            raise FGRError(f"{target} is a non-empty directory that fgr-retriever did not write "
                           f"(no {marker}); refusing to replace it. Choose another path.")
    parent = target.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=parent))
    try:
        yield tmp
        _as_if_created_normally(tmp, directory=True)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if target.exists():
            old = parent / f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _as_if_created_normally(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path, error: type[Exception], what: str) -> Any:
    """Read a JSON file, turning every failure into ``error`` with a message naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise error(f"{what}: {path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what}: {path} is not valid UTF-8 JSON ({exc})") from None


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the non-blank lines of a text file, gzip-compressed when it ends
    in ``.gz``. Every failure is an :class:`InvalidInputError` naming the file (and line)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    n = 0
    try:
        with opener(path, "rb") as fh:
            # bytes, decoded per line: a decode error can then name its line
            for n, raw in enumerate(fh, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InvalidInputError(f"{path}:{n}: not UTF-8 text ({exc.reason} at byte {exc.start} "
                                            "of the line)") from None
                if line.strip():
                    yield n, line
    except FileNotFoundError:
        raise InvalidInputError(f"no such file: {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory, expected a file") from None
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError; truncated gzip is EOFError
        raise InvalidInputError(f"{path}: cannot read after line {n} ({exc})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of a ``.jsonl`` / ``.jsonl.gz`` file whose lines are JSON objects."""
    for n, line in read_lines(path):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(rec, dict):
            raise InvalidInputError(f"{path}:{n}: each line must be a JSON object, got {type(rec).__name__}")
        yield n, rec
