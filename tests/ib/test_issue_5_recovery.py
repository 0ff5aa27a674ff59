"""Issue 5, end to end: the real ``IbConnection`` + ``IbExecutor`` + ``Ledger`` against an in-process ibsim.

Everything is real except the broker: the unmodified ``ibapi`` client over loopback (through
``core.ib_wrapper.IbConnection`` with its reconnect supervisor), the ``EventQueue`` dispatching on the test
thread, the fsynced order journal and the order log in ``tmp_path``. ``Dispatch.eventually`` is the engine loop
of these tests: it runs every queue and the clocks' timers until a condition holds, failing after a bounded
time, so the executor and the ledger are only ever touched by one thread, as in the engine.

Scenarios: a fill that happens while the engine is disconnected is recovered exactly once (also after a second
reconnect that replays reqExecutions again); a restarted engine adopts its working order without sending it
again; the engine and the monitor (two client ids) are connected at once and the monitor sees the engine's fill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import CostsConfig, IbConnectionConfig
from core.event_queue import EventQueue
from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderStatus, OrderType, Side
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
from execution.commissions import build_commission_model
from execution.ib_executor import IbExecutor, IbOrderIds
from execution.ib_translate import execution_filter_for
from execution.order_journal import OrderJournal
from execution.order_log import OrderSubmissionLog
from ibsim import IbSim
from ibsim.config import DEFAULT_SYMBOLS
from ibsim.requests import PlaceOrder
from live.broker_sync import SYNC_EXEC_REQ_ID, BrokerSync, Reconciled
from live.order_client import ConnectionOrderClient
from portfolio.ledger import Ledger

SESSION_S = 6.5 * 3600  # one regular session of sim time: advancing by it runs that session's closing auction
SETTLEMENT_NS = 2 * 86_400 * NS_PER_SECOND
MONITOR_SUMMARY_REQ_ID = 9_001
IB_MESSAGE_TYPES: tuple[type, ...] = (
    IbConnected, IbDisconnected, IbError, IbOpenOrder, IbOpenOrderEnd, IbOrderStatus, IbExecDetails,
    IbExecDetailsEnd, IbCommissionReport, IbPosition, IbPositionEnd, IbAccountValue, IbTick, IbBar,
    IbHistoricalEnd, IbContractDetails, IbContractDetailsEnd, IbDataStale,
)  # fmt: skip
_SEQ = count(1)


# ==================================================================================================== plumbing
class Dispatch:
    """The dispatcher loop of the tests: every registered queue and clock, run on the test thread."""

    def __init__(self) -> None:
        self._loops: list[tuple[EventQueue, WallClock]] = []

    def add(self, queue: EventQueue, clock: WallClock) -> None:
        self._loops.append((queue, clock))

    def pump(self) -> None:
        for queue, clock in self._loops:
            queue.run_until_empty()
            clock.fire_due()
            queue.run_until_empty()

    def eventually(self, cond: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
        """Dispatch until ``cond()`` is truthy (returned); fail the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"condition not met within {timeout_s} s: {what or cond}")
            self._wait(0.01)

    def settle(self, seconds: float) -> None:
        """Keep dispatching for ``seconds`` (to let stray messages, e.g. a wrongful re-send, show up)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump()
            self._wait(0.01)

    def _wait(self, default_s: float) -> None:
        if not self._loops:
            time.sleep(default_s)  # polling interval only
            return
        wait_s = min(clock.seconds_until_next_timer(default_s) for _, clock in self._loops)
        self._loops[0][0].wait(wait_s)  # woken early by anything put on the first queue


@dataclass
class Endpoint:
    """One client id's connection and everything it put on its queue (dispatched, in order)."""

    client_id: int
    queue: EventQueue
    clock: WallClock
    conn: IbConnection
    messages: list[Any] = field(default_factory=list)
    stopped: bool = False

    def of(self, kind: type, after: int = 0) -> list[Any]:
        return [m for m in self.messages[after:] if isinstance(m, kind)]

    def connections(self, reconnect: bool | None = None) -> list[IbConnected]:
        return [m for m in self.of(IbConnected) if reconnect is None or m.reconnect is reconnect]

    def last_connected_index(self) -> int:
        return max((i for i, m in enumerate(self.messages) if isinstance(m, IbConnected)), default=-1)

    def start(self) -> None:
        self.conn.start()

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.conn.stop()


