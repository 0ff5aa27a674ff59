"""Fill timing and cash rules of the backtest, checked bar by bar on hand-made prices."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd
import pytest

from backtester.engine import STOPS_COLUMNS, BacktestResult, build_backtest
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from testkit.bars import make_bar_frame
from testkit.strategies import ScriptedStrategy

CAL = TradingCalendar()
CLOSES = [10.0, 10.5, 11.0, 10.8, 11.2, 11.5, 11.1, 10.9, 11.3, 11.6, 12.0, 11.8]


def panel(closes: list[float] = CLOSES, symbols: tuple[str, ...] = ("AAA",)) -> BarPanel:
    return BarPanel.from_frames({s: make_bar_frame(closes, calendar=CAL) for s in symbols}, CAL)


def run(script: dict, overrides: dict | None = None, bars: BarPanel | None = None) -> BacktestResult:
    raw = {
        "portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": 100}},
        "costs": {"slippage": {"half_spread_bps": 0, "impact_coefficient_bps": 0}},
        "pre_trade": {"max_adv_participation_pct": 100},
    }
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    config = AppConfig.model_validate(raw)
    bars = bars or panel()
    return build_backtest(config, bars, [ScriptedStrategy(script)], CAL).run()


def test_market_order_fills_at_the_next_sessions_open_with_ib_fixed_commission() -> None:
    bars = panel()
    result = run({(2, "AAA"): 1, (5, "AAA"): 2}, bars=bars)
    fills = result.fills
    assert list(fills["side"]) == ["BUY", "SELL"]
    assert fills["price"].tolist() == [bars.open[3, 0], bars.open[6, 0]]
    assert fills["date"].tolist() == [bars.dates[3], bars.dates[6]]
    assert fills["commission"].tolist() == [1.0, 1.0]  # 100 x 0.005 = 0.50 -> IB minimum 1.00
    expected_cash = 100_000 - 100 * bars.open[3, 0] - 1 + 100 * bars.open[6, 0] - 1
    assert result.equity.iloc[-1] == pytest.approx(expected_cash, rel=1e-12)


def test_moc_decided_on_a_close_trades_at_the_next_close_never_the_same_one() -> None:
    bars = panel()
    result = run({(2, "AAA"): 1}, {"strategies": {"momentum": {"order_type": "MOC"}}}, bars)
    assert result.fills["price"].tolist() == [bars.close[3, 0]]
    assert result.fills["date"].tolist() == [bars.dates[3]]


def test_loc_fills_only_when_the_close_satisfies_the_limit() -> None:
    # decided at close 11.0 (bar 2); buy limit 11.0 * (1 + 10 bps) = 11.01; next close 10.8 -> fills at 10.8
    result = run({(2, "AAA"): 1}, {"strategies": {"momentum": {"order_type": "LOC"}}})
    assert result.fills["price"].tolist() == [10.8]
    # decided at close 10.8 (bar 3); limit 10.81; next close 11.2 is above -> expires unfilled
    result = run({(3, "AAA"): 1}, {"strategies": {"momentum": {"order_type": "LOC"}}})
    assert result.fills.empty


def test_limit_buy_fills_at_the_better_of_open_and_limit_when_the_range_reaches_it() -> None:
    bars = panel()
    result = run({(2, "AAA"): 1}, {"strategies": {"momentum": {"order_type": "LMT", "limit_offset_bps": 0}}}, bars)
    limit = 11.0
    assert bars.low[3, 0] <= limit
    assert result.fills["price"].tolist() == [min(bars.open[3, 0], limit)]


def test_nan_bar_is_never_traded_on() -> None:
    frame = make_bar_frame(CLOSES, calendar=CAL)
    frame.iloc[3] = np.nan  # as if the guard quarantined that session
    frames = {"AAA": frame.dropna()}
    bars = BarPanel.from_frames(frames | {"BBB": make_bar_frame(CLOSES, calendar=CAL)}, CAL)
    assert np.isnan(bars.close[3, 0])
    result = run({(2, "AAA"): 1}, bars=bars)
    assert result.fills["date"].tolist() == [bars.dates[4]]  # skips the missing session, fills at the next open
    assert result.fills["price"].tolist() == [bars.open[4, 0]]


def test_cash_account_cannot_buy_with_unsettled_proceeds() -> None:
    closes = [100.0] * 12
    bars = BarPanel.from_frames({s: make_bar_frame(closes, calendar=CAL) for s in ("AAA", "BBB")}, CAL)
    overrides = {
        "portfolio": {"initial_capital": 10_500, "sizing": {"method": "fixed_shares", "fixed_shares": 100},
                      "risk": {"max_position_weight_pct": 100, "max_gross_exposure_pct": 200}},
        "pre_trade": {"max_adv_participation_pct": 100},
    }
    # buy AAA (10,001 of 10,500), sell it on bar 5 (fills bar 6 open), buy BBB decided on bar 5 too:
    # the sale proceeds settle T+1 (bar 7), so the BBB buy at bar 6 can use only ~499 of settled cash.
    result = run({(1, "AAA"): 1, (5, "AAA"): 2, (5, "BBB"): 1}, overrides, bars)
    buys_bbb = result.fills[(result.fills["symbol"] == "BBB")]
    assert buys_bbb["quantity"].sum() <= 4
    # the same sequence in a margin account buys the full 100 shares
    overrides["portfolio"]["account_type"] = "margin"
    result = run({(1, "AAA"): 1, (5, "AAA"): 2, (5, "BBB"): 1}, overrides, bars)
    assert result.fills[result.fills["symbol"] == "BBB"]["quantity"].sum() == 100


def test_drawdown_halt_flattens_and_stops_trading() -> None:
    closes = [100.0, 100, 100, 60, 55, 50, 50, 50, 50, 50, 50, 50]
    bars = BarPanel.from_frames({"AAA": make_bar_frame(closes, calendar=CAL)}, CAL)
    overrides = {
        "portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": 500},
                      "risk": {"max_position_weight_pct": 100, "halt_drawdown_pct": 15}},
    }
    result = run({(1, "AAA"): 1, (8, "AAA"): 1}, overrides, bars)
    assert result.final_state == "HALTED"
    sides = result.fills["side"].tolist()
    assert sides == ["BUY", "SELL"]  # the flatten; the later LONG signal is ignored
    assert result.ignored_signals.get("halted", 0) == 1
    equity = result.equity
    assert equity.iloc[-1] == pytest.approx(equity.iloc[-3], rel=1e-12)  # flat after the halt


def test_equity_is_marked_at_every_close() -> None:
    bars = panel()
    result = run({(0, "AAA"): 1}, bars=bars)
    entry = bars.open[1, 0]
    expected = 100_000 - 100 * entry - 1 + 100 * bars.close[1:, 0]
    np.testing.assert_allclose(result.equity.to_numpy()[1:], expected, rtol=1e-12)
    assert isinstance(result.equity.index, pd.DatetimeIndex)


def test_issue_4_one_session_orders_expire_on_an_outage_day_market_orders_wait() -> None:
    bars = panel()
    # MOC decided on bar 2 is live for session 3 only; an outage on bar 3 must expire it, not fill it later
    moc = build_backtest(
        AppConfig.model_validate({"strategies": {"momentum": {"order_type": "MOC"}},
                                  "portfolio": {"sizing": {"method": "fixed_shares"}}}),
        bars, [ScriptedStrategy({(2, "AAA"): 1})], CAL, outage_bars=frozenset({3}),
    ).run()
    assert moc.fills.empty
    mkt = run({(2, "AAA"): 1}, bars=bars)
    assert mkt.fills["date"].tolist() == [bars.dates[3]]
    waited = build_backtest(
        AppConfig.model_validate({"portfolio": {"sizing": {"method": "fixed_shares"}}}),
        bars, [ScriptedStrategy({(2, "AAA"): 1})], CAL, outage_bars=frozenset({3}),
    ).run()
    assert waited.fills["date"].tolist() == [bars.dates[4]]


def test_issue_4_sessions_before_1970_trade_normally() -> None:
    """Epoch-ns timestamps before 1970 are negative; no 'trade from' sentinel may swallow their signals."""
    from testkit.calendars import WeekdayCalendar

    weekdays = WeekdayCalendar()
    frame = make_bar_frame(CLOSES, calendar=CAL)
    frame.index = pd.DatetimeIndex(pd.bdate_range("1960-01-04", periods=len(frame)), name="date")
    bars = BarPanel.from_frames({"AAA": frame}, weekdays)
    assert int(bars.ts_event_ns[0]) < 0
    config = AppConfig.model_validate({"portfolio": {"sizing": {"method": "fixed_shares"}}})
    result = build_backtest(config, bars, [ScriptedStrategy({(2, "AAA"): 1})], weekdays).run()  # type: ignore[arg-type]
    assert result.fills["date"].tolist() == [bars.dates[3]]


def test_issue_4_buys_filling_on_the_same_bar_share_the_cash_of_a_cash_account() -> None:
    """Two buys decided together must not both spend the same settled cash (found by the 200-trial sweep)."""
    closes = [100.0, 100.0, 100.0, 108.0, 108.0, 108.0]
    frames = {}
    for symbol in ("AAA", "BBB"):
        frame = make_bar_frame(closes, calendar=CAL)
        frame.iloc[3, frame.columns.get_loc("open")] = 108.0  # gap up at the open the orders fill at
        frame.iloc[3, frame.columns.get_loc("high")] = 109.0
        frames[symbol] = frame
    bars = BarPanel.from_frames(frames, CAL)
    overrides = {
        "portfolio": {"initial_capital": 15_000, "sizing": {"method": "fixed_shares", "fixed_shares": 70},
                      "risk": {"max_position_weight_pct": 100, "max_gross_exposure_pct": 200}},
    }
    # each 70-share order fits the cash alone (7,000 + reserve), together they exceed it once the price gaps up
    result = run({(2, "AAA"): 1, (2, "BBB"): 1}, overrides, bars)
    spent = (result.fills["quantity"] * result.fills["price"] + result.fills["commission"]).sum()
    assert spent <= 15_000
    assert result.fills["quantity"].sum() < 140


def test_the_fills_frame_is_the_frame_pandas_builds_from_the_fills_values() -> None:
    """``fills_frame`` hands pandas typed arrays instead of lists: the frame (values and dtypes) must be the one
    pandas infers from the fill events' values, so fills.csv and every sweep metric read the same columns."""
    bars = panel(symbols=("AAA", "BBB"))
    config = AppConfig.model_validate({"portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": 100}}})
    backtest = build_backtest(config, bars, [ScriptedStrategy({(2, "AAA"): 1, (5, "AAA"): 2, (7, "BBB"): 1})], CAL)
    result = backtest.run()
    events = backtest.portfolio.fills
    assert len(events) == 3
    inferred = pd.DataFrame({
        "date": [bars.dates[3], bars.dates[6], bars.dates[8]],
        **{name: [getattr(f, name) for f in events] for name in ("ts_event_ns", "client_order_id", "exec_id",
                                                                 "strategy_id", "symbol")},
        "side": [f.side.value for f in events],
        **{name: [getattr(f, name) for f in events] for name in ("quantity", "price", "commission", "slippage_cost")},
        "order_type": [f.order_type.value for f in events],
    })  # fmt: skip
    pd.testing.assert_frame_equal(result.fills, inferred, check_exact=True)


