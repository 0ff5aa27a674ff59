"""The backtest report of a real run (job.py on the synthetic market, forced to REDUCING and HALTED by tight drawdown
limits): benchmark, trades on price, trading-state markers, the banner, the run table; offline; ``--benchmark``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backtester.job import JobOutput
from testkit.plotly_page import plotly_figures, trace_names
from testkit.report_runs import HALTING_OVERRIDES as HALTING
from testkit.report_runs import run_halting

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def halted_run(tmp_path_factory: pytest.TempPathFactory) -> JobOutput:
    return run_halting(tmp_path_factory.mktemp("halting"))


def test_the_run_halts_and_the_banner_says_so_above_the_metrics(halted_run: JobOutput) -> None:
    summary = halted_run.summary
    assert summary["final_trading_state"] == "HALTED"
    halt_day = next(c["date"] for c in summary["trading_state_changes"] if c["to"] == "HALTED")
    page = (halted_run.out_dir / "report.html").read_text()
    banner = re.search(r'<div id="attention" class="attention halted".*?</div>', page, flags=re.S)
    assert banner is not None and page.index('id="attention"') < page.index('id="metrics"')
    assert f"<b>HALTED</b> on {halt_day}" in banner.group(0)
    assert "<b>REDUCING</b> from" in banner.group(0)
    assert "Orders refused" in banner.group(0) and "Signals ignored" in banner.group(0)


def test_equity_chart_has_the_benchmark_and_the_halt_marker(halted_run: JobOutput) -> None:
    page = (halted_run.out_dir / "report.html").read_text()
    traces, layout = plotly_figures(page)["equity-chart"]
    names = [t["name"] for t in traces]
    assert names[:2] == ["Benchmark: buy-and-hold, equal weight", "Strategy"]
    assert "HALTED (trading state)" in names and "REDUCING (trading state)" in names
    halt_day = next(c["date"] for c in halted_run.summary["trading_state_changes"] if c["to"] == "HALTED")
    halted = next(t for t in traces if t["name"] == "HALTED (trading state)")
    assert halted["x"][0].startswith(halt_day)
    assert any(s["type"] == "rect" and s["x0"].startswith(halt_day) for s in layout["shapes"])
    assert halted_run.summary["benchmark"] == "buy-and-hold of the run's symbols, equal weight"
    assert halted_run.summary["trade_stats"]["beta"] is not None


def test_trades_on_price_has_entries_and_exits_for_every_traded_symbol(halted_run: JobOutput) -> None:
    page = (halted_run.out_dir / "report.html").read_text()
    traces, layout = plotly_figures(page)["price-chart"]
    trades = halted_run.trades
    entries = [t for t in traces if t["name"] == "Entries"]
    assert sum(len(t["x"]) for t in entries) == len(trades) > 0
    exits = [t for t in traces if t["name"] == "Exits"]
    assert sorted(p for t in exits for p in t["y"]) == pytest.approx(sorted(trades["exit_price"]))
    halt_day = next(c["date"] for c in halted_run.summary["trading_state_changes"] if c["to"] == "HALTED")
    assert any(s["type"] == "rect" and s["x0"].startswith(halt_day) for s in layout["shapes"])  # halt on price too
    assert [b["label"] for b in layout["updatemenus"][0]["buttons"]] == list(
        trades["symbol"].value_counts().sort_index().sort_values(ascending=False, kind="stable").index)
    assert {"Drawdown", "Gross exposure / equity", "Round trips"} <= {
        n for div in ("drawdown-chart", "exposure-chart", "trade-pnl-chart") for n in trace_names(page, div)}


def test_the_page_opens_offline_and_lists_how_the_run_was_set_up(halted_run: JobOutput) -> None:
    page = (halted_run.out_dir / "report.html").read_text()
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//", page, flags=re.I)
    assert len(re.findall(r"plotly\.js v\d", page)) == 1
    run = re.search(r'<table class="kv" id="run-table">.*?</table>', page, flags=re.S).group(0)
    for text in (*HALTING, "synthetic(seed=3)", "ib_fixed", "half_spread_bps", "volatility",
                 halted_run.summary["config_id"], halted_run.summary["data_fingerprint"]):
        assert text in run
    written = json.loads((halted_run.out_dir / "summary.json").read_text())
    assert written["slippage"]["half_spread_bps"] == 2.0 and written["sizing"]["method"] == "volatility"
    assert written["adjust_prices"] is False and written["commission_model"] == "ib_fixed"


def test_benchmark_symbol_is_that_symbols_buy_and_hold(tmp_path: Path) -> None:
    output = run_halting(tmp_path / "bbb", benchmark="BBB")
    traces, _ = plotly_figures((output.out_dir / "report.html").read_text())["equity-chart"]
    assert traces[0]["name"] == "Benchmark: BBB" and output.summary["benchmark"] == "BBB"


def test_benchmark_not_in_the_data_is_a_usage_error_naming_the_flag(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), "--config", str(REPO / "config.yaml"), "--strategy",
         "momentum", "--symbols", "AAA,BBB", "--start", "2020-01-02", "--end", "2020-06-30", "--no-tca",
         "--benchmark", "spy", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert proc.returncode == 2
    assert "--benchmark: 'SPY' is not a symbol of the run's data" in proc.stderr and "AAA, BBB" in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything ran or was written


def test_the_console_table_lists_the_state_changes_and_the_final_state(halted_run: JobOutput) -> None:
    from io import StringIO

    from rich.console import Console

    from backtester.summary_table import print_summary

    out = StringIO()
    print_summary(halted_run.summary, Console(file=out, width=400))
    row = next(line for line in out.getvalue().splitlines() if "trading state" in line)
    halt_day = next(c["date"] for c in halted_run.summary["trading_state_changes"] if c["to"] == "HALTED")
    assert f"HALTED {halt_day}" in row and "REDUCING" in row and "final HALTED" in row
