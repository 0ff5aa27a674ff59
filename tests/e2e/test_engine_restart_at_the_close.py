"""Regression: a restart whose positions check straddles a close, while an adopted MOC order fills in it.

Found by the crash-cycle test: the start-up check compared the ledger (which had the fill) with the broker's
position snapshot taken before it, reported a mismatch and halted the engine for good (HALTED is persisted).
The broker's position updates after ``positionEnd`` now replace the snapshot, and a difference on a symbol with a
working order is checked again. Timed with ibsim's clock: kill right after a MOC is accepted, restart so that the
check runs about a second before the next close.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from testkit.crash_cycles import SESSION_SIM_S, Appended, EngineWorkDir, poll_until, start_ibsim, stop_group

SPEED = 6000.0


def test_restart_while_an_adopted_moc_fills_at_the_close_reconciles(tmp_path: Path) -> None:
    ibsim, port = start_ibsim(tmp_path / "ibsim.log", SPEED, 3)
    work = None
    try:
        work = EngineWorkDir(tmp_path / "work", port)
        work.configure(order_type="MOC")
        proc = work.start("first")
        assert work.wait_reconciled("first") == "ok"
        accepted = Appended(tmp_path / "ibsim.log")
        poll_until(lambda: accepted.contains("event=order_accepted "), 60, 0.001)
        t_accept = time.monotonic()  # a decision just followed a close: the MOC works until the next close
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        next_close = t_accept + SESSION_SIM_S / SPEED
        time.sleep(max(0.0, next_close - 1.6 - time.monotonic()))  # positionEnd ~0.6 s before the close
        work.start("second")
        outcome = work.wait_reconciled("second")
        output = work.output_path("second").read_text()
        assert outcome == "ok", output[-3000:]
        assert "event=reconcile_positions_mismatch" not in output
    finally:
        if work is not None and work.proc is not None:
            stop_group(work.proc)
        stop_group(ibsim)
