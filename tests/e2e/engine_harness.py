"""Shared harness of the real-process e2e tests: ``python -m ibsim`` and ``python main.py`` via ``subprocess.Popen``.

Imported by the test modules as ``engine_harness`` (``conftest.py`` puts this folder on ``sys.path``; the suite
runs with ``--import-mode=importlib`` and ``tests`` is not a package) and its fixtures registered by ``conftest``.

Each test gets a fresh ibsim (its own port, fast replay) and a working directory under ``tmp_path`` holding a
test config (sma_crossover with very short periods on three symbols, so the engine trades within seconds; every
path relative to that directory; free loopback ports for the heartbeat and command sockets). Both processes run
in their own session and are always stopped at teardown (SIGTERM, then SIGKILL of that process group).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.clock import WallClock
from core.ipc_commands import CommandClient
from testkit.crash_cycles import broker_book, fast_trading_config
from testkit.waiting import free_port

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


OUTPUT_OF: dict[int, Path] = {}  # pid -> the file its output goes to, for the message of an early exit


def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            output = OUTPUT_OF.get(proc.pid)
            tail = output.read_text(errors="replace")[-3000:] if output is not None and output.exists() else ""
            pytest.fail(f"{what}: process exited early with {proc.returncode}; output tail:\n{tail or '(none)'}")
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


DEFAULT_SIM_SPEED = 6000.0  # a 6.5 h session lasts ~3.9 s: the daily strategies decide every few seconds


@pytest.fixture
def ibsim_port(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    """A ``python -m ibsim`` process on a free port (replaying fast); its port.

    ``@pytest.mark.sim_speed(X)`` on a test sets ibsim's ``--speed`` (sim seconds per wall second) for it.
    """
    marker = request.node.get_closest_marker("sim_speed")
    speed = float(marker.args[0]) if marker else DEFAULT_SIM_SPEED
    log_path = tmp_path / "ibsim.log"
    with log_path.open("w") as out:
        proc = subprocess.Popen([PYTHON, "-m", "ibsim", "--port", "0", "--speed", str(speed), "--seed", "3"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        match = wait_for(lambda: re.search(r"event=listening host=\S+ port=(\d+)", log_path.read_text()), 30,
                         "ibsim listening", proc)  # fmt: skip
        yield int(match.group(1))
    finally:
        stop_process(proc)


class EngineDir:
    """The engine's working directory: config, state, logs and flags, and the engine process started in it."""

    def __init__(self, root: Path, ib_port: int, *, monitor_policy: str = "ignore") -> None:
        self.root = root
        self.ib_port = ib_port
        self.hb_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.cmd_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None
        raw = fast_trading_config(ib_port, self.hb_endpoint, self.cmd_endpoint, monitor_policy)
        (root / "config.yaml").write_text(yaml.safe_dump(raw))

    def update_config(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Edit the test config in place (before ``start``): ``change`` mutates the parsed YAML."""
        path = self.root / "config.yaml"
        raw = yaml.safe_load(path.read_text())
        change(raw)
        path.write_text(yaml.safe_dump(raw))

    @property
    def output(self) -> str:
        path = self.root / "engine.out"
        return path.read_text() if path.exists() else ""

    def start(self, script: Path | None = None) -> subprocess.Popen:
        """``python main.py`` (or ``script``, a test wrapper with main.py's command line) in this folder."""
        with (self.root / "engine.out").open("w") as out:
            self.proc = subprocess.Popen(
                [PYTHON, str(script or REPO / "main.py"), "--config", "config.yaml"],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        OUTPUT_OF[self.proc.pid] = self.root / "engine.out"
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


def broker_view(port: int, client_id: int | None = None) -> tuple[dict[str, float], list[int]]:
    """(non-zero positions, open order ids of every client) as ibsim reports them to a second API client."""
    return broker_book(port, client_id)
