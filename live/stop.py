"""Why and how the engine stops: the one owner of the stop request, its kind and the exit code.

Why one owner: the last heartbeat tells the risk monitor whether to kill (``stopping: operator|kill|crash``), and
the process exit code tells ``run_system.sh`` and the operator what happened; both must come from the same place,
or a crash could leave with an operator's beat. ``request`` is an ordered stop (a signal, ``--duration``, a
completed kill); ``unordered`` is an exit nobody ordered (a crash, state not trusted, a kill that did not end flat)
and always wins over an ordered stop already requested. Dispatcher thread only (signal handlers call ``request``,
which only sets fields).
"""

from __future__ import annotations

import logging
from typing import Literal

from live.exit_codes import ExitCode

log = logging.getLogger(__name__)

CRASH_TEXT_MAX = 300  # characters of the error kept in the last heartbeat
StopKind = Literal["operator", "kill", "crash"]


class EngineCrashed(BaseException):
    """An exception nothing expected (the error policy said CRASH): unwinds the loop past every ``except
    Exception`` so nothing can swallow it; ``Engine.run`` turns it into the crash exit."""

    def __init__(self, error: BaseException, where: str) -> None:
        super().__init__(f"{where}: {type(error).__name__}: {error}")
        self.error = error


class StopState:
    """The stop request (None while running), its kind, the error text for the last beat, and the exit code."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.kind: StopKind = "operator"
        self.error_text: str | None = None
        self.exit_code = ExitCode.OK

    def request(self, reason: str, kind: StopKind = "operator") -> None:
        """An ordered stop after this loop pass; the first request's reason and kind stand."""
        if self.requested is None:
            self.requested = reason
            self.kind = kind
            log.warning("event=stop_requested reason=%s kind=%s", reason, kind)

    def unordered(self, code: ExitCode, reason: str, error_text: str) -> None:
        """Stop with ``code`` and a last heartbeat ``stopping: crash`` carrying ``error_text``: an exit nobody
        ordered, so the risk monitor takes over (kills and flattens). Overrides a stop already requested."""
        self.exit_code = code
        self.error_text = error_text[:CRASH_TEXT_MAX]
        self.requested = self.requested or reason
        self.kind = "crash"
        log.warning("event=stop_requested reason=%s kind=crash exit_code=%d", self.requested, code)

    def crash(self, error: BaseException) -> None:
        """An exception nothing expected: the crash exit code and a last beat that says so (the monitor kills)."""
        crashed = isinstance(error, EngineCrashed)
        text = str(error) if crashed else f"{type(error).__name__}: {error}"  # EngineCrashed already names the cause
        log.critical("event=engine_crashed error=%r action=exit_crash (the risk monitor kills and flattens)", text,
                     exc_info=error.error if isinstance(error, EngineCrashed) else error)  # fmt: skip
        self.unordered(ExitCode.CRASH, "crash", text)
