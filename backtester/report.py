"""Self-contained HTML tear sheet for one backtest run.

The report is a single ``report.html`` with inline CSS and inline SVG charts: no JavaScript, no external assets, so it
opens from a results folder on any machine, years later, exactly as it was written. Every piece of text that comes
from the caller (strategy name, params, symbols, trade symbols) is HTML-escaped. Metrics shown are the ones in the
summary; any the summary lacks are recomputed from ``equity`` and ``trades`` with ``backtester.performance`` so the
tear sheet and ``summary.json`` use the same definitions. Fill-based metrics (turnover, commissions, slippage) cannot
be recomputed without fills and are shown only when the summary carries them.
"""

from __future__ import annotations

import html
import itertools
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtester.performance import compute_metrics, drawdown_series, monthly_returns
from backtester.veto_report import veto_html
from tca.calculator import aggregate, order_shortfalls, records_frame
from tca.records import ExecutionRecord, TcaRecord, UnfilledRecord

log = logging.getLogger(__name__)

MAX_SVG_POINTS = 2_000
LAST_TRADES = 50
_STRATEGY_COLOR = "#1f4e9c"
_BENCHMARK_COLOR = "#9aa3ae"
_DRAWDOWN_COLOR = "#c0392b"
_FILL_ONLY_METRICS = ("turnover", "commissions", "slippage_cost")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# (group title, [(metric key, label, format kind)]); kinds: pct, ratio, money, int, days, multiple
METRIC_GROUPS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("Returns", (("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"),
                 ("best_day", "Best day", "pct"), ("worst_day", "Worst day", "pct"),
                 ("final_equity", "Final equity", "money"))),
    ("Risk", (("annual_volatility", "Annual volatility", "pct"), ("max_drawdown", "Max drawdown", "pct"),
              ("max_drawdown_duration_days", "Longest drawdown", "days"), ("exposure", "Exposure", "pct"),
              ("initial_capital", "Initial capital", "money"))),
    ("Ratios", (("sharpe", "Sharpe", "ratio"), ("sortino", "Sortino", "ratio"), ("calmar", "Calmar", "ratio"),
                ("profit_factor", "Profit factor", "ratio"), ("turnover", "Turnover (annual)", "multiple"))),
    ("Trading", (("n_trades", "Round trips", "int"), ("win_rate", "Win rate", "pct"),
                 ("avg_trade_pnl", "Avg trade P&L", "money"), ("commissions", "Commissions", "money"),
                 ("slippage_cost", "Slippage cost", "money"))),
)


def write_report(
    path: Path,
    summary: Mapping[str, object],
    equity: pd.Series,
    trades: pd.DataFrame,
    benchmark: pd.Series | None = None,
    *,
    tca_records: Sequence[TcaRecord] = (),
) -> None:
    """Write the tear sheet to ``path`` (parent folders created; written to a temp file, then renamed).

    ``summary`` may carry strategy, params, start, end, symbols, config_id, data_fingerprint and the metrics,
    either at the top level or under a ``metrics`` mapping. ``benchmark`` (prices or equity) is rescaled to start
    at the strategy's first equity value and drawn in grey behind it. ``tca_records`` (the run's rows from
    ``backtester.tca_rows``) add a "Transaction costs" section when they hold at least one execution. A summary
    whose ``veto`` is enabled adds a "Veto" section: the same run with and without it (``backtester.veto_ab``).
    """
    eq = pd.Series(equity, dtype=float).dropna().sort_index()
    metrics = _report_metrics(summary, eq, trades)
    costs = costs_html(tca_records)
    veto = veto_html(summary)
    body = "\n".join((
        _header_html(summary, eq),
        _section("Performance summary", _metrics_html(metrics)),
        *((_section("Veto", veto),) if veto else ()),
        _section("Equity", svg_line_chart(eq, chart_id="equity-chart", title="Equity curve",
                                          benchmark=benchmark)),
        _section("Drawdown", svg_area_chart(drawdown_series(eq), chart_id="drawdown-chart", title="Drawdown",
                                            height=210)),
        _section("Monthly returns", monthly_heatmap_html(monthly_returns(eq))),
        _section("Trades", _trades_html(trades)),
        *((_section("Transaction costs", costs),) if costs else ()),
    ))
    write_page(path, f"{summary.get('strategy', 'Backtest')} · backtest report", body)
    log.info("event=report_written path=%s points=%d trades=%d", path, len(eq), len(trades))


def write_page(path: Path, title: str, body: str) -> None:
    """A self-contained HTML page in the report style, written to a temp file and renamed into place."""
    document = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{html.escape(title)}</title>\n"
                f"<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(path.name + ".tmp")
    tmp_path.write_text(document, encoding="utf-8")
    os.replace(tmp_path, path)


