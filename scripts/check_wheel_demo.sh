#!/usr/bin/env bash
# Build the three wheels (fgr-retriever, langchain-fgr, fgr-haystack) into dist/, install the
# core wheel into a clean virtual environment outside the checkout, and run `fgr-retriever demo`
# there: the demo must work from an installed package, not only from a clone.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
rm -rf dist && mkdir dist
for project in . integrations/langchain integrations/haystack; do
  .venv/bin/python -m pip wheel --quiet --no-deps --no-build-isolation "$project" -w dist
done
ls dist
venv=$(mktemp -d)/venv
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet dist/fgr_retriever-*.whl
cd "$(dirname "$venv")"   # away from the checkout, so nothing is imported from the source tree
out=$("$venv/bin/fgr-retriever" demo --color never -k 1 -q "How heavy is the Ondine 28 bag?")
echo "$out" | tail -n 4
echo "$out" | grep -q "product-ondine-28" || { echo "error: the wheel's demo did not find the Ondine 28 sheet" >&2; exit 1; }
rm -rf "$(dirname "$venv")"
echo "wheel demo OK"
