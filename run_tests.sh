#!/usr/bin/env bash
# Create the environment (with dev extras) and run everything CI runs: ruff, the import-linter contracts, pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap_venv.sh dev
echo "== ruff check" && .venv/bin/ruff check .
echo "== import-linter" && .venv/bin/lint-imports --no-cache
echo "== pytest" && .venv/bin/python -m pytest "$@"
