"""The positions check after every broker sync: the broker's positions must equal the ledger's before trading.

``live.broker_sync`` puts one ``Reconciled`` event after every (re)connect, once the broker has answered
positions, open orders and executions in order; every fill those answers produced was put on the queue before it,
so the ledger already holds them when ``on_reconciled`` runs. Equal: ``reconciled`` becomes True and
``on_ok`` is told (the engine leaves STARTING; it stays True across later syncs unless a later check fails).
Different: ``on_mismatch(report)``, which the engine turns into HALTED with no order sent, since books that the
journal cannot explain are not trusted for anything, a flatten included.

Orders keep filling while this runs (an adopted MOC at the close): the broker's positions are a subscription, so
updates after ``positionEnd`` replace the snapshot, and a difference on a symbol still in motion (a working order,
or an execution waiting for its commission report) is checked again ``RECHECK_DELAY_S`` later, up to
``MAX_RECHECKS`` times, instead of halting: the broker's position and our fill of the same execution arrive on
different messages. Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import NS_PER_SECOND, Clock
from live.broker_sync import Reconciled

log = logging.getLogger(__name__)

RECHECK_DELAY_S = 1.0  # a difference on a symbol in motion: look again this much later
MAX_RECHECKS = 5


class PositionReconciler:
    def __init__(
        self,
        clock: Clock,
        ledger_positions: Callable[[], dict[str, int]],
        broker_positions: Callable[[], dict[str, float]],
        on_mismatch: Callable[[str], None],
        describe_trading: Callable[[], str],
        symbols_in_motion: Callable[[], set[str]] = set,
        on_ok: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._ledger_positions = ledger_positions
        self._broker_positions = broker_positions
        self._on_mismatch = on_mismatch
        self._describe_trading = describe_trading
        self._symbols_in_motion = symbols_in_motion
        self._on_ok = on_ok
        self._rechecks = 0
        self._generation = 0
        self.reconciled = False

    def on_reconciled(self, event: Reconciled) -> None:
        self._generation, self._rechecks = event.generation, 0
        self._check(event.generation)

    def _check(self, generation: int) -> None:
        if generation != self._generation:
            return  # a recheck of an older sync: the newer one judges
        ours = self._ledger_positions()
        broker = self._broker_positions()
        symbols = sorted(set(ours) | {s for s, q in broker.items() if q != 0})
        diffs = {s: (ours.get(s, 0), broker.get(s, 0.0)) for s in symbols if ours.get(s, 0) != broker.get(s, 0.0)}
        moving = set(diffs) & self._symbols_in_motion()
        if diffs and moving and self._rechecks < MAX_RECHECKS:
            self._rechecks += 1
            log.info("event=reconcile_positions_recheck symbols=%s attempt=%d (orders still working: a fill may be "
                     "between the broker's position and ours)", sorted(moving), self._rechecks)  # fmt: skip
            self._clock.call_at(self._clock.now_ns() + int(RECHECK_DELAY_S * NS_PER_SECOND),
                                lambda _due: self._check(generation))  # fmt: skip
            return
        if diffs:
            report = "; ".join(f"{s}: ledger={a} broker={b:g}" for s, (a, b) in diffs.items())
            log.error(
                "event=reconcile_positions_mismatch action=HALTED_no_trading report=%r (the journal and "
                "snapshot cannot explain the broker's positions: reconcile by hand, then restart)",
                report,
            )
            self._on_mismatch(f"position mismatch with broker: {report}")
            return
        first = not self.reconciled
        self.reconciled = True
        if first:
            log.info("event=reconcile_positions_ok positions=%s trading=%s", ours, self._describe_trading())
        if self._on_ok is not None:
            self._on_ok()
