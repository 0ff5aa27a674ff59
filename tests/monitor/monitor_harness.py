"""Real-process harness of the monitor tests: ibsim, the engine (``main.py``) and ``risk_monitor.py`` together.

Builds on the engine's e2e harness (``tests/e2e/engine_harness.py``: ``EngineDir`` writes a test config in a tmp
folder with free ports and a fast sma_crossover; ``broker_view`` asks ibsim for positions and open orders as a
separate API client). Adds its own ibsim launcher (so a test can pass ``--price-shock-signal`` or ``--cash-usd``),
the monitor process, and readers of what the monitor publishes (its heartbeat JSON, the kill flag).

Every process runs in its own session and is stopped at teardown (SIGTERM, then SIGKILL of the group), whatever the
test did to it (a SIGSTOPped engine is continued first so it can die).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from engine_harness import PYTHON, REPO, EngineDir, broker_view, stop_process, wait_for

__all__ = [
    "PYTHON",
    "REPO",
    "EngineDir",
    "MonitorProc",
    "System",
    "broker_view",
    "start_ibsim",
    "stop_process",
    "wait_for",
]

MONITOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "risk_monitor": {"check_interval_s": 0.1, "confirm_checks": 3, "command_timeout_s": 1.0},
    # normal trading in these tests must never look like a flood: the flood tests set their own limits
    "operational_risk": {"missed_heartbeats": 5, "max_orders_per_window": 10_000, "duplicate_order_alarm_count": 1_000},
}


def start_ibsim(log_path: Path, *args: str, speed: float = 6000, seed: int = 3) -> tuple[subprocess.Popen, int]:
    """``python -m ibsim`` on a free port with ``args`` added; (process, port). The caller stops it."""
    with log_path.open("w") as out:
        proc = subprocess.Popen(
            [PYTHON, "-m", "ibsim", "--port", "0", "--speed", str(speed), "--seed", str(seed), *args],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        match = wait_for(
            lambda: re.search(r"event=listening host=\S+ port=(\d+)", log_path.read_text()), 30, "ibsim listening", proc
        )
    except BaseException:
        stop_process(proc)
        raise
    return proc, int(match.group(1))


def configure_monitor(ed: EngineDir, **sections: dict[str, Any]) -> None:
    """The monitor's test settings (``MONITOR_DEFAULTS`` then ``sections``) in the shared config file."""

    def change(raw: dict[str, Any]) -> None:
        for section, values in MONITOR_DEFAULTS.items():
            raw.setdefault(section, {}).update(values)
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)

    ed.update_config(change)


class MonitorProc:
    """``risk_monitor.py --config config.yaml`` run in the engine's folder (same config, same relative paths)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen | None = None
        self.beat_path = root / "logs" / "risk_monitor_heartbeat.json"
        self.kill_flag = root / "flags" / "KILL.flag"
        self.kill_now_flag = root / "flags" / "KILL_NOW.flag"
        self.starts = 0

    def start(self, *overrides: str) -> subprocess.Popen:
        self.starts += 1
        args = [arg for item in overrides for arg in ("--set", item)]
        with (self.root / f"monitor.{self.starts}.out").open("w") as out:
            self.proc = subprocess.Popen(
                [PYTHON, str(REPO / "risk_monitor.py"), "--config", "config.yaml", *args],
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self.proc

    def stop(self) -> int | None:
        """SIGTERM and wait (the monitor must exit 0 on it); returns the exit code."""
        if self.proc is None:
            return None
        stop_process(self.proc)
        return self.proc.returncode

    @property
    def output(self) -> str:
        path = self.root / f"monitor.{self.starts}.out"
        return path.read_text() if path.exists() else ""

    def beat(self) -> dict[str, Any] | None:
        """The monitor's heartbeat JSON (None while missing; it is replaced atomically, so never half-written)."""
        try:
            return json.loads(self.beat_path.read_text())
        except FileNotFoundError:
            return None

    def beat_from_this_process(self) -> dict[str, Any] | None:
        body = self.beat()
        return body if body is not None and self.proc is not None and body.get("pid") == self.proc.pid else None

    def wait_engine_alive(self, timeout_s: float = 30) -> dict[str, Any]:
        def alive() -> dict[str, Any] | None:
            body = self.beat_from_this_process()
            return body if body and body.get("engine_status") == "ALIVE" and body["broker"]["connected"] else None

        try:
            return wait_for(alive, timeout_s, "the monitor sees the engine alive and is connected to ibsim", self.proc)
        except pytest.fail.Exception as failed:
            beat = json.dumps(self.beat(), indent=1)
            pytest.fail(f"{failed}\nmonitor heartbeat: {beat}\nmonitor output:\n{self.output[-3000:]}")

    def kill_record(self) -> dict[str, Any] | None:
        body = self.beat()
        return None if body is None else body.get("kill")

    def wait_kill_done(self, timeout_s: float) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            record = self.kill_record()
            return record if record and record["state"] in ("DONE", "NOT_FLAT") else None

        record = wait_for(done, timeout_s, "the monitor's kill flow ends", self.proc)
        assert record["state"] == "DONE", json.dumps(record, indent=1)
        return record


