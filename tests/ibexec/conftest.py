"""Fixtures for the IB executor: a running ibsim, a tiny real-``ibapi`` connection and a pumped dispatcher.

``LoopbackConnection`` is the unmodified EClient/EWrapper pair whose callbacks only build ``core.ib_messages``
objects and ``put`` them on an ``EventQueue`` (what ``core/ib_wrapper.py`` will do, minus reconnects). It counts
``placeOrder`` calls and, through ``on_place``, lets a test look at the disk at the moment an order is sent.

The test thread *is* the dispatcher thread: ``Harness.pump_until`` runs the queue and the clock's timers until
a condition holds (time-bounded), so the executor is only ever touched from one thread, as in the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from core.clock import WallClock
from core.event_queue import EventQueue
from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderType, Side
from core.ib_messages import (
    IbCommissionReport,
    IbConnected,
    IbDisconnected,
    IbError,
    IbExecDetails,
    IbExecDetailsEnd,
    IbOpenOrder,
    IbOpenOrderEnd,
    IbOrderStatus,
    IbPosition,
    IbPositionEnd,
)
from execution.commissions import NoCommission
from execution.ib_executor import AlgoChooser, IbExecutor, IbOrderIds
from execution.ib_translate import execution_filter_for
from execution.order_journal import OrderJournal
from execution.order_log import OrderSubmissionLog
from ibsim import IbSim, SimConfig
from live.broker_sync import BrokerSync, Reconciled

SESSION_S = 6.5 * 3600


class LoopbackConnection(EWrapper, EClient):
    """Real ibapi client; callbacks translate to ib_messages and put them (reader/run thread -> queue)."""

    def __init__(self, put: Callable[[object], None], now_ns: Callable[[], int], client_id: int) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self._put = put
        self._now_ns = now_ns
        self._client_id = client_id
        self._accounts: tuple[str, ...] = ()
        self._connected_once = False
        self.place_calls: list[int] = []
        self.on_place: Callable[[int], None] | None = None
        self.thread: threading.Thread | None = None

    def _base(self) -> dict[str, int]:
        return {"ts_init_ns": self._now_ns(), "client_id": self._client_id}

    def start(self, port: int) -> LoopbackConnection:
        self.connect("127.0.0.1", port, self._client_id)
        self.thread = threading.Thread(target=self.run, name=f"ibapi-run-{self._client_id}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.isConnected():
            self.disconnect()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def placeOrder(self, orderId: int, contract: Any, order: Any) -> None:  # noqa: N802, N803
        self.place_calls.append(orderId)
        if self.on_place is not None:
            self.on_place(orderId)
        super().placeOrder(orderId, contract, order)

    # -- EWrapper: translate and put, nothing else --------------------------------------------------------
    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        self._accounts = tuple(a for a in accountsList.split(",") if a)

    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803
        self._put(IbConnected(**self._base(), next_valid_id=orderId, accounts=self._accounts,
                              reconnect=self._connected_once))
        self._connected_once = True

    def connectionClosed(self) -> None:  # noqa: N802
        self._put(IbDisconnected(**self._base(), reason="connection closed"))

    def error(self, reqId: int, errorCode: int, errorString: str) -> None:  # noqa: N803
        self._put(IbError(**self._base(), req_id=reqId, code=errorCode, message=errorString))

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:  # noqa: N802, N803
        self._put(IbOpenOrder(**self._base(), order_id=orderId, contract=contract, order=order,
                              order_state=orderState))

    def openOrderEnd(self) -> None:  # noqa: N802
        self._put(IbOpenOrderEnd(**self._base()))

    def orderStatus(self, orderId: int, status: str, filled: float, remaining: float,  # noqa: N802, N803
                    avgFillPrice: float, permId: int, parentId: int, lastFillPrice: float,  # noqa: N803
                    clientId: int, whyHeld: str, mktCapPrice: float) -> None:  # noqa: N803
        self._put(IbOrderStatus(**self._base(), order_id=orderId, status=status, filled=float(filled),
                                remaining=float(remaining), avg_fill_price=avgFillPrice, perm_id=permId,
                                last_fill_price=lastFillPrice, why_held=whyHeld))

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:  # noqa: N802, N803
        self._put(IbExecDetails(**self._base(), req_id=reqId, contract=contract, execution=execution))

    def execDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self._put(IbExecDetailsEnd(**self._base(), req_id=reqId))

    def commissionReport(self, commissionReport: Any) -> None:  # noqa: N802, N803
        self._put(IbCommissionReport(**self._base(), report=commissionReport))

    def position(self, account: str, contract: Any, position: Any, avgCost: float) -> None:  # noqa: N803
        self._put(IbPosition(**self._base(), account=account, symbol=contract.symbol, contract=contract,
                             position=float(position), avg_cost=avgCost))  # fmt: skip

    def positionEnd(self) -> None:  # noqa: N802
        self._put(IbPositionEnd(**self._base()))


@dataclass
class Harness:
    """One engine-side stack: queue, clock, connection, journal, order log and executor."""

    queue: EventQueue
    clock: WallClock
    conn: LoopbackConnection
    journal: OrderJournal
    order_log: OrderSubmissionLog
    executor: IbExecutor
    ids: IbOrderIds
    fills: list[FillEvent] = field(default_factory=list)
    failed: list[OrderFailedEvent] = field(default_factory=list)
    connected: list[IbConnected] = field(default_factory=list)
    reconciled: list[Reconciled] = field(default_factory=list)
    halts: list[str] = field(default_factory=list)
    closed: bool = False

    def pump(self) -> None:
        self.queue.run_until_empty()
        self.clock.fire_due()
        self.queue.run_until_empty()

    def pump_until(self, cond: Callable[[], Any], timeout_s: float = 10.0) -> Any:
        """Dispatch on this (the dispatcher) thread until ``cond`` is truthy; fail the test after the timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout_s} s")
            self.queue.wait(self.clock.seconds_until_next_timer(0.01))

    def pump_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            self.queue.wait(0.005)

    def submit(self, order: OrderEvent) -> None:
        self.executor.submit(order)  # as the portfolio does: synchronously, on the dispatcher thread
        self.pump()

    def fills_of(self, coid: str) -> list[FillEvent]:
        return [f for f in self.fills if f.client_order_id == coid]

    def failed_of(self, coid: str) -> list[OrderFailedEvent]:
        return [f for f in self.failed if f.client_order_id == coid]

    def close(self) -> None:
        """Disconnect and close the files (idempotent: tests close early to simulate a dying engine)."""
        if self.closed:
            return
        self.closed = True
        self.conn.stop()
        self.journal.close()
        self.order_log.close()


