"""The engine as a real process: ``python -m ibsim`` and ``python main.py`` started with ``subprocess.Popen``.

Each test gets a fresh ibsim (its own port, fast replay) and a working directory under ``tmp_path`` holding a
test config (sma_crossover with very short periods on three symbols, so the engine trades within seconds; every
path relative to that directory; free loopback ports for the heartbeat and command sockets). Both processes run
in their own session and are always stopped at teardown (SIGTERM, then SIGKILL of that process group).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.event_queue import EventQueue
from core.ib_messages import IbConnected, IbOpenOrder, IbOpenOrderEnd, IbPosition, IbPositionEnd
from core.ib_wrapper import IbConnection
from core.ipc_commands import CommandClient, ReplyCode
from core.ipc_heartbeat import HeartbeatSubscriber, read_heartbeat_csv
from core.ipc_keys import ensure_keys
from portfolio.snapshot import read_snapshot

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
SYMBOLS = ["SPY", "QQQ", "AAPL"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: process exited early with {proc.returncode}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s} s: {what}")
        time.sleep(0.05)


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def ibsim_port(tmp_path: Path) -> Iterator[int]:
    """A ``python -m ibsim`` process on a free port (replaying fast); its port."""
    log_path = tmp_path / "ibsim.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen([PYTHON, "-m", "ibsim", "--port", "0", "--speed", "600", "--seed", "3"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        match = wait_for(lambda: re.search(r"event=listening host=\S+ port=(\d+)", log_path.read_text()), 30,
                         "ibsim listening", proc)  # fmt: skip
        yield int(match.group(1))
    finally:
        stop_process(proc)


class EngineDir:
    """The engine's working directory: config, state, logs and flags, and the engine process started in it."""

    def __init__(self, root: Path, ib_port: int) -> None:
        self.root = root
        self.ib_port = ib_port
        self.hb_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.cmd_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None
        raw = yaml.safe_load((REPO / "config.yaml").read_text())
        raw["ib_connection"].update(port=ib_port, connect_timeout_s=3)
        raw["symbols"] = SYMBOLS
        raw["strategies"]["momentum"]["enabled"] = False
        raw["strategies"]["mean_reversion"]["enabled"] = False
        raw["strategies"]["sma_crossover"].update(
            enabled=True, params={"fast_period": 2, "slow_period": 5, "atr_period": 2, "atr_stop_multiple": 2.0}
        )
        raw["portfolio"]["sizing"].update(method="fixed_shares", fixed_shares=5)
        raw["pre_trade"].update(max_adv_participation_pct=100, adv_lookback_days=3)
        raw["operational_risk"].update(
            heartbeat_interval_s=0.2,
            risk_log_interval_s=0.5,
            heartbeat_endpoint=self.hb_endpoint,
            command_endpoint=self.cmd_endpoint,
        )
        (root / "config.yaml").write_text(yaml.safe_dump(raw))

    @property
    def output(self) -> str:
        path = self.root / "engine.out"
        return path.read_text() if path.exists() else ""

    def start(self) -> subprocess.Popen:
        with (self.root / "engine.out").open("w") as out:
            self.proc = subprocess.Popen(
                [PYTHON, str(REPO / "main.py"), "--config", "config.yaml"],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc

    def wait_exit(self, timeout_s: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"engine did not exit within {timeout_s} s; output tail:\n{self.output[-3000:]}")

    def risk_rows(self) -> list[dict[str, str]]:
        path = self.root / "logs" / "risk_log.csv"
        return list(csv.DictReader(path.open())) if path.exists() else []

    def journal_kinds(self) -> list[str]:
        path = self.root / "state" / "order_journal.jsonl"
        return [json.loads(line)["kind"] for line in path.read_text().splitlines()] if path.exists() else []

    def client(self, name: str = "operator", keys_dir: Path | None = None) -> CommandClient:
        return CommandClient(self.cmd_endpoint, keys_dir or self.root / "state" / "keys", name, WallClock())


@pytest.fixture
def engine_dir(tmp_path: Path, ibsim_port: int) -> Iterator[EngineDir]:
    work = tmp_path / "work"
    work.mkdir()
    made = EngineDir(work, ibsim_port)
    try:
        yield made
    finally:
        if made.proc is not None:
            stop_process(made.proc)


def broker_view(port: int, client_id: int = 9) -> tuple[dict[str, float], list[int]]:
    """(non-zero positions, open order ids of every client) as ibsim reports them to a second API client."""
    queue, clock = EventQueue(), WallClock()
    got: dict[str, list[Any]] = {"pos": [], "orders": []}
    done = {"pos": False, "orders": False}
    conn = IbConnection(IbConnectionConfig(port=port, connect_timeout_s=3.0), client_id, queue.put, clock,
                        backoff_initial_s=0.1, backoff_max_s=0.5)  # fmt: skip

    def on_connected(_: IbConnected) -> None:
        conn.send(lambda c: c.reqPositions(), "reqPositions")
        conn.send(lambda c: c.reqAllOpenOrders(), "reqAllOpenOrders")

    routes = {IbConnected: [on_connected], IbPosition: [got["pos"].append], IbOpenOrder: [got["orders"].append],
              IbPositionEnd: [lambda _: done.__setitem__("pos", True)],
              IbOpenOrderEnd: [lambda _: done.__setitem__("orders", True)]}  # fmt: skip
    for kind, handlers in routes.items():
        queue.route(kind, handlers)
    conn.start()
    try:
        deadline = time.monotonic() + 15
        while not (done["pos"] and done["orders"]):
            assert time.monotonic() < deadline, "second client got no positions/open orders from ibsim"
            queue.wait(0.05)
            while len(queue):
                with contextlib.suppress(TypeError):  # a message type this probe does not route
                    queue.dispatch_one()
    finally:
        conn.stop()
    positions = {m.symbol: m.position for m in got["pos"] if m.position != 0}
    working = [
        m.order_id for m in got["orders"] if getattr(m.order_state, "status", "") in ("Submitted", "PreSubmitted")
    ]
    return positions, working


# ==================================================================================================== scenarios
def test_engine_heartbeats_risk_log_and_sigterm(engine_dir: EngineDir) -> None:
    proc = engine_dir.start()
    with HeartbeatSubscriber(engine_dir.hb_endpoint, WallClock()) as sub:
        beats = []
        wait_for(lambda: beats.append(sub.poll(0.2)) or any(beats), 30, "a ZMQ heartbeat", proc)
    hb_csv = engine_dir.root / "logs" / "heartbeat.csv"
    beat = wait_for(lambda: hb_csv.exists() and read_heartbeat_csv(hb_csv), 10, "heartbeat.csv", proc)
    assert beat.pid == proc.pid
    wait_for(lambda: len(engine_dir.risk_rows()) >= 3, 15, "risk_log rows", proc)
    wait_for(lambda: "fill" in engine_dir.journal_kinds(), 30, "the engine trades against ibsim", proc)

    os.killpg(proc.pid, signal.SIGTERM)
    assert engine_dir.wait_exit(10) == 0
    snapshot = read_snapshot(engine_dir.root / "state" / "portfolio_snapshot.json")
    assert snapshot is not None and snapshot["trading_state"] in ("ACTIVE", "REDUCING")
    assert "event=engine_stopped reason=SIGTERM exit_code=0" in engine_dir.output


def test_status_over_authenticated_channel_and_foreign_key_refused(engine_dir: EngineDir, tmp_path: Path) -> None:
    proc = engine_dir.start()
    keys = engine_dir.root / "state" / "keys"
    wait_for(lambda: (keys / "clients" / "operator.key_secret").exists(), 30, "keys created", proc)
    with engine_dir.client() as client:
        reply = wait_for(lambda: (r := client.send("STATUS", 2.0)).ok and r, 30, "STATUS answered", proc)
    assert reply.code is ReplyCode.OK and reply.data["state"] in ("ACTIVE", "REDUCING")
    assert {"equity", "positions", "open_orders", "kill", "connected"} <= set(reply.data)

    foreign = tmp_path / "foreign_keys"
    ensure_keys(foreign, ("operator",))  # a valid keypair the engine never authorized
    (foreign / "server.key").write_bytes((keys / "server.key").read_bytes())  # it even pins the right server
    with engine_dir.client(keys_dir=foreign) as stranger:
        refused = stranger.send("STATUS", 1.0)
    assert refused.code is ReplyCode.NO_REPLY
    assert proc.poll() is None


def test_kill_now_flag_cancels_flattens_and_exits(engine_dir: EngineDir) -> None:
    proc = engine_dir.start()
    keys = engine_dir.root / "state" / "keys"
    wait_for(lambda: (keys / "clients" / "operator.key_secret").exists(), 30, "keys created", proc)
    with engine_dir.client() as client:

        def holding() -> bool:
            reply = client.send("STATUS", 2.0)
            return reply.ok and reply.data["positions"] > 0

        wait_for(holding, 60, "the engine holds a position", proc)
    flag = engine_dir.root / "flags" / "KILL_NOW.flag"
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.touch()
    assert engine_dir.wait_exit(40) == 0
    out = engine_dir.output
    assert "event=kill level=KILL_NOW" in out and "event=kill_complete" in out
    snapshot = read_snapshot(engine_dir.root / "state" / "portfolio_snapshot.json")
    assert snapshot["trading_state"] == "HALTED" and not any(snapshot["ledger"]["quantities"])
    positions, working = broker_view(engine_dir.ib_port)
    assert positions == {} and working == []
    assert flag.exists()  # the engine never removes a flag


def test_kill_flag_at_startup_prevents_trading(engine_dir: EngineDir) -> None:
    flag = engine_dir.root / "flags" / "KILL.flag"
    flag.parent.mkdir(parents=True)
    flag.touch()
    engine_dir.start()
    assert engine_dir.wait_exit(30) == 0
    out = engine_dir.output
    assert "KILL flag present at start-up" in out and "event=kill_complete" in out
    assert engine_dir.journal_kinds() == []  # not one order
    snapshot = read_snapshot(engine_dir.root / "state" / "portfolio_snapshot.json")
    assert snapshot["trading_state"] == "HALTED"


def test_corrupt_snapshot_exits_1_and_leaves_the_file(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    EngineDir(work, free_port())  # writes the config; no ibsim needed: the engine must stop before connecting
    snap = work / "state" / "portfolio_snapshot.json"
    snap.parent.mkdir()
    snap.write_bytes(b'{"format": "portfolio_snapshot", "version": 1, "snap')
    result = subprocess.run([PYTHON, str(REPO / "main.py"), "--config", "config.yaml"], cwd=work,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "portfolio_snapshot.json" in result.stderr and "corrupt state" in result.stderr
    assert snap.read_bytes() == b'{"format": "portfolio_snapshot", "version": 1, "snap'
