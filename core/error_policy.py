"""What the dispatcher does when a handler raises: one table from error class to action, for every handler.

The pattern of ib_async's decoder, which wraps every handler the same way: handlers raise typed errors
(``core.errors``) and invent no local policy; the dispatcher looks the error's class up here (the most specific
class in its MRO wins) and the process applies the action. An exception nothing expected - a bug, a
``RecursionError``, a full disk, no file descriptors left - is a **crash**: the process stops at once, says so in
its last heartbeat, and the risk monitor kills and flattens the account.

The backtester runs the same dispatcher without a policy: there an error simply propagates to the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from core.errors import (
    BrokerTemporaryError,
    DataError,
    InvariantViolation,
    OrderRejected,
    StateCorruptError,
    StrategyError,
)


class ErrorAction(StrEnum):
    SKIP = "skip"  # log with context; this handler drops the event, the next handlers and events go on
    DISABLE_STRATEGY = "disable_strategy"  # that strategy stops deciding; the others go on
    HALT = "halt"  # HALTED (one-way): cancel everything and flatten by policy
    STOP_CORRUPT = "stop_corrupt"  # HALTED, then stop with the corrupt-state exit code: a state file is not trusted
    CRASH = "crash"  # nothing expected this: stop now with the crash exit code; the monitor kills


LIVE_ERROR_POLICY: Mapping[type[BaseException], ErrorAction] = {
    DataError: ErrorAction.SKIP,  # a bad bar: quarantined where it was found, never traded on
    OrderRejected: ErrorAction.SKIP,  # one order cannot go out: it already became an OrderFailedEvent
    BrokerTemporaryError: ErrorAction.SKIP,  # the connection's supervisor reconnects with capped backoff
    StrategyError: ErrorAction.DISABLE_STRATEGY,
    InvariantViolation: ErrorAction.HALT,
    StateCorruptError: ErrorAction.STOP_CORRUPT,
}


def action_for(error: BaseException, policy: Mapping[type[BaseException], ErrorAction]) -> ErrorAction:
    """The action for ``error``: its most specific class found in ``policy``; ``CRASH`` when none is."""
    for cls in type(error).__mro__:
        action = policy.get(cls)
        if action is not None:
            return action
    return ErrorAction.CRASH
