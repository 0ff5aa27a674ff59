"""A flood the order log never sees: another API client places resting orders at 25 Hz straight to ibsim.

Real processes: ``python -m ibsim``, ``risk_monitor.py`` and ``broker_flood.py`` (a rogue client with its own
client id, which writes no order-log row and ignores the kill flag). The monitor's own connection must see the
working orders and the new orders at the broker, declare ``broker_order_flood`` within two check intervals of the
order that crossed the limit (timed by the flooder just before it sent that order), confirm it, write ``KILL.flag``
and, since no engine answers the command channel, cancel everything at ibsim itself.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

FLOOD = Path(__file__).resolve().parent / "broker_flood.py"
ROGUE_CLIENT_ID = 7
CHECK_INTERVAL_S = 0.25  # the shipped config's
RATE_HZ = 25.0
COUNT = 60  # 2.4 s of flood: ends while the kill flow is still cancelling, so the guard must catch the late ones


@pytest.fixture(scope="module")
def ib_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    proc, port = start_ibsim(tmp_path_factory.mktemp("ibsim") / "ibsim.log")
    try:
        yield port
    finally:
        stop_process(proc)


def run_flood(root: Path, port: int) -> subprocess.Popen:
    out = (root / "flood.out").open("w")
    args = ["--port", str(port), "--client-id", str(ROGUE_CLIENT_ID), "--count", str(COUNT)]
    return subprocess.Popen(
        [sys.executable, str(FLOOD), *args, "--rate-hz", str(RATE_HZ), "--sent", "flood_sent.txt"],
        cwd=root,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PYTHONPATH": str(REPO)},
    )


def sent_ns(root: Path, nth: int) -> int:
    """When the flooder was about to send its ``nth`` order (its own clock line, written before the send)."""
    lines = (root / "flood_sent.txt").read_text().splitlines()
    assert len(lines) >= nth, f"only {len(lines)} orders sent"
    n, _order_id, ts_ns = lines[nth - 1].split()
    assert int(n) == nth
    return int(ts_ns)


def flood_and_kill(tmp_path: Path, port: int, limits: dict[str, Any]) -> tuple[dict, dict]:
    work = tmp_path / "work"
    work.mkdir()
    ed = EngineDir(work, port)  # only for its config: no engine runs here
    configure_monitor(ed, risk_monitor={"check_interval_s": CHECK_INTERVAL_S, **limits})
    monitor = MonitorProc(work)
    monitor.start()
    flood = None
    try:

        def listed() -> bool:  # connected, and the first list of the account's open orders read
            beat = monitor.beat_from_this_process()
            return bool(beat and beat["broker"]["connected"] and beat["broker"]["open_orders_ts_ns"])

        wait_for(listed, 30, "the monitor connected to ibsim and read the open orders", monitor.proc)
        flood = run_flood(work, port)
        wait_for(monitor.kill_flag.exists, 30, "KILL.flag after the flood", monitor.proc)
        wait_for(lambda: "done submitting" in (work / "flood.out").read_text(), 30, "the flood ended", flood)
        record = monitor.wait_kill_done(30)
        wait_for(lambda: broker_view(port)[1] == [], 15, "no working order left at ibsim")
        beat = monitor.beat()
        assert beat is not None
        assert order_log_rows(work) == []  # the order log never saw the flood
        return record, beat
    finally:
        if flood is not None:
            stop_process(flood)
        monitor.stop()


def assert_seen_within_two_intervals(root: Path, beat: dict, crossing_order: int) -> None:
    crossed_ns = sent_ns(root, crossing_order)
    latency_s = (beat["first_seen_ns"]["broker_order_flood"] - crossed_ns) / 1e9
    print(f"broker order flood: breach seen {latency_s * 1000:.0f} ms after order {crossing_order} was sent")
    assert 0 <= latency_s <= 2 * CHECK_INTERVAL_S, f"breach seen {latency_s:.3f} s after the crossing order"


def assert_killed_and_cancelled(record: dict) -> None:
    assert record["reason"]["kind"] == "broker_order_flood", record["reason"]
    names = steps(record)
    assert {"kill_flag_written", "fallback_started", "global_cancel_sent", "no_working_orders"} <= set(names)
    assert record["reason"]["confirmed_ns"] - record["reason"]["first_seen_ns"] <= 3 * CHECK_INTERVAL_S * 1e9


def test_working_orders_of_another_client_past_the_limit_are_a_breach_and_cancelled(
    tmp_path: Path, ib_port: int
) -> None:
    limit = 20
    record, beat = flood_and_kill(
        tmp_path, ib_port, {"max_broker_open_orders": limit, "max_broker_submissions_per_window": 10_000}
    )
    assert_seen_within_two_intervals(tmp_path / "work", beat, limit + 1)  # the 21st working order is "more than 20"
    assert_killed_and_cancelled(record)
    assert "working orders" in record["reason"]["detail"]


def test_new_orders_of_another_client_past_the_rate_limit_are_a_breach_and_cancelled(
    tmp_path: Path, ib_port: int
) -> None:
    limit = 15
    limits = {"max_broker_open_orders": 10_000, "max_broker_submissions_per_window": limit}
    record, beat = flood_and_kill(tmp_path, ib_port, {**limits, "broker_submission_window_s": 10})
    assert_seen_within_two_intervals(tmp_path / "work", beat, limit + 1)
    assert_killed_and_cancelled(record)
    assert f"client {ROGUE_CLIENT_ID}" in record["reason"]["detail"]
