"""The engine's exit codes, in one place (``main.py`` documents them; ``run_system.sh`` and the tests read them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # a stop somebody ordered: a signal, ``--duration``, a kill that ended flat
    STATE_CORRUPT = 1  # a state file cannot be trusted (the message names it; the file is left untouched)
    CONFIG = 2  # invalid configuration (every problem listed)
    KILL_NOT_FLAT = 3  # a kill flag did not end flat within its timeout
    CRASH = 4  # an exception nothing expected: the last heartbeat says ``crashed``; the monitor kills
