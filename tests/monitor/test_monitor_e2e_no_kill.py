"""Situations that must NOT kill: a monitor restart (or crash) during normal trading, ZeroMQ down while the CSV
heartbeat is fresh, and a forged command from a process without the key.

One system (ibsim, a trading engine, the monitor) serves the module; each test restarts the monitor the way it
needs and leaves a normally running one behind. A kill in any test would leave ``KILL.flag``, which every test
checks is absent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitor_harness import REPO, System, order_log_rows, wait_for

from core.ipc_commands import ReplyCode
from testkit.waiting import free_port

QUIET_CHECK_S = 3.0  # > grace (missed x interval = 1 s) + confirm_checks x check_interval, several times over


@pytest.fixture(scope="module")
def trading(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System(tmp_path_factory.mktemp("no_kill"))
    try:
        system.configure()
        system.start()
        system.monitor.wait_engine_alive()
        wait_for(
            lambda: any(r["event"] == "submit" for r in order_log_rows(system.root)),
            90,
            "the engine submits orders",
            system.ed.proc,
        )
        yield system
    finally:
        system.close()


def assert_quiet_for(system: System, seconds: float) -> dict:
    """For ``seconds``: no kill flag, the monitor watching without a breach, the engine running."""
    deadline = time.monotonic() + seconds
    body: dict | None = None
    while time.monotonic() < deadline:
        body = system.monitor.beat_from_this_process()
        assert not system.monitor.kill_flag.exists(), system.monitor.kill_flag.read_text()
        assert system.engine_alive()
        if body is not None:
            assert body["state"] == "WATCHING" and body["breaches"] == [] and body["kill"] is None, body
        time.sleep(0.1)
    assert body is not None
    return body


def test_monitor_crash_and_restart_during_trading_does_not_kill(trading: System) -> None:
    system = trading
    rows_before = len(order_log_rows(system.root))
    assert system.monitor.proc is not None
    os.kill(system.monitor.proc.pid, signal.SIGKILL)  # a crash: no goodbye
    system.monitor.proc.wait(timeout=10)
    time.sleep(1.0)
    assert system.engine_alive()  # the engine trades on (on_monitor_stale: ignore in this config)
    system.monitor.start()
    system.monitor.wait_engine_alive()
    body = assert_quiet_for(system, QUIET_CHECK_S)
    assert rows_before > 0 and body["alarms"] == [], body["alarms"]  # the old rows counted for nothing
    assert system.monitor.stop() == 0  # SIGTERM: clean exit 0
    system.monitor.start()  # a graceful restart too
    system.monitor.wait_engine_alive()
    assert_quiet_for(system, QUIET_CHECK_S)
    assert len(order_log_rows(system.root)) > rows_before  # trading went on throughout


def test_zeromq_down_with_a_fresh_csv_heartbeat_is_an_ipc_alarm_not_a_kill(trading: System) -> None:
    system = trading
    system.monitor.stop()
    silent = f"tcp://127.0.0.1:{free_port()}"  # nobody publishes there: the ZeroMQ path is broken
    system.monitor.start(f"operational_risk.heartbeat_endpoint={silent}")
    try:
        body = wait_for(
            lambda: (
                (b := system.monitor.beat_from_this_process())
                and any(a["kind"] == "ipc_broken" for a in b["alarms"])
                and b
            ),
            15,
            "the IPC-broken alarm",
            system.monitor.proc,
        )
        assert body["engine_status"] == "IPC_BROKEN" and "CSV heartbeat fresh" in body["engine_detail"]
        body = assert_quiet_for(system, QUIET_CHECK_S)
        assert [a["kind"] for a in body["alarms"]] == ["ipc_broken"]
    finally:
        system.monitor.stop()
        system.monitor.start()
        system.monitor.wait_engine_alive()


FORGER = """
import sys
from pathlib import Path
from core.clock import WallClock
from core.ipc_commands import CommandClient
from core.ipc_keys import ensure_keys

endpoint, real_keys, own_keys = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ensure_keys(own_keys, ("risk_monitor",))  # a valid keypair under the monitor's name, never authorized
(own_keys / "server.key").write_bytes((real_keys / "server.key").read_bytes())  # pins the real engine
with CommandClient(endpoint, own_keys, "risk_monitor", WallClock()) as client:
    print(client.send("HALT", 1.0, reason="forged").code)
"""


def test_forged_command_from_a_process_without_the_key_is_refused(trading: System, tmp_path: Path) -> None:
    system = trading
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            FORGER,
            system.ed.cmd_endpoint,
            str(system.root / "state" / "keys"),
            str(tmp_path / "forged_keys"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ReplyCode.NO_REPLY  # the handshake is refused: the command never arrives
    with system.ed.client() as operator:
        status = operator.send("STATUS", 2.0)
    assert status.ok and status.data["state"] != "HALTED" and status.data["kill"] == "NONE"
    assert_quiet_for(system, 1.0)
