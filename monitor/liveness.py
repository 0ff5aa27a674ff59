"""Is the engine alive? From its heartbeats (ZeroMQ first, the CSV file as fallback) and its process id.

Verdicts (``EngineStatus``) and how each is told apart:

- ``STARTING``: the monitor itself started less than ``missed_heartbeats x heartbeat_interval_s`` ago and has not
  seen a fresh beat yet. Nothing is judged: a fresh monitor must not take "no beat seen yet" for a dead engine.
- ``NOT_SEEN``: past that grace and still no fresh beat from a live process since the monitor started (the engine
  is not running, or the CSV names a process that is gone: one that died before this monitor could see it alive).
  An alarm, never a kill: a monitor that (re)starts must not kill for what happened before it looked.
- ``ALIVE``: the newest beat, over ZeroMQ or in the CSV, is at most the dead-after age old.
- ``IPC_BROKEN``: ZeroMQ silent beyond the dead-after age while the CSV file is fresh: the engine lives, the
  socket path between us is broken. An alarm: the engine is fine, the kill switch's fast path is not.
- ``FROZEN``: every beat is older than the dead-after age and the engine's process still exists (running, or
  stopped by SIGSTOP / a debugger, which ``/proc`` shows as state T). A breach, confirmed over several checks.
- ``STOPPED``: the newest beat is the engine's last one of a stop somebody ordered (``"stopping": "operator"``: a
  signal, the end of ``--duration``; ``"kill"``: a completed kill). An alarm: nothing is left running to kill.
- ``CRASHED``: the newest beat is the engine's last one of an exit nobody ordered (``"stopping": "crash"``, with
  the error). A breach acted on at once, like ``GONE``: the account may hold positions that no engine watches.
- ``GONE``: the process that sent the newest beat no longer exists (no ``/proc`` entry, a zombie, or its pid now
  belongs to a process started later). A breach acted on at once: nothing can answer commands any more.

"Fresh" is judged by the beat's own timestamp (engine and monitor share the host clock), so a beat stuck in a
queue is not mistaken for a live engine. Pure apart from ``probe_process`` (``/proc`` or ``os.kill(pid, 0)``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from core.clock import NS_PER_SECOND
from core.ipc_heartbeat import Heartbeat

log = logging.getLogger(__name__)


class EngineStatus(StrEnum):
    STARTING = "STARTING"
    NOT_SEEN = "NOT_SEEN"
    ALIVE = "ALIVE"
    IPC_BROKEN = "IPC_BROKEN"
    STOPPED = "STOPPED"
    CRASHED = "CRASHED"
    FROZEN = "FROZEN"
    GONE = "GONE"


class ProcessState(StrEnum):
    RUNNING = "RUNNING"  # includes sleeping and disk wait: it can run
    STOPPED = "STOPPED"  # SIGSTOP or traced
    GONE = "GONE"  # no such process, a zombie, or a different process under a reused pid
    UNKNOWN = "UNKNOWN"  # exists, but we may not look (another user's process)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    state: ProcessState
    start_ticks: int | None  # /proc start time (clock ticks since boot): tells a reused pid apart


def probe_process(pid: int, proc_root: Path = Path("/proc")) -> ProcessInfo:
    """What the OS says about ``pid`` now. Linux reads ``/proc/<pid>/stat``; elsewhere ``os.kill(pid, 0)``."""
    if pid <= 0:
        return ProcessInfo(ProcessState.GONE, None)
    if proc_root.is_dir():
        try:
            stat = (proc_root / str(pid) / "stat").read_text()
        except FileNotFoundError:
            return ProcessInfo(ProcessState.GONE, None)
        except OSError:
            return ProcessInfo(ProcessState.UNKNOWN, None)
        # "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rfind(")") + 2 :].split()
        letter = fields[0] if fields else "?"
        start_ticks = int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None
        if letter in ("Z", "X", "x"):
            return ProcessInfo(ProcessState.GONE, start_ticks)
        if letter in ("T", "t"):
            return ProcessInfo(ProcessState.STOPPED, start_ticks)
        return ProcessInfo(ProcessState.RUNNING, start_ticks)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ProcessInfo(ProcessState.GONE, None)
    except PermissionError:
        return ProcessInfo(ProcessState.UNKNOWN, None)
    return ProcessInfo(ProcessState.RUNNING, None)


@dataclass(frozen=True, slots=True)
class LivenessReport:
    """One verdict with the facts behind it (ages in seconds; None when there is no such beat)."""

    status: EngineStatus
    pid: int | None
    process: ProcessState | None
    zmq_age_s: float | None
    csv_age_s: float | None
    newest_seq: int | None
    detail: str

    @property
    def age_s(self) -> float | None:
        ages = [a for a in (self.zmq_age_s, self.csv_age_s) if a is not None]
        return min(ages) if ages else None


class LivenessTracker:
    """Folds beats and process probes into ``LivenessReport``s (monitor loop thread only).

    ``dead_after_s`` = ``missed_heartbeats x heartbeat_interval_s``: the age past which a beat proves nothing.
    """

    def __init__(self, *, dead_after_s: float, started_ns: int) -> None:
        if dead_after_s <= 0:
            raise ValueError(f"dead_after_s must be > 0 (got {dead_after_s})")
        self.dead_after_s = dead_after_s
        self.started_ns = started_ns
        self.zmq_beat: Heartbeat | None = None
        self.csv_beat: Heartbeat | None = None
        self.seen_alive_pid: int | None = None
        self._start_ticks: dict[int, int] = {}

    def observe_zmq(self, beat: Heartbeat | None) -> None:
        if beat is not None and (self.zmq_beat is None or beat.ts_ns >= self.zmq_beat.ts_ns):
            self.zmq_beat = beat

    def observe_csv(self, beat: Heartbeat | None) -> None:
        if beat is not None:
            self.csv_beat = beat

    def assess(self, now_ns: int, process: ProcessInfo | None = None) -> LivenessReport:
        """The verdict at ``now_ns``. ``process``: a probe of the newest beat's pid (probed here when None)."""
        zmq_age = self._age(self.zmq_beat, now_ns)
        csv_age = self._age(self.csv_beat, now_ns)
        newest = max((b for b in (self.zmq_beat, self.csv_beat) if b is not None), key=lambda b: b.ts_ns, default=None)
        zmq_fresh = zmq_age is not None and zmq_age <= self.dead_after_s
        csv_fresh = csv_age is not None and csv_age <= self.dead_after_s
        in_grace = (now_ns - self.started_ns) / NS_PER_SECOND <= self.dead_after_s
        info: ProcessInfo | None = None
        if newest is not None:
            info = self._checked(newest.pid, process if process is not None else probe_process(newest.pid))
        proven_alive = info is not None and (zmq_fresh or csv_fresh) and info.state is not ProcessState.GONE
        if newest is not None and proven_alive and self.seen_alive_pid != newest.pid:
            if self.seen_alive_pid is not None:
                log.warning("event=engine_pid_changed old_pid=%d new_pid=%d", self.seen_alive_pid, newest.pid)
            self.seen_alive_pid = newest.pid  # alive = a fresh beat from a process that exists

        def report(status: EngineStatus, detail: str, info: ProcessInfo | None = None) -> LivenessReport:
            return LivenessReport(
                status=status,
                pid=None if newest is None else newest.pid,
                process=None if info is None else info.state,
                zmq_age_s=zmq_age,
                csv_age_s=csv_age,
                newest_seq=None if newest is None else newest.seq,
                detail=detail,
            )

        if newest is None or info is None or self.seen_alive_pid is None:
            if in_grace:
                return report(EngineStatus.STARTING, "no fresh heartbeat yet; inside the start-up grace")
            what = "no heartbeat at all" if newest is None else f"only a heartbeat of a gone or silent pid {newest.pid}"
            return report(EngineStatus.NOT_SEEN, f"{what} since the monitor started", info)
        stopping = newest.extra.get("stopping")  # the newest beat of all: a restarted engine's beats are newer
        if stopping == "crash":
            error = newest.extra.get("error") or newest.extra.get("stop_reason")
            return report(EngineStatus.CRASHED, f"engine process {newest.pid} crashed ({error})", info)
        if stopping in ("operator", "kill"):
            reason = newest.extra.get("stop_reason")
            return report(EngineStatus.STOPPED, f"engine process {newest.pid} stopped on purpose: {stopping} "
                                                f"({reason})", info)  # fmt: skip
        if info.state is ProcessState.GONE:
            return report(EngineStatus.GONE, f"engine process {newest.pid} is gone", info)
        if zmq_fresh:
            return report(EngineStatus.ALIVE, "", info)
        if csv_fresh:
            if in_grace and self.zmq_beat is None:
                return report(EngineStatus.ALIVE, "CSV heartbeat fresh; ZeroMQ not heard yet", info)
            zmq_text = "never heard" if zmq_age is None else f"silent for {zmq_age:.2f} s"
            return report(EngineStatus.IPC_BROKEN, f"CSV heartbeat fresh but ZeroMQ {zmq_text}", info)
        how = "stopped (SIGSTOP)" if info.state is ProcessState.STOPPED else "alive"
        silent_s = min(a for a in (zmq_age, csv_age) if a is not None)
        detail = f"process {newest.pid} {how} but no heartbeat for {silent_s:.2f} s (allowed {self.dead_after_s:g} s)"
        return report(EngineStatus.FROZEN, detail, info)

    def stale_at_ns(self) -> int | None:
        """When the newest beat will be older than ``dead_after_s`` (so the loop can look exactly then)."""
        newest = max((b.ts_ns for b in (self.zmq_beat, self.csv_beat) if b is not None), default=None)
        return None if newest is None else newest + int(self.dead_after_s * NS_PER_SECOND) + 1

    def _checked(self, pid: int, info: ProcessInfo) -> ProcessInfo:
        """Remember the first start time seen for ``pid``; a different one later means the pid was reused."""
        if info.start_ticks is None or info.state is ProcessState.GONE:
            return info
        first = self._start_ticks.setdefault(pid, info.start_ticks)
        if first != info.start_ticks:
            return ProcessInfo(ProcessState.GONE, info.start_ticks)
        return info

    @staticmethod
    def _age(beat: Heartbeat | None, now_ns: int) -> float | None:
        return None if beat is None else beat.age_s(now_ns)
