"""Docs tests: the README's Quick start is exactly two commands, and what it promises exists."""

from __future__ import annotations

import os
import re
from pathlib import Path

from backtester.job import SUMMARY_KEYS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "Quick start needs a bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.split("#", 1)[0].strip()]


def test_quick_start_has_exactly_two_commands_that_exist_and_are_executable() -> None:
    commands = quick_start_commands()
    assert commands == ["./run_system.sh --duration 60", "./run_tests.sh"]
    for command in commands:
        script = REPO / command.split()[0].removeprefix("./")
        assert script.is_file() and os.access(script, os.X_OK), command


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "./run_tests.sh" in ci
    tests = (REPO / "run_tests.sh").read_text()
    for step in ("ruff check", "lint-imports", "pytest"):
        assert step in tests, step


def test_summary_keys_named_by_the_issue_are_written() -> None:
    required = {
        "strategy", "params", "config_id", "data_fingerprint", "start", "end", "symbols", "initial_capital",
        "final_equity", "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
        "max_drawdown_duration_days", "n_trades", "win_rate", "profit_factor", "exposure", "turnover",
        "commissions", "bars_processed", "wall_seconds",
    }
    assert required <= set(SUMMARY_KEYS)
