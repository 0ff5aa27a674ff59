"""report.html for the research modes, in the style of the backtest tear sheet (plotly inline, opens offline).

Grid search: the search and its overfitting statistics (each with a one-line meaning), parameter heatmaps, the best
trial's equity, the CSCV logits and the trials table. Walk-forward: the out-of-sample figures, in-sample against
out-of-sample per window, the parameter path, the stitched out-of-sample equity and the windows table. Monte Carlo:
one dated fan chart per resampling method, labelled with what the method assumes. Scenarios: P&L per scenario.
"""

from __future__ import annotations

import html
import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from backtester.monte_carlo import MC_METHODS, FanChart
from backtester.report_charts import line_chart
from backtester.report_page import fmt_int, fmt_money, fmt_params, fmt_pct, header_html, section, write_page
from backtester.research import ModeOutput
from backtester.research_charts import (
    bar_chart,
    fan_chart,
    heatmap_chart,
    histogram_chart,
    in_vs_out_of_sample_chart,
    parameter_path_chart,
)
from backtester.research_tables import FRACTION_METRICS, facts_table, format_value, frame_table, label_of

KICKERS = {
    "grid_search": "Grid search",
    "walk_forward": "Walk-forward analysis",
    "monte_carlo": "Monte Carlo",
    "scenario_analysis": "Scenario analysis",
}
GRID_COLUMNS = ("rank", "trial_id", "status", "halted_on", "sharpe", "cagr", "annual_volatility", "max_drawdown",
                "total_return", "win_rate", "profit_factor", "n_trades_run", "final_equity")  # fmt: skip


def write_research_report(path: Path, mode: str, output: ModeOutput) -> None:
    summary = dict(output.summary)
    summary.setdefault("params", summary.get("best_params") or summary.get("latest_params") or {})
    equity = next(iter(output.series.values()), pd.Series(dtype=float))
    parts = [header_html(summary, equity, kicker=KICKERS.get(mode, mode))]
    parts.extend(_SECTIONS[mode](output))
    write_page(path, f"{summary['strategy']} · {KICKERS.get(mode, mode)}", "\n".join(parts))


def _metric_value(metric: str, value: Any) -> str:
    return format_value(value, "pct" if metric in FRACTION_METRICS else "ratio")


def pbo_meaning(pbo: float | None) -> str:
    if pbo is None or not math.isfinite(pbo):
        return "not computed (needs at least 2 trials with returns)"
    verdict = ("low: the in-sample winner usually stays above the median" if pbo < 0.2 else
               "moderate: the search sometimes picks luck" if pbo < 0.5 else
               "high: the in-sample winner is more often than not below the median out of sample (noise)")
    return f"Chance the in-sample best ranks below the median out of sample (CSCV); {verdict}."


def dsr_meaning(dsr: float | None, n_trials: Any) -> str:
    if dsr is None or not math.isfinite(dsr):
        return "not computed (too few returns)"
    verdict = "significant at 95 %" if dsr >= 0.95 else "not significant at 95 %"
    return (f"Chance the true Sharpe is above 0 after {n_trials} trials and the returns' skew and tails; "
            f"{verdict}.")


def psr_meaning(psr: float | None) -> str:
    if psr is None or not math.isfinite(psr):
        return "not computed"
    return "Chance the true Sharpe is above 0 for this one series, ignoring how many trials were searched."


