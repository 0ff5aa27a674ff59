#!/usr/bin/env bash
# Create the environment and run the main job: a costed momentum backtest on the deterministic synthetic market.
# Extra arguments go to run_backtest.py (e.g. --strategy mean_reversion, --data ../shared/data/yhoo-1996-2015.txt).
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap_venv.sh runtime
strategy_given=0
for arg in "$@"; do [ "$arg" = "--strategy" ] && strategy_given=1; done
if [ "$strategy_given" = 1 ]; then
  exec .venv/bin/python run_backtest.py "$@"
fi
exec .venv/bin/python run_backtest.py --strategy momentum "$@"