def steps(record: dict[str, Any]) -> dict[str, int]:
    """First timestamp of each kill step by name."""
    found: dict[str, int] = {}
    for step in record["steps"]:
        found.setdefault(step["step"], step["ts_ns"])
    return found


def order_log_rows(root: Path) -> list[dict[str, str]]:
    path = root / "logs" / "order_submissions.csv"
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("ts_ns", "").isdigit()]


class System:
    """ibsim + engine + monitor for one test; ``close`` stops all three."""

    def __init__(self, tmp_path: Path, *ibsim_args: str, ibsim_speed: float = 6000) -> None:
        self._stack = contextlib.ExitStack()
        self.ibsim_proc, self.ib_port = start_ibsim(tmp_path / "ibsim.log", *ibsim_args, speed=ibsim_speed)
        self._stack.callback(stop_process, self.ibsim_proc)
        work = tmp_path / "work"
        work.mkdir()
        self.ed = EngineDir(work, self.ib_port)
        self.monitor = MonitorProc(work)
        self._stack.callback(self._stop_monitor)
        self._stack.callback(self._stop_engine)

    @property
    def root(self) -> Path:
        return self.ed.root

    def configure(self, **sections: dict[str, Any]) -> None:
        configure_monitor(self.ed, **sections)

    def start(self, *monitor_overrides: str) -> None:
        """Engine first, then the monitor (as run_system.sh does); both in the engine's folder."""
        self.ed.start()
        self.monitor.start(*monitor_overrides)

    def engine_alive(self) -> bool:
        return self.ed.proc is not None and self.ed.proc.poll() is None

    def broker(self) -> tuple[dict[str, float], list[int]]:
        return broker_view(self.ib_port)

    def wait_broker(self, cond: Callable[[dict[str, float], list[int]], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            positions, working = self.broker()
            if cond(positions, working):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"not within {timeout_s} s: {what} (positions {positions}, working {working})")
            time.sleep(0.2)

    def close(self) -> None:
        self._stack.close()

    def _stop_engine(self) -> None:
        proc = self.ed.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen engine cannot act on SIGTERM
            stop_process(proc)

    def _stop_monitor(self) -> None:
        if self.monitor.proc is not None:
            stop_process(self.monitor.proc)


@pytest.fixture
def make_system(tmp_path: Path) -> Iterator[Callable[..., System]]:
    """``make_system(*ibsim_args)``: a ``System`` stopped at teardown."""
    made: list[System] = []

    def make(*ibsim_args: str, ibsim_speed: float = 6000) -> System:
        system = System(tmp_path, *ibsim_args, ibsim_speed=ibsim_speed)
        made.append(system)
        return system

    yield make
    for system in made:
        system.close()


def in_process_config(root: Path, ib_port: int, **sections: dict[str, Any]) -> Any:
    """An ``AppConfig`` for a monitor run inside the test process: every path absolute under ``root``, free ports."""
    from core.config_loader import validate_config
    from testkit.waiting import free_port

    raw: dict[str, Any] = {
        "ib_connection": {"port": ib_port, "connect_timeout_s": 3},
        "system": {
            "log_dir": str(root / "logs"),
            "state_dir": str(root / "state"),
            "kill_flag_path": str(root / "flags" / "KILL.flag"),
            "kill_now_flag_path": str(root / "flags" / "KILL_NOW.flag"),
        },
        "operational_risk": {
            "heartbeat_interval_s": 0.1,
            "missed_heartbeats": 3,
            "heartbeat_flag_path": str(root / "logs" / "heartbeat.csv"),
            "order_rate_counter_path": str(root / "logs" / "order_submissions.csv"),
            "heartbeat_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "command_endpoint": f"tcp://127.0.0.1:{free_port()}",
            "command_keys_dir": str(root / "state" / "keys"),
            "risk_log_interval_s": 0.5,
            "monitor_heartbeat_path": str(root / "logs" / "risk_monitor_heartbeat.json"),
        },
        "risk_monitor": {"check_interval_s": 0.05, "confirm_checks": 3, "command_timeout_s": 0.3},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return validate_config(raw, "in-process monitor test")


def sim_book(sim: Any) -> tuple[int, dict[str, float]]:
    """(working orders of every client, non-zero positions) straight from an in-process ibsim's book."""
    with sim.lock:
        working = len(sim.book.working_orders())
        return working, {s: p.quantity for s, p in sim.book.positions.items() if p.quantity}
