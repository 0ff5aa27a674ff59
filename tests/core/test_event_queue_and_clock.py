"""The dispatcher delivers in order on one thread while other threads put; the clock never goes backwards."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest

from core.clock import SimClock
from core.event_queue import EventQueue
from core.events import FillEvent, MarketEvent, Side


def market(t: int) -> MarketEvent:
    row = np.array([1.0])
    return MarketEvent(ts_event_ns=t, ts_init_ns=t, bar_index=t, symbols=("A",), open=row, high=row, low=row,
                       close=row, volume=row)


def test_routes_in_table_order_and_handler_puts_are_dispatched_after() -> None:
    seen: list[str] = []
    queue = EventQueue()

    def first(event: MarketEvent) -> None:
        seen.append(f"first:{event.bar_index}")
        if event.bar_index == 0:
            queue.put(market(1))

    queue.route(MarketEvent, [first, lambda e: seen.append(f"second:{e.bar_index}")])
    queue.put(market(0))
    assert queue.run_until_empty() == 2
    assert seen == ["first:0", "second:0", "first:1", "second:1"]


def test_unrouted_event_type_is_an_error() -> None:
    queue = EventQueue()
    queue.put(market(0))
    with pytest.raises(TypeError, match="no route"):
        queue.run_until_empty()


def test_puts_from_many_threads_lose_nothing() -> None:
    received: list[int] = []
    queue = EventQueue({MarketEvent: [lambda e: received.append(e.bar_index)]})

    def producer(offset: int) -> None:
        for i in range(2000):
            queue.put(market(offset + i))

    threads = [threading.Thread(target=producer, args=(k * 10_000,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    queue.run_until_empty()
    assert sorted(received) == sorted(k * 10_000 + i for k in range(4) for i in range(2000))
    for k in range(4):  # each producer's events stay in its own order
        mine = [r for r in received if k * 10_000 <= r < (k + 1) * 10_000]
        assert mine == sorted(mine)


def test_wait_wakes_on_put_from_another_thread() -> None:
    queue = EventQueue({MarketEvent: [lambda e: None]})
    timer = threading.Timer(0.05, lambda: queue.put(market(0)))
    timer.start()
    assert queue.wait(5.0) is True
    timer.join()


def test_events_are_immutable_and_slotted() -> None:
    fill = FillEvent(ts_event_ns=1, ts_init_ns=2, client_order_id="c", broker_order_id=None, exec_id="e",
                     strategy_id="s", symbol="A", side=Side.BUY, quantity=1, price=1.0, commission=0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fill.price = 2.0  # type: ignore[misc]
    assert not hasattr(fill, "__dict__")
    with pytest.raises(TypeError):
        FillEvent(1, 2, "c", None, "e", "s", "A", Side.BUY, 1, 1.0, 0.0)  # type: ignore[misc]  # kw_only


def test_sim_clock_fires_timers_in_order_at_their_time_and_never_goes_back() -> None:
    clock = SimClock(0)
    fired: list[tuple[int, int]] = []
    clock.call_at(30, lambda ts: fired.append((ts, clock.now_ns())))
    clock.call_at(10, lambda ts: fired.append((ts, clock.now_ns())))
    clock.advance_to(20)
    assert fired == [(10, 10)] and clock.now_ns() == 20
    clock.advance_to(40)
    assert fired == [(10, 10), (30, 30)] and clock.now_ns() == 40
    with pytest.raises(ValueError, match="backwards"):
        clock.advance_to(39)