@dataclass
class Engine(Endpoint):
    """The trading engine: connection, executor (journal, order log, order ids) and a ledger fed by fills."""

    journal: OrderJournal | None = None
    order_log: OrderSubmissionLog | None = None
    executor: IbExecutor | None = None
    ids: IbOrderIds | None = None
    ledger: Ledger | None = None
    fills: list[FillEvent] = field(default_factory=list)
    failed: list[OrderFailedEvent] = field(default_factory=list)
    halts: list[str] = field(default_factory=list)

    def fills_of(self, coid: str) -> list[FillEvent]:
        return [f for f in self.fills if f.client_order_id == coid]

    def failed_of(self, coid: str) -> list[OrderFailedEvent]:
        return [f for f in self.failed if f.client_order_id == coid]

    def status(self, coid: str) -> OrderStatus | None:
        managed = self.executor.store.get(coid)
        return None if managed is None else managed.status

    def reconciled(self) -> bool:
        """The broker sync of the latest (re)connect has put its ``Reconciled`` event."""
        start = self.last_connected_index()
        return start >= 0 and bool(self.of(Reconciled, start))

    def journal_records(self, coid: str) -> list[dict[str, Any]]:
        lines = self.journal.path.read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["client_order_id"] == coid]

    def stop(self) -> None:
        if not self.stopped:
            super().stop()
            self.journal.close()
            self.order_log.close()


def _record_ib_messages(endpoint: Endpoint, queue: EventQueue, extra: dict[type, Callable[[Any], None]]) -> None:
    """Route every IB message type: first recorded, then to ``extra``'s handler for that type (if any)."""
    for kind in IB_MESSAGE_TYPES:
        handlers: list[Callable[[Any], None]] = [endpoint.messages.append]
        if kind in extra:
            handlers.append(extra[kind])
        queue.route(kind, handlers)


def _connection(sim: IbSim, client_id: int, queue: EventQueue, clock: WallClock) -> IbConnection:
    cfg = IbConnectionConfig(port=sim.port, connect_timeout_s=3.0)
    return IbConnection(cfg, client_id, queue.put, clock, backoff_initial_s=0.1, backoff_max_s=0.5)


@pytest.fixture
def dispatch() -> Dispatch:
    return Dispatch()


@pytest.fixture
def make_engine(sim: IbSim, tmp_path: Path, dispatch: Dispatch) -> Iterator[Callable[..., Engine]]:
    """``make_engine(client_id=1)``: a recovered, *not yet started* engine over ``tmp_path``'s journal and log.

    Every engine shares the journal and order log, so a second one is the same engine restarted. All are stopped
    (connection, then files) at teardown, before the ``sim`` fixture stops ibsim.
    """
    made: list[Engine] = []

    def make(client_id: int = 1) -> Engine:
        clock = WallClock()
        queue = EventQueue()
        conn = _connection(sim, client_id, queue, clock)
        journal = OrderJournal(tmp_path / "state" / "order_journal.jsonl", now_ns=clock.now_ns)
        order_log = OrderSubmissionLog(tmp_path / "logs" / "order_submissions.csv")
        ids = IbOrderIds(journal.state.max_ib_order_id + 1)
        ledger = Ledger(sim.cfg.cash_usd, DEFAULT_SYMBOLS, account_type="cash")
        engine = Engine(client_id, queue, clock, conn, journal=journal, order_log=order_log, ids=ids, ledger=ledger)
        made.append(engine)
        executor = IbExecutor(
            ConnectionOrderClient(conn), ids, journal, order_log, queue.put, clock,
            build_commission_model(CostsConfig()), account=sim.cfg.account, on_halt=engine.halts.append,
        )  # fmt: skip
        engine.executor = executor
        executor.recover(journal.state)  # before any IB message, as at start-up
        routes = executor.routes()
        on_connected = routes.pop(IbConnected)
        sync = BrokerSync(ConnectionOrderClient(conn), queue.put, clock, execution_filter=execution_filter_for,
                          finish_executor=executor.finish_reconciliation)  # fmt: skip

        def connected(message: IbConnected) -> None:
            ids.on_connected(message)  # the id floor first: the executor may send right after
            on_connected(message)
            sync.on_connected(message)

        _record_ib_messages(engine, queue, {
            **routes, IbConnected: connected, IbDisconnected: sync.on_disconnected,
            IbPosition: sync.on_position, IbPositionEnd: sync.on_position_end,
            IbOpenOrderEnd: sync.on_open_order_end, IbExecDetailsEnd: sync.on_exec_details_end,
        })  # fmt: skip
        queue.route(Reconciled, [engine.messages.append])
        queue.route(OrderEvent, [executor.submit])  # the tests hand orders over through the queue

        def book_fill(fill: FillEvent) -> None:
            engine.fills.append(fill)
            ledger.apply_fill(fill, settles_at_ns=fill.ts_event_ns + SETTLEMENT_NS)

        queue.route(FillEvent, [book_fill])
        queue.route(OrderFailedEvent, [engine.failed.append])
        dispatch.add(queue, clock)
        return engine

    yield make
    for engine in made:
        engine.stop()


