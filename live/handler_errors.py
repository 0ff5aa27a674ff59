"""The dispatcher's error rule for every handler, timer and command (``core.error_policy.LIVE_ERROR_POLICY``).

The policy table maps an error class to an action; this module carries the action out on the engine's parts:
SKIP logs and goes on, DISABLE_STRATEGY switches one strategy off, HALT halts (cancel, and flatten by policy),
STOP_CORRUPT halts and exits 1 (state not trusted), and anything the table does not name is a crash
(``EngineCrashed``: exit 4, last heartbeat ``stopping: crash``, which the risk monitor kills).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.error_policy import LIVE_ERROR_POLICY, ErrorAction, action_for
from core.errors import StrategyError
from live.exit_codes import ExitCode
from live.stop import EngineCrashed, StopState

log = logging.getLogger(__name__)


class HandlerErrorRule:
    """``EventQueue(on_error=rule)``; ``halt`` and ``disable_strategy`` are bound once the parts they reach exist."""

    def __init__(self, stop: StopState) -> None:
        self._stop = stop
        self.halt: Callable[[str], None] = _not_wired
        self.disable_strategy: Callable[[str, str], None] = _not_wired

    def __call__(self, error: Exception, event: object, handler: object) -> None:
        if isinstance(error, EngineCrashed):
            raise error  # a nested step (a strategy inside a session close) crashed: keep unwinding
        where = getattr(handler, "__qualname__", type(handler).__name__)
        action = action_for(error, LIVE_ERROR_POLICY)
        log.error("event=handler_error action=%s handler=%s event_type=%s error_type=%s error=%s", action, where,
                  type(event).__name__, type(error).__name__, error, exc_info=error)  # fmt: skip
        if action is ErrorAction.SKIP:
            return
        if action is ErrorAction.DISABLE_STRATEGY and isinstance(error, StrategyError):
            self.disable_strategy(error.strategy_id, str(error))
            return
        if action in (ErrorAction.HALT, ErrorAction.STOP_CORRUPT):
            self.halt(f"{type(error).__name__} in {where}: {error}")
            if action is ErrorAction.STOP_CORRUPT:
                self._stop.unordered(ExitCode.STATE_CORRUPT, f"state not trusted: {error}",
                                     f"{type(error).__name__}: {error}")  # fmt: skip
            return
        raise EngineCrashed(error, where) from error


def _not_wired(*_args: object) -> None:
    """An error before the decision side was built: nothing to halt or disable yet, so it is a crash."""
    raise RuntimeError("the engine's decision side is not built yet")
