"""The kill flag files: ``flags/KILL_NOW.flag`` (the operator's "stop now") and ``flags/KILL.flag`` (ours to write).

Why files: they work when every socket is wedged, and the engine checks them at start-up too, so a kill survives
engine restarts. The monitor writes ``KILL.flag`` with the reason and **never removes** it, nor ``KILL_NOW.flag``:
restarting trading takes an operator who deletes the flag.

The flag's content is informative only (the engine reacts to its existence): key=value lines, one per kill, so an
existing flag (the operator's, or an earlier kill) is kept and our line appended. Written atomically (temp file +
rename), so a reader sees the old content or the new, never half a line.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from utils.atomic_files import atomic_write_bytes

log = logging.getLogger(__name__)


def flag_present(path: Path) -> bool:
    """True if the flag file exists (one ``stat``; an unreadable directory counts as absent and is logged)."""
    try:
        return path.exists()
    except OSError as exc:
        log.error("event=flag_check_failed path=%s error=%s", path, exc)
        return False


def write_kill_flag(path: Path, fields: dict[str, object]) -> None:
    """Create ``path`` or append one ``key=value ...`` line to it; raises OSError if the disk refuses."""
    line = " ".join(f"{key}={_quoted(value)}" for key, value in fields.items()) + "\n"
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = b""
    if existing and not existing.endswith(b"\n"):
        existing += b"\n"
    atomic_write_bytes(path, existing + line.encode())
    log.warning("event=kill_flag_written path=%s pid=%d %s", path, os.getpid(), line.strip())


def _quoted(value: object) -> str:
    text = " ".join(str(value).splitlines())
    return f'"{text}"' if (" " in text or not text) else text
