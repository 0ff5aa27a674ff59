"""Real-process e2e: crash recovery, operator commands, SIGINT, and the ``refuse_start`` monitor policy.

Same harness as ``test_engine_process.py`` (``engine_harness.py``): a fresh ``python -m ibsim`` per test and the
engine started as ``python main.py`` in a temp working directory, both in their own process group and always
stopped at teardown. Orders that reached the broker are counted from ibsim's ``event=order_accepted ... ref=``
log lines (``ref`` = the engine's orderRef = client order id), so a re-sent order shows up as a repeated ref.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections import Counter
from typing import Any

import pytest
from engine_harness import EngineDir, broker_view, wait_for

from core.ipc_commands import CommandClient, CommandReply
from portfolio.snapshot import read_snapshot
from utils.atomic_files import atomic_write_bytes

ACCEPTED = re.compile(r"event=order_accepted client_id=(\d+) order_id=(\d+) .* ref=(\S+)")


def resting_orders(ed: EngineDir) -> None:
    """MOC orders: decided after a close, they work through the next session and fill at its close, so the engine
    holds positions *and* working orders most of the time."""
    ed.update_config(lambda raw: raw["strategies"]["sma_crossover"].update(order_type="MOC"))


def placed_refs(ed: EngineDir) -> Counter[str]:
    """orderRef -> number of orders ibsim accepted with it (every placeOrder that reached the broker)."""
    text = (ed.root.parent / "ibsim.log").read_text()
    return Counter(m.group(3) for m in ACCEPTED.finditer(text))


def status(client: CommandClient) -> dict[str, Any] | None:
    reply = client.send("STATUS", 2.0)
    return dict(reply.data) if reply.ok else None


def wait_keys(ed: EngineDir) -> None:
    keys = ed.root / "state" / "keys" / "clients" / "operator.key_secret"
    wait_for(keys.exists, 30, "command keys created", ed.proc)


def wait_holding_and_working(ed: EngineDir, client: CommandClient, timeout_s: float = 60) -> dict[str, Any]:
    def both() -> dict[str, Any] | None:
        st = status(client)
        return st if st and st["positions"] > 0 and st["open_orders"] > 0 else None

    return wait_for(both, timeout_s, "the engine holds a position and has a working order", ed.proc)


def send_ok(client: CommandClient, verb: str) -> CommandReply:
    reply = client.send(verb, 3.0, retries=1, reason="e2e")
    assert reply.ok, f"{verb}: {reply.code} {reply.message}"
    return reply


# ==================================================================================================== (a) crash
@pytest.mark.sim_speed(3000)
def test_crash_restart_reconciles_adopts_working_orders_and_never_resends(engine_dir: EngineDir) -> None:
    ed = engine_dir
    resting_orders(ed)
    first = ed.start()
    wait_keys(ed)
    with ed.client() as client:
        wait_holding_and_working(ed, client)
    os.killpg(first.pid, signal.SIGKILL)  # a crash: no flush, no last snapshot, no cancel
    first.wait(timeout=10)
    shutil.copy(ed.root / "engine.out", ed.root / "engine_first.out")
    assert "event=engine_stopped" not in ed.output
    before = placed_refs(ed)
    assert before and max(before.values()) == 1
    journal_refs = {json.loads(line).get("client_order_id") for line in
                    (ed.root / "state" / "order_journal.jsonl").read_text().splitlines()}  # fmt: skip
    assert set(before) <= journal_refs  # every order at the broker was journaled before it was sent

    second = ed.start()
    wait_for(lambda: "event=reconcile_positions_ok" in ed.output, 60, "restart reconciled with ibsim", second)
    out = ed.output
    recovered = re.search(r"event=orders_recovered total=(\d+) working=(\d+)", out)
    done = re.search(r"event=reconcile_done adopted=(\d+) missing=(\d+)", out)
    assert recovered and done, out[-3000:]
    assert int(recovered.group(2)) >= 1, "the crash left no journaled working order to adopt"
    assert int(done.group(1)) >= 1, "no working order adopted after the restart"
    assert "reconcile_positions_mismatch" not in out

    with ed.client() as client:

        def positions_match() -> bool:
            st = status(client)
            broker, _ = broker_view(ed.ib_port)
            again = status(client)
            # the engine keeps trading: compare only when its view did not move around the broker query
            return bool(st and again and st["position_by_symbol"] == again["position_by_symbol"]
                        and {s: float(q) for s, q in st["position_by_symbol"].items()} == broker)  # fmt: skip

        wait_for(positions_match, 30, "engine positions equal ibsim's", second)
        st = status(client)
        assert st is not None and st["state"] == "ACTIVE" and st["reconciled"] and st["accepting_orders"]
    wait_for(lambda: len(placed_refs(ed)) > len(before), 60, "the restarted engine places new orders", second)
    after = placed_refs(ed)
    assert max(after.values()) == 1, f"an order was sent twice: {[r for r, n in after.items() if n > 1]}"
    assert all(after[ref] == 1 for ref in before)  # nothing that reached the broker was re-sent


# ==================================================================================================== (b) commands
def test_halt_cancel_all_and_flatten_are_acknowledged_with_the_resulting_state(engine_dir: EngineDir) -> None:
    ed = engine_dir
    resting_orders(ed)
    proc = ed.start()
    wait_keys(ed)
    with ed.client() as client:
        wait_holding_and_working(ed, client)
        _, working = broker_view(ed.ib_port)

        reply = send_ok(client, "CANCEL_ALL")
        assert reply.data["state"] == "ACTIVE" and "cancel" in reply.message
        ibsim_log = ed.root.parent / "ibsim.log"

        def gone(oid: int, text: str) -> bool:  # cancelled by us, or filled before the cancel arrived
            return f"event=order_cancelled client_id=1 order_id={oid} " in text or f"order_id={oid} client_id=1" in text

        wait_for(lambda: all(gone(oid, ibsim_log.read_text()) for oid in working), 15,
                 f"ibsim cancelled the working orders {working}", proc)  # fmt: skip

        reply = send_ok(client, "FLATTEN")
        assert reply.data["state"] == "REDUCING"  # reduce-only after a flatten: no new exposure
        wait_for(lambda: broker_view(ed.ib_port) == ({}, []), 30, "ibsim flat with no working order", proc)
        wait_for(lambda: (st := status(client)) and st["positions"] == 0 and st["open_orders"] == 0, 15,
                 "the engine sees itself flat", proc)  # fmt: skip

        reply = send_ok(client, "HALT")
        assert reply.data["state"] == "HALTED" and reply.data["halt_reason"]
        placed = placed_refs(ed)
        time.sleep(3)  # the market keeps moving; a halted engine must send nothing
        assert placed_refs(ed) == placed
        st = status(client)
        assert st is not None and st["state"] == "HALTED"
        assert send_ok(client, "HALT").data["state"] == "HALTED"  # idempotent
    assert proc.poll() is None


# ==================================================================================================== (c) SIGINT
def test_sigint_stops_like_sigterm(engine_dir: EngineDir) -> None:
    proc = engine_dir.start()
    wait_for(lambda: "fill" in engine_dir.journal_kinds(), 60, "the engine trades against ibsim", proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert engine_dir.wait_exit(15) == 0
    assert "event=engine_stopped reason=SIGINT exit_code=0" in engine_dir.output
    snapshot = read_snapshot(engine_dir.root / "state" / "portfolio_snapshot.json")
    assert snapshot is not None and snapshot["trading_state"] in ("ACTIVE", "REDUCING")
    assert "Traceback" not in engine_dir.output  # no KeyboardInterrupt escaping the loop


# ==================================================================================================== (d) refuse_start
def test_refuse_start_places_no_order_until_a_fresh_monitor_heartbeat(engine_dir: EngineDir) -> None:
    ed = engine_dir
    ed.update_config(lambda raw: raw["operational_risk"].update(on_monitor_stale="refuse_start"))
    proc = ed.start()
    wait_for(lambda: "event=trading_blocked" in ed.output, 30, "the engine logs that trading is blocked", proc)
    wait_for(lambda: "event=reconcile_positions_ok" in ed.output, 60, "reconciled with ibsim", proc)
    wait_for(lambda: "reason=reduce_only" in ed.output and "sources=monitor_never_seen" in ed.output, 60,
             "a strategy signal dropped: no new exposure before the monitor is seen", proc)  # fmt: skip
    time.sleep(2)
    assert ed.journal_kinds() == [] and not placed_refs(ed)  # signals came, not one order went out
    wait_keys(ed)
    with ed.client() as client:
        st = status(client)
    assert st is not None and st["trading_blocked_by_monitor"] and st["monitor_stale"]
    assert st["monitor_policy"] == "refuse_start"

    beat_path = ed.root / "logs" / "risk_monitor_heartbeat.json"

    def beat() -> bool:
        atomic_write_bytes(beat_path, json.dumps({"ts_ns": time.time_ns(), "pid": os.getpid(), "seq": 1}).encode())
        return "event=trading_unblocked" in ed.output

    wait_for(beat, 15, "the engine sees the fresh monitor heartbeat", proc)
    wait_for(lambda: placed_refs(ed), 60, "the engine starts trading", proc)
    assert proc.poll() is None


def test_reducing_while_the_monitor_heartbeat_is_stale_and_back_when_fresh(engine_dir: EngineDir) -> None:
    ed = engine_dir
    ed.update_config(lambda raw: raw["operational_risk"].update(on_monitor_stale="reducing"))
    proc = ed.start()
    wait_keys(ed)
    beat_path = ed.root / "logs" / "risk_monitor_heartbeat.json"
    with ed.client() as client:
        wait_for(lambda: (st := status(client)) and st["state"] == "REDUCING" and st["monitor_stale"], 30,
                 "reduce-only without a monitor heartbeat", proc)  # fmt: skip

        def fresh_and_active() -> bool:
            atomic_write_bytes(beat_path, json.dumps({"ts_ns": time.time_ns(), "pid": os.getpid()}).encode())
            st = status(client)
            return bool(st and st["state"] == "ACTIVE" and st["monitor_stale"] is False)

        wait_for(fresh_and_active, 15, "back to ACTIVE once the monitor beats", proc)
        # the monitor goes silent again: stale after missed_heartbeats x heartbeat_interval_s (3 x 0.2 s here)
        wait_for(lambda: (st := status(client)) and st["state"] == "REDUCING", 10, "REDUCING again", proc)
    out = ed.output
    change = r"event=trading_state_changed from={} to={} event={} .* reason=\"monitor_stale{}"
    assert re.search(change.format("REDUCING", "ACTIVE", "clear", " cleared"), out)
    assert re.search(change.format("ACTIVE", "REDUCING", "reduce", ": "), out)
