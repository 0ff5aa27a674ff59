"""The HTML tear sheet: charts present, text escaped, numbers formatted, nothing undefined leaks through."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.performance import monthly_returns, round_trips_from_fills
from backtester.report import downsample, monthly_heatmap_html, svg_area_chart, svg_line_chart, write_report


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
    assert '<svg id="equity-chart"' in text
    assert '<svg id="drawdown-chart"' in text
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
    assert "<script" not in text.lower()


def test_report_is_free_of_nan_and_inf_text(tmp_path: Path) -> None:
    equity = _random_walk(years=1)
    equity.iloc[[5, 17]] = np.nan
    trades = _trades(5, equity.index)
    trades.loc[2, "return_pct"] = np.nan
    summary = _summary(sortino=None, calmar=float("nan"), turnover=float("nan"), win_rate=None)
    text = _write(tmp_path, summary, equity, trades)
    visible = re.sub(r"<style>.*?</style>", "", text, flags=re.S)
    assert not re.search(r"\bnan\b", visible, flags=re.I)
    assert not re.search(r"\binf(inity)?\b", visible, flags=re.I)
    assert text.count("—") >= 4  # the undefined metrics and the missing return show a dash


def test_report_with_no_trades_still_renders(tmp_path: Path) -> None:
    text = _write(tmp_path, {"strategy": "idle"}, _random_walk(years=1), pd.DataFrame())
    assert "No closed trades." in text
    assert '<svg id="equity-chart"' in text and '<svg id="drawdown-chart"' in text
    assert 'Round trips</td><td class="value">0<' in text  # computed from the (empty) trades frame


def test_report_with_no_equity_still_renders(tmp_path: Path) -> None:
    text = _write(tmp_path, {"strategy": "empty"}, pd.Series(dtype=float), pd.DataFrame())
    assert text.count("No data") == 3
    assert '<svg id="equity-chart"' in text and '<table id="monthly-returns"' in text


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


def _polyline_points(svg: str, index: int = 0) -> list[tuple[float, float]]:
    lines = re.findall(r'<polyline points="([^"]+)"', svg)
    return [(float(x), float(y)) for x, y in (pair.split(",") for pair in lines[index].split())]


def test_benchmark_is_drawn_with_a_legend() -> None:
    equity = _random_walk(years=2)
    benchmark = pd.Series(np.linspace(300.0, 450.0, len(equity)), index=equity.index, name="SPY")
    svg = svg_line_chart(equity, chart_id="equity-chart", title="Equity", benchmark=benchmark)
    assert svg.count("<polyline") == 2
    assert ">SPY</text>" in svg and ">Strategy</text>" in svg
    strategy_line, benchmark_line = _polyline_points(svg, index=1), _polyline_points(svg, index=0)
    assert benchmark_line[0] == pytest.approx(strategy_line[0], abs=0.11)  # rebased to the first equity value
    alone = svg_line_chart(equity, chart_id="x", title="x")
    assert alone.count("<polyline") == 1 and ">Strategy<" not in alone


def test_long_series_are_downsampled_keeping_extremes() -> None:
    dates = pd.date_range("1990-01-01", periods=20_000, freq="D")
    values = np.sin(np.arange(20_000) / 50.0)
    values[12_345] = 5.0
    values[777] = -5.0
    series = pd.Series(values, index=dates)
    thinned = downsample(series, max_points=2_000)
    assert len(thinned) <= 2_000
    assert thinned.max() == 5.0 and thinned.min() == -5.0
    assert thinned.index[0] == dates[0] and thinned.index[-1] == dates[-1]
    assert len(_polyline_points(svg_line_chart(series, chart_id="c", title="t"))) <= 2_000


@pytest.mark.parametrize(("periods", "freq"), [(2_520, "B"), (252, "B"), (40, "B"), (5, "B"), (1, "B"), (120, "W")])
def test_axis_ticks_stay_few_and_inside_the_plot(periods: int, freq: str) -> None:
    series = pd.Series(np.linspace(90.0, 130.0, periods), index=pd.date_range("2015-03-10", periods=periods,
                                                                               freq=freq))
    svg = svg_line_chart(series, chart_id="c", title="t", width=1200)
    date_labels = re.findall(r'<text class="tick" x="([\d.]+)" y="[\d.]+" text-anchor="middle">([^<]+)<', svg)
    value_labels = re.findall(r'text-anchor="end">([^<]+)<', svg)
    assert 1 <= len(date_labels) <= 11
    assert 2 <= len(value_labels) <= 8
    assert len(set(value_labels)) == len(value_labels)  # enough decimals to tell ticks apart
    xs = [float(x) for x, _ in date_labels]
    assert all(60 <= x <= 1200 for x in xs)
    assert all(b - a >= 60 for a, b in itertools.pairwise(xs))  # room for a label between ticks
    assert not re.search(r"nan|inf", svg, flags=re.I)


def test_drawdown_area_sits_under_zero() -> None:
    drawdown = pd.Series([0.0, -0.05, -0.2, -0.1, 0.0], index=pd.bdate_range("2024-01-01", periods=5))
    svg = svg_area_chart(drawdown, chart_id="drawdown-chart", title="Drawdown")
    zero_y = float(re.search(r'y="([\d.]+)" text-anchor="end">0%<', svg).group(1)) - 4  # type: ignore[union-attr]
    assert ">-20%<" in svg
    assert re.findall(r'text-anchor="end">([^<]+)<', svg)[-1] == "0%"  # the axis ends at zero, nothing above it
    assert all(y >= zero_y - 0.05 for _, y in _polyline_points(svg))
    assert "<polygon" in svg


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


def test_value_labels_are_exact_for_quarter_steps() -> None:
    # a 98k..110k range gets ticks every 2.5k: labels must not round 102.5k to "102k"
    series = pd.Series(np.linspace(98_000.0, 109_900.0, 300), index=pd.bdate_range("2016-01-04", periods=300))
    labels = re.findall(r'text-anchor="end">([^<]+)<', svg_line_chart(series, chart_id="c", title="t"))
    assert labels == ["97.5k", "100.0k", "102.5k", "105.0k", "107.5k", "110.0k"]
    drawdown = pd.Series(np.linspace(0.0, -0.09, 50), index=pd.bdate_range("2016-01-04", periods=50))
    dd_labels = re.findall(r'text-anchor="end">([^<]+)<', svg_area_chart(drawdown, chart_id="d", title="t"))
    assert dd_labels == ["-10.0%", "-7.5%", "-5.0%", "-2.5%", "0%"]
