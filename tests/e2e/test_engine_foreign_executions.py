"""IB order ids are per client id: another client's order 1 is not the engine's order 1.

ibsim runs in this test process as TWS with the engine as its Master API client (``master_client_id``), so the
engine also receives every other client's executions, live and in its reqExecutions after a restart. A second
client (id 2, the risk monitor's) buys and sells back 7 SPY with its own order ids 1 and 2 while the engine's
order 1 has filled. The engine must book only its own executions: no halt, its ledger equal to ibsim's account.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_harness import EngineDir, stop_process, wait_for

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.events import OrderEvent, OrderType, Side
from core.ib_messages import IbCommissionReport, IbConnected
from core.ib_wrapper import IbConnection
from execution.ib_translate import to_ib_contract, to_ib_order
from execution.order_state import OrderEventKind
from ibsim import IbSim, SimConfig

ENGINE_CLIENT_ID = 1  # ib_connection.main_client_id of the test config
OTHER_CLIENT_ID = 2


@pytest.fixture
def sim() -> Iterator[IbSim]:
    server = IbSim(SimConfig(speed=6000.0, seed=3, master_client_id=ENGINE_CLIENT_ID))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def trade_as_another_client(port: int) -> None:
    """Client 2 buys 7 SPY with its order id 1, then sells them with its order id 2; returns when both filled."""
    messages: queue.Queue[object] = queue.Queue()
    conn = IbConnection(IbConnectionConfig(port=port, connect_timeout_s=3.0), OTHER_CLIENT_ID, messages.put,
                        WallClock())  # fmt: skip
    conn.start()
    try:
        wait_for(lambda: any(isinstance(m, IbConnected) for m in list(messages.queue)), 15, "client 2 connected")
        for order_id, side in ((1, Side.BUY), (2, Side.SELL)):
            order = OrderEvent(ts_event_ns=0, ts_init_ns=0, client_order_id=f"other-{order_id}", strategy_id="other",
                               symbol="SPY", side=side, quantity=7, order_type=OrderType.MKT, reference_price=400.0)
            ib_order = to_ib_order(order, order_id, "", None, {})
            assert conn.send(lambda c, i=order_id, o=ib_order: c.placeOrder(i, to_ib_contract("SPY"), o), "placeOrder")

            def reported(n: int = order_id) -> bool:
                return sum(isinstance(m, IbCommissionReport) for m in list(messages.queue)) >= n

            wait_for(reported, 30, f"client 2's order {order_id} filled")
    finally:
        conn.stop()


def engine_executions(sim: IbSim) -> set[str]:
    with sim.lock:
        return {e.exec_id for e in sim.book.executions if e.client_id == ENGINE_CLIENT_ID}


def sim_positions(sim: IbSim) -> dict[str, float]:
    with sim.lock:
        return {s: p.quantity for s, p in sim.book.positions.items() if p.quantity}


def journal_fill_exec_ids(ed: EngineDir) -> set[str]:
    import json

    path = ed.root / "state" / "order_journal.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {row["exec_id"] for row in rows if row["kind"] == OrderEventKind.FILL.value}


def status(ed: EngineDir) -> dict:
    with ed.client() as client:
        reply = wait_for(lambda: (r := client.send("STATUS", 2.0)).ok and r, 30, "STATUS answered", ed.proc)
    return dict(reply.data)


def test_another_clients_order_one_is_never_booked_as_the_engines(tmp_path: Path, sim: IbSim) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, sim.port)
    try:
        ed.start()
        wait_for(lambda: engine_executions(sim), 90, "the engine's first order filled at ibsim", ed.proc)
        trade_as_another_client(sim.port)  # the engine, as master client, is sent both of its executions live
        wait_for(lambda: status(ed)["reconciled"], 30, "engine reconciled", ed.proc)
        first = status(ed)
        assert first["state"] != "HALTED", first
        ed.proc.terminate()
        assert ed.wait_exit(30) == 0
        ed.start()  # a restart: reqExecutions again (the master sees every client's), journal and snapshot replayed
        wait_for(lambda: status(ed)["reconciled"], 30, "restarted engine reconciled", ed.proc)
        after = status(ed)
        assert after["state"] != "HALTED", after
        assert "mismatch" not in ed.output and "InvariantViolation" not in ed.output
        assert journal_fill_exec_ids(ed) <= engine_executions(sim)  # nothing of client 2's is in our journal
        with sim.lock:
            other = {e.exec_id for e in sim.book.executions if e.client_id == OTHER_CLIENT_ID}
        assert len(other) == 2 and not other & journal_fill_exec_ids(ed)
        assert "event=foreign_execution_ignored" in (work / "logs" / "engine.log").read_text()

        def books_agree() -> bool:
            """The engine goes on trading after the restart: compare its book and ibsim's once both have settled
            on the same fills (a foreign fill booked as ours would keep them apart for good)."""
            ours = {s: q for s, q in status(ed)["position_by_symbol"].items() if q}
            return ours == sim_positions(sim)

        wait_for(books_agree, 30, "the engine's positions equal ibsim's", ed.proc)
    finally:
        if ed.proc is not None:
            stop_process(ed.proc)
