"""``DailyBarFeed`` against a real ibsim over loopback: the warm-up history, then one decision bar per close.

The feed and the market data handler run on this test's thread through a real ``EventQueue`` (as in the engine);
ibsim replays fast (a session lasts about a second), so a close happens within the test's time bound.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.event_queue import EventQueue
from core.events import MarketEvent
from core.ib_messages import IbBar, IbConnected, IbDisconnected, IbError, IbHistoricalEnd
from core.ib_wrapper import IbConnection
from data.bar_guard import BarGuard
from data.calendar import TradingCalendar
from data.ib_daily_bars import DailyBarFeed, history_duration
from data.ib_handler import IbMarketDataHandler
from ibsim import IbSim, SimConfig

SYMBOLS = ("AAPL", "SPY")


def test_history_duration_covers_the_sessions_in_ib_units() -> None:
    assert history_duration(5) == "17 D"
    assert history_duration(250) == "360 D"
    assert history_duration(256) == "2 Y"  # more than 365 calendar days: years


@pytest.fixture
def fast_sim() -> IbSim:
    server = IbSim(SimConfig(speed=20_000.0, tick_interval_s=0.02, symbols=SYMBOLS))
    server.start()
    yield server
    server.stop()


def test_warmup_is_history_only_then_each_close_brings_exactly_its_bar(fast_sim: IbSim) -> None:
    clock, queue, calendar = WallClock(), EventQueue(), TradingCalendar()
    history: list[MarketEvent] = []
    closes: list[MarketEvent] = []
    conn = IbConnection(IbConnectionConfig(port=fast_sim.port, connect_timeout_s=3.0), 31, queue.put, clock)
    feed = DailyBarFeed(SYMBOLS, conn, calendar, clock, history_sessions=40, on_history=history.append,
                        on_close=closes.append)  # fmt: skip
    md = IbMarketDataHandler(SYMBOLS, conn, queue.put, clock, BarGuard(calendar))
    queue.route(IbConnected, [md.on_connected, feed.on_connected])
    queue.route(IbDisconnected, [md.on_disconnected, feed.on_disconnected])
    queue.route(IbBar, [md.on_bar, feed.on_bar])
    queue.route(IbHistoricalEnd, [feed.on_end])
    queue.route(IbError, [md.on_error, feed.on_error])
    queue.route(MarketEvent, [feed.on_intraday])
    conn.start()
    try:
        deadline = time.monotonic() + 30
        while len(closes) < 2 and time.monotonic() < deadline:
            queue.wait(0.05)
            queue.run_until_empty()
    finally:
        conn.stop()
    assert len(closes) >= 2, f"no two session closes within 30 s (history={len(history)})"

    # the warm-up: at least the requested sessions, in date order, none of them a decision
    dates = [pd.Timestamp(e.ts_event_ns, unit="ns", tz="UTC").tz_convert("America/New_York").normalize()
             .tz_localize(None) for e in history + closes]  # fmt: skip
    assert len(history) >= 40
    assert dates == sorted(set(dates)), "each session handed on once, in order"
    # each decision is the session right after the previous bar, stamped with its close, equal to ibsim's bar
    for event, day, previous in zip(closes, dates[len(history):], dates[len(history) - 1:], strict=False):
        assert day == calendar.next_session(previous)
        assert event.ts_event_ns == int(calendar.session_close_ns(pd.DatetimeIndex([day]))[0])
        for j, symbol in enumerate(SYMBOLS):
            bar = fast_sim.market.bar(symbol, int(fast_sim.market.sessions.get_loc(day)))
            assert bar is not None
            np.testing.assert_array_equal(
                [event.open[j], event.high[j], event.low[j], event.close[j], event.volume[j]],
                [bar["open"], bar["high"], bar["low"], bar["close"], bar["volume"]],
            )
    assert feed.decisions == len(closes)
