"""IbConnection against a real ibsim (and a hostile raw socket peer) through the unmodified ibapi client."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from ibapi.contract import Contract
from ibapi.order import Order

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.ib_messages import (
    IbCommissionReport,
    IbConnected,
    IbDisconnected,
    IbError,
    IbExecDetailsEnd,
    IbOpenOrderEnd,
    IbPosition,
    IbPositionEnd,
)
from core.ib_wrapper import IbConnection
from ibsim import IbSim


def stock(symbol: str) -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = symbol, "STK", "SMART", "USD"
    return c


def market_order(action: str, qty: float) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, "MKT"
    return o


def connected(rec: Any, reconnect: bool | None = None, after: int = 0) -> list[IbConnected]:
    return [m for m in rec.of(IbConnected, after) if reconnect is None or m.reconnect is reconnect]


def test_connect_reports_accounts_and_next_id(make_connection, eventually) -> None:
    conn, rec = make_connection(1)
    msg = eventually(lambda: connected(rec))[0]
    assert msg.accounts == ("DU111111",) and msg.next_valid_id >= 1 and msg.reconnect is False
    assert msg.client_id == 1 and conn.is_ready and conn.accounts == ("DU111111",)
    first = conn.next_order_id()
    assert first == msg.next_valid_id and conn.next_order_id() == first + 1


def test_engine_and_monitor_connect_at_once(make_connection, eventually) -> None:
    (engine, rec1), (monitor, rec2) = make_connection(1), make_connection(2)
    eventually(lambda: connected(rec1) and connected(rec2))
    assert engine.is_ready and monitor.is_ready
    assert {connected(rec1)[0].client_id, connected(rec2)[0].client_id} == {1, 2}


def test_client_id_in_use_falls_back_to_configured_id(make_connection, eventually) -> None:
    _, holder = make_connection(1)
    eventually(lambda: connected(holder))
    conn, rec = make_connection(1, fallback_client_ids=(7,))
    eventually(lambda: connected(rec))
    assert [e.code for e in rec.of(IbError)][:1] == [326]
    assert connected(rec)[0].client_id == 7 and conn.client_id == 7


def test_client_id_in_use_without_fallback_keeps_retrying_and_never_claims_ready(make_connection, eventually) -> None:
    _, holder = make_connection(2)
    eventually(lambda: connected(holder))
    conn, rec = make_connection(2)
    eventually(lambda: len([e for e in rec.of(IbError) if e.code == 326]) >= 2)  # retried with backoff
    assert not connected(rec) and not conn.is_ready


def test_refused_then_accepting_connects_without_help(sim: IbSim, make_connection, eventually) -> None:
    sim.refuse_connections(1.0)
    _, rec = make_connection(1)
    eventually(lambda: connected(rec), 6.0)
    assert not rec.of(IbDisconnected)  # never up before, so nothing was lost


def test_drop_all_reconnects_and_asks_nothing_of_its_own(sim: IbSim, make_connection, eventually) -> None:
    """The connection reconnects; what to ask afterwards is its owner's business (the engine's broker sync)."""
    conn, rec = make_connection(1)
    eventually(lambda: connected(rec))
    order_id = conn.next_order_id()
    assert conn.send(lambda c: c.placeOrder(order_id, stock("AAPL"), market_order("BUY", 10)))
    eventually(lambda: rec.of(IbCommissionReport))
    mark = len(rec.all())

    sim.drop_all_connections()
    again = eventually(lambda: connected(rec, reconnect=True, after=mark), 5.0)[0]
    items = rec.all()
    assert items.index(rec.of(IbDisconnected, mark)[0]) < items.index(again)
    after = items.index(again)
    assert conn.send(lambda c: c.reqPositions(), "reqPositions")  # the owner asks; the answer ends the test
    eventually(lambda: rec.of(IbPositionEnd, after))
    assert not rec.of(IbOpenOrderEnd, after) and not rec.of(IbExecDetailsEnd, after)  # nobody asked for those
    assert any(p.symbol == "AAPL" and p.position == 10 for p in rec.of(IbPosition, after))
    assert conn.next_order_id() > order_id  # ids never go backwards across the reconnect


def test_connectivity_lost_without_restore_forces_a_reconnect(sim: IbSim, make_connection, eventually) -> None:
    _, rec = make_connection(1, connectivity_grace_s=0.3)
    eventually(lambda: connected(rec))
    sim.connectivity_lost()
    eventually(lambda: connected(rec, reconnect=True), 5.0)
    assert rec.of(IbDisconnected)[0].reason == "connectivity_not_restored"


def test_stop_disconnects_and_joins_threads(make_connection, eventually) -> None:
    conn, rec = make_connection(3)
    eventually(lambda: connected(rec))
    conn.stop()
    assert rec.of(IbDisconnected)[-1].reason == "stopped" and not conn.is_ready
    assert not [t for t in threading.enumerate() if t.name.endswith("-3") and t.name.startswith("ib-")]


# ------------------------------------------------------------------ a hostile peer
def _frame(*fields: str) -> bytes:
    payload = "".join(f"{f}\0" for f in fields).encode()
    return struct.pack(">I", len(payload)) + payload


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


class GarbagePeer:
    """Completes the TWS handshake, then (first session only) sends a NEXT_VALID_ID whose id is not a number."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sessions = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            self.sessions += 1
            threading.Thread(target=self._serve, args=(conn, self.sessions), daemon=True).start()

    def _serve(self, conn: socket.socket, session: int) -> None:
        with conn:
            try:
                _read_exact(conn, 4)  # "API\0"
                _read_exact(conn, struct.unpack(">I", _read_exact(conn, 4))[0])  # v100..157
                conn.sendall(_frame("157", "20240102 09:30:00 EST"))
                _read_exact(conn, struct.unpack(">I", _read_exact(conn, 4))[0])  # START_API
                conn.sendall(_frame("15", "1", "DU999") + _frame("9", "1", "5"))
                if session == 1:
                    conn.sendall(_frame("9", "1", "not-a-number"))
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self.listener.close()
        self._thread.join(timeout=2)


@pytest.fixture
def garbage_peer() -> Iterator[GarbagePeer]:
    peer = GarbagePeer()
    yield peer
    peer.close()


def test_malformed_message_is_survived_and_reconnected(garbage_peer: GarbagePeer, new_recorder, eventually) -> None:
    rec = new_recorder()
    cfg = IbConnectionConfig(port=garbage_peer.port, connect_timeout_s=3.0)
    conn = IbConnection(cfg, 1, rec.put, WallClock(), backoff_initial_s=0.1, backoff_max_s=0.5)
    conn.start()
    try:
        eventually(lambda: connected(rec, reconnect=True), 5.0)
        assert connected(rec, reconnect=False) and rec.of(IbDisconnected)
        assert garbage_peer.sessions >= 2 and conn.is_ready
    finally:
        conn.stop()