def _grid_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    table: pd.DataFrame = output.tables["grid"]
    metric = s["metric"]
    over = s.get("overfitting", {})
    best = s.get("best_metrics", {})
    halted = f"{s.get('n_halted', 0)} (ranked last)" if not s.get("halted_trials_eligible") else \
        f"{s.get('n_halted', 0)} (may be best: option set)"
    facts = [
        ("Trials run (N for the DSR)", fmt_int(float(s.get("n_trials") or 0)), ""),
        ("Failed trials", fmt_int(float(s.get("n_failed") or 0)), ""),
        ("Combinations refused by param rules", fmt_int(float(s.get("n_refused") or 0)), ""),
        ("Trials that went HALTED", html.escape(halted), "a halted trial's metrics describe years in cash"),
        ("Ranked by", html.escape(label_of(metric)), ""),
        ("Best params", fmt_params(s.get("best_params") or {}), ""),
        (f"Best {label_of(metric)}", _metric_value(metric, best.get(metric)), ""),
        ("Best CAGR / max drawdown", f"{format_value(best.get('cagr'), 'pct')} / "
                                     f"{format_value(best.get('max_drawdown'), 'pct')}", ""),
        ("Probability of backtest overfitting (PBO)", format_value(over.get("pbo"), "ratio"),
         pbo_meaning(over.get("pbo"))),
        ("Deflated Sharpe ratio (DSR)", format_value(over.get("dsr"), "ratio"),
         dsr_meaning(over.get("dsr"), s.get("n_trials"))),
        ("Probabilistic Sharpe ratio (vs 0)", format_value(over.get("psr"), "ratio"), psr_meaning(over.get("psr"))),
    ]
    parts = [section("Search", facts_table(facts))]
    heatmaps = _heatmaps(table, metric)
    if heatmaps:
        parts.append(section("Parameter heatmaps", "".join(heatmaps)))
    if "best_equity" in output.series:
        parts.append(section("Best trial", line_chart(output.series["best_equity"], div_id="equity-chart",
                                                      name="Best trial, in sample")))
    if over.get("pbo_logits"):
        parts.append(section("Overfitting", histogram_chart(
            np.array(over["pbo_logits"]), div_id="pbo-logits", marker=0.0, marker_label="median rank",
            title="CSCV logits of the in-sample winner's out-of-sample rank (left of 0: below the median)",
            x_title="logit of the relative out-of-sample rank")))
    params = [c for c in table.columns if c.startswith("param_")]
    shown = [c for c in GRID_COLUMNS[:2] if c in table.columns] + params + [
        c for c in GRID_COLUMNS[2:] if c in table.columns]
    parts.append(section("Trials (best first)", frame_table(table[shown], 60, table_id="grid-trials")))
    return parts


def _heatmaps(table: pd.DataFrame, metric: str) -> list[str]:
    params = [c for c in table.columns if c.startswith("param_") and table[c].nunique() > 1]
    ok = table[table["status"] == "ok"]
    charts = []
    for a, b in itertools.islice(itertools.combinations(params, 2), 6):
        pivot = ok.pivot_table(index=a, columns=b, values=metric, aggfunc="mean")
        pivot.index.name, pivot.columns.name = label_of(a), label_of(b)
        title = f"{label_of(metric)} by {label_of(a)} × {label_of(b)} (mean over the other params)"
        charts.append(heatmap_chart(pivot, div_id=f"heatmap-{a}-{b}", title=title, metric_label=label_of(metric),
                                    percent=metric in FRACTION_METRICS))
    if len(params) == 1:
        ordered = ok.sort_values(params[0])
        charts.append(bar_chart([f"{label_of(params[0])} = {v}" for v in ordered[params[0]]],
                                ordered[metric].to_numpy(dtype=float), div_id="metric-by-param",
                                title=f"{label_of(metric)} by {label_of(params[0])}"))
    return charts