def section(title: str, content: str) -> str:
    return _section(title, content)


def header_html(summary: Mapping[str, object], equity: pd.Series, kicker: str = "Backtest report") -> str:
    return _header_html(summary, equity).replace(">Backtest report<", f">{html.escape(kicker)}<", 1)


# --- charts ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plot:
    """Maps (time, value) to SVG user units inside the plot area of a width x height canvas."""

    width: int
    height: int
    t0: float
    t1: float
    v0: float
    v1: float
    left: int = 76
    right: int = 24
    top: int = 14
    bottom: int = 34

    def x(self, t_ns: float) -> float:
        span = self.t1 - self.t0
        fraction = (t_ns - self.t0) / span if span > 0 else 0.5
        return self.left + fraction * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        span = self.v1 - self.v0
        fraction = (value - self.v0) / span if span > 0 else 0.5
        return self.height - self.bottom - fraction * (self.height - self.top - self.bottom)


def downsample(series: pd.Series, max_points: int = MAX_SVG_POINTS) -> pd.Series:
    """Keep at most ~max_points, preserving each bucket's min and max so peaks and troughs stay visible."""
    clean = series.dropna()
    if len(clean) <= max_points:
        return clean
    values = clean.to_numpy()
    edges = np.linspace(0, len(values), max(1, (max_points - 2) // 2) + 1).astype(int)
    keep = {0, len(values) - 1}
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            keep.update((lo + int(np.argmin(values[lo:hi])), lo + int(np.argmax(values[lo:hi]))))
    return clean.iloc[sorted(keep)]


def svg_line_chart(
    series: pd.Series,
    *,
    chart_id: str,
    title: str,
    width: int = 1200,
    height: int = 360,
    benchmark: pd.Series | None = None,
) -> str:
    """Equity-style line chart with date and value ticks; an optional benchmark is rebased to the first value."""
    line = downsample(series)
    if line.empty:
        return _empty_svg(chart_id, title, width, height)
    lines = [("Strategy", line, _STRATEGY_COLOR)]
    rebased = _rebase_benchmark(benchmark, series)
    if rebased is not None:
        lines.insert(0, (str(benchmark.name or "Benchmark"), downsample(rebased), _BENCHMARK_COLOR))
    all_values = pd.concat([values for _, values, _ in lines])
    ticks = _nice_ticks(float(all_values.min()), float(all_values.max()))
    plot = _Plot(width, height, *_time_range(line), ticks[0], ticks[-1], top=34 if len(lines) > 1 else 14)
    parts = [_axes_svg(plot, ticks, _compact_labels(ticks)), _area_svg(plot, line, _STRATEGY_COLOR, 0.07, ticks[0])]
    for _, values, color in lines:
        parts.append(f'<polyline points="{_points(plot, values)}" fill="none" stroke="{color}" '
                     f'stroke-width="1.6" stroke-linejoin="round"/>')
    if len(lines) > 1:
        parts.append(_legend_svg(plot, [(name, color) for name, _, color in reversed(lines)]))
    return _svg(chart_id, title, width, height, parts)


def svg_area_chart(
    series: pd.Series,
    *,
    chart_id: str,
    title: str,
    width: int = 1200,
    height: int = 220,
    color: str = _DRAWDOWN_COLOR,
) -> str:
    """Filled area between zero and a non-positive series (drawdown), with percent value ticks."""
    values = downsample(series)
    if values.empty:
        return _empty_svg(chart_id, title, width, height)
    ticks = _nice_ticks(min(float(values.min()), -0.01), 0.0, max_ticks=5)
    plot = _Plot(width, height, *_time_range(values), ticks[0], 0.0)
    parts = [
        _axes_svg(plot, ticks, _percent_labels(ticks)),
        _area_svg(plot, values, color, 0.28, 0.0),
        f'<polyline points="{_points(plot, values)}" fill="none" stroke="{color}" stroke-width="1.1"/>',
    ]
    return _svg(chart_id, title, width, height, parts)


def _rebase_benchmark(benchmark: pd.Series | None, equity: pd.Series) -> pd.Series | None:
    if benchmark is None or equity.empty:
        return None
    clean = pd.Series(benchmark, dtype=float).dropna().sort_index()
    clean = clean[(clean.index >= equity.index[0]) & (clean.index <= equity.index[-1])]
    if clean.empty or clean.iloc[0] == 0:
        return None
    return clean / clean.iloc[0] * float(equity.iloc[0])


def _svg(chart_id: str, title: str, width: int, height: int, parts: list[str]) -> str:
    return (f'<svg id="{html.escape(chart_id)}" class="chart" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{html.escape(title)}" xmlns="http://www.w3.org/2000/svg">'
            f"<title>{html.escape(title)}</title>{''.join(parts)}</svg>")


def _empty_svg(chart_id: str, title: str, width: int, height: int) -> str:
    text = f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="empty">No data</text>'
    return _svg(chart_id, title, width, height, [text])


def _time_range(series: pd.Series) -> tuple[float, float]:
    stamps = pd.DatetimeIndex(series.index)
    return float(stamps[0].value), float(stamps[-1].value)


def _points(plot: _Plot, series: pd.Series) -> str:
    stamps = pd.DatetimeIndex(series.index).asi8
    return " ".join(f"{plot.x(t):.1f},{plot.y(v):.1f}" for t, v in zip(stamps, series.to_numpy(), strict=True))


def _area_svg(plot: _Plot, series: pd.Series, color: str, opacity: float, baseline: float) -> str:
    stamps = pd.DatetimeIndex(series.index).asi8
    base_y = plot.y(baseline)
    outline = f"{plot.x(stamps[0]):.1f},{base_y:.1f} {_points(plot, series)} {plot.x(stamps[-1]):.1f},{base_y:.1f}"
    return f'<polygon points="{outline}" fill="{color}" fill-opacity="{opacity}" stroke="none"/>'


def _axes_svg(plot: _Plot, ticks: list[float], labels: list[str]) -> str:
    """Horizontal grid lines with value labels on the left, date ticks and labels along the bottom."""
    x_left, x_right = plot.left, plot.width - plot.right
    parts = []
    for value, label in zip(ticks, labels, strict=True):
        y = plot.y(value)
        parts.append(f'<line class="grid" x1="{x_left}" y1="{y:.1f}" x2="{x_right}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{x_left - 8}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{html.escape(label)}</text>")
    y_axis = plot.height - plot.bottom
    for stamp, text in _date_ticks(pd.Timestamp(int(plot.t0)), pd.Timestamp(int(plot.t1))):
        x = plot.x(stamp.value)
        parts.append(f'<line class="axis" x1="{x:.1f}" y1="{y_axis}" x2="{x:.1f}" y2="{y_axis + 5}"/><text '
                     f'class="tick" x="{x:.1f}" y="{y_axis + 19}" text-anchor="middle">{html.escape(text)}</text>')
    parts.append(f'<line class="axis" x1="{x_left}" y1="{y_axis}" x2="{x_right}" y2="{y_axis}"/>')
    return "".join(parts)


def _legend_svg(plot: _Plot, entries: list[tuple[str, str]]) -> str:
    """Legend in the top margin, right-aligned, so it can never hide part of a line."""
    widths = [34 + 7 * len(name) for name, _ in entries]
    x = plot.width - plot.right - sum(widths)
    parts = []
    for (name, color), entry_width in zip(entries, widths, strict=True):
        parts.append(f'<line x1="{x}" y1="12" x2="{x + 20}" y2="12" stroke="{color}" stroke-width="2.5"/>'
                     f'<text class="legend" x="{x + 26}" y="16">{html.escape(name)}</text>')
        x += entry_width
    return "".join(parts)


def _nice_ticks(low: float, high: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 x 10^k) covering [low, high]; the ends become the axis range."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        pad = abs(low) * 0.01 or 1.0
        low, high = low - pad, high + pad
    raw_step = (high - low) / max(1, max_ticks - 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step + 1e-9) * step
    last = math.ceil(high / step - 1e-9) * step
    count = round((last - first) / step)
    return [first + i * step for i in range(count + 1)]


def _date_ticks(start: pd.Timestamp, end: pd.Timestamp, max_ticks: int = 11) -> list[tuple[pd.Timestamp, str]]:
    """Year, month or day ticks, whichever is the finest granularity that still fits in ``max_ticks``."""
    span_days = (end - start).days
    if span_days > 3 * 365:
        years = range(start.year + (start != pd.Timestamp(year=start.year, month=1, day=1)), end.year + 1)
        every = next(k for k in (1, 2, 5, 10, 20, 50, 100) if len(years) / k <= max_ticks)
        return [(pd.Timestamp(year=y, month=1, day=1), str(y)) for y in years if y % every == 0]
    if span_days > 60:
        months = pd.date_range(start.normalize() + pd.offsets.MonthBegin(0), end, freq="MS")
        every = next(k for k in (1, 2, 3, 6, 12) if len(months) / k <= max_ticks)
        return [(m, m.strftime("%b %Y")) for m in months if (m.month - 1) % every == 0]
    days = pd.date_range(start.normalize(), end, freq="D")
    every = next(k for k in (1, 2, 5, 7, 14, 30) if len(days) / k <= max_ticks)
    return [(d, d.strftime("%d %b")) for d in days[::every]]


def _compact_labels(ticks: list[float]) -> list[str]:
    """One unit for the whole axis (all in k, or all in M) with just enough decimals to show every tick exactly."""
    largest = max(abs(t) for t in ticks)
    scale, suffix = next(((v, x) for v, x in ((1e9, "B"), (1e6, "M"), (1e3, "k")) if largest >= v), (1.0, ""))
    decimals = _exact_decimals([t / scale for t in ticks])
    return ["0" if t == 0 else f"{t / scale:,.{decimals}f}{suffix}" for t in ticks]


def _percent_labels(ticks: list[float]) -> list[str]:
    decimals = _exact_decimals([t * 100 for t in ticks])
    return ["0%" if t == 0 else f"{t * 100:.{decimals}f}%" for t in ticks]


def _exact_decimals(values: list[float], most: int = 4) -> int:
    """Fewest decimals (up to ``most``) at which every value prints without rounding (2.5 needs 1, not 0)."""
    tolerance = 1e-6 * max(max(abs(v) for v in values), 1e-12)
    return next((d for d in range(most + 1) if all(abs(round(v, d) - v) <= tolerance for v in values)), most)


# --- tables -----------------------------------------------------------------------------------------------------


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
        quantity, pnl = _num(trade.get("quantity")), _num(trade.get("pnl"))
        side = "Long" if quantity > 0 else "Short" if quantity < 0 else "—"
        tone = "pos" if pnl > 0 else "neg" if pnl < 0 else ""
        cells = (html.escape(str(trade.get("symbol", ""))), side, _fmt_int(abs(quantity)),
                 _fmt_date(trade.get("entry_date")), _fmt_date(trade.get("exit_date")),
                 _fmt_money(_num(trade.get("entry_price"))), _fmt_money(_num(trade.get("exit_price"))),
                 f'<span class="{tone}">{_fmt_money(pnl)}</span>', _fmt_pct(_num(trade.get("return_pct")) / 100),
                 _fmt_int(_num(trade.get("bars_held"))))
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    caption = f"Last {len(recent)} of {len(trades):,} round trips, most recent first"
    return (f'<p class="muted">{caption}</p><table id="trades" class="data"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _metrics_html(metrics: Mapping[str, float | int]) -> str:
    groups = []
    for title, items in METRIC_GROUPS:
        rows = "".join(f'<tr><td>{label}</td><td class="value">{html.escape(_format_metric(metrics[key], kind))}'
                       f"</td></tr>" for key, label, kind in items if key in metrics)
        groups.append(f"<table class=\"metrics\"><caption>{title}</caption>{rows}</table>")
    return f'<div id="metrics" class="metric-grid">{"".join(groups)}</div>'


def _report_metrics(summary: Mapping[str, object], eq: pd.Series, trades: pd.DataFrame) -> dict[str, float | int]:
    nested = summary.get("metrics")
    provided: Mapping[str, object] = nested if isinstance(nested, Mapping) else summary
    initial = _num(provided.get("initial_capital", eq.iloc[0] if len(eq) else math.nan))
    computed = compute_metrics(eq, trades, pd.DataFrame(), initial_capital=initial)
    merged: dict[str, float | int] = {}
    for key, value in computed.items():
        if key in provided:
            merged[key] = _num(provided[key])
        elif key not in _FILL_ONLY_METRICS:
            merged[key] = value
    return merged


def _header_html(summary: Mapping[str, object], eq: pd.Series) -> str:
    start = summary.get("start", eq.index[0] if len(eq) else None)
    end = summary.get("end", eq.index[-1] if len(eq) else None)
    facts = [("Period", f"{_fmt_date(start)} → {_fmt_date(end)}")]
    if "symbols" in summary:
        facts.append(("Symbols", _fmt_symbols(summary["symbols"])))
    if "params" in summary:
        facts.append(("Params", _fmt_params(summary["params"])))
    for key, label in (("config_id", "Config id"), ("data_fingerprint", "Data fingerprint")):
        if key in summary:
            facts.append((label, f'<code>{html.escape(str(summary[key]))}</code>'))
    rows = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in facts)
    strategy = html.escape(str(summary.get("strategy", "Backtest")))
    return (f'<header><div class="kicker">Backtest report</div><h1>{strategy}</h1>'
            f'<dl class="facts">{rows}</dl></header>')


def _fmt_symbols(symbols: object, limit: int = 30) -> str:
    if isinstance(symbols, str) or not isinstance(symbols, Iterable):
        names = [str(symbols)]
    else:
        names = [str(symbol) for symbol in symbols]
    shown = ", ".join(html.escape(str(name)) for name in names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{shown}{more} <span class=\"muted\">({len(names)})</span>"


def _fmt_params(params: object) -> str:
    if not isinstance(params, Mapping):
        return html.escape(str(params))
    chips = (f'<span class="chip">{html.escape(str(k))}=<b>{html.escape(json.dumps(v, default=str))}</b></span>'
             for k, v in params.items())
    return " ".join(chips) or '<span class="muted">none</span>'


def _section(title: str, content: str) -> str:
    return f'<section><h2>{html.escape(title)}</h2>{content}</section>'


# --- formatting -------------------------------------------------------------------------------------------------


def _num(value: object) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _format_metric(value: float, kind: str) -> str:
    formatter = {"pct": _fmt_pct, "ratio": _fmt_ratio, "money": _fmt_money, "int": _fmt_int,
                 "days": lambda v: f"{_fmt_int(v)} days" if math.isfinite(v) else "—",
                 "multiple": lambda v: f"{_fmt_ratio(v)}×" if math.isfinite(v) else "—"}[kind]
    return formatter(value)


def _fmt_pct(value: float) -> str:
    return f"{value * 100:,.2f}%" if math.isfinite(value) else "—"


def _fmt_ratio(value: float) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:,.2f}" if math.isfinite(value) else "—"


def _fmt_money(value: float) -> str:
    return f"{value:,.2f}" if math.isfinite(value) else "—"


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "—"


def _fmt_date(value: object) -> str:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return html.escape(str(value))
    return "—" if pd.isna(stamp) else stamp.strftime("%Y-%m-%d")


_CSS = """
:root{--ink:#17202b;--muted:#5f6b7a;--line:#e2e6ec;--soft:#f6f8fb;--pos:#15803d;--neg:#b91c1c}
*{box-sizing:border-box}
body{margin:0;background:#eef1f5;color:var(--ink);
 font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 28px 48px}
header{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px}
.kicker{font-size:11px;letter-spacing:.12em;text-transform:uppercase;color:var(--muted)}
h1{font-size:26px;margin:2px 0 12px;font-weight:650}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0}
.facts div{display:contents}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;color:#334}
.chip{display:inline-block;background:var(--soft);border:1px solid var(--line);border-radius:4px;
 padding:0 6px;margin:1px 2px 1px 0;font-size:12.5px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:16px 22px 18px;margin-top:16px}
h2{font-size:12px;letter-spacing:.1em;text-transform:uppercase;color:var(--muted);margin:0 0 10px;font-weight:600}
.metric-grid{display:grid;grid-template-columns:repeat(4,1fr);gap:0 28px;align-items:start}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.metrics{width:100%}
table.metrics caption{text-align:left;font-weight:600;padding:0 0 4px;border-bottom:2px solid var(--ink)}
table.metrics td{padding:5px 0;border-bottom:1px solid var(--line)}
table.metrics td.value{text-align:right;font-weight:600}
svg.chart{display:block;width:100%;height:auto}
svg .grid{stroke:#e8ebf0;stroke-width:1}svg .axis{stroke:#9aa3ae;stroke-width:1}
svg .tick{font-size:12px;fill:#5f6b7a}svg .legend{font-size:12.5px;fill:#17202b}svg .empty{font-size:14px;fill:#5f6b7a}
table.heatmap{width:100%;font-size:12.5px;table-layout:fixed}
table.heatmap th{font-weight:600;color:var(--muted);padding:5px 2px;text-align:center}
table.heatmap tbody th{text-align:left}
table.heatmap td{text-align:center;padding:5px 2px;border:2px solid #fff;border-radius:3px}
table.heatmap .total{font-weight:700;border-left:6px solid #fff}
table.data{width:100%;font-size:12.5px}
table.data th{text-align:right;color:var(--muted);font-weight:600;border-bottom:2px solid var(--ink);padding:5px 8px}
table.data td{text-align:right;padding:4px 8px;border-bottom:1px solid var(--line)}
table.data th:nth-child(-n+2),table.data td:nth-child(-n+2){text-align:left}
table.data tbody tr:nth-child(even){background:var(--soft)}
.pos{color:var(--pos)}.neg{color:var(--neg)}.muted{color:var(--muted)}p.muted{margin:0 0 8px}
"""
