"""Shared parts of the e2e tests that drive ``signal_injecting_engine.py`` (the test decides the signals) against an
ibsim running in the test's own process, slow enough that a whole test stays inside one session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ibsim import IbSim, SimConfig
from testkit.crash_cycles import EngineWorkDir, poll_until

SCRIPT = Path(__file__).with_name("signal_injecting_engine.py")
CLIENT_ID = 1  # ib_connection.main_client_id in the shipped config


@pytest.fixture(name="sim")
def one_session_sim() -> Iterator[IbSim]:
    """The ``sim`` fixture of the modules importing this one: slow enough that a whole test stays inside one
    session (a session lasts 390 s here)."""
    server = IbSim(SimConfig(speed=60.0, seed=3))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait(cond: Callable[[], Any], timeout_s: float, what: str, proc: subprocess.Popen) -> Any:
    def check() -> Any:
        if proc.poll() is not None:
            pytest.fail(f"{what}: the engine exited first with code {proc.returncode}")
        return cond()

    value = poll_until(check, timeout_s, 0.02)
    if not value:
        pytest.fail(f"not within {timeout_s} s: {what}")
    return value


def position(sim: IbSim, symbol: str) -> float:
    with sim.lock:
        pos = sim.book.positions.get(symbol)
        return pos.quantity if pos is not None else 0.0


def orders_of(sim: IbSim, symbol: str, order_type: str | None = None, *, working: bool = False) -> list[Any]:
    """The engine's orders at ibsim for ``symbol``, optionally of one type or only the working ones."""
    with sim.lock:
        return [o for (cid, _), o in sim.book.orders.items() if cid == CLIENT_ID and o.stock.symbol == symbol
                and (order_type is None or o.order_type == order_type) and (o.is_working or not working)]  # fmt: skip


def inject(work: EngineWorkDir, *signals: dict[str, Any]) -> None:
    staging = work.root / "INJECT.tmp"
    staging.write_text(json.dumps(list(signals)))
    staging.rename(work.root / "INJECT.json")  # atomic: the engine never reads half a file


def start_active(work: EngineWorkDir, name: str) -> subprocess.Popen:
    proc = work.start(name, SCRIPT)
    assert work.wait_reconciled(name) == "ok", work.output_path(name).read_text()[-3000:]
    wait(lambda: (st := work.status()) and st["state"] == "ACTIVE", 30, f"{name}: ACTIVE", proc)
    return proc


def crash(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
