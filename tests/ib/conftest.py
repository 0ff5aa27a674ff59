"""Fixtures for the IB adapter tests: a real ``IbSim`` on a free loopback port and ``IbConnection``s to it.

Every connection made through ``make_connection`` is stopped at teardown, then the sim; tests wait with
``eventually`` (polling, time-bounded) instead of sleeping.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.ib_wrapper import IbConnection
from ibsim import IbSim, SimConfig
from testkit.waiting import eventually


class Recorder:
    """A thread-safe ``put`` target that keeps every message in arrival order."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def put(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)

    def all(self) -> list[Any]:
        with self._lock:
            return list(self._items)

    def of(self, kind: type, after: int = 0) -> list[Any]:
        return [m for m in self.all()[after:] if isinstance(m, kind)]

    def index_of(self, pred: Callable[[Any], bool]) -> int | None:
        return next((i for i, m in enumerate(self.all()) if pred(m)), None)


@pytest.fixture(name="eventually")
def eventually_fixture() -> Callable[..., Any]:
    return eventually


@pytest.fixture
def new_recorder() -> Callable[[], Recorder]:
    """A factory of ``Recorder``s (conftest modules cannot be imported by name under importlib mode)."""
    return Recorder


@pytest.fixture
def sim() -> Iterator[IbSim]:
    server = IbSim(SimConfig(speed=60.0, tick_interval_s=0.02))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_connection(sim: IbSim) -> Iterator[Callable[..., tuple[IbConnection, Recorder]]]:
    """``make_connection(client_id, put=None, **kwargs)``: a started IbConnection to ``sim`` and its recorder."""
    made: list[IbConnection] = []

    def make(
        client_id: int, put: Callable[[object], None] | None = None, **kwargs: Any
    ) -> tuple[IbConnection, Recorder]:
        recorder = Recorder()
        cfg = IbConnectionConfig(port=sim.port, connect_timeout_s=kwargs.pop("connect_timeout_s", 3.0))
        kwargs.setdefault("backoff_initial_s", 0.1)
        kwargs.setdefault("backoff_max_s", 0.5)
        conn = IbConnection(cfg, client_id, put or recorder.put, WallClock(), **kwargs)
        made.append(conn)
        conn.start()
        return conn, recorder

    yield make
    for conn in made:
        conn.stop()
