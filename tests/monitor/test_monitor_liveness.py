"""``monitor.liveness``: each verdict from beats and process states, and the real ``/proc`` probe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType

import pytest

from core.clock import NS_PER_SECOND
from core.events import TradingState
from core.ipc_heartbeat import Heartbeat
from monitor.liveness import EngineStatus, LivenessTracker, ProcessInfo, ProcessState, probe_process
from testkit.waiting import eventually

S = NS_PER_SECOND
T0 = 1_700_000_000 * S
RUNNING = ProcessInfo(ProcessState.RUNNING, 100)
STOPPED = ProcessInfo(ProcessState.STOPPED, 100)
GONE = ProcessInfo(ProcessState.GONE, None)


def beat(ts_ns: int, pid: int = 4242, seq: int = 1) -> Heartbeat:
    return Heartbeat(
        seq=seq,
        ts_ns=ts_ns,
        pid=pid,
        trading_state=TradingState.ACTIVE,
        equity=1.0,
        drawdown_pct=0.0,
        extra=MappingProxyType({}),
    )


def tracker() -> LivenessTracker:
    return LivenessTracker(dead_after_s=3.0, started_ns=T0)


def test_no_verdict_inside_the_start_grace_then_not_seen_is_only_an_alarm() -> None:
    live = tracker()
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.STARTING
    assert live.assess(T0 + 4 * S, RUNNING).status is EngineStatus.NOT_SEEN
    live.observe_csv(beat(T0 - 600 * S))  # a stale beat from a run long ago
    report = live.assess(T0 + 4 * S, GONE)
    assert report.status is EngineStatus.NOT_SEEN and "gone or silent pid 4242" in report.detail


def test_a_fresh_beat_of_a_process_that_died_before_the_start_is_not_a_kill() -> None:
    live = tracker()
    live.observe_csv(beat(T0 - S))  # the engine crashed a second before the monitor started
    assert live.assess(T0 + S, GONE).status is EngineStatus.STARTING
    assert live.assess(T0 + 4 * S, GONE).status is EngineStatus.NOT_SEEN  # an alarm: nothing seen alive to kill
    live.observe_zmq(beat(T0 + 4 * S, pid=77))  # the restarted engine
    assert live.assess(T0 + 4 * S, RUNNING).status is EngineStatus.ALIVE
    assert live.assess(T0 + 5 * S, GONE).status is EngineStatus.GONE  # and it is watched from then on


def test_alive_on_zmq_frozen_when_silent_and_gone_when_the_process_vanished() -> None:
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE
    frozen = live.assess(T0 + 4 * S + 1, STOPPED)
    assert frozen.status is EngineStatus.FROZEN and "stopped (SIGSTOP)" in frozen.detail
    assert live.assess(T0 + 4 * S + 1, RUNNING).status is EngineStatus.FROZEN
    gone = live.assess(T0 + 2 * S, GONE)  # a vanished process is gone even before its beats are stale
    assert gone.status is EngineStatus.GONE and gone.pid == 4242


def test_fresh_csv_with_silent_zmq_is_ipc_broken_not_frozen() -> None:
    live = tracker()
    live.observe_zmq(beat(T0 + S, seq=1))
    live.observe_csv(beat(T0 + 9 * S, seq=9))
    report = live.assess(T0 + 10 * S, RUNNING)
    assert report.status is EngineStatus.IPC_BROKEN and "ZeroMQ silent for 9.00 s" in report.detail
    csv_only = tracker()
    csv_only.observe_csv(beat(T0 + S))
    assert csv_only.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE  # ZeroMQ may still be joining
    csv_only.observe_csv(beat(T0 + 5 * S))
    assert csv_only.assess(T0 + 5 * S, RUNNING).status is EngineStatus.IPC_BROKEN


def test_a_reused_pid_counts_as_gone() -> None:
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, ProcessInfo(ProcessState.RUNNING, 100)).status is EngineStatus.ALIVE
    reused = live.assess(T0 + 5 * S, ProcessInfo(ProcessState.RUNNING, 999))  # same pid, another start time
    assert reused.status is EngineStatus.GONE


def test_a_restarted_engine_is_followed_by_its_new_pid() -> None:
    live = tracker()
    live.observe_zmq(beat(T0 + S, pid=1))
    live.assess(T0 + S, RUNNING)
    live.observe_zmq(beat(T0 + 2 * S, pid=2))
    report = live.assess(T0 + 2 * S, RUNNING)
    assert report.status is EngineStatus.ALIVE and report.pid == 2 and live.seen_alive_pid == 2


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_probe_process_tells_running_stopped_zombie_and_missing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        info = probe_process(child.pid)
        assert info.state is ProcessState.RUNNING and info.start_ticks is not None
        os.kill(child.pid, signal.SIGSTOP)
        eventually(lambda: probe_process(child.pid).state is ProcessState.STOPPED, 5)
        os.kill(child.pid, signal.SIGKILL)  # not reaped yet: a zombie, which is gone for us
        eventually(lambda: probe_process(child.pid).state is ProcessState.GONE, 5)
    finally:
        child.kill()
        child.wait()
    assert probe_process(child.pid).state is ProcessState.GONE
    assert probe_process(os.getpid()).state is ProcessState.RUNNING
    assert probe_process(0).state is ProcessState.GONE


def test_an_engine_whose_last_beat_said_stopping_is_stopped_not_gone() -> None:
    """A clean stop (signal, --duration, a completed kill) is an alarm; the same exit without that beat is a kill."""
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE
    live.observe_csv(last_beat("operator", stop_reason="SIGTERM"))
    report = live.assess(T0 + 3 * S, GONE)
    assert report.status is EngineStatus.STOPPED and "SIGTERM" in report.detail
    live.observe_zmq(beat(T0 + 4 * S, pid=77, seq=1))  # a restarted engine is watched again
    assert live.assess(T0 + 4 * S, RUNNING).status is EngineStatus.ALIVE
    assert live.assess(T0 + 5 * S, GONE).status is EngineStatus.GONE


def last_beat(stopping: object, **fields: str) -> Heartbeat:
    extra = MappingProxyType({"stopping": stopping, **fields})
    return Heartbeat(seq=2, ts_ns=T0 + 2 * S, pid=4242, trading_state=TradingState.ACTIVE, equity=1.0,
                     drawdown_pct=0.0, extra=extra)  # fmt: skip


@pytest.mark.parametrize("process", [RUNNING, GONE])
def test_an_engine_whose_last_beat_said_crash_is_crashed_while_exiting_and_after(process: ProcessInfo) -> None:
    """A crash is told by the beat, not guessed: while the process still closes its files, and after it is gone."""
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE
    live.observe_csv(last_beat("crash", error="RuntimeError: injected"))
    report = live.assess(T0 + 3 * S, process)
    assert report.status is EngineStatus.CRASHED and "RuntimeError: injected" in report.detail


@pytest.mark.parametrize("stopping", ["kill", "operator"])
def test_a_stop_somebody_ordered_is_stopped(stopping: str) -> None:
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE
    live.observe_csv(last_beat(stopping, stop_reason="why"))
    assert live.assess(T0 + 3 * S, GONE).status is EngineStatus.STOPPED


@pytest.mark.parametrize("stopping", [True, "", "maybe", None])
def test_a_last_beat_without_a_known_stop_kind_is_not_a_clean_stop(stopping: object) -> None:
    """Only the engine's own words ``operator`` or ``kill`` make an exit clean; anything else that vanished is gone."""
    live = tracker()
    live.observe_zmq(beat(T0 + S))
    assert live.assess(T0 + 2 * S, RUNNING).status is EngineStatus.ALIVE
    live.observe_csv(last_beat(stopping))
    assert live.assess(T0 + 3 * S, GONE).status is EngineStatus.GONE
