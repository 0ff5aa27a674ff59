"""The IB executor over loopback: the real ``ibapi`` client against ibsim, the real journal and order log.

Every wait is bounded (``Harness.pump_until``); every fixture disconnects and stops ibsim at teardown.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from core.events import OrderEvent, OrderStatus, OrderType, Side
from ibsim import IbSim

SESSION_S = 6.5 * 3600


def journal_records(h) -> list[dict]:
    return [json.loads(line) for line in h.journal.path.read_text().splitlines()]


def log_rows(h) -> list[dict[str, str]]:
    with Path(h.order_log.path).open(newline="") as f:
        return list(csv.DictReader(f))


def rows_of(h, coid: str) -> list[dict[str, str]]:
    return [r for r in log_rows(h) if r["client_order_id"] == coid]


def orders_at_sim(sim: IbSim, client_id: int = 1) -> list:
    with sim.lock:
        return [o for (cid, _), o in sim.book.orders.items() if cid == client_id]


def assert_one_fill_per_exec(h, coid: str) -> None:
    fills = h.fills_of(coid)
    assert len({f.exec_id for f in fills}) == len(fills)
    journal_fills = [r for r in journal_records(h) if r["kind"] == "fill" and r["client_order_id"] == coid]
    assert sorted(r["exec_id"] for r in journal_fills) == sorted(f.exec_id for f in fills)


def test_market_order_fills_once_with_journal_and_log_rows(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    order = make_order("AAPL", 100)
    h.submit(order)
    h.pump_until(lambda: h.executor.store.get(order.client_order_id).status is OrderStatus.FILLED)
    [fill] = h.fills_of(order.client_order_id)
    assert (fill.quantity, fill.side, fill.symbol) == (100, Side.BUY, "AAPL")
    assert fill.broker_order_id == h.conn.place_calls[0]
    assert fill.commission == orders_at_sim(sim)[0].commission_paid  # IB's report, not the estimate
    kinds = [r["kind"] for r in journal_records(h) if r["client_order_id"] == order.client_order_id]
    assert kinds == ["intent", "ack", "fill"]
    events = [r["event"] for r in rows_of(h, order.client_order_id)]
    assert events == ["submit", "ack", "fill"]
    assert not h.executor.store.has_working() and not h.failed


def test_marketable_limit_fills(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    quote = sim.market.quote("MSFT")
    order = make_order("MSFT", 10, OrderType.LMT, Side.SELL, limit_price=round(quote.bid * 0.98, 2))
    h.submit(order)
    h.pump_until(lambda: h.fills_of(order.client_order_id))
    fill = h.fills_of(order.client_order_id)[0]
    assert fill.side is Side.SELL and fill.price >= order.limit_price and fill.order_type is OrderType.LMT


def test_moc_and_loc_fill_at_the_close(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    close = sim.market.close_price("SPY", 0)
    moc = make_order("SPY", 20, OrderType.MOC)
    loc = make_order("SPY", 30, OrderType.LOC, limit_price=round(close * 1.5, 2))
    h.submit(moc)
    h.submit(loc)
    book = h.executor.store
    h.pump_until(lambda: all(book.get(o.client_order_id).status is OrderStatus.SUBMITTED for o in (moc, loc)))
    assert not h.fills
    sim.advance_market_s(SESSION_S)
    h.pump_until(lambda: not book.has_working())
    assert {f.price for f in h.fills} == {close}
    assert {f.client_order_id: f.quantity for f in h.fills} == {moc.client_order_id: 20, loc.client_order_id: 30}


def test_adaptive_algo_order_fills(sim, make_harness, make_order) -> None:
    def algo_for(order: OrderEvent) -> tuple[str | None, dict[str, str]]:
        return ("Adaptive", {"adaptivePriority": "Urgent"})

    h = make_harness(sim, algo_for=algo_for)
    quote = sim.market.quote("QQQ")
    order = make_order("QQQ", 50, OrderType.LMT, limit_price=round(quote.ask * 1.01, 2))
    h.submit(order)
    h.pump_until(lambda: h.fills_of(order.client_order_id))
    assert h.executor.store.get(order.client_order_id).status is OrderStatus.FILLED
    assert orders_at_sim(sim)[0].algo_strategy == "Adaptive"


def test_twap_child_fills_each_become_one_fill_event(sim, make_harness, make_order) -> None:
    def algo_for(order: OrderEvent) -> tuple[str | None, dict[str, str]]:
        return ("Twap", {"strategyType": "Marketable", "allowPastEndTime": "1"})

    h = make_harness(sim, algo_for=algo_for)
    order = make_order("IWM", 103)
    coid = order.client_order_id
    h.submit(order)
    h.pump_until(lambda: len(h.fills_of(coid)) == 1)
    for _ in range(sim.cfg.twap_slices):
        sim.advance_market_s(sim.cfg.twap_window_s / sim.cfg.twap_slices)
    h.pump_until(lambda: h.executor.store.get(coid).status is OrderStatus.FILLED)
    fills = h.fills_of(coid)
    assert len(fills) == sim.cfg.twap_slices
    assert sum(f.quantity for f in fills) == 103
    assert_one_fill_per_exec(h, coid)
    rows = [r for r in rows_of(h, coid) if r["event"] in ("partial", "fill")]
    assert [r["event"] for r in rows] == ["partial"] * (len(fills) - 1) + ["fill"]
    cumulative = [int(r["filled_quantity"]) for r in rows]
    assert cumulative == sorted(cumulative) and cumulative[-1] == 103


def test_partial_fill_then_cancel_keeps_the_fill(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    sim.partial_fill_next_order(0.5)
    order = make_order("GLD", 100)
    coid = order.client_order_id
    h.submit(order)
    h.pump_until(lambda: h.executor.store.get(coid).status is OrderStatus.PARTIALLY_FILLED)
    h.executor.cancel(coid, "test cancel")
    [failed] = h.pump_until(lambda: h.failed_of(coid))
    assert (failed.status, failed.filled_quantity, failed.code) == (OrderStatus.CANCELLED, 50, 202)
    assert sum(f.quantity for f in h.fills_of(coid)) == 50
    kinds = [r["kind"] for r in journal_records(h) if r["client_order_id"] == coid]
    assert kinds == ["intent", "ack", "fill", "cancel_requested", "cancelled"]
    assert [r["event"] for r in rows_of(h, coid)] == ["submit", "ack", "partial", "cancel"]


def test_global_cancel_cancels_every_working_order(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    orders = [make_order(s, 10, OrderType.LMT, limit_price=round(sim.market.quote(s).bid * 0.5, 2))
              for s in ("AAPL", "TLT")]
    for order in orders:
        h.submit(order)
    book = h.executor.store
    h.pump_until(lambda: all(book.get(o.client_order_id).status is OrderStatus.SUBMITTED for o in orders))
    h.executor.cancel_all("test halt")
    h.pump_until(lambda: not book.has_working())
    assert {f.client_order_id: f.status for f in h.failed} == {o.client_order_id: OrderStatus.CANCELLED for o in orders}
    assert all(o.status == "Cancelled" for o in orders_at_sim(sim))


def test_rejection_becomes_order_failed_with_ib_code(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    sim.reject_next_order("not today")
    order = make_order("XLF", 10)
    h.submit(order)
    [failed] = h.pump_until(lambda: h.failed_of(order.client_order_id))
    assert (failed.status, failed.code) == (OrderStatus.REJECTED, 201)
    assert "not today" in failed.reason
    h.pump_for(0.2)  # the Inactive status that follows changes nothing
    assert len(h.failed_of(order.client_order_id)) == 1
    [row] = [r for r in rows_of(h, order.client_order_id) if r["event"] == "reject"]
    assert row["reason"].startswith("[201]") and row["status"] == "REJECTED"
    assert journal_records(h)[-1]["kind"] == "rejected"


def test_order_translation_failure_is_rejected_before_journaling(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    order = make_order("AAPL", 10, OrderType.LMT, limit_price=None)
    h.submit(order)
    [failed] = h.pump_until(lambda: h.failed_of(order.client_order_id))
    assert failed.status is OrderStatus.REJECTED and not h.conn.place_calls
    assert not h.journal.path.exists() or not h.journal.path.read_text()


def test_duplicate_exec_details_give_one_fill(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    sim.duplicate_next_exec_details()
    order = make_order("AAPL", 100)
    h.submit(order)
    h.pump_until(lambda: h.executor.store.get(order.client_order_id).status is OrderStatus.FILLED)
    h.pump_for(0.3)
    assert len(h.fills_of(order.client_order_id)) == 1
    assert_one_fill_per_exec(h, order.client_order_id)


def test_journal_and_order_log_are_on_disk_before_the_order_leaves(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    order = make_order("MSFT", 10)
    coid = order.client_order_id
    seen_at_send: dict[str, str] = {}

    def look_at_disk(ib_order_id: int) -> None:  # called by the connection just before the bytes go out
        seen_at_send["journal"] = h.journal.path.read_text()
        seen_at_send["log"] = Path(h.order_log.path).read_text()

    h.conn.on_place = look_at_disk
    sim.withhold_order_acks(True)
    h.submit(order)
    h.pump_until(lambda: sim.faults.held_orders)  # ibsim has received the order and answered nothing
    intent = json.loads(seen_at_send["journal"].splitlines()[-1])
    assert (intent["kind"], intent["client_order_id"]) == ("intent", coid)
    assert f",submit,{coid}," in seen_at_send["log"]
    assert h.executor.store.get(coid).status is OrderStatus.PENDING_SUBMIT  # no ack yet
    sim.withhold_order_acks(False)
    h.pump_until(lambda: h.fills_of(coid))


def test_submitting_the_same_order_twice_sends_it_once(sim, make_harness, make_order) -> None:
    h = make_harness(sim)
    order = make_order("SPY", 10)
    h.submit(order)
    h.submit(order)
    h.pump_until(lambda: h.fills_of(order.client_order_id))
    h.pump_for(0.2)
    assert len(h.conn.place_calls) == 1 and len(orders_at_sim(sim)) == 1
    assert len(h.fills_of(order.client_order_id)) == 1


def test_restart_adopts_the_working_order_and_sends_nothing(sim, make_harness, make_order) -> None:
    first = make_harness(sim)
    order = make_order("AAPL", 10, OrderType.LMT, limit_price=round(sim.market.quote("AAPL").bid * 0.5, 2))
    coid = order.client_order_id
    first.submit(order)
    first.pump_until(lambda: first.executor.store.get(coid).status is OrderStatus.SUBMITTED)
    first.close()  # the engine dies; the order keeps working at the broker
    first.pump_until(lambda: 1 not in sim.gateway.sessions, 5.0)  # ibsim has let the client id go

    second = make_harness(sim)  # same journal and order log, same client id: a restarted engine
    second.executor.submit(order)  # the strategy repeats its decision after the restart
    second.pump_for(0.5)  # reconciliation: open orders and executions arrive and end
    managed = second.executor.store.get(coid)
    assert managed.status is OrderStatus.SUBMITTED and not managed.is_terminal
    assert second.conn.place_calls == [] and len(orders_at_sim(sim)) == 1
    second.executor.cancel(coid, "adopted order can be managed")
    [failed] = second.pump_until(lambda: second.failed_of(coid))
    assert failed.status is OrderStatus.CANCELLED and failed.code == 202


def test_restart_picks_up_a_fill_that_happened_while_down(sim, make_harness, make_order) -> None:
    first = make_harness(sim)
    close = sim.market.close_price("TLT", 0)
    order = make_order("TLT", 15, OrderType.MOC)
    coid = order.client_order_id
    first.submit(order)
    first.pump_until(lambda: first.executor.store.get(coid).status is OrderStatus.SUBMITTED)
    first.close()
    first.pump_until(lambda: 1 not in sim.gateway.sessions, 5.0)
    sim.advance_market_s(SESSION_S)  # fills at the close while nobody is connected

    second = make_harness(sim)
    second.pump_until(lambda: second.fills_of(coid))
    second.pump_for(0.3)
    [fill] = second.fills_of(coid)
    assert (fill.quantity, fill.price) == (15, close)
    assert second.executor.store.get(coid).status is OrderStatus.FILLED and not second.conn.place_calls


def test_pacer_queues_over_the_rate_and_drains_by_timer(sim, make_harness, make_order) -> None:
    h = make_harness(sim, max_messages_per_s=3)  # reqOpenOrders + reqExecutions used 2 of the 3
    h.pump_for(1.05)  # let the reconciliation requests leave the window
    orders = [make_order("AAPL", 1) for _ in range(5)]
    for order in orders:
        h.executor.submit(order)
    h.pump()
    assert len(h.conn.place_calls) == 3  # the rest wait in the outbox; the dispatcher never sleeps
    h.pump_until(lambda: len(h.conn.place_calls) == 5, 5.0)
    h.pump_until(lambda: all(h.fills_of(o.client_order_id) for o in orders), 5.0)


def test_cancel_of_a_queued_order_never_sends_it(sim, make_harness, make_order) -> None:
    h = make_harness(sim, max_messages_per_s=2)
    h.pump_for(1.05)
    first, second, third = (make_order("MSFT", 1) for _ in range(3))
    for order in (first, second, third):
        h.executor.submit(order)
    h.pump()
    h.executor.cancel(third.client_order_id, "changed my mind")
    h.pump()
    [failed] = h.failed_of(third.client_order_id)
    assert failed.status is OrderStatus.CANCELLED
    h.pump_for(1.2)
    assert len(h.conn.place_calls) == 2
