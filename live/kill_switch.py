"""What the engine does about a kill flag, from the moment it is seen to the exit (flat, or not flat in time).

Why its own owner: a kill has several steps spread over time - HALTED at once, cancel and flatten only once the
broker has been heard (nothing is journaled or sent before connect and reconcile), a second flatten when an order
in flight at the kill filled after the first one went out, and an exit when the broker is flat (an ordered stop,
``kind=kill``) or when ``KILL_EXIT_TIMEOUT_S`` passed without it (an exit nobody ordered: exit 3, the monitor
takes over). Keeping these steps in one object keeps the loop a loop. Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import NS_PER_SECOND, Clock
from core.events import TradingState
from execution.ib_executor import IbExecutor
from live.broker_flatten import BrokerFlatten
from live.exit_codes import ExitCode
from live.kill_flags import KillLevel
from live.stop import StopState
from portfolio.live_manager import LiveManager
from portfolio.trading_state import TradingStateMachine

log = logging.getLogger(__name__)

KILL_EXIT_TIMEOUT_S = 30.0  # after KILL/KILL_NOW, exit at the latest this long after the halt, flat or not
REFLATTEN_INTERVAL_S = 1.0  # a position left after a kill's flatten: ask the broker again at most this often


class KillSwitch:
    """``on_kill`` when a flag rises, ``on_reconciled`` after each broker sync, ``check`` once per loop pass."""

    def __init__(
        self,
        clock: Clock,
        trading: TradingStateMachine,
        live: LiveManager,
        executor: IbExecutor,
        broker_flatten: BrokerFlatten,
        stop: StopState,
        *,
        flatten_on_halt: bool,
        connected: Callable[[], bool],
        reconciled: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._trading = trading
        self._live = live
        self._executor = executor
        self._flatten = broker_flatten
        self._stop = stop
        self._flatten_on_halt = flatten_on_halt
        self._connected = connected
        self._reconciled = reconciled  # the broker's positions matched the books after a sync
        self.level = KillLevel.NONE
        self._deadline_ns: int | None = None
        self._flattened = False
        self._actions_pending = False  # a kill seen before connect + reconcile: its cancel/flatten wait
        self._next_reflatten_ns = 0

    def on_kill(self, level: KillLevel, *, at_startup: bool = False) -> None:
        """A flag rose to ``level``: HALTED now; cancel and flatten now, or once the broker has been heard."""
        self.level = level
        now = self._clock.now_ns()
        reason = f"{level.name} flag present {'at start-up (trading prevented)' if at_startup else 'while running'}"
        log.error("event=kill level=%s at_startup=%s action=halt_cancel_flatten", level.name, at_startup)
        if self._deadline_ns is None:
            self._deadline_ns = now + int(KILL_EXIT_TIMEOUT_S * NS_PER_SECOND)
        self._next_reflatten_ns = now + int(REFLATTEN_INTERVAL_S * NS_PER_SECOND)  # let the first flatten go out
        if not (self._connected() and self._reconciled()):
            self._trading.halt(reason, now)  # nothing journaled or sent before connect and reconcile
            self._actions_pending = True
            log.warning("event=kill_actions_deferred level=%s reason=not_reconciled (cancel and flatten once the "
                        "broker's positions are known)", level.name)  # fmt: skip
            return
        self._act(reason)

    def on_reconciled(self) -> None:
        """A sync's positions check passed: a kill seen before it cancels and flattens now."""
        if self._actions_pending:
            self._actions_pending = False
            self._act(f"{self.level.name} flag present at start-up")

    def _act(self, reason: str) -> None:
        already_halted = self._live.state is TradingState.HALTED
        self._live.halt(reason)  # cancels and, by policy, flattens (from the broker's positions)
        if already_halted or self.level is KillLevel.KILL_NOW:
            self._executor.cancel_all(reason)
        must_flatten = self.level is KillLevel.KILL_NOW or self._flatten_on_halt
        if must_flatten and not self._flattened and (already_halted or not self._flatten_on_halt):
            self._flatten.request(reason)  # live.halt flattened already when the policy says so and was first
        self._flattened = self._flattened or must_flatten

    def is_flat(self) -> bool:
        """Flat at the broker (its positions, as the last flatten round trip learned them) with nothing working."""
        return not self._executor.store.working() and self._flatten.broker_flat()

    def check(self, now_ns: int) -> None:
        """Once per loop pass during a kill: flatten what is left, stop when flat, give up at the deadline."""
        if self.level is KillLevel.NONE or self._deadline_ns is None:
            return
        reconciled = self._reconciled()
        settled = reconciled and not self._executor.store.working() and not self._flatten.busy
        if settled and self._flattened and not self.is_flat() and now_ns >= self._next_reflatten_ns:
            # an order in flight at the kill filled after the flatten went out: ask the broker again, close the rest
            self._next_reflatten_ns = now_ns + int(REFLATTEN_INTERVAL_S * NS_PER_SECOND)
            log.warning("event=kill_reflatten last_broker_positions=%s", self._flatten.last_broker_positions)
            self._flatten.request(f"{self.level.name}: position left after the first flatten")
        if reconciled and self.is_flat():
            log.warning("event=kill_complete level=%s state=%s message=\"flat, no working orders: exiting\"",
                        self.level.name, self._live.state)  # fmt: skip
            self._stop.request(f"{self.level.name} complete", kind="kill")
        elif now_ns >= self._deadline_ns:
            log.error("event=kill_timeout level=%s timeout_s=%s positions=%s working=%d message=\"NOT FLAT after "
                      "the kill timeout: check the broker by hand\"", self.level.name, KILL_EXIT_TIMEOUT_S,
                      self._live.portfolio.ledger.open_positions(), len(self._executor.store.working()))  # fmt: skip
            self._stop.unordered(ExitCode.KILL_NOT_FLAT, f"{self.level.name} timeout",
                                 "kill did not end flat within its timeout")  # fmt: skip
