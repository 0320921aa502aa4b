"""Loading FGR-ColBERT models once per process for every component that names the same one.

A pipeline often holds several objects that need the same encoder: the document store, a ranker,
a second store instance rebuilt from YAML. Loading the weights once and handing out the same
object saves memory and start-up time. The cache holds weak references, so a model is freed as
soon as no component uses it any more; a model directory that changes on disk (new files, new
modification times) is loaded afresh rather than served stale.
"""

from __future__ import annotations

import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fgr_retriever import FGRColBERT

__all__ = ["load_model"]

_cache: weakref.WeakValueDictionary[tuple, FGRColBERT] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def _cache_key(model: str | None, device: str | None) -> tuple:
    if model is None:
        return ("<bundled default>", device)
    path = Path(model).expanduser()
    if path.is_dir():
        # the directory's files and their sizes/mtimes: a re-saved model gets a new key
        stamp = tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in path.iterdir() if f.is_file()))
        return (str(path.resolve()), device, stamp)
    return (model, device)


def load_model(model: str | None, *, device: str | None = None) -> FGRColBERT:
    """The model for ``model`` (directory, hub id, or ``None`` for the bundled default), loaded once.

    Raises the core's :class:`~fgr_retriever.ModelLoadError` (an ``OSError``) when it cannot be loaded.
    """
    from fgr_retriever import FGRColBERT

    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a path or hub id (str) or None, got {type(model).__name__}")
    key = _cache_key(model, device)
    with _lock:  # one load per key even when components warm up from several threads
        found = _cache.get(key)
        if found is None:
            found = FGRColBERT.from_pretrained(model, device=device)
            _cache[key] = found
        return found
