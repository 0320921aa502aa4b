"""Distillation: making training data and training the evidence model.

Owns: LLM teacher labelling (``labeling``, with ``span_location`` placing quoted evidence in
the passage), reading and mixing training sources (``training_data``) and the trainer with its
losses (``training``).

May import: the runtime (``model``, ``evidence``, foundation modules). Nothing in the runtime
imports this package, so changing a loss or a data source cannot change how a saved model
searches. Submodules are not imported here: ``labeling`` needs optional LLM clients and
``training`` needs torch, and neither should load for the other.
"""
