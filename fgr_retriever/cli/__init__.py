"""The ``fgr-retriever`` command line.

Owns: argument parsing and printing, one module per command group (:mod:`.demo`;
:mod:`.retrieval` for ``index``/``search``/``highlight``; :mod:`.label`, :mod:`.train` and
:mod:`.evaluate` for the distillation tool chain), with :mod:`.common` for what they share
(model loading, colour, result printing). Reading and splitting files is
:mod:`fgr_retriever.ingest`, which the Python API shares.

May import: everything in ``fgr_retriever``. Nothing in the library imports this package.
Heavy imports (torch, the model, the tool chains) happen inside the commands, so ``--help``
stays fast.
"""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