@pytest.fixture
def make_monitor(sim: IbSim, dispatch: Dispatch) -> Iterator[Callable[..., Endpoint]]:
    """``make_monitor(client_id=2)``: a started read-only connection that subscribes to positions and the account
    summary on every (re)connect; stopped at teardown."""
    made: list[Endpoint] = []

    def make(client_id: int = 2) -> Endpoint:
        clock = WallClock()
        queue = EventQueue()
        monitor = Endpoint(client_id, queue, clock, _connection(sim, client_id, queue, clock))
        made.append(monitor)

        def subscribe(_: IbConnected) -> None:
            monitor.conn.send(lambda c: c.reqPositions(), "reqPositions")
            monitor.conn.send(
                lambda c: c.reqAccountSummary(MONITOR_SUMMARY_REQ_ID, "All", "NetLiquidation,TotalCashValue"),
                "reqAccountSummary",
            )

        _record_ib_messages(monitor, queue, {IbConnected: subscribe})
        dispatch.add(queue, clock)
        monitor.start()
        return monitor

    yield make
    for monitor in made:
        monitor.stop()


@pytest.fixture
def place_orders_at_sim(sim: IbSim, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, str]]:
    """Every PLACE_ORDER ibsim receives, as (client id, IB order id, orderRef), held or not, accepted or not."""
    received: list[tuple[int, int, str]] = []
    desk = sim.gateway.desk
    place = desk.place

    def counting_place(client_id: int, req: PlaceOrder) -> None:
        received.append((client_id, req.order_id, req.order_ref))  # under ibsim's lock
        place(client_id, req)

    monkeypatch.setattr(desk, "place", counting_place)
    return received


def make_order(symbol: str, quantity: int, order_type: OrderType, limit_price: float | None = None) -> OrderEvent:
    return OrderEvent(
        ts_event_ns=1, ts_init_ns=1, client_order_id=f"issue5.{symbol}.{next(_SEQ)}.BUY", strategy_id="issue5",
        symbol=symbol, side=Side.BUY, quantity=quantity, order_type=order_type, limit_price=limit_price,
        reference_price=limit_price or 100.0,
    )  # fmt: skip


def sim_position(sim: IbSim, symbol: str) -> float:
    with sim.lock:
        pos = sim.book.positions.get(symbol)
        return 0.0 if pos is None else pos.quantity


def kinds(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["kind"] == kind]


