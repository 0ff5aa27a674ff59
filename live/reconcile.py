"""Positions check after every (re)connect: the broker's positions must equal the ledger's before trading.

Sequence per IB session: ``on_connected`` resets; the executor's own reconciliation (open orders and executions
replayed into the journal and ledger) ends with ``IbOpenOrderEnd`` + ``IbExecDetailsEnd``; the positions arrive
with ``IbPosition`` ... ``IbPositionEnd``. When both are complete, the comparison runs ``POSITION_CHECK_DELAY_S``
later (time for reconciled executions to become fills on the queue). Equal: ``reconciled`` becomes True (trading
may start; it stays True across later reconnects unless a later check fails). Different: ``on_mismatch(report)``,
which the engine turns into HALTED with no order sent, since books that the journal cannot explain are not
trusted for anything, a flatten included.

Orders keep filling while this runs (an adopted MOC at the close): ``reqPositions`` is a subscription, so position
updates after ``positionEnd`` replace the snapshot (the broker's latest word per account and symbol), and a
difference on a symbol that still has a working order is checked again (up to ``MAX_RECHECKS`` times) instead of
halting, because the broker's position and our fill of the same execution arrive on different messages.

Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from core.clock import NS_PER_SECOND, WallClock
from core.ib_messages import IbConnected, IbExecDetailsEnd, IbOpenOrderEnd, IbPosition, IbPositionEnd

log = logging.getLogger(__name__)

POSITION_CHECK_DELAY_S = 1.0  # after both ends: time for reconciled executions to become fills
MAX_RECHECKS = 5  # a difference on a symbol with a working order is looked at again this many times


class PositionReconciler:
    def __init__(
        self,
        clock: WallClock,
        ledger_positions: Callable[[], dict[str, int]],
        request_positions: Callable[[], object],
        on_mismatch: Callable[[str], None],
        describe_trading: Callable[[], str],
        working_symbols: Callable[[], set[str]] = set,
        on_reconciled: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._ledger_positions = ledger_positions
        self._request_positions = request_positions
        self._on_mismatch = on_mismatch
        self._describe_trading = describe_trading
        self._working_symbols = working_symbols
        self._on_reconciled = on_reconciled
        self._rechecks = 0
        self._session_checked = False
        self.reconciled = False
        self._executor_done = False
        self._open_end = self._exec_end = False
        self._broker: dict[tuple[str, str], float] = {}  # (account, symbol) -> the broker's latest position
        self._positions_pending = False
        self._armed = False

    def on_connected(self, message: IbConnected) -> None:
        self._session_checked = False
        self._executor_done = False
        self._open_end = self._exec_end = False
        self._broker = {}
        self._positions_pending = True
        if not message.reconnect:  # on a reconnect the wrapper itself asks for positions
            self._request_positions()

    def on_progress(self, message: object) -> None:
        if self._session_checked:
            return  # a later open-orders answer (a flatten's round trip) is not this session's reconciliation
        if isinstance(message, IbOpenOrderEnd):
            self._open_end = True
        elif isinstance(message, IbExecDetailsEnd):
            self._exec_end = True
        if self._open_end and self._exec_end:
            self._executor_done = True
            self._arm()

    def on_position(self, message: IbPosition) -> None:
        self._broker[(message.account, message.symbol)] = message.position  # also after positionEnd: updates

    def on_position_end(self, _message: IbPositionEnd) -> None:
        if self._positions_pending:
            self._positions_pending = False
            self._arm()

    def _arm(self) -> None:
        if self._positions_pending or not self._executor_done or self._armed:
            return
        self._armed = True
        self._clock.call_at(self._clock.now_ns() + int(POSITION_CHECK_DELAY_S * NS_PER_SECOND), self._check)

    def _check(self, _due_ns: int) -> None:
        self._armed = False
        ours = self._ledger_positions()
        broker: dict[str, float] = {}
        for (_account, symbol), quantity in self._broker.items():
            broker[symbol] = broker.get(symbol, 0.0) + quantity
        symbols = sorted(set(ours) | {s for s, q in broker.items() if q != 0})
        diffs = {s: (ours.get(s, 0), broker.get(s, 0.0)) for s in symbols if ours.get(s, 0) != broker.get(s, 0.0)}
        moving = set(diffs) & self._working_symbols()
        if diffs and moving and self._rechecks < MAX_RECHECKS:
            self._rechecks += 1
            log.info("event=reconcile_positions_recheck symbols=%s attempt=%d (orders still working: a fill may be "
                     "between the broker's position and ours)", sorted(moving), self._rechecks)  # fmt: skip
            self._arm()
            return
        self._rechecks = 0
        self._session_checked = True
        if diffs:
            report = "; ".join(f"{s}: ledger={a} broker={b:g}" for s, (a, b) in diffs.items())
            log.error(
                "event=reconcile_positions_mismatch action=HALTED_no_trading report=%r (the journal and "
                "snapshot cannot explain the broker's positions: reconcile by hand, then restart)",
                report,
            )
            self._on_mismatch(f"position mismatch with broker: {report}")
            return
        if not self.reconciled:
            self.reconciled = True
            log.info("event=reconcile_positions_ok positions=%s trading=%s", ours, self._describe_trading())
            if self._on_reconciled is not None:
                self._on_reconciled()
