"""The HTML tear sheet: charts present, text escaped, numbers formatted, nothing undefined leaks through, and the
page opens offline (plotly.js inline, nothing fetched)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.performance import monthly_returns, round_trips_from_fills
from backtester.report import monthly_heatmap_html, write_report
from testkit.plotly_page import plotly_figures


def _random_walk(years: int = 3, seed: int = 3, start_value: float = 1_000_000.0) -> pd.Series:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2020-01-02", periods=252 * years)
    return pd.Series(start_value * np.cumprod(1 + rng.normal(0.0004, 0.01, len(dates))), index=dates, name="equity")


def _trades(n: int, dates: pd.DatetimeIndex) -> pd.DataFrame:
    rows = []
    for i in range(n):
        rows.append((dates[2 * i], f"S{i:03d}", "BUY", 10, 100.0, 1.0))
        rows.append((dates[2 * i + 1], f"S{i:03d}", "SELL", 10, 100.0 + (i % 7) - 3, 1.0))
    fills = pd.DataFrame(rows, columns=["date", "symbol", "side", "quantity", "price", "commission"])
    return round_trips_from_fills(fills)


def _summary(**extra: object) -> dict[str, object]:
    return {
        "strategy": "<Mean & Revert>", "params": {"lookback_days": 20, "note": "<b>"}, "start": "2020-01-02",
        "end": "2022-06-30", "symbols": ["AAPL", "MSFT"], "config_id": "c0ffee" * 4, "data_fingerprint": "f1ng3r",
        "initial_capital": 1_000_000.0, "final_equity": 1_234_567.891, "total_return": 0.1234, "sharpe": 1.2345,
        "max_drawdown": 0.0875, "profit_factor": "inf", **extra,
    }


def _write(tmp_path: Path, summary: dict[str, object], equity: pd.Series, trades: pd.DataFrame,
           benchmark: pd.Series | None = None) -> str:
    path = tmp_path / "out" / "report.html"
    write_report(path, summary, equity, trades, benchmark=benchmark)
    return path.read_text(encoding="utf-8")


def test_report_contains_the_three_charts_escaped_header_and_metrics(tmp_path: Path) -> None:
    equity = _random_walk()
    text = _write(tmp_path, _summary(), equity, _trades(60, equity.index))
    assert '<div id="equity-chart"' in text
    assert '<div id="drawdown-chart"' in text
    assert '<table id="monthly-returns"' in text
    assert "&lt;Mean &amp; Revert&gt;" in text
    assert "<Mean & Revert>" not in text
    assert "&quot;&lt;b&gt;&quot;" in text and "<b>\"<b>\"" not in text  # param values escaped too
    assert "c0ffeec0ffeec0ffeec0ffee" in text and "f1ng3r" in text
    assert ">12.34%<" in text  # total return as a percent
    assert ">8.75%<" in text  # max drawdown as a positive percent
    assert ">1.23<" in text  # Sharpe, 2 dp
    assert ">1,234,567.89<" in text  # money with thousands separators
    assert ">∞<" in text  # profit factor "inf" as job.py writes it to summary.json
    assert_offline(text)


def assert_offline(text: str) -> None:
    """plotly.js is inline (once) and nothing on the page is fetched from a network address."""
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)\s*=\s*[\"']?(https?:)?//", text, flags=re.I)
    assert text.count("<script") >= 2  # plotly.js itself, then one script per chart
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library's banner comment: embedded exactly once


def test_report_is_free_of_nan_and_inf_text(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    equity.iloc[[5, 17]] = np.nan
    trades = _trades(5, equity.index)
    trades.loc[2, "return_pct"] = np.nan
    summary = _summary(sortino=None, calmar=float("nan"), turnover=float("nan"), win_rate=None)
    text = _write(tmp_path, summary, equity, trades)
    visible = re.sub(r"<style>.*?</style>|<script.*?</script>", "", text, flags=re.S)
    assert not re.search(r"\bnan\b", visible, flags=re.I)
    assert not re.search(r"\binf(inity)?\b", visible, flags=re.I)
    assert text.count("—") >= 4  # the undefined metrics and the missing return show a dash


def test_report_with_no_trades_still_renders(tmp_path: Path) -> None:
    text = _write(tmp_path, {"strategy": "idle"}, _random_walk(years=1), pd.DataFrame())
    assert "No closed trades." in text
    assert '<div id="equity-chart"' in text and '<div id="drawdown-chart"' in text
    assert 'id="trade-pnl-chart" class="no-data"' in text
    assert 'Round trips</td><td class="value">0<' in text  # computed from the (empty) trades frame


def test_report_with_no_equity_still_renders(tmp_path: Path) -> None:
    text = _write(tmp_path, {"strategy": "empty"}, pd.Series(dtype=float), pd.DataFrame())
    assert re.search(r'<div id="equity-chart" class="no-data">No data', text)
    assert re.search(r'<div id="drawdown-chart" class="no-data">No data', text)
    assert '<table id="monthly-returns"' in text and "<td>No data</td>" in text


def test_metrics_missing_from_the_summary_are_computed_from_equity(tmp_path: Path) -> None:
    dates = pd.bdate_range("2024-01-01", periods=4)
    equity = pd.Series([100.0, 110.0, 99.0, 120.0], index=dates)
    text = _write(tmp_path, {"strategy": "bare"}, equity, pd.DataFrame())
    assert ">20.00%<" in text  # total return against the first equity point
    assert ">10.00%<" in text  # max drawdown
    assert "Commissions" not in text  # fill-based metrics cannot be recomputed, so they are not shown


def test_long_symbol_lists_are_shortened(tmp_path: Path) -> None:
    symbols = [f"T{i:03d}" for i in range(100)]
    text = _write(tmp_path, {"strategy": "wide", "symbols": symbols}, _random_walk(years=1), pd.DataFrame())
    assert "T029" in text and "T030" not in text
    assert "and 70 more" in text and "(100)" in text


def test_metrics_nested_under_a_metrics_key_are_used(tmp_path: Path) -> None:
    summary = {"strategy": "nested", "metrics": {"total_return": 0.5, "sharpe": 2.0}}
    text = _write(tmp_path, summary, _random_walk(years=1), pd.DataFrame())
    assert ">50.00%<" in text and ">2.00<" in text


def test_last_fifty_trades_most_recent_first(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    text = _write(tmp_path, _summary(), equity, _trades(80, equity.index))
    trade_rows = re.findall(r"<tr><td>(S\d{3})</td>", text)
    assert trade_rows == [f"S{i:03d}" for i in range(79, 29, -1)]
    assert "Last 50 of 80 round trips" in text


def test_heatmap_colours_sign_and_compounds_the_year() -> None:
    equity = pd.Series([100.0, 110.0, 99.0], index=pd.to_datetime(["2024-01-02", "2024-01-31", "2024-02-29"]))
    html_table = monthly_heatmap_html(monthly_returns(equity))
    assert 'id="monthly-returns"' in html_table
    assert re.search(r'rgba\(22,140,72,[\d.]+\)">10\.0%<', html_table)  # January, green
    assert re.search(r'rgba\(200,40,40,[\d.]+\)">-10\.0%<', html_table)  # February, red
    assert re.search(r'class="total" style="[^"]+">-1\.0%<', html_table)  # 1.1 * 0.9 - 1
    assert html_table.count("<td></td>") == 10  # March..December are empty


def test_heatmap_shows_a_month_that_rounds_to_zero_as_neutral() -> None:
    equity = pd.Series([100.0, 99.97], index=pd.to_datetime(["2024-03-01", "2024-03-28"]))
    html_table = monthly_heatmap_html(monthly_returns(equity))
    assert "-0.0%" not in html_table
    assert re.search(r'background:#f1f3f6">0\.0%<', html_table)


def _closes(dates: pd.DatetimeIndex, symbols: tuple[str, ...] = ("AAA", "BBB")) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    data = {s: 50.0 * np.cumprod(1 + rng.normal(0.0003, 0.015, len(dates))) for s in symbols}
    return pd.DataFrame(data, index=dates)


def _stops() -> pd.DataFrame:
    """A crafted stops frame, in the columns the stop-order work hands the report."""
    rows = [
        ("AAA", "momentum", "SELL", 10, 95.0, "2020-01-10", "2020-02-03", "filled", 94.8),
        ("AAA", "momentum", "SELL", 10, 90.0, "2020-03-02", "2020-03-20", "cancelled", None),
        ("BBB", "momentum", "SELL", 5, 40.0, "2020-06-01", None, "open", None),
    ]
    frame = pd.DataFrame(rows, columns=["symbol", "strategy_id", "side", "quantity", "stop_price", "placed_date",
                                        "closed_date", "outcome", "fill_price"])
    for column in ("placed_date", "closed_date"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def test_benchmark_is_drawn_behind_the_strategy_rebased_to_its_first_value(tmp_path: Path) -> None:
    equity = _random_walk(years=2)
    benchmark = pd.Series(np.linspace(300.0, 450.0, len(equity)), index=equity.index, name="Benchmark: SPY")
    text = _write(tmp_path, _summary(), equity, pd.DataFrame(), benchmark=benchmark)
    traces, _ = plotly_figures(text)["equity-chart"]
    assert [t["name"] for t in traces] == ["Benchmark: SPY", "Strategy"]
    assert traces[0]["y"][0] == pytest.approx(equity.iloc[0])  # rebased: both start at the same equity
    assert traces[0]["y"][-1] == pytest.approx(equity.iloc[0] * 1.5)


def test_without_a_benchmark_the_closes_give_buy_and_hold_of_the_universe(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    closes = _closes(equity.index)
    path = tmp_path / "report.html"
    write_report(path, _summary(), equity, pd.DataFrame(), closes=closes)
    traces, _ = plotly_figures(path.read_text())["equity-chart"]
    benchmark = traces[0]
    assert benchmark["name"].startswith("Benchmark: buy-and-hold")
    growth = (closes.iloc[-1] / closes.iloc[0]).mean()  # equal weight, bought on day one, held
    assert benchmark["y"][-1] == pytest.approx(equity.iloc[0] * growth)


def test_trades_and_crafted_stops_are_drawn_on_each_symbols_price(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    trades = _trades(3, equity.index).assign(symbol=["AAA", "AAA", "BBB"])
    path = tmp_path / "report.html"
    write_report(path, _summary(), equity, trades, closes=_closes(equity.index), stops=_stops())
    traces, layout = plotly_figures(path.read_text())["price-chart"]
    names = [t["name"] for t in traces]
    assert names == ["AAA close", "Entries", "Exits", "Stop levels", "Stop fills",
                     "BBB close", "Entries", "Exits", "Stop levels"]
    assert [t.get("visible") for t in traces] == [True] * 5 + [False] * 4  # AAA (most trades) shown first
    aaa_stops = traces[3]
    assert aaa_stops["y"] == [95.0, 95.0, None, 90.0, 90.0, None]  # one dashed segment per stop
    assert traces[4]["y"] == [94.8] and traces[4]["x"][0].startswith("2020-02-03")
    bbb_open = traces[8]
    assert bbb_open["x"][1].startswith(str(equity.index[-1].date()))  # an open stop runs to the end of the run
    assert len(traces[1]["x"]) == 2 and "P&amp;L" not in traces[2]["hovertemplate"]
    assert "P&L" in traces[2]["hovertemplate"]
    buttons = layout["updatemenus"][0]["buttons"]
    assert [b["label"] for b in buttons] == ["AAA", "BBB"]
    assert buttons[1]["args"][0]["visible"] == [False] * 5 + [True] * 4


def test_stop_order_fills_mark_stop_exits_when_no_stops_frame_is_given(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    trades = _trades(1, equity.index).assign(symbol="AAA")
    fills = pd.DataFrame({"date": [equity.index[1]], "symbol": ["AAA"], "side": ["SELL"], "quantity": [10],
                          "price": [97.0], "order_type": ["STP"]})
    path = tmp_path / "report.html"
    write_report(path, _summary(), equity, trades, closes=_closes(equity.index, ("AAA",)), fills=fills)
    traces, _ = plotly_figures(path.read_text())["price-chart"]
    assert [t["name"] for t in traces] == ["AAA close", "Entries", "Exits", "Stop exits"]
    assert traces[3]["y"] == [97.0]


def test_halt_and_reducing_periods_are_shaded_marked_and_in_the_banner(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    changes = [{"date": "2020-03-02", "from": "ACTIVE", "to": "REDUCING"},
               {"date": "2020-04-01", "from": "REDUCING", "to": "ACTIVE"},
               {"date": "2020-06-15", "from": "ACTIVE", "to": "HALTED"}]
    summary = _summary(trading_state_changes=changes, final_trading_state="HALTED",
                       rejections={"trading_state": 2}, clipped_orders={"max_position_weight": 3},
                       ignored_signals={"halted": 4, "warmup": 9}, quarantined_bars=1,
                       missing_sessions={"AAA": {"count": 2, "first": ["2020-05-04", "2020-05-05"]}},
                       missing_sessions_total=2)
    text = _write(tmp_path, summary, equity, pd.DataFrame())
    traces, layout = plotly_figures(text)["equity-chart"]
    assert "HALTED (trading state)" in [t["name"] for t in traces]
    assert "REDUCING (trading state)" in [t["name"] for t in traces]
    rects = [s for s in layout["shapes"] if s["type"] == "rect"]
    assert [(r["x0"][:10], r["x1"][:10]) for r in rects] == [("2020-03-02", "2020-04-01"),
                                                              ("2020-06-15", str(equity.index[-1].date()))]
    assert {a["text"] for a in layout["annotations"]} == {"REDUCING", "HALTED"}
    banner = re.search(r'<div id="attention" class="attention halted".*?</div>', text, flags=re.S).group(0)
    assert banner.index("<h2>") < text.index('id="metrics"') - text.index('<div id="attention"') + banner.index("<h2>")
    for expected in ("HALTED</b> on 2020-06-15", "REDUCING</b> from 2020-03-02 to 2020-04-01", "trading_state 2",
                     "max_position_weight 3", "halted 4", "Bars quarantined", "AAA 2 (first 2020-05-04"):
        assert expected in banner
    assert "warmup" not in banner  # warm-up is not news


def test_a_quiet_run_has_no_banner_and_the_run_table_says_how_it_ran(tmp_path: Path) -> None:
    summary = _summary(overrides=["portfolio.initial_capital=50000"], data_source="synthetic(seed=3)",
                       adjust_prices=False, commission_model="ib_fixed", seed=3,
                       slippage={"half_spread_bps": 2.0}, sizing={"method": "volatility"})
    text = _write(tmp_path, summary, _random_walk(years=1), pd.DataFrame())
    assert 'id="attention"' not in text
    run = re.search(r'<table class="kv" id="run-table">.*?</table>', text, flags=re.S).group(0)
    for expected in ("portfolio.initial_capital=50000", "synthetic(seed=3)", "ib_fixed", "half_spread_bps",
                     "volatility", "c0ffeec0ffee", "f1ng3r", "Prices back-adjusted</th><td>no"):
        assert expected in run


def test_trade_statistics_are_in_the_performance_summary(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    text = _write(tmp_path, _summary(), equity, _trades(10, equity.index))
    for label in ("Best trade", "Worst trade", "Avg trade (geometric)", "Expectancy (mean trade)", "SQN",
                  "Kelly criterion", "Exposure time", "Avg trade duration", "Max trade duration"):
        assert f"<td>{label}</td>" in text
    assert 'Best trade</td><td class="value">2.80%<' in text  # 10 x (103 - 100) less 2.00 commissions on 1,000


def test_trade_pnl_histogram_splits_wins_from_losses_at_zero(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    trades = _trades(21, equity.index)  # P&L per trade: 10 x ((i % 7) - 3) less 2.00 commissions
    traces, _ = plotly_figures(_write(tmp_path, _summary(), equity, trades))["trade-pnl-chart"]
    [bars] = traces
    lows, highs = zip(*bars["customdata"], strict=True)
    assert 0.0 in lows or 0.0 in highs  # zero is a bin edge
    colours = {("win" if low >= 0 else "loss"): c for low, c in zip(lows, bars["marker"]["color"], strict=True)}
    assert colours == {"win": "#15803d", "loss": "#c0392b"}
    assert sum(bars["y"]) == len(trades)