def _walk_forward_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    oos = s.get("oos_metrics", {})
    over = s.get("overfitting", {})
    facts = [
        ("Windows", fmt_int(float(s.get("n_windows") or 0)), ""),
        ("Window set-up", fmt_params(s.get("walk_forward") or {}), "bars of training, testing and step"),
        ("Trials run (walk-forward + full grid)", fmt_int(float(s.get("n_trials") or 0)), ""),
        ("OOS Sharpe", format_value(oos.get("sharpe"), "ratio"), "test windows chained, each with the params its "
                                                                 "training window chose"),
        ("OOS CAGR", format_value(oos.get("cagr"), "pct"), ""),
        ("OOS max drawdown", format_value(oos.get("max_drawdown"), "pct"), ""),
        ("OOS round trips", fmt_int(float(s.get("oos_trades") or 0)), ""),
        ("Walk-forward efficiency", format_value(s.get("walk_forward_efficiency"), "ratio"),
         "OOS / IS annual return; near 1: what was fitted held up, near 0 or below: it did not"),
        ("IS annual return (mean of windows)", format_value(s.get("is_annual_return_mean"), "pct"), ""),
        ("OOS annual return (mean of windows)", format_value(s.get("oos_annual_return_mean"), "pct"), ""),
        ("Probability of backtest overfitting (PBO)", format_value(over.get("pbo"), "ratio"),
         pbo_meaning(over.get("pbo"))),
        ("Deflated Sharpe ratio (OOS)", format_value(over.get("dsr"), "ratio"),
         dsr_meaning(over.get("dsr"), s.get("n_trials"))),
        ("Latest chosen params", fmt_params(s.get("latest_params") or {}), "what a recalibration would trade now"),
    ]
    windows = output.tables["windows"]
    parts = [
        section("Out of sample", facts_table(facts)),
        section("In sample against out of sample, per window", in_vs_out_of_sample_chart(windows)),
        section("Parameter path (chosen params per window)", parameter_path_chart(windows)),
        section("Stitched out-of-sample equity", line_chart(output.series["oos_equity"], div_id="equity-chart",
                                                            name="Out of sample (test windows chained)")),
        section("Windows", frame_table(windows, 200, table_id="wf-windows")),
        section("Parameter stability", _stability_table(s.get("parameter_stability", {}))),
    ]
    if "grid" in output.tables:
        heatmaps = _heatmaps(output.tables["grid"], s["metric"])[:2]
        if heatmaps:
            parts.append(section("Full-period grid", "".join(heatmaps)))
    return parts


def _stability_table(stability: dict[str, dict[str, float]]) -> str:
    frame = pd.DataFrame([{"param": name, **values} for name, values in stability.items()])
    return frame_table(frame, 50, kinds={"modal_share": "pct", "distinct": "int", "coefficient_of_variation": "ratio"},
                       labels={"param": "Param", "modal_share": "Windows choosing the most common value",
                               "distinct": "Distinct values", "coefficient_of_variation": "Coefficient of variation"})


def _monte_carlo_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    mc = output.extras["monte_carlo"]
    equity: pd.Series = output.series.get("equity", pd.Series(dtype=float))
    setup = [
        ("Paths", fmt_int(float(s.get("n_paths") or 0)), "per method"),
        ("Mean block length (days)", format_value(s.get("block_length_days"), "ratio"), "block bootstrap"),
        ("Seed", html.escape(str(s.get("mc_seed"))), "same seed, same paths"),
        ("Kill-switch drawdown", fmt_pct(float(s.get("kill_drawdown_pct") or math.nan) / 100.0),
         "risk_monitor.kill_drawdown_pct: P(kill) counts the paths that reach it"),
        ("Trade returns bootstrapped", fmt_int(float(s.get("n_trade_returns") or 0)), "round trips of the backtest"),
        ("Params", fmt_params(s.get("params") or {}), ""),
    ]
    parts = [section("Set-up", facts_table(setup)), section("Percentiles", _mc_table(mc))]
    dates = equity.index if len(equity) else None
    block_x = dates if dates is not None and len(dates) == len(mc.fan_chart.day) else None
    parts.append(section("Block bootstrap of daily returns", _fan(
        mc.fan_chart, block_x, "fan-chart", MC_METHODS[0], equity if block_x is not None else None)))
    if mc.trade_fan_chart is not None:
        exits = pd.DatetimeIndex(output.extras.get("trade_exit_dates", []))
        trade_x = (pd.DatetimeIndex([dates[0]]).append(exits)
                   if dates is not None and len(exits) + 1 == len(mc.trade_fan_chart.day) else None)
        parts.append(section("Trade bootstrap of round-trip P&L", _fan(mc.trade_fan_chart, trade_x,
                                                                      "trade-fan-chart", MC_METHODS[1], None)))
    return parts


_FAN_NOTES = {
    "fan-chart": "Each path strings together blocks of the backtest's daily returns (random starts, geometric "
                 "lengths), which keeps volatility clustering and serial dependence up to about the block length. "
                 "x: the run's sessions; the dotted line is the backtest itself.",
    "trade-fan-chart": "Each path draws the backtest's round trips with replacement, each as P&L over account "
                       "equity at its entry, taken one after the other: streaks are broken up, trades that overlapped "
                       "count as sequential bets, and drawdowns are measured from trade to trade (intra-trade "
                       "drawdowns are not seen). x: step n is placed at the exit date of the backtest's n-th round "
                       "trip.",
}


