"""Self-contained HTML tear sheet for one backtest run (``results/<run>/report.html``).

One page with plotly.js inline (``backtester.report_page``), so it opens from a results folder offline: an
attention banner when the run was throttled, halted, refused orders or had holes in its data; the metrics (the
summary's, and backtesting.py-style trade statistics from ``backtester.trade_stats``); the run's set-up; equity
against a benchmark with the trading-state periods; drawdown, exposure and rolling Sharpe; trades and stops on each
symbol's price; monthly returns, the distribution of trade P&L, the last trades and the transaction costs. Every
piece of text that comes from the caller is HTML-escaped. Metrics the summary lacks are recomputed from ``equity``
and ``trades`` with ``backtester.performance`` so the tear sheet and ``summary.json`` use the same definitions;
fill-based metrics (turnover, commissions, slippage) are shown only when the summary carries them.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from backtester.benchmark import buy_and_hold
from backtester.performance import compute_metrics, monthly_returns
from backtester.price_chart import trades_on_price_html
from backtester.report_banner import attention_banner, run_table
from backtester.report_charts import (
    drawdown_chart,
    equity_chart,
    exposure_chart,
    rolling_sharpe_chart,
    trade_pnl_chart,
)
from backtester.report_page import (
    fmt_date,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    header_html,
    num,
    section,
    write_page,
)
from backtester.trade_stats import trade_statistics
from backtester.veto_report import veto_html
from tca.calculator import aggregate, order_shortfalls, records_frame
from tca.records import ExecutionRecord, TcaRecord, UnfilledRecord

log = logging.getLogger(__name__)

LAST_TRADES = 50
_FILL_ONLY_METRICS = ("turnover", "commissions", "slippage_cost")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# (group title, [(metric key, label, format kind)]); kinds: pct, pct_units, ratio, money, int, days, sessions,
# multiple. The first four groups come from the summary (compute_metrics), the rest from trade_stats.
METRIC_GROUPS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Returns", (("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"),
                 ("best_day", "Best day", "pct"), ("worst_day", "Worst day", "pct"),
                 ("final_equity", "Final equity", "money"))),
    ("Risk", (("annual_volatility", "Annual volatility", "pct"), ("max_drawdown", "Max drawdown", "pct"),
              ("max_drawdown_duration_days", "Longest drawdown", "days"), ("exposure", "Exposure (mean gross)", "pct"),
              ("initial_capital", "Initial capital", "money"))),
    ("Ratios", (("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("calmar", "Calmar", "ratio"),
                ("profit_factor", "Profit factor", "ratio"), ("turnover", "Turnover (annual)", "multiple"))),
    ("Trading", (("n_trades", "Round trips", "int"), ("win_rate", "Win rate", "pct"),
                 ("avg_trade_pnl", "Avg trade P&L", "money"), ("commissions", "Commissions", "money"),
                 ("slippage_cost", "Slippage cost", "money"))),
    ("Trades", (("best_trade_pct", "Best trade", "pct_units"), ("worst_trade_pct", "Worst trade", "pct_units"),
                ("avg_trade_pct", "Avg trade (geometric)", "pct_units"),
                ("expectancy_pct", "Expectancy (mean trade)", "pct_units"))),
    ("Durations", (("avg_trade_sessions", "Avg trade duration", "sessions"),
                   ("max_trade_sessions", "Max trade duration", "sessions"),
                   ("avg_trade_days", "Avg trade, calendar", "days"),
                   ("max_trade_days", "Max trade, calendar", "days"))),
    ("Edge", (("sqn", "SQN", "ratio"), ("kelly", "Kelly criterion", "pct"),
              ("exposure_time", "Exposure time", "pct"))),
    ("Benchmark", (("benchmark_return", "Benchmark return", "pct"), ("alpha", "Alpha (Jensen, period)", "pct"),
                   ("beta", "Beta", "ratio"))),
)


def write_report(
    path: Path,
    summary: Mapping[str, object],
    equity: pd.Series,
    trades: pd.DataFrame,
    benchmark: pd.Series | None = None,
    *,
    tca_records: Sequence[TcaRecord] = (),
    closes: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    stops: pd.DataFrame | None = None,
    gross_exposure: pd.Series | None = None,
) -> None:
    """Write the tear sheet to ``path`` (parent folders created; written to a temp file, then renamed).

    ``summary`` may carry strategy, params, start, end, symbols, config_id, data_fingerprint, the metrics (at the
    top level or under ``metrics``) and what job.py records (trading_state_changes, rejections, overrides...).
    ``benchmark`` (prices or equity, any scale) is rebased to the strategy's first equity value; without one,
    ``closes`` (sessions x symbols) give buy-and-hold of the universe, equal weight. ``closes`` also draw the
    trades-on-price chart, where ``fills`` mark exits that filled as stop orders (``order_type`` STP) and
    ``stops`` (``price_chart.STOP_COLUMNS``) draw stop levels and fills. ``tca_records`` add a "Transaction
    costs" section when they hold an execution; a summary whose ``veto`` is enabled adds a "Veto" section.
    """
    eq = pd.Series(equity, dtype=float).dropna().sort_index()
    if benchmark is None and closes is not None and not closes.empty and len(eq):
        benchmark = buy_and_hold(closes, float(eq.iloc[0]))
    metrics = _report_metrics(summary, eq, trades)
    metrics.update(trade_statistics(trades, eq, benchmark=benchmark, gross_exposure=gross_exposure))
    changes = summary.get("trading_state_changes") or []
    body = "\n".join((
        header_html(summary, eq),
        attention_banner(summary, eq.index[-1] if len(eq) else None),
        section("Performance summary", _metrics_html(metrics)),
        *_optional("Veto", veto_html(summary)),
        section("Equity against the benchmark", equity_chart(eq, benchmark, changes), "equity"),
        section("Drawdown", drawdown_chart(eq), "drawdown"),
        section("Exposure", exposure_chart(eq, gross_exposure), "exposure"),
        section("Rolling Sharpe", rolling_sharpe_chart(eq), "rolling-sharpe"),
        section("Trades on price", trades_on_price_html(closes, trades, fills, stops, changes),
                "trades-on-price"),
        section("Monthly returns", monthly_heatmap_html(monthly_returns(eq))),
        section("Trade P&L distribution", trade_pnl_chart(trades), "trade-pnl"),
        section("Trades", _trades_html(trades)),
        *_optional("Transaction costs", costs_html(tca_records)),
        section("Run", run_table(summary), "run"),
    ))
    write_page(path, f"{summary.get('strategy', 'Backtest')} · backtest report", body)
    log.info("event=report_written path=%s points=%d trades=%d", path, len(eq), len(trades))


def _optional(title: str, content: str) -> tuple[str, ...]:
    return (section(title, content),) if content else ()


_COST_HEAD = ("Algo", "Orders", "Executions", "Mean IS (bps)", "95% CI", "Delay", "Execution", "Opportunity", "Fees")


def costs_html(records: Sequence[TcaRecord], *, seed: int = 0) -> str:
    """Implementation shortfall per algo of one run, "" when it has no execution.

    Computed in memory by ``tca.calculator`` from the same rows the run writes to the TCA log (no DuckDB needed),
    so on a log holding only this run ``python -m tca.report --source backtest`` shows the same numbers (same
    bootstrap seed; that report has no run filter, so on a shared log it pools the runs).
    """
    executions = [r for r in records if isinstance(r, ExecutionRecord)]
    if not executions:
        return ""
    ends = [r for r in records if isinstance(r, UnfilledRecord)]
    table = aggregate(order_shortfalls(records_frame(executions), records_frame(ends)), by="algo", seed=seed)
    fills_per_algo = pd.Series([str(r.algo) for r in executions]).value_counts()
    rows = []
    for _, row in table.iterrows():
        ci = ("—" if not math.isfinite(row["ci_low_bps"])
              else f"[{row['ci_low_bps']:.2f}, {row['ci_high_bps']:.2f}]")  # fmt: skip
        cells = (html.escape(str(row["algo"])), f"{int(row['count']):,}",
                 f"{int(fills_per_algo.get(str(row['algo']), 0)):,}", _fmt_bps(row["mean_total_bps"]), ci,
                 *(_fmt_bps(row[f"mean_{part}_bps"]) for part in ("delay", "execution", "opportunity", "fees")))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in _COST_HEAD)
    note = ("Implementation shortfall (Perold 1988) in basis points of the decision notional, positive = cost; "
            "components are means over orders. Arrival = the first open after the order was sent. 95% CI: "
            "bootstrap of the mean, — for a single order.")  # fmt: skip
    return (f'<p class="muted">{note}</p><table id="tca-costs" class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _fmt_bps(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "—"


def monthly_heatmap_html(table: pd.DataFrame) -> str:
    """Years x months table of compounded returns, shaded green/red by size, with a compounded year column."""
    if table.empty:
        return '<table id="monthly-returns" class="heatmap"><tr><td>No data</td></tr></table>'
    year_totals = (1.0 + table).prod(axis=1, min_count=1) - 1.0
    month_scale = _color_scale(table.to_numpy())
    year_scale = _color_scale(year_totals.to_numpy())
    header = "".join(f"<th>{m}</th>" for m in _MONTHS)
    rows = []
    for year, row in table.iterrows():
        cells = "".join(_heat_cell(row.get(month), month_scale) for month in range(1, 13))
        total = _heat_cell(year_totals.loc[year], year_scale, css_class="total")
        rows.append(f"<tr><th>{html.escape(str(year))}</th>{cells}{total}</tr>")
    return (f'<table id="monthly-returns" class="heatmap"><thead><tr><th>Year</th>{header}'
            f'<th class="total">Year</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _color_scale(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    return max(float(np.percentile(finite, 90)) if finite.size else 0.0, 0.005)


def _heat_cell(value: object, scale: float, css_class: str = "") -> str:
    class_attr = f' class="{css_class}"' if css_class else ""
    if value is None or not isinstance(value, int | float) or not math.isfinite(value):
        return f"<td{class_attr}></td>"
    shown = round(value * 100, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    if shown == 0:
        return f'<td{class_attr} style="background:#f1f3f6">0.0%</td>'
    alpha = 0.10 + 0.62 * min(1.0, abs(value) / scale)
    rgb = "22,140,72" if value > 0 else "200,40,40"
    return f'<td{class_attr} style="background:rgba({rgb},{alpha:.2f})">{shown:.1f}%</td>'


def _trades_html(trades: pd.DataFrame) -> str:
    if trades.empty:
        return '<p class="muted">No closed trades.</p><table id="trades" class="data"></table>'
    recent = trades.tail(LAST_TRADES).iloc[::-1]
    head = "".join(f"<th>{h}</th>" for h in ("Symbol", "Side", "Qty", "Entry", "Exit", "Entry px", "Exit px",
                                              "P&amp;L", "Return", "Bars"))
    rows = []
    for _, trade in recent.iterrows():
        quantity, pnl = num(trade.get("quantity")), num(trade.get("pnl"))
        side = "Long" if quantity > 0 else "Short" if quantity < 0 else "—"
        tone = "pos" if pnl > 0 else "neg" if pnl < 0 else ""
        cells = (html.escape(str(trade.get("symbol", ""))), side, fmt_int(abs(quantity)),
                 fmt_date(trade.get("entry_date")), fmt_date(trade.get("exit_date")),
                 fmt_money(num(trade.get("entry_price"))), fmt_money(num(trade.get("exit_price"))),
                 f'<span class="{tone}">{fmt_money(pnl)}</span>', fmt_pct(num(trade.get("return_pct")) / 100),
                 fmt_int(num(trade.get("bars_held"))))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    caption = f"Last {len(recent)} of {len(trades):,} round trips, most recent first"
    return (f'<p class="muted">{caption}</p><table id="trades" class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _metrics_html(metrics: Mapping[str, float | int]) -> str:
    groups = []
    for title, items in METRIC_GROUPS:
        rows = "".join(f'<tr><td>{label}</td><td class="value">{html.escape(_format_metric(metrics[key], kind))}'
                       f"</td></tr>" for key, label, kind in items if key in metrics)
        if rows:
            groups.append(f"<table class=\"metrics\"><caption>{title}</caption>{rows}</table>")
    return f'<div id="metrics" class="metric-grid">{"".join(groups)}</div>'


def _report_metrics(summary: Mapping[str, object], eq: pd.Series, trades: pd.DataFrame) -> dict[str, float | int]:
    nested = summary.get("metrics")
    provided: Mapping[str, object] = nested if isinstance(nested, Mapping) else summary
    initial = num(provided.get("initial_capital", eq.iloc[0] if len(eq) else math.nan))
    computed = compute_metrics(eq, trades, pd.DataFrame(), initial_capital=initial)
    merged: dict[str, float | int] = {}
    for key, value in computed.items():
        if key in provided:
            merged[key] = num(provided[key])
        elif key not in _FILL_ONLY_METRICS:
            merged[key] = value
    return merged


def _format_metric(value: float, kind: str) -> str:
    value = num(value)
    formatter = {"pct": fmt_pct, "ratio": fmt_ratio, "money": fmt_money, "int": fmt_int,
                 "pct_units": lambda v: fmt_pct(v / 100.0),
                 "days": lambda v: f"{fmt_int(v)} days" if math.isfinite(v) else "—",
                 "sessions": lambda v: f"{v:,.{0 if v == int(v) else 1}f} sessions" if math.isfinite(v) else "—",
                 "multiple": lambda v: f"{fmt_ratio(v)}×" if math.isfinite(v) else "—"}[kind]
    return formatter(value)
