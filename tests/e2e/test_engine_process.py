"""The engine as a real process: ``python -m ibsim`` and ``python main.py`` started with ``subprocess.Popen``.

Harness (fixtures ``ibsim_port`` / ``engine_dir``, ``EngineDir``, ``broker_view``...) in ``engine_harness.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from engine_harness import PYTHON, REPO, EngineDir, broker_view, free_port, wait_for

from core.clock import WallClock
from core.ipc_commands import ReplyCode
from core.ipc_heartbeat import HeartbeatSubscriber, read_heartbeat_csv
from core.ipc_keys import ensure_keys
from portfolio.snapshot import read_snapshot


def test_engine_heartbeats_risk_log_and_sigterm(engine_dir: EngineDir) -> None:
    proc = engine_dir.start()
    keys = engine_dir.root / "state" / "keys"
    ensure_keys(keys, ("risk_monitor", "operator"))  # the engine reuses them: its heartbeat on TCP is CURVE
    with HeartbeatSubscriber(engine_dir.hb_endpoint, WallClock(), curve_client=(keys, "operator")) as sub:
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
    assert reply.code is ReplyCode.OK and reply.data["state"] in ("STARTING", "ACTIVE", "REDUCING")
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
