"""The engine's one broker sync, in process against a real ibsim: positions, open orders, executions, in order,
one ``Reconciled`` per completed sync, and a reconnect in the middle of it starts it again from the first step.

Real parts: ibsim's TCP server in this process, the real ``IbConnection`` (reader thread, reconnect), the real
executor with its journal. To cut the link at a known step the test holds ibsim's lock while the sync sends its
open-orders request, then drops every connection: ibsim cannot answer a request it has not been allowed to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from core.clock import WallClock
from core.config_models import CostsConfig, IbConnectionConfig
from core.event_queue import EventQueue
from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderStatus, OrderType, Side
from core.ib_messages import (
    IB_MESSAGE_TYPES,
    IbConnected,
    IbDisconnected,
    IbExecDetailsEnd,
    IbOpenOrderEnd,
    IbPosition,
    IbPositionEnd,
)
from core.ib_wrapper import IbConnection
from execution.commissions import build_commission_model
from execution.ib_executor import IbExecutor, IbOrderIds
from execution.ib_translate import execution_filter_for
from execution.order_journal import OrderJournal
from execution.order_log import OrderSubmissionLog
from ibsim import IbSim
from live.broker_sync import BrokerSync, Reconciled, SyncStep
from live.order_client import ConnectionOrderClient


class Stack:
    """Connection, executor and sync on one queue, dispatched by the test thread."""

    def __init__(self, sim: IbSim, root: Path) -> None:
        self.sim = sim
        self.clock = WallClock()
        self.queue = EventQueue()
        self.conn = IbConnection(IbConnectionConfig(port=sim.port, connect_timeout_s=3.0), 1, self.queue.put,
                                 self.clock, backoff_initial_s=0.1, backoff_max_s=0.3)  # fmt: skip
        self.journal = OrderJournal(root / "journal.jsonl", now_ns=self.clock.now_ns)
        self.order_log = OrderSubmissionLog(root / "orders.csv")
        ids = IbOrderIds(1)
        client = ConnectionOrderClient(self.conn)
        self.executor = IbExecutor(client, ids, self.journal, self.order_log, self.queue.put, self.clock,
                                   build_commission_model(CostsConfig()), account=sim.cfg.account)  # fmt: skip
        self.sync = BrokerSync(client, self.queue.put, self.clock, execution_filter=execution_filter_for,
                               finish_executor=self.executor.finish_reconciliation)  # fmt: skip
        self.reconciled: list[Reconciled] = []
        self.failed: list[OrderFailedEvent] = []
        self.cut_at_open_orders = False
        ex = self.executor.routes()
        table: dict[type, list[Callable[[Any], None]]] = {kind: [] for kind in IB_MESSAGE_TYPES}
        for kind, handler in ex.items():
            table.setdefault(kind, []).append(handler)
        table[IbConnected] = [ids.on_connected, ex[IbConnected], self.sync.on_connected]
        table[IbDisconnected] = [self.sync.on_disconnected]
        table[IbPosition] = [self.sync.on_position]
        table[IbPositionEnd] = [self._position_end]
        table[IbOpenOrderEnd] = [self.sync.on_open_order_end]
        table[IbExecDetailsEnd] = [self.sync.on_exec_details_end]
        table[Reconciled] = [self.reconciled.append]
        table[FillEvent] = [lambda _fill: None]
        table[OrderFailedEvent] = [self.failed.append]
        for kind, handlers in table.items():
            self.queue.route(kind, handlers)

    def _position_end(self, message: IbPositionEnd) -> None:
        if not self.cut_at_open_orders or self.sync.step is not SyncStep.POSITIONS:
            self.sync.on_position_end(message)
            return
        self.cut_at_open_orders = False
        with self.sim.lock:  # ibsim reads no request while we hold its lock: the open-orders request stays unread
            self.sync.on_position_end(message)
            assert self.sync.step is SyncStep.OPEN_ORDERS
            self.sim.drop_all_connections()

    def pump_until(self, cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            self.queue.run_until_empty()
            self.clock.fire_due()
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout_s} s: {what}")
            self.queue.wait(self.clock.seconds_until_next_timer(0.01))

    def close(self) -> None:
        self.conn.stop()
        self.journal.close()
        self.order_log.close()


@pytest.fixture
def stack(sim: IbSim, tmp_path: Path) -> Iterator[Stack]:
    made = Stack(sim, tmp_path)
    made.conn.start()
    try:
        yield made
    finally:
        made.close()


def test_first_sync_asks_in_order_and_puts_one_reconciled(stack: Stack) -> None:
    [first] = stack.pump_until(lambda: stack.reconciled, 10, "the first sync")
    assert (first.generation, first.reconnect) == (1, False) and stack.sync.step is SyncStep.IDLE
    assert first.positions == {}  # a fresh ibsim account


def test_a_reconnect_in_the_middle_of_the_sync_starts_it_again_and_adopts_the_working_order(stack: Stack) -> None:
    sim = stack.sim
    stack.pump_until(lambda: stack.reconciled, 10, "the first sync")
    limit = round(sim.market.quote("AAPL").bid * 0.5, 2)  # far from the market: it keeps working
    order = OrderEvent(ts_event_ns=1, ts_init_ns=1, client_order_id="sync.AAPL.1.BUY", strategy_id="test",
                       symbol="AAPL", side=Side.BUY, quantity=10, order_type=OrderType.LMT, limit_price=limit,
                       reference_price=limit)  # fmt: skip
    stack.executor.submit(order)  # as the portfolio does: synchronously, on the dispatcher thread
    stack.pump_until(lambda: stack.executor.store.get(order.client_order_id).status is OrderStatus.SUBMITTED, 10,
                     "the order works at ibsim")  # fmt: skip
    stack.cut_at_open_orders = True
    sim.drop_all_connections()  # reconnect 1: its sync is cut after positions, while open orders are asked
    stack.pump_until(lambda: len(stack.reconciled) >= 2, 20, "a sync completes after the reconnects")
    generations = [(r.generation, r.reconnect) for r in stack.reconciled]
    assert generations == [(1, False), (3, True)], generations  # the cut sync (2) never reported completion
    assert not stack.cut_at_open_orders  # the cut really happened
    managed = stack.executor.store.get(order.client_order_id)
    assert managed.status is OrderStatus.SUBMITTED and not stack.failed  # adopted, not failed, never re-sent
    with sim.lock:
        assert len(sim.book.working_orders(1)) == 1
