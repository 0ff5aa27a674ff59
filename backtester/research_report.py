"""report.html for the research modes, in the style of the backtest tear sheet (inline SVG, no scripts)."""

from __future__ import annotations

import html
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.monte_carlo import MC_METHODS
from backtester.report import header_html, section, svg_line_chart, write_page
from backtester.research import ModeOutput
from backtester.research_charts import svg_bar_chart, svg_fan_chart, svg_heatmap, svg_histogram

KICKERS = {
    "grid_search": "Grid search",
    "walk_forward": "Walk-forward analysis",
    "monte_carlo": "Monte Carlo",
    "scenario_analysis": "Scenario analysis",
}


def write_research_report(path: Path, mode: str, output: ModeOutput) -> None:
    summary = dict(output.summary)
    summary.setdefault("params", summary.get("best_params") or summary.get("latest_params") or {})
    equity = next(iter(output.series.values()), pd.Series(dtype=float))
    parts = [header_html(summary, equity, kicker=KICKERS.get(mode, mode))]
    parts.extend(_SECTIONS[mode](output))
    write_page(path, f"{summary['strategy']} · {KICKERS.get(mode, mode)}", "\n".join(parts))


def _grid_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    table: pd.DataFrame = output.tables["grid"]
    metric = s["metric"]
    over = s.get("overfitting", {})
    facts = [
        ("Trials run (N for DSR)", s.get("n_trials")),
        ("Failed trials", s.get("n_failed")),
        ("Combinations refused by param rules", s.get("n_refused")),
        ("Ranked by", metric),
        ("Best params", json.dumps(s.get("best_params"))),
        (f"Best {metric}", s.get("best_metrics", {}).get(metric)),
        ("Probability of backtest overfitting", over.get("pbo")),
        ("Deflated Sharpe ratio", over.get("dsr")),
        ("Probabilistic Sharpe ratio (vs 0)", over.get("psr")),
    ]
    parts = [section("Search", _kv_table(facts))]
    parts.extend(section("Heatmap", h) for h in _heatmaps(table, metric))
    if "best_equity" in output.series:
        parts.append(
            section(
                "Best trial",
                svg_line_chart(
                    output.series["best_equity"], chart_id="equity-chart", title="Equity of the best trial (in sample)"
                ),
            )
        )
    if over.get("pbo_logits"):
        parts.append(
            section(
                "Overfitting",
                svg_histogram(
                    np.array(over["pbo_logits"]),
                    chart_id="pbo-logits",
                    title="CSCV logits of the in-sample winner's OOS rank",
                    marker=0.0,
                ),
            )
        )
    parts.append(section("Trials (best first)", _frame_table(table, 40)))
    return parts


def _heatmaps(table: pd.DataFrame, metric: str) -> list[str]:
    params = [c for c in table.columns if c.startswith("param_") and table[c].nunique() > 1]
    charts = []
    for a, b in itertools.islice(itertools.combinations(params, 2), 6):
        pivot = table[table["status"] == "ok"].pivot_table(index=a, columns=b, values=metric, aggfunc="mean")
        title = f"{metric} by {a.removeprefix('param_')} x {b.removeprefix('param_')} (mean over other params)"
        heatmap = svg_heatmap(pivot, chart_id=f"heatmap-{a}-{b}", title=title, metric_name=metric)
        charts.append(f'<div style="max-width:{120 + 110 * max(len(pivot.columns), 3)}px">{heatmap}</div>')
    if len(params) == 1:
        ok = table[table["status"] == "ok"].sort_values(params[0])
        charts.append(
            svg_bar_chart(
                [str(v) for v in ok[params[0]]],
                ok[metric].to_numpy(dtype=float),
                chart_id="metric-by-param",
                title=f"{metric} by {params[0]}",
            )
        )
    return charts


def _walk_forward_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    oos = s.get("oos_metrics", {})
    over = s.get("overfitting", {})
    facts = [
        ("Windows", s.get("n_windows")),
        ("Window set-up", json.dumps(s.get("walk_forward"))),
        ("Trials run (walk-forward + full grid)", s.get("n_trials")),
        ("OOS Sharpe", oos.get("sharpe")),
        ("OOS CAGR", oos.get("cagr")),
        ("OOS max drawdown", oos.get("max_drawdown")),
        ("OOS round trips", s.get("oos_trades")),
        ("Walk-forward efficiency (OOS / IS annual return)", s.get("walk_forward_efficiency")),
        ("IS annual return (mean of windows)", s.get("is_annual_return_mean")),
        ("OOS annual return (mean of windows)", s.get("oos_annual_return_mean")),
        ("Probability of backtest overfitting", over.get("pbo")),
        ("Deflated Sharpe ratio (OOS)", over.get("dsr")),
        ("Latest chosen params", json.dumps(s.get("latest_params"))),
    ]
    stability = [(name, json.dumps(v)) for name, v in s.get("parameter_stability", {}).items()]
    parts = [
        section("Out of sample", _kv_table(facts)),
        section(
            "Stitched out-of-sample equity",
            svg_line_chart(
                output.series["oos_equity"],
                chart_id="equity-chart",
                title="Out-of-sample equity (test windows chained)",
            ),
        ),
        section("Windows", _frame_table(output.tables["windows"], 200)),
        section("Parameter stability", _kv_table(stability)),
    ]
    if "grid" in output.tables:
        parts.extend(section("Full-period grid", h) for h in _heatmaps(output.tables["grid"], s["metric"])[:2])
    return parts


