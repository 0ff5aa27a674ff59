"""The risk monitor's heartbeat as the engine sees it: fresh or stale, and what the engine's policy makes of it.

Why: the risk monitor is the independent kill switch (its own IB client, its own drawdown check). When it is
silent the engine trades without that safety net, so ``operational_risk.on_monitor_stale`` decides what to do:

- ``refuse_start``: no trading until a fresh monitor heartbeat has been seen once; after that a monitor that goes
  silent is only logged (choose ``reducing`` to act on that too);
- ``reducing``: reduce-only while the beat is stale, back to normal as soon as it is fresh again;
- ``ignore``: log the transitions only.

The file (``operational_risk.monitor_heartbeat_path``) is JSON rewritten atomically by the monitor, with at least
``ts_ns`` (wall clock, ns since the epoch) and ``pid``. Missing, unreadable, unparsable, or without an integer
``ts_ns``: stale. Stale once its age exceeds ``missed_heartbeats x heartbeat_interval_s``.

Pure apart from one ``read_bytes``: every function takes ``now_ns``, so tests drive time by hand.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from core.clock import NS_PER_SECOND

log = logging.getLogger(__name__)

MonitorPolicy = Literal["refuse_start", "reducing", "ignore"]


@dataclass(frozen=True, slots=True)
class MonitorBeat:
    """One reading of the monitor heartbeat file. ``age_s`` is None when the file gave no usable timestamp."""

    stale: bool
    age_s: float | None
    pid: int | None
    reason: str  # "ok", "missing", "unreadable", "unparsable", "no_ts_ns", "too_old"


def stale_after_s(heartbeat_interval_s: float, missed_heartbeats: int) -> float:
    """The age above which a beat is stale: that many beats missed in a row."""
    return missed_heartbeats * heartbeat_interval_s


def parse_beat(raw: bytes | None, now_ns: int, max_age_s: float) -> MonitorBeat:
    """Classify the file's bytes (None = file missing) at ``now_ns``. Never raises."""
    if raw is None:
        return MonitorBeat(True, None, None, "missing")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return MonitorBeat(True, None, None, "unparsable")
    if not isinstance(body, dict):
        return MonitorBeat(True, None, None, "unparsable")
    pid = body.get("pid")
    pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    ts_ns = body.get("ts_ns")
    if not isinstance(ts_ns, int) or isinstance(ts_ns, bool):
        return MonitorBeat(True, None, pid, "no_ts_ns")
    age_s = (now_ns - ts_ns) / NS_PER_SECOND
    # a beat from the future (clock step) counts as fresh: the file was written, which is what we check
    if age_s > max_age_s:
        return MonitorBeat(True, age_s, pid, "too_old")
    return MonitorBeat(False, age_s, pid, "ok")


def read_beat(path: Path, now_ns: int, max_age_s: float) -> MonitorBeat:
    """Read and classify the heartbeat file; any OS error counts as stale (``unreadable``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raw = None
    except OSError:
        return MonitorBeat(True, None, None, "unreadable")
    return parse_beat(raw, now_ns, max_age_s)


class MonitorWatch:
    """Turns successive readings into decisions under one policy (dispatcher thread only).

    ``trading_allowed``: False under ``refuse_start`` until the first fresh beat, True otherwise.
    ``reduce_only``: True under ``reducing`` while stale. ``observe`` returns True when either changed, so the
    engine reacts (and logs) once per transition rather than once per poll.
    """

    def __init__(self, path: Path | str, policy: MonitorPolicy, max_age_s: float) -> None:
        self.path = Path(path)
        self.policy: MonitorPolicy = policy
        self.max_age_s = max_age_s
        self.last: MonitorBeat | None = None
        self.seen_fresh = False
        self.trading_allowed = policy != "refuse_start"
        self.reduce_only = False

    def poll(self, now_ns: int) -> bool:
        """Read the file and ``observe`` it."""
        return self.observe(read_beat(self.path, now_ns, self.max_age_s))

    def observe(self, beat: MonitorBeat) -> bool:
        """Apply one reading; True when ``trading_allowed`` or ``reduce_only`` changed."""
        previous = self.last
        self.last = beat
        before = (self.trading_allowed, self.reduce_only)
        if not beat.stale and not self.seen_fresh:
            self.seen_fresh = True
            if self.policy == "refuse_start":
                self.trading_allowed = True
        self.reduce_only = self.policy == "reducing" and beat.stale
        if previous is None or previous.stale != beat.stale:
            age = "none" if beat.age_s is None else f"{beat.age_s:.3f}"
            level = logging.WARNING if beat.stale else logging.INFO
            log.log(level, "event=monitor_heartbeat_%s path=%s policy=%s reason=%s age_s=%s pid=%s max_age_s=%s "
                    "trading_allowed=%s reduce_only=%s", "stale" if beat.stale else "fresh", self.path, self.policy,
                    beat.reason, age, beat.pid, self.max_age_s, self.trading_allowed, self.reduce_only)  # fmt: skip
        return before != (self.trading_allowed, self.reduce_only)
