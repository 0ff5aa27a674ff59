"""The monitor against a real engine that freezes (SIGSTOP) or dies (SIGKILL) with open orders and positions.

Real processes: ``python -m ibsim``, ``python main.py`` and ``python risk_monitor.py`` (harness:
``monitor_harness.py``). The engine places MOC orders, which stay working until the next close, so there are open
orders at ibsim when it stops. The monitor must write ``KILL.flag`` within ``missed_heartbeats x interval + 1 s``,
then cancel and flatten through its own IB connection because the engine cannot answer.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from monitor_harness import System, steps, wait_for

HEARTBEAT_INTERVAL_S = 0.2  # engine_harness's test config
MISSED = 5  # monitor_harness's MONITOR_DEFAULTS
FLAG_BOUND_S = MISSED * HEARTBEAT_INTERVAL_S + 1.0


def moc_orders(raw: dict[str, Any]) -> None:
    raw["strategies"]["sma_crossover"]["order_type"] = "MOC"


def trading_with_open_orders(system: System) -> tuple[dict[str, float], list[int]]:
    """Start everything and wait until ibsim holds a position and a working order of the engine."""
    system.configure()
    system.ed.update_config(moc_orders)
    system.start()
    system.monitor.wait_engine_alive()
    found: dict[str, Any] = {}

    def both() -> bool:
        found["positions"], found["working"] = system.broker()
        return bool(found["positions"] and found["working"])

    wait_for(both, 90, "the engine holds a position and has a working MOC order at ibsim", system.ed.proc)
    return found["positions"], found["working"]


def assert_killed_flat_and_monitor_alive(system: System, record: dict[str, Any]) -> None:
    names = steps(record)
    assert {"kill_flag_written", "global_cancel_sent", "flatten_orders_sent", "verified_flat", "kill_done"} <= set(
        names
    ), record
    body = system.monitor.beat()
    assert body is not None and body["state"] == "KILLED"
    assert body["broker"]["positions"] == {} and body["broker"]["open_orders"] == 0  # the monitor's own view
    positions, working = system.broker()  # and a third client's view of ibsim
    assert positions == {} and working == []
    assert system.monitor.proc is not None and system.monitor.proc.poll() is None  # it keeps watching


def test_frozen_engine_sigstop_is_killed_and_flattened_through_the_monitors_connection(make_system) -> None:
    system = make_system()
    trading_with_open_orders(system)
    assert system.ed.proc is not None
    stopped_ns = time.time_ns()
    os.kill(system.ed.proc.pid, signal.SIGSTOP)
    wait_for(system.monitor.kill_flag.exists, FLAG_BOUND_S + 1, "KILL.flag", system.monitor.proc)
    record = system.monitor.wait_kill_done(20)
    flag_after_s = (steps(record)["kill_flag_written"] - stopped_ns) / 1e9
    assert flag_after_s <= FLAG_BOUND_S, f"KILL.flag {flag_after_s:.3f} s after SIGSTOP (bound {FLAG_BOUND_S} s)"
    assert record["reason"]["kind"] == "engine_frozen" and "stopped (SIGSTOP)" in record["reason"]["detail"]
    assert steps(record).keys() >= {"engine_halt_sent", "engine_halt_reply", "fallback_started"}
    assert "NO_REPLY" in next(s["detail"] for s in record["steps"] if s["step"] == "engine_halt_reply")
    assert_killed_flat_and_monitor_alive(system, record)
    assert "engine_frozen" in system.monitor.kill_flag.read_text()
    assert system.engine_alive()  # frozen, not killed: the monitor stops trading, not processes


def test_engine_sigkill_with_open_orders_is_killed_at_once_and_flattened(make_system) -> None:
    system = make_system()
    trading_with_open_orders(system)
    assert system.ed.proc is not None
    killed_ns = time.time_ns()
    os.kill(system.ed.proc.pid, signal.SIGKILL)
    system.ed.proc.wait(timeout=10)  # reaped, as init would
    wait_for(system.monitor.kill_flag.exists, FLAG_BOUND_S + 1, "KILL.flag", system.monitor.proc)
    record = system.monitor.wait_kill_done(20)
    flag_after_s = (steps(record)["kill_flag_written"] - killed_ns) / 1e9
    assert flag_after_s <= FLAG_BOUND_S, f"KILL.flag {flag_after_s:.3f} s after SIGKILL (bound {FLAG_BOUND_S} s)"
    assert record["reason"]["kind"] == "engine_gone"
    assert "engine_commands_skipped" in steps(record)  # nothing left to answer: straight to the fallback
    assert_killed_flat_and_monitor_alive(system, record)