def test_the_equity_and_exposure_series_are_those_pandas_builds_from_the_runs_values() -> None:
    """The result's series get numpy float64 arrays instead of lists: same values, dtype, index and name."""
    bars = panel(symbols=("AAA", "BBB"))
    backtest = build_backtest(AppConfig(), bars, [ScriptedStrategy({(2, "AAA"): 1, (5, "BBB"): 1})], CAL)
    result = backtest.run()
    pm = backtest.portfolio
    assert pm.gross_exposure_values[-1] > 0.0, "the run must hold something to test anything"
    for series, values in ((result.equity, pm.equity_values), (result.gross_exposure, pm.gross_exposure_values)):
        pd.testing.assert_series_equal(series, pd.Series(values, index=series.index, name=series.name),
                                       check_exact=True)  # fmt: skip


def test_a_result_does_not_keep_its_backtest_alive() -> None:
    """The stops frame is built when first read, from the stop orders alone: a research run that keeps many
    results (scenarios, A/B runs) must not keep every backtest's books, queue and venue in memory with them."""
    bars = panel()
    config = AppConfig.model_validate({"strategies": {"momentum": {"stop": "atr"}}})
    backtest = build_backtest(config, bars, [ScriptedStrategy({(2, "AAA"): 1})], CAL)
    ledger = weakref.ref(backtest.portfolio.ledger)
    result = backtest.run()
    del backtest
    gc.collect()
    assert ledger() is None, "the result still holds the backtest"
    assert list(result.stops.columns) == list(STOPS_COLUMNS)
