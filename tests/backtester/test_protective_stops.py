"""Protective stops in the backtest (issue 15): crafted bars through the real engine, fills and books checked.

The scripted strategy (``momentum``) goes LONG at a close, so the entry fills at the next open; its stop distance
is 5.00, so a 100.00 entry is protected at 95.00. Fixed 100 shares, no slippage, IB fixed commissions (1.00 a fill).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtester.engine import STOPS_COLUMNS, BacktestResult, build_backtest
from backtester.job import stop_counts
from core.config_models import AppConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from testkit.strategies import ScriptedStrategy

CAL = TradingCalendar()
FLAT = (100.0, 101.0, 99.0, 100.0)  # open, high, low, close of a quiet session
START_CASH = 100_000.0
COMMISSION = 1.0


def bars(rows: list[tuple[float, float, float, float]], volume: float = 1_000_000) -> BarPanel:
    dates = CAL.sessions("2024-01-02", CAL.last_session)[: len(rows)]
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=dates)
    frame["volume"] = float(volume)
    return BarPanel.from_frames({"AAA": frame}, CAL)


def run(panel: BarPanel, script: dict, *, stop: str = "atr", shares: int = 100, extra: dict | None = None,
        stop_distance: float = 5.0) -> BacktestResult:  # fmt: skip
    raw: dict = {
        "portfolio": {"sizing": {"method": "fixed_shares", "fixed_shares": shares}},
        "costs": {"slippage": {"half_spread_bps": 0, "impact_coefficient_bps": 0}},
        "pre_trade": {"max_adv_participation_pct": 100},
        "strategies": {"momentum": {"stop": stop}},
    }
    for section, values in (extra or {}).items():
        raw.setdefault(section, {}).update(values)
    config = AppConfig.model_validate(raw)
    return build_backtest(config, panel, [ScriptedStrategy(script, stop_distance=stop_distance)], CAL).run()


def test_a_stop_fills_at_its_price_when_the_low_reaches_it_and_the_later_exit_sends_nothing() -> None:
    panel = bars([FLAT, FLAT, FLAT, FLAT, (100.0, 100.5, 94.0, 96.0), (96.0, 97.0, 95.5, 96.5), FLAT])
    result = run(panel, {(2, "AAA"): 1, (5, "AAA"): 2})  # LONG at bar 2's close; EXIT at bar 5's close
    fills = result.fills
    assert fills[["side", "price", "order_type"]].values.tolist() == [["BUY", 100.0, "MKT"], ["SELL", 95.0, "STP"]]
    assert fills["date"].tolist() == [panel.dates[3], panel.dates[4]]
    assert result.ignored_signals.get("exit_while_flat") == 1  # flat after the stop: the exit sends nothing
    expected = START_CASH - 100 * 100.0 - COMMISSION + 100 * 95.0 - COMMISSION
    assert result.equity.iloc[-1] == pytest.approx(expected, abs=1e-9)
    assert result.equity.iloc[4] == pytest.approx(expected, abs=1e-9)  # flat from the stop's session on
    [stop] = result.stops.to_dict("records")
    assert list(result.stops.columns) == list(STOPS_COLUMNS)
    assert stop | {"placed_date": None, "closed_date": None} == {
        "symbol": "AAA", "strategy_id": "momentum", "side": "SELL", "quantity": 100, "stop_price": 95.0,
        "placed_date": None, "closed_date": None, "outcome": "filled", "fill_price": 95.0,
    }  # fmt: skip
    assert (stop["placed_date"], stop["closed_date"]) == (panel.dates[3], panel.dates[4])
    assert stop_counts(result.stops) == {"placed": 1, "filled": 1, "cancelled": 0}


def test_a_stop_fills_at_the_open_when_the_session_gaps_through_it() -> None:
    panel = bars([FLAT, FLAT, FLAT, FLAT, (90.0, 92.0, 89.0, 91.0), FLAT])
    result = run(panel, {(2, "AAA"): 1})
    assert result.fills[["side", "price", "order_type"]].values.tolist() == [["BUY", 100.0, "MKT"],
                                                                             ["SELL", 90.0, "STP"]]  # fmt: skip
    expected = START_CASH - 100 * 100.0 - COMMISSION + 100 * 90.0 - COMMISSION
    assert result.equity.iloc[-1] == pytest.approx(expected, abs=1e-9)
    assert result.stops["fill_price"].tolist() == [90.0]  # the open, 5.00 worse than the stop: the gap's cost


def test_a_short_is_protected_by_a_buy_stop_above_filled_when_the_high_reaches_it() -> None:
    panel = bars([FLAT, FLAT, FLAT, FLAT, (100.0, 106.0, 99.5, 104.0), FLAT])
    result = run(panel, {(2, "AAA"): -1}, extra={"portfolio": {"allow_short": True, "account_type": "margin"},
                                                      "pre_trade": {"allow_short_sales": True}})  # fmt: skip
    assert result.fills[["side", "price", "order_type"]].values.tolist() == [["SELL", 100.0, "MKT"],
                                                                             ["BUY", 105.0, "STP"]]  # fmt: skip
    assert result.stops["stop_price"].tolist() == [105.0]


def test_a_normal_exit_cancels_the_stop_first_so_the_two_never_both_fill() -> None:
    # the exit is decided at bar 4's close and sells at bar 5's open; bar 5 then falls through the stop
    panel = bars([FLAT, FLAT, FLAT, FLAT, FLAT, (100.0, 100.5, 80.0, 82.0), FLAT])
    result = run(panel, {(2, "AAA"): 1, (4, "AAA"): 2})
    fills = result.fills
    assert fills[["side", "quantity", "price", "order_type"]].values.tolist() == [
        ["BUY", 100, 100.0, "MKT"], ["SELL", 100, 100.0, "MKT"]]  # fmt: skip
    assert fills["date"].tolist() == [panel.dates[3], panel.dates[5]]  # the exit's timing is unchanged by the stop
    [stop] = result.stops.to_dict("records")
    assert (stop["outcome"], stop["closed_date"], math.isnan(stop["fill_price"])) == ("cancelled", panel.dates[4],
                                                                                       True)  # fmt: skip
    assert result.equity.iloc[-1] == pytest.approx(START_CASH - 2 * COMMISSION, abs=1e-9)
    assert stop_counts(result.stops) == {"placed": 1, "filled": 0, "cancelled": 1}


def test_a_stop_can_trigger_in_the_session_its_entry_filled_at_the_open() -> None:
    panel = bars([FLAT, FLAT, FLAT, (100.0, 100.5, 93.0, 94.0), FLAT])
    result = run(panel, {(2, "AAA"): 1})
    assert result.fills[["price", "order_type"]].values.tolist() == [[100.0, "MKT"], [95.0, "STP"]]
    assert result.fills["date"].tolist() == [panel.dates[3], panel.dates[3]]


def test_a_moc_entry_is_protected_from_the_next_session_on_not_by_its_own_earlier_low() -> None:
    panel = bars([FLAT, FLAT, FLAT, (100.0, 100.5, 90.0, 100.0), FLAT, (100.0, 100.5, 94.0, 96.0)])
    result = run(panel, {(2, "AAA"): 1}, extra={"strategies": {"momentum": {"stop": "atr", "order_type": "MOC"}}})
    assert result.fills[["price", "order_type"]].values.tolist() == [[100.0, "MOC"], [95.0, "STP"]]
    assert result.fills["date"].tolist() == [panel.dates[3], panel.dates[5]]  # the low of 90 came before the MOC


def test_stops_follow_partial_fills_and_add_up_to_the_filled_quantity() -> None:
    # 10 % of a 1,000-share session: the 150-share entry fills 100, then 50 in the next session
    panel = bars([FLAT] * 8 + [(100.0, 100.5, 94.0, 96.0)], volume=1_000)
    result = run(panel, {(2, "AAA"): 1}, shares=150, extra={"costs": {"slippage": {
        "half_spread_bps": 0, "impact_coefficient_bps": 0, "max_participation_pct": 10}}})  # fmt: skip
    entries = result.fills[result.fills["order_type"] == "MKT"]
    assert entries["quantity"].tolist() == [100, 50]
    assert entries["date"].tolist() == [panel.dates[3], panel.dates[4]]
    assert result.stops["quantity"].tolist() == [100, 50]
    assert result.stops["placed_date"].tolist() == [panel.dates[3], panel.dates[4]]
    stop_fills = result.fills[result.fills["order_type"] == "STP"]
    assert stop_fills["quantity"].sum() == 150 and set(stop_fills["price"]) == {95.0}
    assert result.equity.iloc[-1] == pytest.approx(START_CASH - 150 * 5.0 - 4 * COMMISSION, abs=1e-9)


def test_a_halt_cancels_the_stop_with_everything_else_and_flattens_once() -> None:
    crash = (100.0, 100.5, 96.0, 96.5)  # a drawdown past the halt limit at the close; the stop is not reached
    panel = bars([FLAT, FLAT, FLAT, FLAT, crash, (96.5, 97.0, 60.0, 61.0), FLAT])
    extra = {"portfolio": {"risk": {"drawdown_throttle_start_pct": 0.1, "reducing_drawdown_pct": 0.2,
                                    "halt_drawdown_pct": 0.3}}}  # fmt: skip
    result = run(panel, {(2, "AAA"): 1}, extra=extra)
    assert result.final_state == "HALTED"
    sides = result.fills[["side", "quantity", "order_type"]].values.tolist()
    assert sides == [["BUY", 100, "MKT"], ["SELL", 100, "MKT"]]  # the flatten, alone: the stop was cancelled
    assert result.stops["outcome"].tolist() == ["cancelled"]


def test_stop_none_is_the_default_and_places_no_stop() -> None:
    panel = bars([FLAT, FLAT, FLAT, FLAT, (90.0, 92.0, 89.0, 91.0), FLAT])
    default = run(panel, {(2, "AAA"): 1, (3, "AAA"): 2}, stop="none")
    config = AppConfig.model_validate({})
    assert config.strategies.momentum.stop == "none" and config.strategies.mean_reversion.stop == "none"
    assert default.stops.empty and list(default.stops.columns) == list(STOPS_COLUMNS)
    assert default.fills["order_type"].tolist() == ["MKT", "MKT"]
    assert default.fills["price"].tolist() == [100.0, 90.0]  # the exit, at the gap's open
    assert stop_counts(default.stops) == {"placed": 0, "filled": 0, "cancelled": 0}
    assert np.isfinite(default.equity.to_numpy()).all()
