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
    for label, value in state_rows(summary) + attention_rows(summary):
        table.add_row(label, value, style="yellow")
    for label, value in stop_rows(summary):
        table.add_row(label, value)
    console.print(table)
    print_veto_ab(summary, console)


def state_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The trading-state changes (REDUCING, HALTED, back to ACTIVE) by date, when there were any: a run that sat
    in cash after a halt must say so beside its figures (the report's banner shows the same periods)."""
    changes = summary.get("trading_state_changes") or []
    moves = [f"{c['to']} {c['date']}" for c in changes if c.get("to") in ("REDUCING", "HALTED", "ACTIVE")
             and c.get("from") != "STARTING"]
    if not moves:
        return []
    shown = moves if len(moves) <= 8 else [*moves[:7], f"... {len(moves) - 7} more (summary.json)"]
    return [("trading state", ", ".join(shown) + f"; final {summary.get('final_trading_state', '?')}")]


def stop_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Protective stops placed, filled and cancelled, for a strategy run with ``stop: atr``."""
    stops = summary.get("stops") or {}
    if not stops.get("placed"):
        return []
    return [("protective stops", f"placed {stops['placed']}, filled {stops.get('filled', 0)}, "
                                 f"cancelled {stops.get('cancelled', 0)}")]


def attention_rows(summary: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a reader must not miss, shown only when it happened: orders refused by a check, signals ignored,
    bars quarantined, sessions missing from the data."""
    rows: list[tuple[str, str]] = []
    rejections = summary.get("rejections") or {}
    if rejections:
        rows.append(("orders refused", ", ".join(f"{check} {n}" for check, n in sorted(rejections.items()))))
    clipped = summary.get("clipped_orders") or {}
    if clipped:
        rows.append(("entries cut to a limit", ", ".join(f"{limit} {n}" for limit, n in sorted(clipped.items()))))
    ignored = {k: v for k, v in (summary.get("ignored_signals") or {}).items() if k != "warmup"}
    if ignored:
        rows.append(("signals ignored", ", ".join(f"{why} {n}" for why, n in sorted(ignored.items()))))
    if summary.get("quarantined_bars"):
        rows.append(("bars quarantined", f"{summary['quarantined_bars']:,} (never traded on; see the log)"))
    missing = summary.get("missing_sessions") or {}
    if missing:
        parts = [f"{symbol} {info['count']} (first {', '.join(info['first'][:3])})" for symbol, info in missing.items()]
        rows.append(("sessions missing", "; ".join(parts)))
    return rows
