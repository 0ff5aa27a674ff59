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
   fired on the dispatcher thread by the engine loop) - never by sleeping. The ``order_submitted`` log line is
   written after this step: nothing needs it before the order leaves.

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
import math
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
from execution.order_journal import JournalState, OrderJournal
from execution.order_log import OrderSubmissionLog
from execution.order_state import FINAL_KIND, BrokerLeg, ManagedOrder, OrderEventKind, OrderFill
from execution.order_store import OrderRecord, OrderStore
from execution.pacing import SlidingWindowPacer, messages_per_window

log = logging.getLogger(__name__)

AlgoChooser = Callable[[OrderEvent], tuple[str | None, dict[str, str]]]
QuoteSource = Callable[[str], tuple[float | None, float | None]]
"""symbol -> (price: the mid, else the last; spread in bps or None), for TCA's arrival and end prices."""


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
        quote: QuoteSource | None = None,
        run_id: str = "",
        max_messages_per_s: float = 45.0,
        commission_timeout_s: float = 30.0,
        on_halt: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._next_order_id = next_order_id
        self._journal = journal
        self._put = put
        self._clock = clock
        estimate = getattr(commission_estimator, "commission", commission_estimator)
        self._estimate: Callable[[Side, int, float, int], float] = estimate
        self._account = account
        self._algo_for = algo_for
        self._quote = quote
        self._run_id = run_id
        self._on_halt = on_halt
        self._timeout_ns = int(commission_timeout_s * NS_PER_SECOND)
        self._pacer = SlidingWindowPacer(messages_per_window(max_messages_per_s))
        self._outbox: deque[_Outgoing] = deque()
        self._drain_timer_armed = False
        self._expire_timer_armed = False
        self.store = OrderStore((journal, order_log))  # the journal first: fsynced before anything is sent
        self._exec_seen: set[str] = set()  # exec ids of our executions counted so far (TWS repeats them)
        self._refusing: str | None = None  # why new orders are dropped (the engine is stopping), or None
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
        if coid in self.store:
            log.warning("event=duplicate_submit_ignored client_order_id=%s", coid)
            return
        if self._refusing is not None:
            log.warning("event=order_dropped reason=%s client_order_id=%s", self._refusing, coid)
            return
        now = self._clock.now_ns()
        ib_order_id = self._next_order_id()
        bound = replace(order, broker_order_id=ib_order_id)
        try:
            algo, params = self._algo(order)
            contract = to_ib_contract(order.symbol)
            ib_order = to_ib_order(bound, ib_order_id, self._account, algo, params)
        except (OrderRejected, ValueError) as exc:
            self.store.record(OrderRecord(OrderEventKind.INTENT, bound, now, None, 0, OrderStatus.PENDING_SUBMIT))
            self._fail_now(self.store.add(bound), OrderStatus.REJECTED, f"not sent: {exc}", None)
            return
        # journal (fsynced) and order log first: only then is the order in the store and may it leave; the intent
        # carries what TCA needs from this moment (the arrival quote, the algo), so TCA rows derive from the journal
        context = self._tca_context(order, algo, params, now)
        self.store.record(OrderRecord(OrderEventKind.INTENT, bound, now, ib_order_id, 0, OrderStatus.PENDING_SUBMIT,
                                      extra=context))  # fmt: skip
        self.store.add(bound, BrokerLeg(ib_order_id, self._client_id, self._generation))
        try:
            self._enqueue(coid, "placeOrder", lambda: self._client.placeOrder(ib_order_id, contract, ib_order))
        finally:  # after the send: the line is for people, and formatting it need not delay the order
            log.info(
                "event=order_submitted client_order_id=%s ib_order_id=%d symbol=%s side=%s qty=%d type=%s algo=%s",
                coid, ib_order_id, order.symbol, order.side, order.quantity, order.order_type, algo or "-",
            )  # fmt: skip

    def cancel(self, client_order_id: str, reason: str) -> None:
        """Ask IB to cancel; the order stays working (fills may still come) until IB confirms."""
        managed = self.store.get(client_order_id)
        if managed is None or managed.broker is None or managed.is_terminal:
            log.info("event=cancel_ignored client_order_id=%s reason=%s (unknown or finished)", client_order_id, reason)
            return
        if self._drop_unsent(client_order_id):
            self._fail_now(managed, OrderStatus.CANCELLED, f"cancelled before sending: {reason}", None)
            return
        ib_order_id = managed.broker.ib_order_id
        self._record(OrderEventKind.CANCEL_REQUESTED, managed, reason=reason)
        log.info(
            "event=cancel_requested client_order_id=%s ib_order_id=%d reason=%s", client_order_id, ib_order_id, reason
        )
        self._enqueue(client_order_id, "cancelOrder", lambda: self._client.cancelOrder(ib_order_id))

    def cancel_all(self, reason: str) -> None:
        """reqGlobalCancel ahead of anything queued; unsent orders are cancelled here, the rest by IB's answers.

        reqGlobalCancel cancels every working order of the account (all client ids), which is what a halt wants.
        """
        for managed in self.store.working():
            coid = managed.order.client_order_id
            if self._drop_unsent(coid):
                self._fail_now(managed, OrderStatus.CANCELLED, f"cancelled before sending: {reason}", None)
            elif managed.broker is not None:
                self._record(OrderEventKind.CANCEL_REQUESTED, managed, reason=reason, extra={"scope": "global"})
        log.warning("event=global_cancel reason=%s working=%d", reason, len(self.store.working()))
        self._outbox.appendleft(_Outgoing(None, "reqGlobalCancel", self._client.reqGlobalCancel))
        self._drain()

    def refuse_new_orders(self, reason: str) -> None:
        """From now on ``submit`` drops new orders (logged): the engine is stopping or trusts no book of its own.
        Orders already working are left to the broker, cancels and their fills."""
        self._refusing = reason

    @property
    def accepting_orders(self) -> bool:
        return self._refusing is None

    # -- start-up and reconnect ------------------------------------------------------------------------------
    def recover(self, state: JournalState | None = None) -> int:
        """Load every journaled order (call once at start-up, before any IB message); returns the working count.

        Recovered orders are never re-sent: ``on_connected`` asks the broker about them.
        """
        state = state if state is not None else self._journal.state
        for journaled in state.orders.values():
            if journaled.order.client_order_id in self.store:
                continue
            leg = BrokerLeg(journaled.order.broker_order_id or 0, None, -1, exec_shares_seen=journaled.filled_quantity)
            self.store.restore(journaled, leg)
            self._exec_seen |= journaled.exec_ids
        self._matcher = CommissionMatcher(self._estimate, self._timeout_ns, already_processed=self._exec_seen)
        working = len(self.store.working())
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
        for managed in self.store.working():
            if managed.broker is not None:
                managed.broker.reported = False
        log.info(
            "event=reconcile_started reconnect=%s next_valid_id=%d working=%d",
            message.reconnect,
            message.next_valid_id,
            len(self.store.working()),
        )

    def finish_reconciliation(self) -> None:
        """The broker has reported our open orders and executions: adopt what it reported; a journaled order it
        does not know and that did not fully fill is failed (CANCELLED), never re-sent."""
        rec = self._reconciliation
        if rec is None:
            return
        self._reconciliation = None
        adopted = missing = 0
        for managed in self.store.working():
            coid = managed.order.client_order_id
            live = managed.broker
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
        symbols = {managed.order.symbol for managed in self.store.working()}
        for coid in self._matcher.pending_client_order_ids():
            managed = self.store.get(coid)
            if managed is not None:
                symbols.add(managed.order.symbol)
        return symbols

    # -- IB order callbacks ----------------------------------------------------------------------------------
    def _lookup(self, ib_order_id: int, order_ref: str = "", client_id: int | None = None,
                ) -> tuple[ManagedOrder, BrokerLeg] | None:  # fmt: skip
        """Our order behind an IB message, or None for another client's (never applied to ours).

        IB order ids are per client id (the risk monitor's order 1 is not ours), so a message that names another
        client id is foreign; and where it carries an ``orderRef`` (our client order id), that must agree with
        the order the id points at.
        """
        if client_id is not None and self._client_id is not None and client_id != self._client_id:
            return None
        managed = self.store.by_ib_order_id(ib_order_id)
        if order_ref and (managed is None or managed.order.client_order_id != order_ref):
            managed = self.store.get(order_ref)
        if managed is None or managed.broker is None:
            return None
        return managed, managed.broker

    def on_open_order(self, message: IbOpenOrder) -> None:
        order = message.order
        found = self._lookup(message.order_id, getattr(order, "orderRef", "") or "", getattr(order, "clientId", None))
        if found is None:
            log.debug("event=foreign_open_order ib_order_id=%d client_id=%s", message.order_id,
                      getattr(order, "clientId", None))  # fmt: skip
            return
        managed, live = found
        live.reported = True
        live.perm_id = int(getattr(order, "permId", 0) or live.perm_id)
        status = getattr(message.order_state, "status", "")
        if status in ("Submitted", "PreSubmitted"):
            self._ack(managed, live)

    def on_order_status(self, message: IbOrderStatus) -> None:
        found = self._lookup(message.order_id)
        if found is None:
            return
        managed, live = found
        live.reported = True
        live.perm_id = message.perm_id or live.perm_id
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
        log.info(
            "event=order_error client_order_id=%s ib_order_id=%d code=%d action=%s message=%r",
            managed.order.client_order_id,
            live.ib_order_id,
            message.code,
            verdict.action,
            message.message,
        )
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
            execution,
            message.contract,
            order.client_order_id,
            order.strategy_id,
            order.order_type,
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
    def _ack(self, managed: ManagedOrder, live: BrokerLeg) -> None:
        if managed.status is not OrderStatus.PENDING_SUBMIT:
            return
        self._record(OrderEventKind.ACK, managed, status=OrderStatus.SUBMITTED)
        managed.transition(OrderStatus.SUBMITTED)

    def _emit_fill(self, matched: MatchedFill) -> None:
        fill = matched.fill
        if matched.corrects_exec_id is not None:
            log.error(
                "event=exec_correction_not_applied exec_id=%s corrects=%s (reconcile by hand)",
                fill.exec_id,
                matched.corrects_exec_id,
            )
            return
        managed = self.store.get(fill.client_order_id)
        if managed is None or fill.exec_id in managed.exec_ids:
            return
        managed.check_fill(fill.quantity)  # before the journal and the order log hear of it
        booked = OrderFill(fill.exec_id, fill.quantity, fill.price, fill.commission, fill.ts_event_ns)
        filled_after = managed.filled_quantity + fill.quantity
        status = OrderStatus.FILLED if filled_after == managed.order.quantity else OrderStatus.PARTIALLY_FILLED
        self._record(OrderEventKind.FILL, managed, status=status, filled=filled_after, fill=booked,
                     commission_estimated=matched.commission_estimated)  # fmt: skip
        managed.apply_fill(fill.exec_id, fill.quantity, fill.price, fill.commission, fill.ts_event_ns)
        log.info(
            "event=order_fill client_order_id=%s exec_id=%s qty=%d price=%s filled=%d/%d",
            fill.client_order_id,
            fill.exec_id,
            fill.quantity,
            fill.price,
            managed.filled_quantity,
            managed.order.quantity,
        )
        self._put(fill)
        self.store.settle_terminal(managed)
        if managed.broker is not None:
            self._maybe_finish(managed, managed.broker)

    def _maybe_finish(self, managed: ManagedOrder, live: BrokerLeg) -> None:
        """Apply a pending terminal state once every execution the broker reported has been counted."""
        if live.final is None or managed.is_terminal:
            return
        if managed.filled_quantity < max(live.broker_filled, live.exec_shares_seen):
            return  # executions still on their way (or waiting for a commission report)
        status, reason, code = live.final
        self._fail_now(managed, status, reason, code)

    def _fail_now(self, managed: ManagedOrder, status: OrderStatus, reason: str, code: int | None) -> None:
        if status is OrderStatus.REJECTED and managed.filled_quantity > 0:
            status = OrderStatus.CANCELLED  # the fills stand; only the remainder will not work
        order = managed.order
        end_price = self._quote(order.symbol)[0] if self._quote is not None and managed.remaining > 0 else None
        extra = {"end_price": end_price} if _positive_or_none(end_price) is not None else None
        self._record(FINAL_KIND[status], managed, status=status, reason=reason, code=code, extra=extra)
        managed.transition(status)
        self.store.settle_terminal(managed)
        now = self._clock.now_ns()
        event = OrderFailedEvent(
            ts_event_ns=now,
            ts_init_ns=now,
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            symbol=order.symbol,
            status=status,
            reason=reason,
            code=code,
            filled_quantity=managed.filled_quantity,
        )
        log.info(
            "event=order_failed client_order_id=%s status=%s code=%s filled=%d reason=%r",
            order.client_order_id,
            status,
            code,
            managed.filled_quantity,
            reason,
        )
        self._put(event)

    def _algo(self, order: OrderEvent) -> tuple[str | None, dict[str, str]]:
        """The IB algo of ``order``: the decision's (a WHEEL order's ``execution``), else ``algo_for``'s, else none."""
        if order.execution is not None:
            return order.execution.algo, dict(order.execution.algo_params)
        return self._algo_for(order) if self._algo_for is not None else (None, {})

    def _tca_context(self, order: OrderEvent, algo: str | None, params: dict[str, str], now_ns: int
                     ) -> dict[str, object]:  # fmt: skip
        """The intent's TCA fields: when the order was sent and at what price, how it is worked and which policy
        chose that (``tca.from_journal`` reads them)."""
        price, spread_bps = self._quote(order.symbol) if self._quote is not None else (None, None)
        context: dict[str, object] = {
            "arrival_ts": now_ns, "arrival_price": _positive_or_none(price),
            "spread_bps": _positive_or_none(spread_bps), "algo": (algo or order.order_type.value).upper(),
            "algo_params": dict(params), "run_id": self._run_id,
        }  # fmt: skip
        if order.execution is not None:
            context.update(policy_id=order.execution.policy_id, propensity=order.execution.propensity,
                           wheel_decision=dict(order.execution.decision))  # fmt: skip
        return context

    def _record(
        self,
        kind: OrderEventKind,
        managed: ManagedOrder,
        *,
        status: OrderStatus | None = None,
        filled: int | None = None,
        fill: OrderFill | None = None,
        commission_estimated: bool = False,
        reason: str = "",
        code: int | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        """One lifecycle event to the store's appenders (journal, order log), before the in-memory change."""
        self.store.record(
            OrderRecord(
                kind,
                managed.order,
                self._clock.now_ns(),
                managed.broker.ib_order_id if managed.broker else None,
                managed.filled_quantity if filled is None else filled,
                managed.status if status is None else status,
                fill,
                commission_estimated,
                reason,
                code,
                extra or {},
            )
        )

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


def _positive_or_none(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) and value > 0 else None
