"""An engine that crashes with positions is killed and flattened by the monitor at once, told by its last beat.

Real processes: the engine (``crashing_engine.py``: main.py with a handler that raises RuntimeError once the file
``CRASH_NOW`` exists) and ``risk_monitor.py``; ibsim runs in this test process (the real TCP server) so the test
can watch its book every millisecond.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from monitor_harness import EngineDir, MonitorProc, configure_monitor, sim_book, steps, stop_process, wait_for

from core.ipc_heartbeat import read_heartbeat_csv
from ibsim import IbSim
from live.exit_codes import ExitCode

HERE = Path(__file__).resolve().parent
CRASH_TO_FLAG_BOUND_S = 1.0
CRASH_TO_FLAT_BOUND_S = 1.0


def flat_since_ns(sim: IbSim, deadline_s: float, stable_s: float = 1.0) -> int:
    """Poll ibsim's book: the start of a spell without positions or working orders that lasted ``stable_s``."""
    since: int | None = None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        working, positions = sim_book(sim)
        now_ns = time.time_ns()
        if working or positions:
            since = None
        elif since is None:
            since = now_ns
        elif now_ns - since >= stable_s * 1e9:
            return since
        time.sleep(0.001)
    pytest.fail(f"ibsim not flat for {stable_s} s within {deadline_s} s: {sim_book(sim)}")


def test_engine_crash_with_positions_is_killed_and_flat_within_1_s_of_the_exit(tmp_path: Path, fast_sim: IbSim) -> None:
    sim = fast_sim
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, sim.port)
    configure_monitor(ed)
    monitor = MonitorProc(work)
    try:
        ed.start(HERE / "crashing_engine.py")
        monitor.start()
        monitor.wait_engine_alive()
        wait_for(lambda: sim_book(sim)[1], 90, "the engine holds a position at ibsim", ed.proc)
        triggered_ns = time.time_ns()
        (work / "CRASH_NOW").touch()
        code = ed.wait_exit(30)
        exited_ns = time.time_ns()
        assert code == ExitCode.CRASH, ed.output[-3000:]
        last = read_heartbeat_csv(work / "logs" / "heartbeat.csv")
        assert last is not None and last.extra["stopping"] == "crash", last
        assert "RuntimeError: injected fault" in str(last.extra["error"])
        flat_ns = flat_since_ns(sim, 10)
        record = monitor.wait_kill_done(20)
        assert record["reason"]["kind"] == "engine_crashed", json.dumps(record, indent=1)
        assert "RuntimeError" in record["reason"]["detail"]
        assert "engine_commands_skipped" in steps(record)  # nothing is left to answer: straight to its own orders
        flag_after_s = (steps(record)["kill_flag_written"] - exited_ns) / 1e9
        flat_after_s = (flat_ns - exited_ns) / 1e9
        print(f"fault injected -> exit {(exited_ns - triggered_ns) / 1e6:.0f} ms; exit -> KILL.flag "
              f"{flag_after_s * 1e3:.0f} ms, -> flat at ibsim {flat_after_s * 1e3:.0f} ms; fault -> flat "
              f"{(flat_ns - triggered_ns) / 1e6:.0f} ms")
        assert flag_after_s <= CRASH_TO_FLAG_BOUND_S, f"KILL.flag {flag_after_s:.3f} s after the exit"
        assert flat_after_s <= CRASH_TO_FLAT_BOUND_S, f"flat {flat_after_s:.3f} s after the exit"
        assert "engine_crashed" in monitor.kill_flag.read_text()
    finally:
        for proc in (ed.proc, monitor.proc):
            if proc is not None:
                stop_process(proc)
