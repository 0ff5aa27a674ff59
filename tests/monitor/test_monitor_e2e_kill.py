"""Kills with a live engine: the operator's KILL_NOW flag (measured at ibsim) and a price shock past the drawdown.

KILL_NOW runs ibsim in this test process (the real TCP server; engine and monitor are real processes) so the test
can watch ibsim's book directly and time the moment the last working order is cancelled. The price shock runs
``python -m ibsim --price-shock-signal -40`` and sends SIGUSR1 once the engine holds a large position.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from monitor_harness import EngineDir, MonitorProc, System, configure_monitor, steps, stop_process, wait_for

from ibsim import IbSim

KILL_NOW_CANCEL_BOUND_S = 0.25
KILL_NOW_FLAT_BOUND_S = 2.0


def moc_orders(raw: dict[str, Any]) -> None:
    raw["strategies"]["sma_crossover"]["order_type"] = "MOC"


def book_state(sim: IbSim) -> tuple[int, dict[str, float]]:
    """(working orders of every client, non-zero positions) straight from ibsim's book."""
    with sim.lock:
        working = len(sim.book.working_orders())
        positions = {s: p.quantity for s, p in sim.book.positions.items() if p.quantity}
    return working, positions


def watch_book_after(sim: IbSim, flagged_ns: int, stable_s: float = 1.5) -> tuple[int, int]:
    """Poll ibsim's book every millisecond: (first moment without a working order, start of the flat spell that
    then lasted ``stable_s``). A flat moment that does not last (an order still in flight fills) does not count."""
    cancelled_ns: int | None = None
    flat_since: int | None = None
    deadline_ns = flagged_ns + 10 * 1_000_000_000
    while time.time_ns() < deadline_ns:
        working, positions = book_state(sim)
        now_ns = time.time_ns()
        if not working and cancelled_ns is None:
            cancelled_ns = now_ns
        if working or positions:
            flat_since = None
        elif flat_since is None:
            flat_since = now_ns
        elif cancelled_ns is not None and now_ns - flat_since >= stable_s * 1e9:
            return cancelled_ns, flat_since
        time.sleep(0.001)
    pytest.fail(f"ibsim's book not flat for {stable_s} s within 10 s of the flag: {book_state(sim)}")


def test_kill_now_flag_cancels_at_ibsim_within_250_ms_and_is_flat_within_2_s(tmp_path: Path, fast_sim: IbSim) -> None:
    sim = fast_sim
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, sim.port)
    configure_monitor(ed)
    ed.update_config(moc_orders)
    monitor = MonitorProc(work)
    try:
        ed.start()
        monitor.start()
        monitor.wait_engine_alive()
        wait_for(lambda: all(book_state(sim)), 90, "a working MOC order and a position at ibsim", ed.proc)
        monitor.kill_now_flag.parent.mkdir(exist_ok=True)
        flagged_ns = time.time_ns()
        monitor.kill_now_flag.touch()
        cancelled_ns, flat_ns = watch_book_after(sim, flagged_ns)
        cancel_s, flat_s = (cancelled_ns - flagged_ns) / 1e9, (flat_ns - flagged_ns) / 1e9
        print(f"KILL_NOW: no working order at ibsim after {cancel_s * 1000:.0f} ms, flat after {flat_s * 1000:.0f} ms")
        assert cancel_s <= KILL_NOW_CANCEL_BOUND_S, f"cancel-all at ibsim {cancel_s:.3f} s after the flag"
        assert flat_s <= KILL_NOW_FLAT_BOUND_S, f"flat {flat_s:.3f} s after the flag"

        record = monitor.wait_kill_done(15)
        assert record["reason"]["kind"] == "kill_now"
        sent_s = (record["global_cancel_ns"] - flagged_ns) / 1e9
        assert sent_s <= KILL_NOW_CANCEL_BOUND_S, f"the monitor's reqGlobalCancel went out {sent_s:.3f} s after"
        names = list(steps(record))
        assert names.index("global_cancel_sent") < names.index("kill_flag_written")  # cancel first, then the rest
        assert {"engine_halt_reply", "engine_flatten_reply", "verified_flat"} <= set(names)  # the engine answered
        assert monitor.kill_now_flag.exists() and monitor.kill_flag.exists()  # never removed by the monitor
    finally:
        monitor.stop()
        if ed.proc is not None:
            stop_process(ed.proc)


def large_positions(raw: dict[str, Any]) -> None:
    """Big positions (so a 40 % fall is a big drawdown) and an engine that does not halt itself first."""
    raw["portfolio"]["initial_capital"] = 100_000
    raw["portfolio"]["sizing"].update(method="fixed_fraction", fixed_fraction_pct=30.0)
    raw["portfolio"]["risk"].update(
        max_position_weight_pct=35.0,
        drawdown_throttle_start_pct=50.0,
        reducing_drawdown_pct=60.0,
        halt_drawdown_pct=70.0,
    )
    raw["pre_trade"].update(price_collar_pct=100.0, max_order_notional_usd=1_000_000)


def test_price_shock_past_the_kill_drawdown_kills_and_flattens(make_system) -> None:
    system: System = make_system("--cash-usd", "100000", "--price-shock-signal", "-40")
    system.configure(risk_monitor={"kill_drawdown_pct": 6.0, "max_daily_loss_pct": 90.0})
    system.ed.update_config(large_positions)
    system.start()
    system.monitor.wait_engine_alive()

    def exposed() -> bool:
        rows = system.ed.risk_rows()
        if not rows or not rows[-1]["gross_exposure"] or not rows[-1]["equity"]:
            return False
        return float(rows[-1]["gross_exposure"]) >= 0.25 * float(rows[-1]["equity"])

    wait_for(exposed, 90, "the engine holds at least 25 % of its equity", system.ed.proc)
    before = system.monitor.beat()
    assert before is not None and before["kill"] is None and not system.monitor.kill_flag.exists()
    shocked_ns = time.time_ns()
    os.kill(system.ibsim_proc.pid, signal.SIGUSR1)
    wait_for(system.monitor.kill_flag.exists, 10, "KILL.flag after the price shock", system.monitor.proc)
    record = system.monitor.wait_kill_done(20)
    print(f"price shock: kill flag {(steps(record)['kill_flag_written'] - shocked_ns) / 1e6:.0f} ms after SIGUSR1")
    assert record["reason"]["kind"] in ("drawdown_broker", "drawdown_engine"), record["reason"]
    after = system.monitor.beat()
    assert after is not None and after["first_seen_ns"].get("drawdown_broker")  # the monitor's own NetLiquidation
    assert after["broker"]["drawdown_pct"] >= 6.0
    system.wait_broker(lambda positions, working: not positions and not working, 15, "flat at ibsim")
