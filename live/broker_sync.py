"""The one start-up and reconnect sync with the broker: positions, then open orders, then executions.

The pattern of ib_async's connect: after every (re)connect ask once, in order, and wait for each end marker (no
timer) before the next request:

1. ``reqPositions`` ... ``positionEnd``: what the account holds (the subscription keeps it current afterwards);
2. ``reqOpenOrders`` ... ``openOrderEnd``: our working orders, which the executor adopts (never re-sends);
3. ``reqExecutions`` with an ``ExecutionFilter`` carrying our client id ... ``execDetailsEnd``: today's
   executions of our orders, which the executor books exactly once (by exec id).

Then the executor judges the journaled orders the broker did not report (``finish_reconciliation``) and one
``Reconciled`` event is put on the queue. Everything the answers produced (fills, failed orders) was put before
it, so whoever handles ``Reconciled`` sees books that include them. A disconnect or a new connection in the middle
abandons the sync; the next ``IbConnected`` starts it again from the first step.

Nobody else sends these requests: not the connection, not the executor. Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.clock import Clock
from core.ib_messages import IbConnected, IbDisconnected, IbExecDetailsEnd, IbOpenOrderEnd, IbPosition, IbPositionEnd

log = logging.getLogger(__name__)

SYNC_EXEC_REQ_ID = 900_000_001  # reqExecutions id of the sync; data request ids stay below


class SyncClient(Protocol):
    """The requests the sync sends (``live.order_client.ConnectionOrderClient`` implements them)."""

    def reqPositions(self) -> None: ...  # noqa: N802

    def reqOpenOrders(self) -> None: ...  # noqa: N802

    def reqExecutions(self, reqId: int, execFilter: Any) -> None: ...  # noqa: N802, N803


class SyncStep(StrEnum):
    IDLE = "idle"  # not syncing (done, or no connection)
    POSITIONS = "positions"
    OPEN_ORDERS = "open_orders"
    EXECUTIONS = "executions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciled:
    """The sync of one (re)connect is complete; ``positions`` is the broker's (symbol -> signed shares)."""

    ts_init_ns: int
    generation: int
    reconnect: bool
    positions: dict[str, float]


class BrokerSync:
    """Sends the sync's requests one after the other and puts ``Reconciled`` (see the module docstring).

    ``execution_filter(client_id)`` builds the broker's filter object (the IB adapter's job: this module knows no
    ``ibapi``); ``finish_executor()`` is the executor's judgement of unreported orders.
    """

    def __init__(
        self,
        client: SyncClient,
        put: Callable[[object], None],
        clock: Clock,
        *,
        execution_filter: Callable[[int], Any],
        finish_executor: Callable[[], None],
    ) -> None:
        self._client = client
        self._put = put
        self._clock = clock
        self._execution_filter = execution_filter
        self._finish_executor = finish_executor
        self.step = SyncStep.IDLE
        self.generation = 0
        self.connected = False  # the dispatcher's view of the link: IbConnected seen, no IbDisconnected since
        self._reconnect = False
        self._client_id = 0
        self._positions: dict[tuple[str, str], float] = {}  # (account, symbol) -> the broker's latest word

    def broker_positions(self) -> dict[str, float]:
        """Symbol -> shares, summed over accounts, as the broker last said (the subscription keeps it current)."""
        summed: dict[str, float] = {}
        for (_account, symbol), quantity in self._positions.items():
            summed[symbol] = summed.get(symbol, 0.0) + quantity
        return summed

    # -- routed messages ---------------------------------------------------------------------------------------
    def on_connected(self, message: IbConnected) -> None:
        self.connected = True
        log.info("event=engine_connected reconnect=%s next_valid_id=%d", message.reconnect, message.next_valid_id)
        if self.step is not SyncStep.IDLE:
            log.warning("event=broker_sync_restarted generation=%d step=%s (a new connection came first)",
                        self.generation, self.step)  # fmt: skip
        self.generation += 1
        self._reconnect, self._client_id = message.reconnect, message.client_id
        self._positions = {}
        self._advance(SyncStep.POSITIONS)
        self._client.reqPositions()

    def on_disconnected(self, message: IbDisconnected) -> None:
        self.connected = False
        log.warning("event=engine_disconnected reason=%s", message.reason)
        if self.step is not SyncStep.IDLE:
            log.warning("event=broker_sync_abandoned generation=%d step=%s reason=%s (again on reconnect)",
                        self.generation, self.step, message.reason)  # fmt: skip
            self.step = SyncStep.IDLE

    def on_position(self, message: IbPosition) -> None:
        self._positions[(message.account, message.symbol)] = message.position  # also after positionEnd: updates

    def on_position_end(self, _message: IbPositionEnd) -> None:
        if self.step is SyncStep.POSITIONS:
            self._advance(SyncStep.OPEN_ORDERS)
            self._client.reqOpenOrders()

    def on_open_order_end(self, _message: IbOpenOrderEnd) -> None:
        if self.step is SyncStep.OPEN_ORDERS:
            self._advance(SyncStep.EXECUTIONS)
            self._client.reqExecutions(SYNC_EXEC_REQ_ID, self._execution_filter(self._client_id))

    @property
    def idle(self) -> bool:
        """Connected and no sync under way: the broker's word is current (a flatten may go out)."""
        return self.connected and self.step is SyncStep.IDLE

    def on_exec_details_end(self, message: IbExecDetailsEnd) -> None:
        if self.step is not SyncStep.EXECUTIONS or message.req_id != SYNC_EXEC_REQ_ID:
            return
        self.step = SyncStep.IDLE
        self._finish_executor()
        positions = self.broker_positions()
        log.info("event=broker_synced generation=%d reconnect=%s positions=%s", self.generation, self._reconnect,
                 positions)  # fmt: skip
        self._put(Reconciled(ts_init_ns=self._clock.now_ns(), generation=self.generation, reconnect=self._reconnect,
                             positions=positions))  # fmt: skip

    def _advance(self, step: SyncStep) -> None:
        self.step = step
        log.info("event=broker_sync_step generation=%d step=%s", self.generation, step)
