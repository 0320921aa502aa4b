"""Typed errors. Every failure a user can act on derives from :class:`FGRError`."""

from __future__ import annotations

__all__ = [
    "FGRError",
    "InvalidInputError",
    "ModelLoadError",
    "IndexStoreError",
    "IndexNotFoundError",
    "IndexCorruptedError",
    "ModelMismatchError",
    "DocumentNotFoundError",
    "DuplicateIdError",
]


class FGRError(Exception):
    """Base class of all errors raised on purpose by fgr-retriever."""


class InvalidInputError(FGRError, ValueError):
    """An argument has the wrong type or value (empty query, bad ``k``, non-string text...)."""


class ModelLoadError(FGRError, OSError):
    """A model directory or hub id could not be turned into an :class:`FGRColBERT`."""


class IndexStoreError(FGRError, OSError):
    """Base class of index persistence errors (not named ``IndexError``, which is a builtin)."""


class IndexNotFoundError(IndexStoreError, FileNotFoundError):
    """The directory given to ``load`` holds no index."""


class IndexCorruptedError(IndexStoreError):
    """Index files exist but are unreadable, truncated or inconsistent with each other."""


class ModelMismatchError(FGRError, ValueError):
    """The model used to query an index is not the model that built it."""


class DocumentNotFoundError(FGRError, KeyError):
    """One or more document ids are not in the index."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        shown = ", ".join(repr(m) for m in self.missing[:5])
        more = f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else ""
        super().__init__(f"unknown document id(s): {shown}{more}")

    def __str__(self) -> str:  # KeyError quotes its message; we want it readable
        return self.args[0]


class DuplicateIdError(FGRError, ValueError):
    """The same id appears twice in one ``add_documents`` call."""


class MissingDependencyError(FGRError, ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


__all__.append("MissingDependencyError")
