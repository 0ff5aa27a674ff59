#!/usr/bin/env bash
# Create the environment (with dev extras) and run everything CI runs: ruff, the import-linter contracts, pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap_venv.sh dev
echo "== ruff check" && .venv/bin/ruff check .
echo "== import-linter" && .venv/bin/lint-imports --no-cache
# two workers (PYTEST_WORKERS=0 for one process); a file's tests stay on one worker, so its fixtures are shared;
# the 30 slowest are listed at the end
echo "== pytest" && .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --durations=30 "$@"