# ==================================================================================================== scenarios
def test_issue_5_fill_during_disconnect_is_recovered_exactly_once(
    sim: IbSim, make_engine: Callable[..., Engine], dispatch: Dispatch, place_orders_at_sim: list[tuple[int, int, str]]
) -> None:
    engine = make_engine(1)
    engine.start()
    dispatch.eventually(lambda: engine.connections() and engine.reconciled(), 10.0, "first connect")

    order = make_order("TLT", 15, OrderType.MOC)
    coid = order.client_order_id
    engine.queue.put(order)
    dispatch.eventually(lambda: engine.status(coid) is OrderStatus.SUBMITTED, 10.0, "MOC acknowledged")
    ib_order_id = engine.executor.store.get(coid).order.broker_order_id
    close = sim.market.close_price("TLT", 0)

    # The gateway drops everyone and refuses connections (until we let it accept again, below).
    sim.refuse_connections(60.0)
    sim.drop_all_connections()
    dispatch.eventually(lambda: engine.of(IbDisconnected) and not engine.conn.is_ready, 5.0, "engine sees the drop")
    dropped_at = engine.last_connected_index()
    dispatch.eventually(lambda: [e for e in engine.of(IbError, dropped_at) if e.code == 502], 5.0, "refused (502)")
    with sim.lock:  # start_api also runs under this lock: nobody can register as client 1 during the auction
        assert 1 not in sim.gateway.sessions and not sim.accepting()
        sim.advance_market_s(SESSION_S)  # the closing auction runs while the engine is away
        [execution] = sim.book.executions
        assert (execution.order_ref, execution.order_id, execution.shares) == (coid, ib_order_id, 15)
    assert not engine.fills and not engine.conn.is_ready
    sim.refuse_connections(0.0)  # the refusal ends now: ibsim listens again

    # The wrapper reconnects by itself; the broker sync asks once (positions, open orders, executions).
    dispatch.eventually(lambda: engine.connections(reconnect=True) and engine.reconciled(), 15.0, "reconnect 1")
    [fill] = engine.fills_of(coid)
    assert (fill.exec_id, fill.broker_order_id) == (execution.exec_id, ib_order_id)
    assert (fill.quantity, fill.price) == (15, close)
    assert fill.commission == pytest.approx(execution.commission)  # IB's report, not the estimate
    replays = [m for m in engine.of(IbExecDetails) if m.execution.execId == execution.exec_id]
    assert len(replays) == 1 and replays[0].req_id == SYNC_EXEC_REQ_ID  # asked once, by the sync, and only there
    assert engine.status(coid) is OrderStatus.FILLED
    assert engine.ledger.position("TLT") == 15 == sim_position(sim, "TLT")
    positions = [m for m in engine.of(IbPosition, engine.last_connected_index()) if m.symbol == "TLT"]
    assert positions and positions[-1].position == 15

    # A second drop (no refusal this time): the reconnect replays reqExecutions again; nothing is counted twice.
    sim.drop_all_connections()
    dispatch.eventually(
        lambda: len(engine.connections(reconnect=True)) >= 2 and engine.reconciled(), 15.0, "reconnect 2"
    )
    dispatch.settle(0.3)
    replays_after = [m for m in engine.of(IbExecDetails) if m.execution.execId == execution.exec_id]
    assert len(replays_after) > len(replays)  # the execution really was reported again
    assert [f.exec_id for f in engine.fills] == [execution.exec_id]
    assert engine.ledger.applied_exec_ids() == (execution.exec_id,)
    assert engine.ledger.position("TLT") == 15 == sim_position(sim, "TLT")
    assert engine.ledger.cash == pytest.approx(sim.book.cash, abs=1e-6)
    assert engine.status(coid) is OrderStatus.FILLED and not engine.failed and not engine.halts

    # Sent once, journaled once: intent once, fill once, and nothing was ever re-sent.
    assert place_orders_at_sim == [(1, ib_order_id, coid)]
    records = engine.journal_records(coid)
    assert len(kinds(records, "intent")) == 1 and records[0]["kind"] == "intent"
    assert [r["exec_id"] for r in kinds(records, "fill")] == [execution.exec_id]
    replayed = engine.journal.replay().orders[coid]
    assert replayed.status is OrderStatus.FILLED and replayed.exec_ids == {execution.exec_id}


