#!/usr/bin/env bash
# Create .venv at the project root, offline-ready, with torch 2.13.0 (CPU build) installed
# first: anything unpinned would pull CUDA wheels.
#   bash scripts/setup.sh          the core and both integrations (LangChain, Haystack), editable,
#                                  with their test extras: what the test suite needs
#   bash scripts/setup.sh --demo   the core only (editable): what `fgr-retriever demo` needs
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
if [ "${1:-}" = "--demo" ]; then
  .venv/bin/python -m pip install --quiet -e .
else
  .venv/bin/python -m pip install --quiet -e ".[test]" -e "integrations/langchain[test]" -e "integrations/haystack[test]"
fi
version=$(.venv/bin/python -c "import torch; print(torch.__version__)")
case "$version" in
  2.13.0+cpu|2.13.0) echo "torch $version OK" ;;
  *) echo "error: torch $version was installed instead of 2.13.0+cpu" >&2; exit 1 ;;
esac