def _monte_carlo_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    mc = output.extras["monte_carlo"]
    parts = [
        section(
            "Set-up",
            _kv_table(
                [
                    ("Paths", s.get("n_paths")),
                    ("Mean block length (days)", s.get("block_length_days")),
                    ("Seed", s.get("mc_seed")),
                    ("Kill-switch drawdown", f"{s.get('kill_drawdown_pct')}%"),
                    ("Trade returns bootstrapped", s.get("n_trade_returns")),
                    ("Params", json.dumps(s.get("params"))),
                ]
            ),
        )
    ]
    parts.append(section("Percentiles", _mc_table(mc)))
    fan = mc.fan_chart.to_frame()
    if not fan.empty:
        parts.append(
            section(
                "Fan chart", svg_fan_chart(fan, chart_id="fan-chart", title="Equity paths, stationary block bootstrap")
            )
        )
    if "equity" in output.series:
        parts.append(
            section(
                "Backtest",
                svg_line_chart(output.series["equity"], chart_id="equity-chart", title="The backtest being resampled"),
            )
        )
    return parts


def _scenario_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    frame = output.tables["scenarios"]
    parts = [
        section(
            "Worst case",
            _kv_table(
                [
                    ("Worst scenario loss %", s.get("worst_scenario_loss_pct")),
                    ("Synthetic shocks start on", s.get("shock_date")),
                    ("Why that day", s.get("shock_point_rule")),
                    ("Halted symbol", s.get("halted_symbol")),
                    ("Params", json.dumps(s.get("params"))),
                ]
            ),
        )
    ]
    if not frame.empty and "window_pnl_pct" in frame:
        parts.append(
            section(
                "Window P&L",
                svg_bar_chart(
                    list(frame["name"].astype(str)),
                    frame["window_pnl_pct"].to_numpy(dtype=float),
                    chart_id="scenario-pnl",
                    title="P&L over each window, %",
                ),
            )
        )
    shown = {
        "name": "scenario", "start_date": "from", "end_date": "to", "window_pnl_pct": "P&L %",
        "baseline_window_pnl_pct": "unshocked P&L %", "window_max_drawdown_pct": "window max DD %",
        "run_max_drawdown_pct": "run max DD %", "state_before_window": "state before",
        "throttle_first_date": "throttle on", "reducing_first_date": "REDUCING", "halted_date": "HALTED",
    }
    if not frame.empty:
        parts.append(section("Scenarios", _frame_table(frame[[c for c in shown if c in frame]].rename(columns=shown),
                                                       100)))
        notes = "".join(f"<li><b>{html.escape(str(n))}</b>: {html.escape(str(d))}</li>"
                        for n, d in zip(frame["name"], frame["description"], strict=True))
        parts.append(section("What each scenario does", f"<ul>{notes}</ul>"))
    return parts


_SECTIONS = {
    "grid_search": _grid_sections,
    "walk_forward": _walk_forward_sections,
    "monte_carlo": _monte_carlo_sections,
    "scenario_analysis": _scenario_sections,
}


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return '<span class="muted">n/a</span>'
    if isinstance(value, float | np.floating):
        magnitude = abs(float(value))
        if magnitude >= 1000:
            return f"{value:,.0f}"
        return f"{value:,.2f}" if magnitude >= 1 else f"{value:.4g}"
    return html.escape(str(value))


def _kv_table(rows: Sequence[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _mc_table(mc: Any) -> str:
    """Percentiles per method: final equity (USD), CAGR and max drawdown (%), and the kill probability."""
    head = "<tr><th>method</th><th>quantity</th><th>p5</th><th>p25</th><th>p50</th><th>p75</th><th>p95</th></tr>"
    rows = []
    for summary in (mc.block_bootstrap, mc.trade_bootstrap):
        if summary is None:
            continue
        for label, pct, scale in (
            ("final equity", summary.final_equity, 1.0),
            ("CAGR %", summary.cagr, 100.0),
            ("max drawdown %", summary.max_drawdown, 100.0),
        ):
            cells = "".join(f"<td>{_cell(v * scale)}</td>" for v in pct.to_dict().values())
            rows.append(f"<tr><td>{html.escape(summary.method)}</td><td>{label}</td>{cells}</tr>")
        rows.append(
            f"<tr><td>{html.escape(summary.method)}</td><td>P(drawdown reaches kill switch)</td>"
            f'<td colspan="5">{_cell(summary.kill_probability)}</td></tr>'
        )
    notes = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(assumes)}</li>" for _, name, assumes in MC_METHODS)
    table = f'<table class="trades"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
    return f'{table}<ul class="muted">{notes}</ul>'


def _frame_table(frame: pd.DataFrame, max_rows: int) -> str:
    if frame.empty:
        return '<p class="muted">none</p>'
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
        for row in frame.head(max_rows).itertuples(index=False)
    )
    more = f'<p class="muted">{len(frame) - max_rows} more rows in the CSV</p>' if len(frame) > max_rows else ""
    table = f'<table class="trades"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="scroll">{table}</div>{more}'
