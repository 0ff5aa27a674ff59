"""Tables of the research reports: human column names, each number in its unit, wide tables scroll in their box.

The CSV files keep the machine names (``param_roc_period``, ``oos_max_drawdown``); the page shows
"roc period", "OOS max drawdown" with fractions as percents, ratios with two decimals, money with separators. A
trial that went HALTED keeps its "HALTED on" date and its row is tinted.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from backtester.report_page import fmt_int, fmt_money, fmt_pct, fmt_ratio

# column -> (label, kind); kinds: pct (fraction shown as %), pct_units (already in %), ratio, money, int, text
COLUMNS: dict[str, tuple[str, str]] = {
    "rank": ("Rank", "int"), "trial_id": ("Trial", "int"), "status": ("Status", "text"),
    "halted_on": ("HALTED on", "text"), "attempts": ("Attempts", "int"),
    "initial_capital": ("Initial capital", "money"), "final_equity": ("Final equity", "money"),
    "total_return": ("Total return", "pct"), "cagr": ("CAGR", "pct"), "annual_volatility": ("Volatility", "pct"),
    "sharpe": ("Sharpe", "ratio"), "sortino": ("Sortino", "ratio"), "calmar": ("Calmar", "ratio"),
    "max_drawdown": ("Max drawdown", "pct"), "max_drawdown_duration_days": ("Longest drawdown (days)", "int"),
    "n_trades": ("Round trips", "int"), "n_trades_run": ("Round trips", "int"), "win_rate": ("Win rate", "pct"),
    "profit_factor": ("Profit factor", "ratio"), "exposure": ("Exposure", "pct"),
    "turnover": ("Turnover (×/yr)", "ratio"), "commissions": ("Commissions", "money"),
    "slippage_cost": ("Slippage", "money"), "avg_trade_pnl": ("Avg trade P&L", "money"),
    "best_day": ("Best day", "pct"), "worst_day": ("Worst day", "pct"),
    "window": ("Window", "int"), "train_start": ("Train from", "text"), "train_end": ("Train to", "text"),
    "test_start": ("Test from", "text"), "test_end": ("Test to", "text"),
    "is_sharpe": ("IS Sharpe", "ratio"), "is_annual_return": ("IS annual return", "pct"),
    "oos_sharpe": ("OOS Sharpe", "ratio"), "oos_annual_return": ("OOS annual return", "pct"),
    "oos_total_return": ("OOS total return", "pct"), "oos_max_drawdown": ("OOS max drawdown", "pct"),
    "oos_trades": ("OOS round trips", "int"),
}
FRACTION_METRICS = frozenset(k for k, (_, kind) in COLUMNS.items() if kind == "pct")


def label_of(column: str) -> str:
    if column.startswith("param_"):
        return column.removeprefix("param_").replace("_", " ")
    return COLUMNS.get(column, (column.replace("_", " "), "text"))[0]


def format_value(value: Any, kind: str) -> str:
    """One cell: "n/a" for missing, the unit's format otherwise (text is escaped)."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return '<span class="muted">n/a</span>'
    if kind in ("pct", "pct_units", "ratio", "money", "int") and isinstance(value, int | float | np.number):
        number = float(value)
        return {"pct": lambda: fmt_pct(number), "pct_units": lambda: fmt_pct(number / 100.0),
                "ratio": lambda: fmt_ratio(number), "money": lambda: fmt_money(number),
                "int": lambda: fmt_int(number)}[kind]()
    if isinstance(value, float | np.floating):
        return f"{value:,.4g}"
    return html.escape(str(value))


def frame_table(frame: pd.DataFrame, max_rows: int, *, table_id: str = "", kinds: dict[str, str] | None = None,
                labels: dict[str, str] | None = None) -> str:
    """A scrolling table of the first ``max_rows`` rows; ``kinds``/``labels`` override ``COLUMNS`` per column."""
    if frame.empty:
        return '<p class="muted">none</p>'
    kinds, labels = kinds or {}, labels or {}
    columns = list(frame.columns)
    column_kinds = [kinds.get(c, COLUMNS.get(c, ("", "text"))[1]) for c in columns]
    head = "".join(f"<th>{html.escape(labels.get(c, label_of(c)))}</th>" for c in columns)
    rows = []
    for record in frame.head(max_rows).itertuples(index=False):
        cells = "".join(f"<td>{format_value(v, k)}</td>" for v, k in zip(record, column_kinds, strict=True))
        halted = "halted_on" in columns and _present(record[columns.index("halted_on")])
        rows.append(f'<tr class="halted">{cells}</tr>' if halted else f"<tr>{cells}</tr>")
    id_attr = f' id="{html.escape(table_id)}"' if table_id else ""
    more = (f'<p class="muted">{len(frame) - max_rows} more rows in the CSV</p>' if len(frame) > max_rows else "")
    return (f'<div class="scroll"><table class="data"{id_attr}><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>{more}')


def facts_table(rows: Sequence[tuple[str, str, str]]) -> str:
    """(label, formatted value, meaning) rows; the meaning is a one-line reading of the value."""
    body = "".join(f'<tr><th>{html.escape(label)}</th><td>{value}</td><td class="meaning">{html.escape(meaning)}'
                   f"</td></tr>" for label, value, meaning in rows)
    return f'<table class="kv facts-table">{body}</table>'


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and str(value) != ""
