"""Fixtures for ibsim tests: a running ``IbSim`` on a free loopback port and real ``ibapi`` clients.

``RecordingClient`` is the unmodified EClient/EWrapper pair; every callback is appended to a locked list,
and tests wait with ``eventually`` (polling, time-bounded) instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from ibsim import IbSim, SimConfig
from testkit.waiting import eventually

_CALLBACKS = [
    "nextValidId",
    "managedAccounts",
    "currentTime",
    "contractDetails",
    "contractDetailsEnd",
    "openOrder",
    "orderStatus",
    "execDetails",
    "execDetailsEnd",
    "commissionReport",
    "position",
    "positionEnd",
    "accountSummary",
    "accountSummaryEnd",
    "openOrderEnd",
    "tickPrice",
    "tickSize",
    "realtimeBar",
    "historicalData",
    "historicalDataEnd",
    "tickReqParams",
    "tickSnapshotEnd",
    "connectionClosed",
    "error",
]


class RecordingClient(EWrapper, EClient):
    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self._events: list[tuple[str, tuple[Any, ...]]] = []
        self._events_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        for name in _CALLBACKS:
            setattr(self, name, self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            with self._events_lock:
                self._events.append((name, args))

        return record

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self._events_lock:
            return [args for n, args in self._events if n == name]

    def names(self) -> list[str]:
        with self._events_lock:
            return [n for n, _ in self._events]

    def errors(self, code: int | None = None) -> list[tuple[Any, ...]]:
        return [a for a in self.of("error") if code is None or a[1] == code]

    def statuses(self, order_id: int) -> list[str]:
        return [a[1] for a in self.of("orderStatus") if a[0] == order_id]

    def start(self, port: int, client_id: int, wait_ready: bool = True) -> RecordingClient:
        self.connect("127.0.0.1", port, client_id)
        self.thread = threading.Thread(target=self.run, name=f"ibapi-run-{client_id}", daemon=True)
        self.thread.start()
        if wait_ready:
            eventually(lambda: self.of("nextValidId"), 5.0)
        return self

    def stop(self) -> None:
        if self.isConnected():
            self.disconnect()
        if self.thread is not None:
            self.thread.join(timeout=5)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    """``eventually(cond, timeout_s)`` for tests (conftest modules cannot be imported by name)."""
    return eventually


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(speed=60.0, tick_interval_s=0.02)


@pytest.fixture
def sim(sim_config: SimConfig) -> Iterator[IbSim]:
    server = IbSim(sim_config)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connect_to() -> Iterator[Callable[..., RecordingClient]]:
    """``connect_to(port, client_id)``: a started RecordingClient, disconnected at teardown."""
    clients: list[RecordingClient] = []

    def make(port: int, client_id: int, wait_ready: bool = True) -> RecordingClient:
        client = RecordingClient()
        clients.append(client)
        return client.start(port, client_id, wait_ready)

    yield make
    for client in clients:
        client.stop()


@pytest.fixture
def connect(sim: IbSim, connect_to: Callable[..., RecordingClient]) -> Callable[..., RecordingClient]:
    """``connect(client_id)`` to the ``sim`` fixture's server."""
    return lambda client_id, wait_ready=True: connect_to(sim.port, client_id, wait_ready)
