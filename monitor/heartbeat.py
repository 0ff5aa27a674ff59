"""The monitor's own heartbeat, ``logs/risk_monitor_heartbeat.json`` (``operational_risk.monitor_heartbeat_path``).

Why: the engine treats a silent monitor as a missing safety net (``live/monitor_watch.py`` and the
``on_monitor_stale`` policy), and operators read the file to see what the monitor thinks (``system_status.py``).

Format (JSON object, rewritten atomically so a reader never sees half of it). The engine reads only ``ts_ns``
(wall clock, UTC epoch ns) and ``pid``; the other fields are for people and tests:

- ``v`` (1), ``seq`` (1, 2, ... per monitor process), ``placeholder`` (false) and ``can_stop_engine`` (true);
- ``engine_heartbeat_age_s``, ``engine_seq``, ``engine_pid``, ``engine_status`` (liveness verdict);
- ``state``: WATCHING, CONFIRMING (a breach seen, not yet confirmed), KILLING, KILLED (one-way);
- ``breaches`` / ``alarms``: what the last check found, each ``{"kind", "detail", "since_ns", "count"}``;
- ``first_seen_ns``: kind -> when the monitor first saw that breach (kept for the life of the process);
- ``kill``: the kill flow's record (reason, steps with timestamps, outcome) once a kill started, else null;
- ``broker``: the monitor's own view (connected, NetLiquidation, drawdown and daily loss, positions, open orders).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from utils.atomic_files import atomic_write_bytes

log = logging.getLogger(__name__)

MONITOR_HEARTBEAT_VERSION = 1


def write_monitor_heartbeat(path: Path, body: dict[str, Any]) -> bool:
    """Replace ``path`` atomically with ``body`` as JSON; False (logged) if the disk refused."""
    try:
        atomic_write_bytes(path, json.dumps(_jsonable(body), separators=(",", ":")).encode() + b"\n")
    except (OSError, TypeError, ValueError) as exc:
        log.error("event=monitor_heartbeat_write_failed path=%s error=%s", path, exc)
        return False
    return True


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has no such numbers; the engine's reader would choke on them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
