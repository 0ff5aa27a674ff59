"""Kill flags: files whose mere presence stops trading (``system.kill_flag_path``, ``system.kill_now_flag_path``).

Why files: an operator (or the risk monitor, or a cron job) can stop the engine with ``touch`` even when every
socket is wedged. ``KILL`` asks for a graceful halt (cancel all, flatten per ``portfolio.risk.flatten_on_halt``);
``KILL_NOW`` asks for an immediate cancel-all and flatten whatever the policy. A flag is never removed by the
engine: it keeps preventing trading across restarts until the operator deletes it.

Pure apart from ``os.stat``: ``KillFlagWatcher.poll`` returns what changed since the previous poll, so the engine
loop (the only caller, on the dispatcher thread) reacts exactly once per escalation.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from pathlib import Path

log = logging.getLogger(__name__)


class KillLevel(IntEnum):
    """Ordered: a higher level includes everything a lower one does."""

    NONE = 0
    KILL = 1
    KILL_NOW = 2


def flag_level(kill_path: Path, kill_now_path: Path) -> KillLevel:
    """The level the files on disk ask for now (KILL_NOW wins when both exist)."""
    if kill_now_path.exists():
        return KillLevel.KILL_NOW
    if kill_path.exists():
        return KillLevel.KILL
    return KillLevel.NONE


class KillFlagWatcher:
    """Remembers the highest level seen; ``poll`` returns a new, higher level once, else None.

    Levels never go down within a process: deleting a flag after the engine halted does not resume trading
    (HALTED is one-way); the operator restarts the engine instead.
    """

    def __init__(self, kill_path: Path | str, kill_now_path: Path | str) -> None:
        self.kill_path = Path(kill_path)
        self.kill_now_path = Path(kill_now_path)
        self.level = KillLevel.NONE

    def poll(self) -> KillLevel | None:
        """Check the files; the new level if it rose since the last poll, else None."""
        current = flag_level(self.kill_path, self.kill_now_path)
        if current <= self.level:
            return None
        self.level = current
        path = self.kill_now_path if current is KillLevel.KILL_NOW else self.kill_path
        log.warning("event=kill_flag_seen level=%s path=%s", current.name, path)
        return current
