"""One lock per model, and running locked work off the event loop.

The core retriever is not thread-safe: adding or deleting documents changes its index, and a
Hugging Face fast tokenizer raises ``RuntimeError: Already borrowed`` when two threads use it at
once. A LangChain retriever and an evidence compressor may share one model, and two LangChain
wrappers may share one core retriever, so the lock belongs to the *model* object rather than to
any wrapper: every search, re-rank, add, delete or save that touches a model holds its lock.

>>> import threading
>>> owner = threading.Thread()          # any weak-referenceable object can own a lock
>>> lock_for(owner) is lock_for(owner)
True
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any, Callable, TypeVar

__all__ = ["lock_for", "call_locked", "acall_locked"]

T = TypeVar("T")

# weak keys: a model that is garbage collected takes its lock with it
_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_REGISTRY_GUARD = threading.Lock()


def lock_for(owner: Any) -> threading.RLock:
    """The re-entrant lock shared by everything that uses ``owner`` (created on first use)."""
    with _REGISTRY_GUARD:
        lock = _LOCKS.get(owner)
        if lock is None:
            lock = _LOCKS[owner] = threading.RLock()
        return lock


def call_locked(owner: Any, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` while holding ``owner``'s lock."""
    with lock_for(owner):
        return fn(*args, **kwargs)


async def acall_locked(owner: Any, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """:func:`call_locked` in a worker thread, so the event loop keeps running meanwhile.

    The lock is taken inside the worker thread: waiting for it never blocks the loop either.
    """
    return await asyncio.to_thread(call_locked, owner, fn, *args, **kwargs)