def _fan(fan: FanChart, dates: pd.DatetimeIndex | None, div_id: str, method: tuple[str, str, str],
         actual: pd.Series | None) -> str:
    """One method's fan: dated when the steps map onto the run's sessions (or trade exits), else by step."""
    _, name, assumes = method
    frame = fan.to_frame()
    if dates is not None:
        frame.index = dates
        x_title = "session" if div_id == "fan-chart" else "exit date of the n-th round trip of the backtest"
    else:
        x_title = "step (session or round trip) number"
    note = f'<p class="muted">{html.escape(_FAN_NOTES[div_id])}</p>'
    return note + fan_chart(frame, div_id=div_id, title=f"{name.capitalize()}: {assumes}", x_title=x_title,
                            actual=actual)


def _mc_table(mc: Any) -> str:
    """Percentiles per method: final equity (money), CAGR and max drawdown (%), and the kill probability."""
    head = ("<tr><th>Method</th><th>Quantity</th><th>p5</th><th>p25</th><th>p50 (median)</th><th>p75</th>"
            "<th>p95</th></tr>")
    rows = []
    for summary in (mc.block_bootstrap, mc.trade_bootstrap):
        if summary is None:
            continue
        method = html.escape(summary.method.replace("_", " "))
        for label, pct, fmt in (("Final equity", summary.final_equity, fmt_money), ("CAGR", summary.cagr, fmt_pct),
                                ("Max drawdown", summary.max_drawdown, fmt_pct)):
            cells = "".join(f"<td>{fmt(v)}</td>" for v in pct.to_dict().values())
            rows.append(f"<tr><td>{method}</td><td>{label}</td>{cells}</tr>")
        rows.append(f"<tr><td>{method}</td><td>P(drawdown reaches the kill switch)</td>"
                    f'<td colspan="5">{fmt_pct(summary.kill_probability, 1)}</td></tr>')
    notes = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(assumes)}</li>" for _, name, assumes in MC_METHODS)
    table = f'<div class="scroll"><table class="data"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
    return f'{table}<ul class="muted">{notes}</ul>'


def _scenario_sections(output: ModeOutput) -> list[str]:
    s = output.summary
    frame = output.tables["scenarios"]
    worst = [
        ("Worst scenario loss", format_value(s.get("worst_scenario_loss_pct"), "pct_units"), "of equity, over the "
                                                                                             "scenario's window"),
        ("Synthetic shocks start on", html.escape(str(s.get("shock_date"))), str(s.get("shock_point_rule") or "")),
        ("Halted symbol", html.escape(str(s.get("halted_symbol"))), "the largest holding on that day"),
        ("Params", fmt_params(s.get("params") or {}), ""),
    ]
    parts = [section("Worst case", facts_table(worst))]
    if not frame.empty and "window_pnl_pct" in frame:
        parts.append(section("Window P&L", bar_chart(list(frame["name"].astype(str)),
                                                     frame["window_pnl_pct"].to_numpy(dtype=float),
                                                     div_id="scenario-pnl", title="P&L over each window",
                                                     value_suffix="%")))
    shown = {
        "name": ("Scenario", "text"), "start_date": ("From", "text"), "end_date": ("To", "text"),
        "window_pnl_pct": ("P&L", "pct_units"), "baseline_window_pnl_pct": ("Unshocked P&L", "pct_units"),
        "window_max_drawdown_pct": ("Window max DD", "pct_units"), "run_max_drawdown_pct": ("Run max DD", "pct_units"),
        "state_before_window": ("State before", "text"), "throttle_first_date": ("Throttle on", "text"),
        "reducing_first_date": ("REDUCING", "text"), "halted_date": ("HALTED", "text"),
    }
    if not frame.empty:
        columns = [c for c in shown if c in frame]
        parts.append(section("Scenarios", frame_table(frame[columns], 100, table_id="scenarios",
                                                      kinds={c: shown[c][1] for c in columns},
                                                      labels={c: shown[c][0] for c in columns})))
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