def test_issue_5_restart_adopts_working_order_without_resending(
    sim: IbSim, make_engine: Callable[..., Engine], dispatch: Dispatch, place_orders_at_sim: list[tuple[int, int, str]]
) -> None:
    first = make_engine(1)
    first.start()
    dispatch.eventually(lambda: first.connections() and first.reconciled(), 10.0, "engine A connects")
    limit = round(sim.market.quote("AAPL").bid * 0.5, 2)  # far below the market: rests all day
    order = make_order("AAPL", 10, OrderType.LMT, limit_price=limit)
    coid = order.client_order_id
    first.queue.put(order)
    dispatch.eventually(lambda: first.status(coid) is OrderStatus.SUBMITTED, 10.0, "LMT acknowledged")
    ib_order_id = first.executor.store.get(coid).order.broker_order_id
    assert place_orders_at_sim == [(1, ib_order_id, coid)]

    first.stop()  # the engine goes away (connection stopped, files closed); the order keeps working at IB
    dispatch.eventually(lambda: 1 not in sim.gateway.sessions, 5.0, "ibsim let client 1 go")

    second = make_engine(1)  # same journal, same client id: the engine restarted (recovered before connecting)
    managed = second.executor.store.get(coid)
    assert managed is not None and managed.status is OrderStatus.SUBMITTED
    assert managed.order.broker_order_id == ib_order_id
    second.start()
    dispatch.eventually(lambda: second.connections() and second.reconciled(), 10.0, "engine B reconciles")
    second.queue.put(order)  # the strategy repeats its decision after the restart: ignored
    dispatch.settle(0.3)

    managed = second.executor.store.get(coid)
    assert managed.status is OrderStatus.SUBMITTED and managed.order.broker_order_id == ib_order_id
    assert any(m.order_id == ib_order_id for m in second.of(IbOpenOrder))  # the broker reported it: adopted
    assert place_orders_at_sim == [(1, ib_order_id, coid)]  # nothing new was sent
    assert not second.failed and not second.fills and not second.halts
    with sim.lock:
        assert sim.book.orders[(1, ib_order_id)].status == "Submitted"

    second.executor.cancel(coid, "adopted order can be managed")
    [failed] = dispatch.eventually(lambda: second.failed_of(coid), 10.0, "cancel confirmed")
    assert (failed.status, failed.code, failed.filled_quantity) == (OrderStatus.CANCELLED, 202, 0)
    assert second.status(coid) is OrderStatus.CANCELLED and place_orders_at_sim == [(1, ib_order_id, coid)]
    with sim.lock:
        assert sim.book.orders[(1, ib_order_id)].status == "Cancelled"
    assert [r["kind"] for r in second.journal_records(coid)] == ["intent", "ack", "cancel_requested", "cancelled"]


def test_issue_5_two_clients_engine_and_monitor(
    sim: IbSim,
    make_engine: Callable[..., Engine],
    make_monitor: Callable[..., Endpoint],
    dispatch: Dispatch,
    place_orders_at_sim: list[tuple[int, int, str]],
) -> None:
    engine = make_engine(1)
    engine.start()
    monitor = make_monitor(2)
    dispatch.eventually(lambda: engine.reconciled() and monitor.of(IbPositionEnd), 10.0, "both connected")
    assert engine.conn.is_ready and monitor.conn.is_ready
    ib_messages = [m for m in engine.messages if not isinstance(m, Reconciled)]
    assert {m.client_id for m in ib_messages} == {1} and {m.client_id for m in monitor.messages} == {2}
    with sim.lock:
        assert set(sim.gateway.sessions) == {1, 2}
    assert not [m for m in monitor.of(IbPosition) if m.symbol == "SPY"]  # flat before the trade

    order = make_order("SPY", 10, OrderType.MKT)
    coid = order.client_order_id
    engine.queue.put(order)
    [fill] = dispatch.eventually(lambda: engine.fills_of(coid), 10.0, "engine fill")
    spy = dispatch.eventually(lambda: [m for m in monitor.of(IbPosition) if m.symbol == "SPY"], 10.0, "monitor pos")
    assert spy[-1].position == 10 == engine.ledger.position("SPY") == sim_position(sim, "SPY")

    def cash_seen_by_monitor() -> float | None:
        values = [m for m in monitor.of(IbAccountValue) if m.tag == "TotalCashValue"]
        return float(values[-1].value) if values else None

    dispatch.eventually(
        lambda: cash_seen_by_monitor() == pytest.approx(engine.ledger.cash, abs=0.005),
        10.0,
        "monitor account summary reflects the fill",
    )
    assert fill.quantity == 10 and place_orders_at_sim == [(1, fill.broker_order_id, coid)]
    assert not monitor.of(IbExecDetails) and not monitor.of(IbOrderStatus)  # the engine's order is not its business
    assert engine.conn.is_ready and monitor.conn.is_ready and not engine.halts
