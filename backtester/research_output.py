"""Run a research mode and write its results folder: summary.json, CSV tables, report.html."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from backtester import research
from backtester.cli_common import write_json
from backtester.monte_carlo import MC_METHODS
from backtester.research import ModeOutput, ResearchContext
from backtester.research_report import write_research_report

log = logging.getLogger(__name__)

MODE_RUNNERS: dict[str, Callable[[ResearchContext], ModeOutput]] = {
    "grid_search": research.grid_search,
    "walk_forward": research.walk_forward,
    "monte_carlo": research.monte_carlo,
    "scenario_analysis": research.scenario_analysis,
}


def run_mode(mode: str, ctx: ResearchContext) -> ModeOutput:
    return MODE_RUNNERS[mode](ctx)


def write_outputs(out_dir: Path, mode: str, output: ModeOutput) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "summary.json", output.summary)
    for name, table in output.tables.items():
        table.to_csv(out_dir / f"{name}.csv", index=False)
    for name, series in output.series.items():
        series.rename_axis("date").to_frame(name).to_csv(out_dir / f"{name}.csv")
    write_research_report(out_dir / "report.html", mode, output)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if kind == "pct":
        return f"{value * 100:,.2f}%"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def summary_rows(mode: str, s: Mapping[str, Any]) -> list[tuple[str, str]]:
    over = s.get("overfitting", {})
    if mode == "grid_search":
        best = s.get("best_metrics", {})
        return [
            ("trials run", _fmt(s.get("n_trials"))),
            ("best params", str(s.get("best_params"))),
            ("trials that went HALTED", f"{_fmt(s.get('n_halted'))} (not eligible as best)"
             if not s.get("halted_trials_eligible") else f"{_fmt(s.get('n_halted'))} (eligible: option set)"),
            *([("best trial HALTED on", str(s["best_halted_on"]))] if s.get("best_halted_on") else []),
            (f"best {s.get('metric')}", _fmt(best.get(s.get("metric")))),
            ("best CAGR", _fmt(best.get("cagr"), "pct")),
            ("PBO", _fmt(over.get("pbo"))),
            ("deflated Sharpe", _fmt(over.get("dsr"))),
        ]
    if mode == "walk_forward":
        oos = s.get("oos_metrics", {})
        return [
            ("windows", _fmt(s.get("n_windows"))),
            ("trials run", _fmt(s.get("n_trials"))),
            ("OOS Sharpe", _fmt(oos.get("sharpe"))),
            ("OOS CAGR", _fmt(oos.get("cagr"), "pct")),
            ("OOS max drawdown", _fmt(oos.get("max_drawdown"), "pct")),
            ("walk-forward efficiency", _fmt(s.get("walk_forward_efficiency"))),
            ("PBO", _fmt(over.get("pbo"))),
            ("deflated Sharpe", _fmt(over.get("dsr"))),
            ("latest params", str(s.get("latest_params"))),
        ]
    if mode == "monte_carlo":
        return _monte_carlo_rows(s)
    rows = [(r["name"], f"{_fmt(r.get('window_pnl_pct'))}%") for r in s.get("scenarios", [])]
    return [*rows, ("worst scenario loss", f"{_fmt(s.get('worst_scenario_loss_pct'))}%")]


def _monte_carlo_rows(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Both resampling methods, each with what it assumes, next to what the backtest itself did."""
    mc = s.get("monte_carlo", {})
    actual = s.get("backtest_metrics", {})
    rows = [("paths", _fmt(s.get("n_paths"))),
            ("backtest: final equity / max drawdown",
             f"{actual.get('final_equity', 0):,.0f} / {_fmt(actual.get('max_drawdown'), 'pct')}")]  # fmt: skip
    for key, name, assumes in MC_METHODS:
        method = mc.get(key)
        if not method:
            rows.append((name, "no round trips to resample"))
            continue
        final, dd = method.get("final_equity", {}), method.get("max_drawdown", {})
        rows += [
            (name, assumes),
            ("  final equity p5 / p50 / p95", " / ".join(f"{final.get(k, 0):,.0f}" for k in ("p5", "p50", "p95"))),
            ("  max drawdown p50 / p95", " / ".join(_fmt(dd.get(k), "pct") for k in ("p50", "p95"))),
            ("  P(kill-switch drawdown)", _fmt(method.get("kill_probability"))),
        ]
    return rows


def print_mode_summary(mode: str, summary: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"{summary['strategy']} {mode.replace('_', ' ')}", show_header=False)
    table.add_row("period", f"{summary['start']} .. {summary['end']} ({len(summary['symbols'])} symbols)")
    for label, value in summary_rows(mode, summary):
        table.add_row(label, value)
    console.print(table)
