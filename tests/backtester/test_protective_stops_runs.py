"""Issue 15 over whole runs: with ``stop: atr`` no trade loses much more than its risk budget, except through a gap.

Through the same job ``run_backtest.py`` runs, with the shipped config, so ``stops.csv``, ``fills.csv`` and
``summary.json`` are checked as written. A trade's budget is ``risk_per_trade_pct`` of the equity at its decision
(the session before the entry filled). Its gross loss (before commissions) may exceed the budget only by the
entry's open above the decision close and the cent rounding of the stop, unless the exit executed through a gap:
its raw price (before slippage) below the stop. Measured when written:
- the issue's run (mean_reversion, the default synthetic market): worst trade without stops -3,184 against a
  budget of 502 (6.3 budgets, -32 %); with stops 1.59 budgets through a gap, 1.03 otherwise;
- momentum on real YHOO 1996-2015 bars (``../shared/data``): 1.95 budgets without stops; with stops 1.20 through
  a gap, 1.09 otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from backtester.engine import STOPS_COLUMNS
from backtester.job import JobRequest, run_backtest_job
from core.config_loader import load_config

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data" / "yhoo-1996-2015.txt"
MOST_OVER_BUDGET = 1.15  # gross loss / budget without a gap: the open above the close, the stop's cent rounding



def run(tmp_path: Path, strategy: str, data: str, stop: str) -> Path:
    overrides = (f"strategies.{strategy}.stop={stop}",)
    config = load_config(REPO / "config.yaml", overrides)
    symbols = tuple(config.symbols) if data == "synthetic" else None  # as run_backtest.py names the synthetic market's
    request = JobRequest(strategy=strategy, data=data, symbols=symbols, start=None, end=None,
                         seed=config.backtest.seed, overrides=overrides)  # fmt: skip
    out = tmp_path / stop
    run_backtest_job(config, request, out)
    return out


def loss_over_budget(out: Path, risk_pct: float) -> pd.DataFrame:
    """Per trade: gross loss / budget, and whether its exit executed through its stop (a gap)."""
    fills = pd.read_csv(out / "fills.csv", parse_dates=["date"])
    stops = pd.read_csv(out / "stops.csv", parse_dates=["placed_date"])
    trades = pd.read_csv(out / "trades.csv", parse_dates=["entry_date", "exit_date"])
    equity = pd.read_csv(out / "equity.csv", parse_dates=["date"]).set_index("date")["equity"]
    rows = []
    for trade in trades.itertuples():
        budget = risk_pct / 100.0 * equity[equity.index < trade.entry_date].iloc[-1]
        mine = (stops["placed_date"] == trade.entry_date) & (stops["symbol"] == trade.symbol)
        stop = stops.loc[mine, "stop_price"].min()
        exits = fills[(fills["date"] == trade.exit_date) & (fills["side"] == "SELL")
                      & (fills["symbol"] == trade.symbol)]  # fmt: skip
        raw = ((exits["price"] * exits["quantity"] + exits["slippage_cost"]).sum() / exits["quantity"].sum())
        rows.append({"entry": trade.entry_date, "ratio": -trade.pnl / budget, "gap": bool(raw < stop - 1e-9)})
    return pd.DataFrame(rows)


def check_run(tmp_path: Path, strategy: str, data: str, *, worst_without: float) -> None:
    config = load_config(REPO / "config.yaml")
    out = run(tmp_path, strategy, data, "atr")
    summary = json.loads((out / "summary.json").read_text())
    stops = pd.read_csv(out / "stops.csv")
    assert list(stops.columns) == list(STOPS_COLUMNS)
    counts = stops["outcome"].value_counts().to_dict()
    assert summary["stops"] == {"placed": len(stops), "filled": counts.get("filled", 0),
                                "cancelled": counts.get("cancelled", 0)}  # fmt: skip
    assert summary["stops"]["filled"] >= 5  # the stops did work on this history
    fills = pd.read_csv(out / "fills.csv")
    assert (fills["order_type"] == "STP").sum() == summary["stops"]["filled"]

    ratios = loss_over_budget(out, config.portfolio.risk_per_trade_pct)
    assert ratios.loc[~ratios["gap"], "ratio"].max() <= MOST_OVER_BUDGET, ratios.sort_values("ratio").tail()
    assert ratios["gap"].any()  # the exception is real: some exits opened through their stop

    without = loss_over_budget(run(tmp_path, strategy, data, "none"), config.portfolio.risk_per_trade_pct)
    assert without["ratio"].max() > worst_without  # without stops the same history loses far more than the budget


def test_issue_15_the_mean_reversion_trade_that_lost_32_percent_is_stopped_near_its_budget(tmp_path: Path) -> None:
    check_run(tmp_path, "mean_reversion", "synthetic", worst_without=6.0)


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_file(), reason=f"needs {DATA} (real market data; CI has it)")
def test_issue_15_on_real_bars_stops_keep_every_loss_near_its_budget_except_through_gaps(tmp_path: Path) -> None:
    check_run(tmp_path, "momentum", str(DATA), worst_without=1.5)


def test_the_console_and_the_report_count_the_stops(tmp_path: Path) -> None:
    """A run with ``stop: atr`` says how many stops it placed, filled and cancelled, in the console and the report."""
    import subprocess
    import sys

    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "run_backtest.py", "--strategy", "mean_reversion", "--out", str(out),
                           "--set", "strategies.mean_reversion.stop=atr"], capture_output=True, text=True,
                          cwd=REPO, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["stops"]
    assert counts["placed"] > 0 and counts["filled"] > 0 and summary["stop"] == "atr"
    assert f"placed {counts['placed']}, filled {counts['filled']}" in done.stdout
    assert "Protective stop" in (out / "report.html").read_text()
