#!/usr/bin/env bash
# Create .venv at the project root and install fgr-retriever and its LangChain and Haystack
# integrations in editable mode, offline-ready.
# torch 2.13.0 (CPU build) is installed first: anything unpinned would pull CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# the core and both integrations (LangChain, Haystack), editable, with their test extras
.venv/bin/python -m pip install --quiet -e ".[test]" -e "integrations/langchain[test]" -e "integrations/haystack[test]"
version=$(.venv/bin/python -c "import torch; print(torch.__version__)")
case "$version" in
  2.13.0+cpu|2.13.0) echo "torch $version OK" ;;
  *) echo "error: torch $version was installed instead of 2.13.0+cpu" >&2; exit 1 ;;
esac