@pytest.fixture
def sim() -> Iterator[IbSim]:
    server = IbSim(SimConfig(speed=60.0, tick_interval_s=0.02))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """``make_harness(sim, client_id=1, algo_for=None, max_messages_per_s=45.0)``: connected and reconciled (the
    engine's own ``live.broker_sync``: positions, open orders, executions, then ``Reconciled``).

    Every harness shares ``tmp_path``'s journal and order log, so a second one is a restarted engine.
    """
    made: list[Harness] = []

    def make(sim: IbSim, client_id: int = 1, algo_for: AlgoChooser | None = None,
             max_messages_per_s: float = 45.0, commission_timeout_s: float = 30.0) -> Harness:
        clock = WallClock()
        queue = EventQueue()
        journal = OrderJournal(tmp_path / "state" / "order_journal.jsonl", now_ns=clock.now_ns)
        order_log = OrderSubmissionLog(tmp_path / "logs" / "order_submissions.csv")
        conn = LoopbackConnection(queue.put, clock.now_ns, client_id)
        ids = IbOrderIds(journal.state.max_ib_order_id + 1)
        halts: list[str] = []
        executor = IbExecutor(conn, ids, journal, order_log, queue.put, clock, NoCommission(),
                              account=sim.cfg.account, algo_for=algo_for, max_messages_per_s=max_messages_per_s,
                              commission_timeout_s=commission_timeout_s, on_halt=halts.append)
        executor.recover(journal.state)
        h = Harness(queue, clock, conn, journal, order_log, executor, ids, halts=halts)
        sync = BrokerSync(conn, queue.put, clock, execution_filter=execution_filter_for,
                          finish_executor=executor.finish_reconciliation)  # fmt: skip
        routes: dict[type, Any] = dict(executor.routes())
        routes[IbConnected] = [ids.on_connected, h.connected.append, routes[IbConnected], sync.on_connected]
        routes[FillEvent] = h.fills.append
        routes[OrderFailedEvent] = h.failed.append
        routes[IbDisconnected] = sync.on_disconnected
        routes[IbPosition] = sync.on_position
        routes[IbPositionEnd] = sync.on_position_end
        routes[IbOpenOrderEnd] = sync.on_open_order_end
        routes[IbExecDetailsEnd] = sync.on_exec_details_end
        routes[Reconciled] = h.reconciled.append
        for kind, handlers in routes.items():
            queue.route(kind, handlers if isinstance(handlers, list) else [handlers])
        made.append(h)
        conn.start(sim.port)
        h.pump_until(lambda: h.reconciled, 5.0)
        return h

    yield make
    for h in made:
        h.close()


_SEQ = iter(range(1, 1_000_000))


def make_order(symbol: str = "AAPL", quantity: int = 100, order_type: OrderType = OrderType.MKT,
               side: Side = Side.BUY, limit_price: float | None = None, coid: str | None = None) -> OrderEvent:
    """An OrderEvent with a fresh deterministic client order id (unless ``coid`` is given)."""
    return OrderEvent(
        ts_event_ns=1, ts_init_ns=1, client_order_id=coid or f"test.{symbol}.{next(_SEQ)}.{side.value}",
        strategy_id="test", symbol=symbol, side=side, quantity=quantity, order_type=order_type,
        limit_price=limit_price, reference_price=limit_price or 100.0,
    )


@pytest.fixture(name="make_order")
def make_order_fixture() -> Callable[..., OrderEvent]:
    return make_order
