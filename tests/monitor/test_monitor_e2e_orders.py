"""Order flood and duplicate orders: a real process submits to ibsim in a loop; the monitor must stop it.

The flooding process (``flood_orders.py``) writes the engine's order-log rows through the engine's own writer and
places resting limit orders at ibsim. The monitor must see the breach within 1 s of the row that crossed the limit,
confirm it, write ``KILL.flag`` (which stops the flood, as it stops the engine), and, since no engine answers the
command channel, cancel everything at ibsim through its own connection.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from monitor_harness import (
    REPO,
    EngineDir,
    MonitorProc,
    broker_view,
    configure_monitor,
    order_log_rows,
    start_ibsim,
    steps,
    stop_process,
    wait_for,
)

FLOOD = Path(__file__).resolve().parent / "flood_orders.py"


@pytest.fixture(scope="module")
def ib_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_ibsim(tmp_path_factory.mktemp("ibsim") / "ibsim.log")
    try:
        yield port
    finally:
        stop_process(proc)


def run_flood(root: Path, port: int, *, count: int, rate_hz: float, identical: bool) -> subprocess.Popen:
    args = [
        sys.executable,
        str(FLOOD),
        "--port",
        str(port),
        "--order-log",
        "logs/order_submissions.csv",
        "--kill-flag",
        "flags/KILL.flag",
        "--count",
        str(count),
        "--rate-hz",
        str(rate_hz),
    ]
    out = (root / "flood.out").open("w")
    return subprocess.Popen(
        [*args, *(["--identical"] if identical else [])],
        cwd=root,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PYTHONPATH": str(REPO)},
    )


def flood_and_kill(tmp_path: Path, port: int, *, identical: bool, limits: dict[str, object]) -> tuple[dict, dict]:
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, port)  # only for its config: no engine runs in these tests
    configure_monitor(ed, operational_risk=limits)
    monitor = MonitorProc(work)
    monitor.start()
    flood = None
    try:
        wait_for(
            lambda: (b := monitor.beat_from_this_process()) and b["broker"]["connected"],
            30,
            "the monitor connected to ibsim",
            monitor.proc,
        )
        flood = run_flood(work, port, count=400, rate_hz=60.0, identical=identical)
        wait_for(monitor.kill_flag.exists, 30, "KILL.flag after the flood", monitor.proc)
        record = monitor.wait_kill_done(20)
        wait_for(lambda: broker_view(port)[1] == [], 10, "no working order left at ibsim")
        beat = monitor.beat()
        assert beat is not None
        return record, beat
    finally:
        if flood is not None:
            stop_process(flood)
        monitor.stop()


def crossing_ts_ns(root: Path, nth: int) -> int:
    submits = [int(r["ts_ns"]) for r in order_log_rows(root) if r["event"] == "submit"]
    assert len(submits) >= nth, f"only {len(submits)} submits"
    return sorted(submits)[nth - 1]


def test_order_flood_breaches_within_one_second_of_crossing_the_limit_and_is_cancelled(
    tmp_path: Path, ib_port: int
) -> None:
    limit = 20
    record, beat = flood_and_kill(
        tmp_path,
        ib_port,
        identical=False,
        limits={"max_orders_per_window": limit, "order_rate_window_s": 10.0, "duplicate_order_alarm_count": 1000},
    )
    crossed_ns = crossing_ts_ns(tmp_path / "work", limit + 1)  # the (limit+1)-th order is "more than limit"
    seen_ns = beat["first_seen_ns"]["order_rate"]
    latency_s = (seen_ns - crossed_ns) / 1e9
    print(f"order flood: breach seen {latency_s * 1000:.0f} ms after the crossing row")
    assert 0 <= latency_s <= 1.0, f"order-rate breach {latency_s:.3f} s after the crossing row"
    assert record["reason"]["kind"] == "order_rate"
    names = steps(record)
    assert {
        "kill_flag_written",
        "engine_halt_reply",
        "fallback_started",
        "global_cancel_sent",
        "no_working_orders",
        "verified_flat",
    } <= set(names)
    submits_after_flag = [
        r
        for r in order_log_rows(tmp_path / "work")
        if r["event"] == "submit" and int(r["ts_ns"]) > names["kill_flag_written"] + 200_000_000
    ]
    assert submits_after_flag == []  # the flag stopped the flood (within one loop turn of the flooder)


def test_repeated_identical_orders_raise_the_duplicate_order_alarm_and_kill(tmp_path: Path, ib_port: int) -> None:
    record, beat = flood_and_kill(
        tmp_path,
        ib_port,
        identical=True,
        limits={"max_orders_per_window": 10_000, "order_rate_window_s": 10.0, "duplicate_order_alarm_count": 5},
    )
    assert record["reason"]["kind"] == "duplicate_orders"
    assert "flood:BUY:1:SPY:LMT:1.0" in record["reason"]["detail"]
    crossed_ns = crossing_ts_ns(tmp_path / "work", 5)
    latency_s = (beat["first_seen_ns"]["duplicate_orders"] - crossed_ns) / 1e9
    print(f"duplicate orders: breach seen {latency_s * 1000:.0f} ms after the fifth identical order")
    assert 0 <= latency_s <= 1.0
    assert "order_rate" not in beat["first_seen_ns"]
