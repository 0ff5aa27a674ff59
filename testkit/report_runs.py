"""A real backtest that goes REDUCING and then HALTED, for the report tests (HTML and headless browser).

The synthetic market (seed 3, three symbols, 2018-2020) with drawdown limits far tighter than the config's: the
momentum run throttles, turns REDUCING three times and HALTS in November 2020. It runs through
``backtester.job.run_backtest_job``, the same path as ``run_backtest.py``, so its results folder is the real one.
"""

from __future__ import annotations

from pathlib import Path

from backtester.job import JobOutput, JobRequest, run_backtest_job
from core.config_loader import load_config

REPO = Path(__file__).resolve().parents[1]
HALTING_SYMBOLS = ("AAA", "BBB", "CCC")
HALTING_OVERRIDES = ("portfolio.risk.drawdown_throttle_start_pct=1", "portfolio.risk.reducing_drawdown_pct=2",
                     "portfolio.risk.halt_drawdown_pct=4")  # fmt: skip


def run_halting(out_dir: Path, benchmark: str | None = None) -> JobOutput:
    config = load_config(REPO / "config.yaml", HALTING_OVERRIDES)
    request = JobRequest(strategy="momentum", data="synthetic", symbols=HALTING_SYMBOLS, start="2018-01-02",
                         end="2020-12-31", seed=3, overrides=HALTING_OVERRIDES, benchmark=benchmark)  # fmt: skip
    return run_backtest_job(config, request, out_dir)
