"""The order store: one record per order, appenders in order, and a working view that follows the books."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.errors import InvariantViolation
from core.events import OrderFailedEvent, OrderStatus, Side
from execution.order_state import BrokerLeg, ManagedOrder, OrderEventKind
from execution.order_store import CASH_BUFFER, OrderRecord, OrderStore
from testkit.fills import make_fill
from testkit.orders import make_order


class Recorder:
    def __init__(self, name: str, seen: list[tuple[str, OrderEventKind]]) -> None:
        self.name, self.seen = name, seen

    def append(self, record: OrderRecord) -> None:
        self.seen.append((self.name, record.kind))


def _failed(managed: ManagedOrder) -> OrderFailedEvent:
    order = managed.order
    return OrderFailedEvent(ts_event_ns=0, ts_init_ns=0, client_order_id=order.client_order_id,
                            strategy_id=order.strategy_id, symbol=order.symbol, status=OrderStatus.CANCELLED,
                            reason="test")  # fmt: skip


def test_refuses_a_reused_client_order_id_and_tracks_working_orders() -> None:
    store = OrderStore()
    order = make_order()
    managed = store.add(order)
    with pytest.raises(InvariantViolation, match="duplicate client_order_id"):
        store.add(order)
    assert store.has_working()
    managed.transition(OrderStatus.REJECTED)
    store.settle_terminal(managed)
    assert not store.has_working() and order.client_order_id in store


def test_record_reaches_every_appender_in_order() -> None:
    seen: list[tuple[str, OrderEventKind]] = []
    store = OrderStore((Recorder("journal", seen), Recorder("log", seen)))
    order = make_order()
    store.record(OrderRecord(OrderEventKind.INTENT, order, 0, 7, 0, OrderStatus.PENDING_SUBMIT))
    assert seen == [("journal", OrderEventKind.INTENT), ("log", OrderEventKind.INTENT)]


def test_a_buy_reserves_cash_until_the_books_have_its_fills() -> None:
    store = OrderStore()
    managed = store.add(make_order(symbol="AAA", quantity=100, reference_price=10.0))
    assert store.reserved_cash() == pytest.approx(100 * 10.0 * (1 + CASH_BUFFER))
    managed.apply_fill("e1", 40, 10.0)  # the executor applied it; the books have not seen it yet
    assert store.reserved_cash() == pytest.approx(1020.0) and store.is_working("AAA")
    coid = managed.order.client_order_id
    store.on_fill_booked(make_fill(quantity=40, price=10.0, commission=1.0, client_order_id=coid))
    assert store.reserved_cash() == pytest.approx(1020.0 - 401.0)
    assert store.working_quantity("AAA", Side.BUY, "test") == 60
    managed.apply_fill("e2", 60, 10.0)
    store.settle_terminal(managed)
    assert not store.has_working() and store.is_working("AAA")  # filled at the executor, not yet in the books
    store.on_fill_booked(make_fill(quantity=60, price=10.0, client_order_id=managed.order.client_order_id))
    assert not store.is_working("AAA") and store.reserved_cash() == 0.0 and store.working_symbols() == set()


def test_a_failure_booked_releases_the_rest_and_sells_reserve_nothing() -> None:
    store = OrderStore()
    buy = store.add(make_order(symbol="AAA", quantity=10, reference_price=5.0))
    sell = store.add(make_order(symbol="BBB", side=Side.SELL, quantity=10, reference_price=5.0))
    exit_buy = store.add(replace(make_order(symbol="CCC", quantity=10), reduce_only=True))
    assert store.reserved_cash() == pytest.approx(10 * 5.0 * (1 + CASH_BUFFER))
    assert store.working_symbols() == {"AAA", "BBB", "CCC"}
    store.on_failure_booked(_failed(buy))
    store.on_failure_booked(_failed(sell))
    store.on_failure_booked(_failed(exit_buy))
    assert store.reserved_cash() == 0.0 and not store.working_symbols()


def test_restored_working_orders_count_at_once_with_their_fills_booked() -> None:
    recovered = ManagedOrder(make_order(symbol="AAA", quantity=100, reference_price=10.0))
    recovered.transition(OrderStatus.SUBMITTED)
    recovered.apply_fill("e1", 30, 10.0, 1.0, 5)
    done = ManagedOrder(make_order(symbol="BBB", quantity=5))
    done.transition(OrderStatus.CANCELLED)
    store = OrderStore()
    adopted = store.restore(recovered, BrokerLeg(11, 0, -1))
    store.restore(done, BrokerLeg(12, 0, -1))
    assert store.by_ib_order_id(11) is adopted and adopted.fills[0].commission == 1.0
    assert store.working_symbols() == {"AAA"} and store.working_quantity("AAA", Side.BUY, "test") == 70
    assert store.reserved_cash() == pytest.approx(70 * 10.0 * (1 + CASH_BUFFER))
    assert [m.order.symbol for m in store.working()] == ["AAA"]
    with pytest.raises(InvariantViolation, match="restored twice"):
        store.restore(recovered, None)
