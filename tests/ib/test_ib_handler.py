"""IbMarketDataHandler: pure translation without a socket, then live against ibsim through a real EventQueue."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.event_queue import EventQueue
from core.events import MarketEvent
from core.ib_messages import (
    IbAccountValue,
    IbBar,
    IbCommissionReport,
    IbConnected,
    IbContractDetails,
    IbContractDetailsEnd,
    IbDataStale,
    IbDisconnected,
    IbError,
    IbExecDetails,
    IbExecDetailsEnd,
    IbHistoricalEnd,
    IbOpenOrder,
    IbOpenOrderEnd,
    IbOrderStatus,
    IbPosition,
    IbPositionEnd,
    IbTick,
)
from core.ib_wrapper import IbConnection
from data.bar_guard import BarGuard
from data.ib_handler import (
    DEFAULT_REQ_ID_BASE,
    BarAssembler,
    BarValues,
    IbMarketDataHandler,
    TickBarBuilder,
    bars_to_arrays,
    ib_bar_time_ns,
)
from ibsim import IbSim

NS = 1_000_000_000


# ------------------------------------------------------------------ pure translation
def test_ib_bar_time_forms() -> None:
    assert ib_bar_time_ns("1704205800") == 1704205800 * NS
    assert ib_bar_time_ns("20240102") == 1704153600 * NS
    assert ib_bar_time_ns("20240102  14:30:00") == (1704153600 + 14.5 * 3600) * NS
    with pytest.raises(ValueError):
        ib_bar_time_ns("yesterday")


def test_bars_to_arrays_nan_where_missing() -> None:
    o, h, lo, c, v = bars_to_arrays(("A", "B", "C"), {"A": BarValues(1, 2, 0.5, 1.5, 10), "C": None})
    assert o[0] == 1 and h[0] == 2 and lo[0] == 0.5 and c[0] == 1.5 and v[0] == 10
    assert all(math.isnan(x[i]) for x in (o, h, lo, c, v) for i in (1, 2))


def test_assembler_emits_when_complete_or_superseded() -> None:
    asm = BarAssembler(("A", "B"))
    bar = BarValues(1, 1, 1, 1, 1)
    assert asm.add("A", 5, bar) == []
    assert [ts for ts, _ in asm.add("B", 5, None)] == [5]  # a rejected bar still reports the symbol
    assert asm.add("A", 10, bar) == []
    assert [ts for ts, _ in asm.add("A", 15, bar)] == [10]  # B never came for 10: superseded
    assert asm.add("B", 10, bar) == []  # too late, dropped
    assert [ts for ts, _ in asm.forget("B")] == [15]


def test_tick_bar_builder_buckets_last_trades() -> None:
    tb = TickBarBuilder(5)
    assert tb.add(1 * NS, 10.0, None) is None
    assert tb.add(2 * NS, 12.0, None) is None
    assert tb.add(3 * NS, None, 100.0) is None
    assert tb.add(4 * NS, 9.0, None) is None
    ts, bar = tb.add(6 * NS, 11.0, None)
    assert ts == 0 and bar == BarValues(10.0, 12.0, 9.0, 9.0, 100.0)


# ------------------------------------------------------------------ handler without a socket
def _bar(req_offset: int, t: int, o: float, h: float, lo: float, c: float, v: float = 100.0) -> IbBar:
    return IbBar(
        ts_init_ns=0, client_id=1, req_id=DEFAULT_REQ_ID_BASE + req_offset, time=str(t),
        open=o, high=h, low=lo, close=c, volume=v, historical=False,
    )  # fmt: skip


def _offline_handler(symbols: tuple[str, ...]) -> tuple[IbMarketDataHandler, list[MarketEvent]]:
    events: list[MarketEvent] = []
    conn = IbConnection(IbConnectionConfig(), 1, lambda m: None, WallClock())  # never started: no socket
    return IbMarketDataHandler(symbols, conn, events.append, WallClock(), BarGuard()), events


def test_handler_publishes_one_event_per_timestamp_with_arrays() -> None:
    handler, events = _offline_handler(("AAA", "BBB"))
    handler.on_bar(_bar(0, 100, 10, 11, 9, 10.5))
    assert events == []
    handler.on_bar(_bar(1, 100, 20, 21, 19, 20.5, 7))
    (event,) = events
    assert event.ts_event_ns == 100 * NS and event.symbols == ("AAA", "BBB") and event.bar_index == 0
    np.testing.assert_array_equal(event.close, [10.5, 20.5])
    np.testing.assert_array_equal(event.volume, [100, 7])


def test_handler_never_publishes_a_guard_rejected_bar() -> None:
    handler, events = _offline_handler(("AAA", "BBB"))
    handler.on_bar(_bar(0, 100, 10, 9, 11, 10))  # high below low
    handler.on_bar(_bar(1, 100, 20, 21, 19, 20.5))
    handler.on_bar(_bar(0, 105, 10, 11, 9, 10))
    handler.on_bar(_bar(1, 100, 99, 99, 99, 99))  # duplicate timestamp for BBB
    handler.on_bar(_bar(1, 105, 20, 21, 19, 20))
    assert [e.ts_event_ns for e in events] == [100 * NS, 105 * NS]
    assert math.isnan(events[0].close[0]) and events[0].close[1] == 20.5
    assert not any(99.0 in e.close or e.high[0] == 9.0 for e in events)
    assert handler.rejected == 2 and [e.bar_index for e in events] == [0, 1]


def test_unknown_symbol_error_quarantines_it_and_stops_waiting() -> None:
    handler, events = _offline_handler(("AAA", "NOPE"))
    handler.on_bar(_bar(0, 100, 10, 11, 9, 10))
    handler.on_error(IbError(ts_init_ns=0, client_id=1, req_id=DEFAULT_REQ_ID_BASE + 1, code=200, message="no def"))
    assert len(events) == 1 and math.isnan(events[0].close[1])


# ------------------------------------------------------------------ live against ibsim
_IB_TYPES = (
    IbAccountValue, IbCommissionReport, IbContractDetails, IbContractDetailsEnd, IbExecDetails, IbExecDetailsEnd,
    IbHistoricalEnd, IbOpenOrder, IbOpenOrderEnd, IbOrderStatus, IbPosition, IbPositionEnd, IbTick,
)  # fmt: skip


class Live:
    """A dispatcher (EventQueue) wired like the engine: IB messages to the handler, everything recorded."""

    def __init__(self, make_connection: Callable[..., Any], symbols: tuple[str, ...], **conn_kwargs: Any) -> None:
        self.queue = EventQueue()
        self.seen: list[Any] = []
        self.conn, _ = make_connection(1, put=self.queue.put, **conn_kwargs)
        self.handler = IbMarketDataHandler(symbols, self.conn, self.queue.put, WallClock(), BarGuard())
        rec = self.seen.append
        h = self.handler
        routes: dict[type, list[Callable[[Any], None]]] = {t: [rec] for t in _IB_TYPES}
        routes |= {
            IbConnected: [rec, h.on_connected], IbDisconnected: [rec, h.on_disconnected], IbError: [rec, h.on_error],
            IbBar: [rec, h.on_bar], IbDataStale: [rec, h.on_data_stale], MarketEvent: [rec],
        }  # fmt: skip
        for kind, handlers in routes.items():
            self.queue.route(kind, handlers)

    def of(self, kind: type) -> list[Any]:
        self.queue.run_until_empty()
        return [m for m in self.seen if isinstance(m, kind)]


def test_live_bars_become_market_events_matching_the_ib_bars(make_connection, eventually) -> None:
    """Each event carries every symbol's IB bar of its timestamp. A cell is NaN only where the rule allows it:
    that symbol's bar had not arrived when a later timestamp's bar completed the event (a loaded machine
    delivers the three streams out of step), so it arrived after that bar or never."""
    live = Live(make_connection, ("AAPL", "MSFT", "SPY"))
    events = eventually(lambda: len(live.of(MarketEvent)) >= 3 and live.of(MarketEvent), 10.0)
    received = live.of(IbBar)
    bars = {(b.req_id - DEFAULT_REQ_ID_BASE, int(b.time) * NS): b for b in received}
    arrival = {id(b): k for k, b in enumerate(received)}
    for event in events[:3]:
        assert event.symbols == ("AAPL", "MSFT", "SPY")
        for i in range(3):
            bar = bars.get((i, event.ts_event_ns))
            if math.isnan(event.close[i]):
                completed_by = next(k for k, b in enumerate(received) if int(b.time) * NS > event.ts_event_ns)
                assert bar is None or arrival[id(bar)] > completed_by, (i, event.ts_event_ns)
                continue
            assert bar is not None, (i, event.ts_event_ns)
            assert (event.open[i], event.high[i], event.low[i], event.close[i], event.volume[i]) == (
                bar.open, bar.high, bar.low, bar.close, bar.volume,
            )  # fmt: skip
    assert [e.bar_index for e in events] == list(range(len(events)))


def test_nightly_restart_data_resumes_without_manual_steps(sim: IbSim, make_connection, eventually) -> None:
    live = Live(make_connection, ("AAPL", "MSFT"))
    eventually(lambda: live.of(MarketEvent), 10.0)
    sim.nightly_restart(0.5)
    eventually(lambda: live.of(IbDisconnected), 5.0)
    count = len(live.of(MarketEvent))
    eventually(lambda: [m for m in live.of(IbConnected) if m.reconnect], 8.0)
    eventually(lambda: len(live.of(MarketEvent)) > count + 2, 10.0)
    stamps = [e.ts_event_ns for e in live.of(MarketEvent)]
    assert stamps == sorted(set(stamps))


def test_silenced_market_data_is_detected_and_resubscribed(sim: IbSim, make_connection, eventually) -> None:
    live = Live(make_connection, ("AAPL",), data_stale_after_s=0.5)
    eventually(lambda: live.of(MarketEvent), 10.0)
    sim.silence_market_data(True)
    stale = eventually(lambda: live.of(IbDataStale), 5.0)[0]
    assert stale.silent_for_s > 0.5 and stale.subscriptions == 1
    count = len(live.of(MarketEvent))
    sim.silence_market_data(False)
    eventually(lambda: len(live.of(MarketEvent)) > count, 5.0)


def test_unknown_symbol_live_is_nan_and_others_flow(make_connection, eventually) -> None:
    live = Live(make_connection, ("AAPL", "NOPE"))
    eventually(lambda: [e for e in live.of(IbError) if e.code == 200], 5.0)
    events = eventually(lambda: len(live.of(MarketEvent)) >= 2 and live.of(MarketEvent), 10.0)
    assert all(math.isnan(e.close[1]) and e.close[0] > 0 for e in events)
