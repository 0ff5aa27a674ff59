"""The live ``OrderRouter``: OrderEvents to IB orders, and IB's order callbacks to Fill/OrderFailed events.

Threads: everything here runs on the **dispatcher thread**. The connection's reader thread only puts
``core.ib_messages`` objects on the queue; ``routes()`` maps them to the handlers below. ``placeOrder`` and
friends are called from the dispatcher thread too (``EClient`` sends synchronously under its own lock).

Order of effects on submit (crash safety, ``architecture.md`` "Durable records"):
1. refuse a ``client_order_id`` already known (in this process or in the journal): nothing is ever sent twice;
2. translate (``to_ib_order``): an order TWS would refuse fails here, before anything is written;
3. ``OrderJournal.record_intent`` (fsynced), then the order log ``submit`` row (flushed);
4. ``placeOrder`` through a sliding-window pacer (``execution.pacing``): at most ``max_messages_per_s``
   messages in any second. Over the limit, messages wait in an outbox drained by a clock timer (``call_at``,
   fired on the dispatcher thread by the engine loop) - never by sleeping.

Fills: execDetails and commissionReport are joined by ``CommissionMatcher``: exactly one FillEvent per execId
(TWS repeats, ibsim's duplicate fault and reqExecutions after a reconnect are dropped). Quantities move only on
executions; orderStatus drives acks and terminal states. A terminal status that reports more shares filled
than we have counted waits until those executions arrive, so a fill never lands on a closed order.

Restart: ``recover(journal.state)`` loads every journaled order; after each (re)connect the broker sync
(``live.broker_sync``) asks for open orders and executions and then calls ``finish_reconciliation``: orders the
broker reports (by ``orderRef`` = client order id, or by our client id and IB order id) are adopted and never
re-sent; journaled orders the broker does not know and that did not fill are failed (CANCELLED).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from core.clock import NS_PER_SECOND, Clock
from core.errors import OrderRejected
from core.events import OrderEvent, OrderFailedEvent, OrderStatus, Side
from core.ib_errors import IbErrorAction, classify
from core.ib_messages import (
    IbCommissionReport,
    IbConnected,
    IbError,
    IbExecDetails,
    IbOpenOrder,
    IbOrderStatus,
)
from execution.ib_translate import CommissionMatcher, MatchedFill, order_status_from_ib, to_ib_contract, to_ib_order
from execution.order_journal import JournalKind, JournalState, OrderJournal
from execution.order_log import OrderSubmissionLog
from execution.order_state import ManagedOrder, OrderBook
from execution.pacing import SlidingWindowPacer, messages_per_window

log = logging.getLogger(__name__)

_FINAL_KIND = {
    OrderStatus.CANCELLED: JournalKind.CANCELLED,
    OrderStatus.REJECTED: JournalKind.REJECTED,
    OrderStatus.EXPIRED: JournalKind.EXPIRED,
}
AlgoChooser = Callable[[OrderEvent], tuple[str | None, dict[str, str]]]


class OrderClient(Protocol):
    """The part of ``ibapi.client.EClient`` the executor uses (a test double or the real client)."""

    def placeOrder(self, orderId: int, contract: Any, order: Any) -> None: ...  # noqa: N802, N803

    def cancelOrder(self, orderId: int) -> None: ...  # noqa: N802, N803

    def reqGlobalCancel(self) -> None: ...  # noqa: N802

    def reqOpenOrders(self) -> None: ...  # noqa: N802

    def reqExecutions(self, reqId: int, execFilter: Any) -> None: ...  # noqa: N802, N803


class IbOrderIds:
    """IB order ids for new orders: above every id journaled and at least IB's ``nextValidId``.

    TWS answers 103 to an id not above every id this client id used, so after a restart the floor is
    ``max(journal max + 1, nextValidId)``. Route ``IbConnected`` to ``on_connected`` (dispatcher thread).
    """

    def __init__(self, floor: int = 1) -> None:
        self._next = max(1, floor)

    def __call__(self) -> int:
        value = self._next
        self._next += 1
        return value

    def on_connected(self, message: IbConnected) -> None:
        self._next = max(self._next, message.next_valid_id)


@dataclass(slots=True)
class _Live:
    """Broker-side bookkeeping of one order (dispatcher thread only)."""

    ib_order_id: int
    contract: Any
    generation: int  # connection generation when it was sent (reconciliation only judges older orders)
    exec_shares_seen: int = 0  # shares in distinct execDetails, matched or not yet
    broker_filled: int = 0  # cumulative filled per the last orderStatus
    reported: bool = False  # the broker reported it during the current reconciliation
    final: tuple[OrderStatus, str, int | None] | None = None  # terminal state waiting for its executions


@dataclass(slots=True)
class _Outgoing:
    client_order_id: str | None
    what: str
    send: Callable[[], None]


@dataclass(slots=True)
class _Reconciliation:
    generation: int


class IbExecutor:
    """``OrderRouter`` over an ``ibapi`` client; see the module docstring for the order of effects and threads.

    ``commission_estimator`` is a ``CommissionModel`` (``.commission``) or a callable (side, qty, price, ts_ns),
    used only when IB's commission report does not come within ``commission_timeout_s``. ``algo_for(order)``
    returns (``"Adaptive"``/``"Twap"``/None, params). ``on_halt(reason)`` is told when our bookkeeping is broken
    (duplicate order id, journal write failure, impossible transition): the caller moves the trading state.
    """

    def __init__(
        self,
        client: OrderClient,
        next_order_id: Callable[[], int],
        journal: OrderJournal,
        order_log: OrderSubmissionLog,
        put: Callable[[object], None],
        clock: Clock,
        commission_estimator: Any,
        *,
        account: str = "",
        algo_for: AlgoChooser | None = None,
        max_messages_per_s: float = 45.0,
        commission_timeout_s: float = 30.0,
        on_halt: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._next_order_id = next_order_id
        self._journal = journal
        self._order_log = order_log
        self._put = put
        self._clock = clock
        estimate = getattr(commission_estimator, "commission", commission_estimator)
        self._estimate: Callable[[Side, int, float, int], float] = estimate
        self._account = account
        self._algo_for = algo_for
        self._on_halt = on_halt
        self._timeout_ns = int(commission_timeout_s * NS_PER_SECOND)
        self._pacer = SlidingWindowPacer(messages_per_window(max_messages_per_s))
        self._outbox: deque[_Outgoing] = deque()
        self._drain_timer_armed = False
        self._expire_timer_armed = False
        self.book = OrderBook()
        self._live: dict[str, _Live] = {}
        self._by_ib_id: dict[int, str] = {}
        self._exec_seen: set[str] = set()
        self._matcher = CommissionMatcher(self._estimate, self._timeout_ns)
        self._generation = 0
        self._reconciliation: _Reconciliation | None = None
        self._client_id: int | None = None  # our IB client id, from IbConnected: IB order ids are per client id

    # -- wiring ----------------------------------------------------------------------------------------------
    def routes(self) -> dict[type, Callable[[Any], None]]:
        """Message/event type -> handler, for the dispatcher table (the wiring adds them next to others').

        Handlers raise typed errors (an impossible transition is an ``InvariantViolation``); the dispatcher's error
        policy (``core.error_policy``) decides what follows, as for every other handler.
        """
        table: dict[type, Callable[[Any], None]] = {
            OrderEvent: self.submit,
            IbConnected: self.on_connected,
            IbOpenOrder: self.on_open_order,
            IbOrderStatus: self.on_order_status,
            IbExecDetails: self.on_exec_details,
            IbCommissionReport: self.on_commission_report,
            IbError: self.on_error,
        }
        return table

    def _halt(self, reason: str) -> None:
        log.error("event=executor_halt_requested reason=%s", reason)
        if self._on_halt is not None:
            self._on_halt(reason)

    # -- OrderRouter -----------------------------------------------------------------------------------------
    def submit(self, order: OrderEvent) -> None:
        """Journal, log and (paced) send ``order``; a client order id seen before is never sent again."""
        coid = order.client_order_id
        if coid in self.book or coid in self._journal.state.orders:
            log.warning("event=duplicate_submit_ignored client_order_id=%s", coid)
            return
        now = self._clock.now_ns()
        ib_order_id = self._next_order_id()
        bound = replace(order, broker_order_id=ib_order_id)
        try:
            algo, params = self._algo_for(order) if self._algo_for is not None else (None, {})
            contract = to_ib_contract(order.symbol)
            ib_order = to_ib_order(bound, ib_order_id, self._account, algo, params)
        except (OrderRejected, ValueError) as exc:
            managed = self.book.add(bound)
            self._order_log.submit(bound, None, now)
            self._fail_now(managed, OrderStatus.REJECTED, f"not sent: {exc}", None, journaled=False)
            return
        self._journal.record_intent(bound, ib_order_id)  # fsynced: only now may the order leave
        self.book.add(bound)
        self._live[coid] = _Live(ib_order_id, contract, self._generation)
        self._by_ib_id[ib_order_id] = coid
        self._order_log.submit(bound, ib_order_id, now)
        log.info(
            "event=order_submitted client_order_id=%s ib_order_id=%d symbol=%s side=%s qty=%d type=%s algo=%s",
            coid, ib_order_id, order.symbol, order.side, order.quantity, order.order_type, algo or "-",
        )  # fmt: skip
        self._enqueue(coid, "placeOrder", lambda: self._client.placeOrder(ib_order_id, contract, ib_order))

    def cancel(self, client_order_id: str, reason: str) -> None:
        """Ask IB to cancel; the order stays working (fills may still come) until IB confirms."""
        managed = self.book.get(client_order_id)
        live = self._live.get(client_order_id)
        if managed is None or live is None or managed.is_terminal:
            log.info("event=cancel_ignored client_order_id=%s reason=%s (unknown or finished)", client_order_id, reason)
            return
        if self._drop_unsent(client_order_id):
            self._fail_now(managed, OrderStatus.CANCELLED, f"cancelled before sending: {reason}", None)
            return
        self._journal.record_event(client_order_id, JournalKind.CANCEL_REQUESTED, reason=reason)
        log.info("event=cancel_requested client_order_id=%s ib_order_id=%d reason=%s",
                 client_order_id, live.ib_order_id, reason)
        ib_order_id = live.ib_order_id
        self._enqueue(client_order_id, "cancelOrder", lambda: self._client.cancelOrder(ib_order_id))

    def cancel_all(self, reason: str) -> None:
        """reqGlobalCancel ahead of anything queued; unsent orders are cancelled here, the rest by IB's answers.

        reqGlobalCancel cancels every working order of the account (all client ids), which is what a halt wants.
        """
        for managed in self.book.working():
            coid = managed.order.client_order_id
            if self._drop_unsent(coid):
                self._fail_now(managed, OrderStatus.CANCELLED, f"cancelled before sending: {reason}", None)
            elif coid in self._live:
                self._journal.record_event(coid, JournalKind.CANCEL_REQUESTED, reason=reason, scope="global")
        log.warning("event=global_cancel reason=%s working=%d", reason, len(self.book.working()))
        self._outbox.appendleft(_Outgoing(None, "reqGlobalCancel", self._client.reqGlobalCancel))
        self._drain()

    # -- start-up and reconnect ------------------------------------------------------------------------------
    def recover(self, state: JournalState | None = None) -> int:
        """Load every journaled order (call once at start-up, before any IB message); returns the working count.

        Recovered orders are never re-sent: ``on_connected`` asks the broker about them.
        """
        state = state if state is not None else self._journal.state
        for journaled in state.orders.values():
            coid = journaled.order.client_order_id
            if coid in self.book:
                continue
            managed = self.book.add(journaled.order)
            managed.status = journaled.status
            managed.filled_quantity = journaled.filled_quantity
            managed.avg_fill_price = journaled.avg_fill_price
            managed.exec_ids = set(journaled.exec_ids)
            self.book.settle_terminal(managed)
            ib_order_id = journaled.order.broker_order_id or 0
            self._live[coid] = _Live(ib_order_id, to_ib_contract(journaled.order.symbol), -1,
                                     exec_shares_seen=journaled.filled_quantity)
            self._by_ib_id[ib_order_id] = coid
            self._exec_seen |= journaled.exec_ids
        self._matcher = CommissionMatcher(self._estimate, self._timeout_ns, already_processed=self._exec_seen)
        working = len(self.book.working())
        log.info("event=orders_recovered total=%d working=%d", len(state.orders), working)
        return working

    def on_connected(self, message: IbConnected) -> None:
        """A (re)connect: a new generation; the broker sync (``live.broker_sync``) now asks for our open orders and
        executions, and calls ``finish_reconciliation`` once both have ended. The executor sends no request here.

        IB order ids are per client id: the id in use (``message.client_id``) tells our executions from others'.
        """
        self._client_id = message.client_id
        self._generation += 1
        self._reconciliation = _Reconciliation(self._generation)
        for live in self._live.values():
            live.reported = False
        log.info("event=reconcile_started reconnect=%s next_valid_id=%d working=%d",
                 message.reconnect, message.next_valid_id, len(self.book.working()))

    def finish_reconciliation(self) -> None:
        """The broker has reported our open orders and executions: adopt what it reported; a journaled order it
        does not know and that did not fully fill is failed (CANCELLED), never re-sent."""
        rec = self._reconciliation
        if rec is None:
            return
        self._reconciliation = None
        adopted = missing = 0
        for managed in self.book.working():
            coid = managed.order.client_order_id
            live = self._live.get(coid)
            if live is None or live.generation >= rec.generation or self._is_unsent(coid):
                continue
            if live.reported:
                adopted += 1
                log.info("event=order_adopted client_order_id=%s ib_order_id=%d", coid, live.ib_order_id)
            elif live.exec_shares_seen < managed.order.quantity:
                missing += 1
                live.final = (OrderStatus.CANCELLED, "not working at the broker after (re)connect", None)
                self._maybe_finish(managed, live)
        log.info("event=reconcile_done adopted=%d missing=%d", adopted, missing)

    def symbols_in_motion(self) -> set[str]:
        """Symbols whose position may still move: a working order, or an execution waiting for its commission."""
        symbols = {managed.order.symbol for managed in self.book.working()}
        for coid in self._matcher.pending_client_order_ids():
            managed = self.book.get(coid)
            if managed is not None:
                symbols.add(managed.order.symbol)
        return symbols

    # -- IB order callbacks ----------------------------------------------------------------------------------
    def _lookup(self, ib_order_id: int, order_ref: str = "", client_id: int | None = None,
                ) -> tuple[ManagedOrder, _Live] | None:  # fmt: skip
        """Our order behind an IB message, or None for another client's (never applied to ours).

        IB order ids are per client id (the risk monitor's order 1 is not ours), so a message that names another
        client id is foreign; and where it carries an ``orderRef`` (our client order id), that must agree with
        the order the id points at.
        """
        if client_id is not None and self._client_id is not None and client_id != self._client_id:
            return None
        coid = self._by_ib_id.get(ib_order_id)
        if order_ref and coid != order_ref:
            coid = order_ref if order_ref in self._live else None
        if coid is None:
            return None
        managed = self.book.get(coid)
        return (managed, self._live[coid]) if managed is not None else None

    def on_open_order(self, message: IbOpenOrder) -> None:
        order = message.order
        found = self._lookup(message.order_id, getattr(order, "orderRef", "") or "", getattr(order, "clientId", None))
        if found is None:
            log.debug("event=foreign_open_order ib_order_id=%d client_id=%s", message.order_id,
                      getattr(order, "clientId", None))  # fmt: skip
            return
        managed, live = found
        live.reported = True
        status = getattr(message.order_state, "status", "")
        if status in ("Submitted", "PreSubmitted"):
            self._ack(managed, live)

    def on_order_status(self, message: IbOrderStatus) -> None:
        found = self._lookup(message.order_id)
        if found is None:
            return
        managed, live = found
        live.reported = True
        live.broker_filled = max(live.broker_filled, int(message.filled))
        status = order_status_from_ib(message.status, message.filled, message.remaining)
        if managed.is_terminal:
            return
        if status in (OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED):
            self._ack(managed, live)
        elif status is OrderStatus.CANCELLED and live.final is None:
            why = "Inactive at IB" if message.status == "Inactive" else f"IB status {message.status}"
            live.final = (OrderStatus.CANCELLED, why, None)
        elif status is OrderStatus.REJECTED and live.final is None:
            live.final = (OrderStatus.REJECTED, "Inactive at IB: the order cannot work", None)
        self._maybe_finish(managed, live)

    def on_error(self, message: IbError) -> None:
        found = self._lookup(message.req_id) if message.req_id > 0 else None
        if found is None:
            return  # not one of our orders: the connection and data handler own those
        managed, live = found
        verdict = classify(message.code, message.message, message.req_id)
        log.info("event=order_error client_order_id=%s ib_order_id=%d code=%d action=%s message=%r",
                 managed.order.client_order_id, live.ib_order_id, message.code, verdict.action, message.message)
        if managed.is_terminal:
            return
        if message.code == 202:
            live.final = (OrderStatus.CANCELLED, message.message, 202)
        elif message.code == 504 and managed.status is OrderStatus.PENDING_SUBMIT:
            live.final = (OrderStatus.REJECTED, f"not sent, connection down: {message.message}", 504)
        elif verdict.action is IbErrorAction.FAIL_ORDER:
            live.final = (OrderStatus.REJECTED, message.message, message.code)
        elif verdict.action is IbErrorAction.HALT:
            live.final = (OrderStatus.REJECTED, message.message, message.code)
            self._halt(f"IB error {message.code} on order {managed.order.client_order_id}: {message.message}")
        else:
            return
        self._maybe_finish(managed, live)

    def on_exec_details(self, message: IbExecDetails) -> None:
        execution = message.execution
        found = self._lookup(execution.orderId, getattr(execution, "orderRef", "") or "",
                             getattr(execution, "clientId", None))  # fmt: skip
        if found is None:
            log.info("event=foreign_execution_ignored exec_id=%s ib_order_id=%s client_id=%s order_ref=%r",
                     execution.execId, execution.orderId, getattr(execution, "clientId", None),
                     getattr(execution, "orderRef", ""))  # fmt: skip
            return
        managed, live = found
        if execution.execId not in self._exec_seen:
            self._exec_seen.add(execution.execId)
            live.exec_shares_seen += int(float(execution.shares))
        order = managed.order
        matched = self._matcher.on_execution(
            execution, message.contract, order.client_order_id, order.strategy_id, order.order_type,
            self._clock.now_ns(),
        )
        if matched is not None:
            self._emit_fill(matched)
        elif self._matcher.pending_executions:
            self._arm_expiry()

    def on_commission_report(self, message: IbCommissionReport) -> None:
        matched = self._matcher.on_commission_report(message.report, self._clock.now_ns())
        if matched is not None:
            self._emit_fill(matched)

    # -- internals -------------------------------------------------------------------------------------------
    def _ack(self, managed: ManagedOrder, live: _Live) -> None:
        if managed.status is not OrderStatus.PENDING_SUBMIT:
            return
        coid = managed.order.client_order_id
        self._journal.record_event(coid, JournalKind.ACK, ib_order_id=live.ib_order_id)
        managed.transition(OrderStatus.SUBMITTED)
        self._order_log.ack(managed.order, live.ib_order_id, self._clock.now_ns())

    def _emit_fill(self, matched: MatchedFill) -> None:
        fill = matched.fill
        if matched.corrects_exec_id is not None:
            log.error("event=exec_correction_not_applied exec_id=%s corrects=%s (reconcile by hand)",
                      fill.exec_id, matched.corrects_exec_id)
            return
        managed = self.book.get(fill.client_order_id)
        if managed is None or fill.exec_id in managed.exec_ids:
            return
        recorded = self._journal.record_event(
            fill.client_order_id, JournalKind.FILL, exec_id=fill.exec_id, quantity=fill.quantity, price=fill.price,
            commission=fill.commission, commission_estimated=matched.commission_estimated,
        )
        if not recorded:
            return
        managed.apply_fill(fill.exec_id, fill.quantity, fill.price)
        self._order_log.fill(managed.order, fill, managed.filled_quantity, self._clock.now_ns())
        log.info("event=order_fill client_order_id=%s exec_id=%s qty=%d price=%s filled=%d/%d",
                 fill.client_order_id, fill.exec_id, fill.quantity, fill.price, managed.filled_quantity,
                 managed.order.quantity)
        self._put(fill)
        self.book.settle_terminal(managed)
        live = self._live.get(fill.client_order_id)
        if live is not None:
            self._maybe_finish(managed, live)

    def _maybe_finish(self, managed: ManagedOrder, live: _Live) -> None:
        """Apply a pending terminal state once every execution the broker reported has been counted."""
        if live.final is None or managed.is_terminal:
            return
        if managed.filled_quantity < max(live.broker_filled, live.exec_shares_seen):
            return  # executions still on their way (or waiting for a commission report)
        status, reason, code = live.final
        self._fail_now(managed, status, reason, code)

    def _fail_now(self, managed: ManagedOrder, status: OrderStatus, reason: str, code: int | None,
                  journaled: bool = True) -> None:
        if status is OrderStatus.REJECTED and managed.filled_quantity > 0:
            status = OrderStatus.CANCELLED  # the fills stand; only the remainder will not work
        order = managed.order
        if journaled:
            self._journal.record_event(order.client_order_id, _FINAL_KIND[status], reason=reason, code=code)
        managed.transition(status)
        self.book.settle_terminal(managed)
        now = self._clock.now_ns()
        event = OrderFailedEvent(
            ts_event_ns=now, ts_init_ns=now, client_order_id=order.client_order_id, strategy_id=order.strategy_id,
            symbol=order.symbol, status=status, reason=reason, code=code, filled_quantity=managed.filled_quantity,
        )
        self._order_log.failed(order, event, order.broker_order_id if journaled else None, now)
        log.info("event=order_failed client_order_id=%s status=%s code=%s filled=%d reason=%r",
                 order.client_order_id, status, code, managed.filled_quantity, reason)
        self._put(event)

    # -- pacing ----------------------------------------------------------------------------------------------
    def _enqueue(self, client_order_id: str | None, what: str, send: Callable[[], None]) -> None:
        self._outbox.append(_Outgoing(client_order_id, what, send))
        self._drain()

    def _drain(self, _due_ns: int | None = None) -> None:
        """Send what the pacer admits now; re-arm a timer for the rest (dispatcher thread)."""
        if _due_ns is not None:
            self._drain_timer_armed = False
        outbox = self._outbox
        if not outbox:
            return
        now = self._clock.now_ns()
        while outbox and self._pacer.try_acquire(now):
            item = outbox.popleft()
            item.send()
        if outbox and not self._drain_timer_armed:
            self._drain_timer_armed = True
            due = self._pacer.next_free_ns(now)
            log.info("event=pacing_wait queued=%d due_in_ms=%.1f", len(outbox), (due - now) / 1e6)
            self._clock.call_at(due, self._drain)

    def _is_unsent(self, client_order_id: str) -> bool:
        return any(item.client_order_id == client_order_id and item.what == "placeOrder" for item in self._outbox)

    def _drop_unsent(self, client_order_id: str) -> bool:
        """Remove a still-queued placeOrder for this order; True if there was one (it never reached IB)."""
        if not self._is_unsent(client_order_id):
            return False
        self._outbox = deque(item for item in self._outbox if item.client_order_id != client_order_id)
        return True

    def _arm_expiry(self) -> None:
        if self._expire_timer_armed:
            return
        self._expire_timer_armed = True
        self._clock.call_at(self._clock.now_ns() + self._timeout_ns, self._expire)

    def _expire(self, _due_ns: int) -> None:
        """Emit fills whose commission report never came (estimated commission), then re-arm if needed."""
        self._expire_timer_armed = False
        for matched in self._matcher.expire(self._clock.now_ns()):
            self._emit_fill(matched)
        if self._matcher.pending_executions:
            self._arm_expiry()
