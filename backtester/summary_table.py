"""The short table ``run_backtest.py`` prints: the figures a researcher looks at first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from backtester.veto_report import print_veto_ab

_ROWS: tuple[tuple[str, str, str], ...] = (
    ("period", "", ""),
    ("final_equity", "final equity", "money"),
    ("total_return", "total return", "pct"),
    ("cagr", "CAGR", "pct"),
    ("annual_volatility", "annual volatility", "pct"),
    ("sharpe", "Sharpe", "ratio"),
    ("sortino", "Sortino", "ratio"),
    ("max_drawdown", "max drawdown", "pct"),
    ("n_trades", "round trips", "int"),
    ("win_rate", "win rate", "pct"),
    ("commissions", "commissions", "money"),
    ("bars_per_second", "bars/s", "int"),
)


def format_value(value: Any, kind: str) -> str:
    if value is None or isinstance(value, str):
        return str(value)
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{summary['strategy']} backtest", show_header=False)
    for key, label, kind in _ROWS:
        if key == "period":
            table.add_row("period", f"{summary['start']} .. {summary['end']} ({len(summary['symbols'])} symbols)")
        else:
            table.add_row(label, format_value(summary.get(key), kind))
    console.print(table)
    print_veto_ab(summary, console)
