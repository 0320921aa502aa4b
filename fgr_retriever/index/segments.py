"""Immutable segment files: the token vectors of one write, memory-mapped on read.

A segment is a safetensors file (``vectors``, ``offsets`` and, for models with their own relevance
vectors, ``relevance_vectors``; rows of every document back to back). It is written once under a
temporary name, flushed to disk and renamed, and never modified afterwards: a reader that mapped
it keeps a valid view even after :meth:`PersistentIndex.optimize` has replaced and unlinked it.

Reading parses the safetensors header ourselves (8-byte length + JSON, a documented format) and
maps the file copy-on-write, so tensors are zero-copy views that torch accepts as writable buffers
while nothing is ever written back. Nothing is unpickled; every offset in the header is checked
against the file size before it is used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import re
import struct
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import save_file

from .._io import _as_if_created_normally, _fsync_dir
from ..errors import IndexCorruptedError

__all__ = ["SegmentInfo", "Segment", "write_segment", "check_file_name", "SEGMENT_PREFIX"]

SEGMENT_PREFIX = "seg-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DTYPES = {"BF16": (torch.bfloat16, 2), "F16": (torch.float16, 2), "F32": (torch.float32, 4), "I32": (torch.int32, 4),
           "I8": (torch.int8, 1)}


def check_file_name(name: object, directory: Path) -> Path:
    """``directory / name`` for a plain file name recorded in an index, refusing anything else.

    Names come from files an attacker may have crafted: only one path component of safe
    characters is accepted (no ``/``, ``..``, absolute paths or drive letters), and the result must
    be a regular file (not a device such as ``/dev/zero``, a fifo or a symlink).
    """
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise IndexCorruptedError(f"{directory}: refusing the file name {name!r} recorded in the index "
                                  "(only plain names inside the index directory are allowed)")
    path = directory / name
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_file():
            raise IndexCorruptedError(f"{path} is not a regular file")
    return path


@dataclass(frozen=True)
class SegmentInfo:
    """What the catalogue records of a segment file."""

    file: str
    rows: int
    bytes: int
    sha256: str


def write_segment(directory: Path, tensors: Mapping[str, torch.Tensor]) -> SegmentInfo:
    """Write ``tensors`` to a new segment file in ``directory`` (durably) and describe it.

    The file appears under its final name only once its bytes are on disk, so a crash leaves at
    most a temporary file that the next writer removes.
    """
    name = f"{SEGMENT_PREFIX}{uuid.uuid4().hex}.safetensors"
    tmp = directory / f".tmp-{name}"
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        digest = hashlib.sha256()
        with open(tmp, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
            os.fsync(fh.fileno())
        _as_if_created_normally(tmp, directory=False)
        os.rename(tmp, directory / name)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    rows = int(next(iter(tensors.values())).shape[0])
    return SegmentInfo(file=name, rows=rows, bytes=(directory / name).stat().st_size, sha256=digest.hexdigest())


class Segment:
    """A read-only, memory-mapped view of one segment file.

    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> info = write_segment(d, {"vectors": torch.ones(3, 4, dtype=torch.bfloat16),
    ...                          "offsets": torch.zeros(3, 2, dtype=torch.int32)})
    >>> Segment(d / info.file, expected_bytes=info.bytes).tensor("vectors").shape
    torch.Size([3, 4])
    """

    def __init__(self, path: Path, *, expected_bytes: int | None = None, sha256: str | None = None) -> None:
        self.path = path
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if expected_bytes is not None and size != expected_bytes:
                    raise IndexCorruptedError(f"{path} has {size} bytes, the catalogue recorded {expected_bytes} "
                                              "(truncated or replaced)")
                if size < 8:
                    raise IndexCorruptedError(f"{path} is too short to be a segment")
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_COPY)
                # scattered reads (re-scoring a few candidates) use pread on this descriptor: each
                # touch of a mapping maps a whole page-cache folio (up to 2 MB) into the process
                self._fd = os.dup(fh.fileno())
                weakref.finalize(self, os.close, self._fd)
        except FileNotFoundError:
            raise IndexCorruptedError(f"{path} is missing") from None
        except OSError as exc:
            raise IndexCorruptedError(f"{path} is unreadable: {exc}") from None
        if sha256 is not None and hashlib.sha256(self._map).hexdigest() != sha256:
            raise IndexCorruptedError(f"{path} does not match its checksum (damaged or altered)")
        (header_len,) = struct.unpack("<Q", self._map[:8])
        if header_len > size - 8 or header_len > 1 << 24:
            raise IndexCorruptedError(f"{path}: damaged segment header")
        try:
            header = json.loads(bytes(self._map[8: 8 + header_len]))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise IndexCorruptedError(f"{path}: damaged segment header") from None
        base = 8 + header_len
        self._tensors: dict[str, torch.Tensor] = {}
        self._file_offset: dict[str, int] = {}  # where each tensor's bytes start, for pread
        buffer = memoryview(self._map)
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            try:
                dtype, width = _DTYPES[spec["dtype"]]
                shape = [int(s) for s in spec["shape"]]
                start, end = (int(o) for o in spec["data_offsets"])
            except (KeyError, TypeError, ValueError):
                raise IndexCorruptedError(f"{path}: unsupported or damaged tensor {name!r}") from None
            count = 1
            for s in shape:
                count *= s
            if start < 0 or end != start + count * width or base + end > size:
                raise IndexCorruptedError(f"{path}: tensor {name!r} does not fit in the file")
            flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=base + start) if count else \
                torch.empty(0, dtype=dtype)
            self._tensors[name] = flat.view(shape)
            self._file_offset[name] = base + start
        if "vectors" not in self._tensors or "offsets" not in self._tensors:
            raise IndexCorruptedError(f"{path} lacks vectors or offsets")
        self.rows = int(self._tensors["vectors"].shape[0])
        if self._tensors["offsets"].shape != (self.rows, 2):
            raise IndexCorruptedError(f"{path}: vectors and offsets disagree")
        for extra in ("relevance_vectors", "scales"):
            t = self._tensors.get(extra)
            if t is not None and t.shape[0] != self.rows:
                raise IndexCorruptedError(f"{path}: vectors and {extra} disagree")
        if (self._tensors["vectors"].dtype == torch.int8) != ("scales" in self._tensors):
            raise IndexCorruptedError(f"{path}: int8 vectors need their scales (and only they do)")

    def tensor(self, name: str) -> torch.Tensor:
        """The whole tensor as a zero-copy view of the mapping (for sequential scans)."""
        return self._tensors[name]

    def read(self, name: str, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of a tensor, copied into private memory with one ``pread``."""
        whole = self._tensors[name]
        row_shape = whole.shape[1:]
        n = max(0, min(stop, whole.shape[0]) - start)
        if not n:
            return torch.empty([0, *row_shape], dtype=whole.dtype)
        row_bytes = whole.element_size() * row_shape.numel()
        buf = bytearray(n * row_bytes)
        if os.preadv(self._fd, [buf], self._file_offset[name] + start * row_bytes) != len(buf):
            raise IndexCorruptedError(f"{self.path}: short read (file truncated?)")
        return torch.frombuffer(buf, dtype=whole.dtype).view([n, *row_shape])

    def get(self, name: str) -> torch.Tensor | None:
        return self._tensors.get(name)
