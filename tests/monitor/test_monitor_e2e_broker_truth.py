"""Flatten starts from the broker's truth, never from the engine's books (real engine and monitor processes).

- SIGSTOP the engine with positions: the monitor kills and flattens through its own connection; SIGCONT: the
  engine sees the kill flag, asks the broker, finds it flat and sends no order (the account is never short).
- A kill flag present at start-up: nothing is journaled or sent while the engine cannot reach the broker; once
  connected and reconciled it flattens what the broker holds and exits flat.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from monitor_harness import EngineDir, System, sim_book, stop_process, wait_for

from core.ipc_heartbeat import read_heartbeat_csv
from ibsim import IbSim

ENGINE_CLIENT_ID = 1
MONITOR_CLIENT_ID = 2  # risk_monitor.risk_monitor_client_id of the shipped config


def moc_orders(raw: dict[str, Any]) -> None:
    raw["strategies"]["sma_crossover"]["order_type"] = "MOC"


def orders_at_ibsim(log_text: str, client_id: int) -> int:
    return len(re.findall(rf"event=order_accepted client_id={client_id} ", log_text))


def test_engine_resumed_after_the_monitor_flattened_sends_no_order(make_system, tmp_path: Path) -> None:
    system: System = make_system()
    system.configure()
    system.ed.update_config(moc_orders)
    system.start()
    system.monitor.wait_engine_alive()
    wait_for(lambda: all(system.broker()), 90, "a position and a working MOC order at ibsim", system.ed.proc)
    assert system.ed.proc is not None
    os.kill(system.ed.proc.pid, signal.SIGSTOP)
    system.monitor.wait_kill_done(30)  # flat at ibsim through the monitor's own connection
    assert system.broker() == ({}, [])
    ibsim_log = tmp_path / "ibsim.log"
    text = ibsim_log.read_text()
    before = {client: orders_at_ibsim(text, client) for client in (ENGINE_CLIENT_ID, MONITOR_CLIENT_ID)}
    os.kill(system.ed.proc.pid, signal.SIGCONT)
    code = system.ed.wait_exit(40)  # it sees KILL.flag, asks the broker: flat, nothing working: kill complete
    text = ibsim_log.read_text()
    after = {client: orders_at_ibsim(text, client) for client in (ENGINE_CLIENT_ID, MONITOR_CLIENT_ID)}
    assert after == before, "orders after the resume: the engine sold into a flat account, the monitor bought back"
    assert system.broker() == ({}, [])
    assert code == 0, system.ed.output[-3000:]
    last = read_heartbeat_csv(system.root / "logs" / "heartbeat.csv")
    assert last is not None and last.extra["stopping"] == "kill"


def journal_rows(root: Path) -> list[dict[str, Any]]:
    path = root / "state" / "order_journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_kill_flag_at_start_up_journals_nothing_before_reconcile_then_flat(tmp_path: Path, fast_sim: IbSim) -> None:
    sim = fast_sim
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, sim.port)
    try:
        ed.start()
        wait_for(lambda: sim_book(sim)[1], 90, "the engine holds a position at ibsim", ed.proc)
        ed.proc.terminate()
        assert ed.wait_exit(30) == 0
        wait_for(lambda: not sim_book(sim)[0], 30, "no working order left at ibsim")
        held = sim_book(sim)[1]
        assert held
        (work / "flags").mkdir(exist_ok=True)
        (work / "flags" / "KILL.flag").write_text("operator: stop\n")
        rows_before = len(journal_rows(work))
        # refused until the restarted engine has shown it is up without the broker (a fixed window raced the
        # engine's start-up: on a slower machine it connected after the window and the wait below never held)
        sim.refuse_connections(120.0)
        ed.start()

        def beat_while_refused() -> Any:
            beat = read_heartbeat_csv(work / "logs" / "heartbeat.csv")
            fresh = beat is not None and beat.pid == ed.proc.pid and beat.extra.get("kill") == "KILL"
            return beat if fresh and beat.seq >= 3 and not beat.extra["connected"] else None

        wait_for(beat_while_refused, 20, "the restarted engine beats, kill flag seen, not connected", ed.proc)
        assert len(journal_rows(work)) == rows_before, "journaled before it could reach the broker"
        refused_until_ns = time.time_ns()
        sim.refuse_connections(0.0)  # accept again
        code = ed.wait_exit(60)
        assert code == 0, ed.output[-3000:]
        new_rows = journal_rows(work)[rows_before:]
        intents = [r for r in new_rows if r["kind"] == "intent"]
        assert intents, new_rows
        assert all(r["ts_ns"] >= refused_until_ns for r in new_rows), "a journal entry from before the broker answered"
        assert {r["order"]["symbol"] for r in intents} == set(held)
        assert sim_book(sim) == (0, {})
    finally:
        if ed.proc is not None:
            stop_process(ed.proc)
