"""Ingestion: files in, passages out, ready for ``FGRRetriever.add_documents``.

Owns: reading files and folders into documents, one loader per format, with a report of what
was skipped and why (``loaders``); cutting long documents into sentence-aligned passages that
remember their place in the source (``chunking``).

May import: the foundation modules and ``fgr_retriever.evidence`` (the sentence segmenter).
It never imports the model: token budgets come in as a counting function (see
:func:`wordpiece_counter`). HTML and PDF need the ``ingest`` extra.

Example::

    from fgr_retriever import FGRRetriever
    from fgr_retriever.ingest import chunk_documents, load_documents, wordpiece_counter

    retriever = FGRRetriever()
    report = load_documents("docs/")          # .txt .md .json(l) .csv .html .pdf
    print(report.summary())                   # what was read, what was skipped and why
    passages = chunk_documents(report.documents, max_tokens=2 * (retriever.model.config.doc_maxlen - 3),
                               overlap_tokens=24, count_tokens=wordpiece_counter(retriever.model.tokenizer.hf))
    retriever.add_documents(passages)
"""

from __future__ import annotations

from .chunking import chunk_documents, estimate_tokens, split_text, wordpiece_counter
from .loaders import SUPPORTED_SUFFIXES, LoadReport, load_documents, read_documents

__all__ = [
    "load_documents",
    "read_documents",
    "LoadReport",
    "SUPPORTED_SUFFIXES",
    "split_text",
    "chunk_documents",
    "wordpiece_counter",
    "estimate_tokens",
]
