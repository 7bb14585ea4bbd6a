#!/usr/bin/env bash
# Install what is missing (no demo run), then run the linters and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --no-demo
. .venv/bin/activate

echo "ruff"
ruff check lossmagic tests
echo "mypy"
mypy lossmagic
echo "pytest"
pytest "$@"
