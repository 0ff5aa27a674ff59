"""The order store: the one record of every order this process knows, owned by the executor.

The role of NautilusTrader's Cache for orders. Per order (a ``ManagedOrder``): the client order id, the IB order
id, perm id and client id (``BrokerLeg``), the state, quantities, average price, each fill with its exec id and
commission, and the decision context TCA needs (the order's ``reference_price`` and ``ts_event_ns``).

Writers and readers:
- Only the executor that owns the store changes it (``add``, ``restore``, ``settle_terminal``, the fills it applies
  to its ``ManagedOrder``\\s) and tells what happened through ``record(OrderRecord)``: the journal and the order
  log are the appenders behind that one call (the journal first: it is fsynced before anything leaves).
- The decision core (``PortfolioManager``) reads working orders through the ``WorkingOrders`` view
  (``execution.router``): one working order per symbol, the cash working buys reserve, and how many shares working
  flatten orders already cover. After a restart the executor ``restore``\\s the journaled orders, so adopted
  orders count there like any other.
- Protective stops (``OrderType.STP``) are orders like any other here (journal, order log, reconciliation), but the
  decision view keeps them apart: a working stop does not make its symbol "working" for the one-working-order rule
  (the strategy's exit must still be heard while its stop waits); ``open_stops`` lists them for the exit that
  must cancel them first (``portfolio.protective_stops``).

Why a view that lags: the books (ledger) learn a fill when its FillEvent is dispatched, which can be later than the
executor applying it. The view follows the books, not the executor: an order stays working for decisions, and its
buy keeps its cash reserved, until the queue has delivered its fills or its end (``on_fill_booked`` and
``on_failure_booked``, routed next to the books' own handlers). Otherwise a decision taken between the two could
see the cash neither reserved nor spent, or a closing order neither working nor booked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.errors import InvariantViolation
from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderStatus, OrderType, Side
from execution.order_state import BrokerLeg, ManagedOrder, OrderEventKind, OrderFill

log = logging.getLogger(__name__)

CASH_BUFFER = 0.02  # headroom a buy is sized and reserved with, for an adverse open (the venue caps to real cash)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """One lifecycle event of one order, as the store's appenders receive it.

    ``ib_order_id`` is None for an order that was never sent (refused before the journal: the journal keeps no
    record of it, the order log does). ``filled_quantity`` and ``status`` are the order's after this event.
    """

    kind: OrderEventKind
    order: OrderEvent
    ts_ns: int
    ib_order_id: int | None
    filled_quantity: int
    status: OrderStatus
    fill: OrderFill | None = None
    commission_estimated: bool = False
    reason: str = ""
    code: int | None = None
    extra: Mapping[str, object] = field(default_factory=dict)


class OrderRecorder(Protocol):
    """An appender of order events (the journal, the order log)."""

    def append(self, record: OrderRecord) -> None: ...


class OrderStore:
    """Every order by client order id, the working ones indexed, and the decision core's working view.

    A working buy (not reduce-only) reserves its remaining shares at the reference price times (1 + ``cash_buffer``),
    the amount the decision core's sizing assumed (``CASH_BUFFER``, which it imports from here).
    """

    def __init__(self, recorders: Iterable[OrderRecorder] = (), *, cash_buffer: float = CASH_BUFFER) -> None:
        self._recorders = tuple(recorders)
        self._cash_buffer = cash_buffer
        self._orders: dict[str, ManagedOrder] = {}
        self._working: dict[str, ManagedOrder] = {}
        self._by_ib_id: dict[int, ManagedOrder] = {}
        self._open: dict[str, dict[str, ManagedOrder]] = {}  # symbol -> orders the books have not seen end
        self._open_stops: dict[str, dict[str, ManagedOrder]] = {}  # the same for protective stops (STP)
        self._reserved_total = 0.0

    # -- the record ---------------------------------------------------------------------------------------------
    def add(self, order: OrderEvent, broker: BrokerLeg | None = None) -> ManagedOrder:
        """A new order (PENDING_SUBMIT); a client order id seen before is an ``InvariantViolation``."""
        if order.client_order_id in self._orders:
            raise InvariantViolation(f"duplicate client_order_id {order.client_order_id}: orders are idempotent")
        managed = ManagedOrder(order, broker=broker)
        self._index(managed)
        self._open_for_decisions(managed)
        return managed

    def restore(self, recovered: ManagedOrder, broker: BrokerLeg | None) -> ManagedOrder:
        """An order recovered from the journal, with its state and fills; a working one counts for decisions at once.

        Its journaled fills are in the books already (snapshot plus journal catch-up), so they count as booked.
        """
        if recovered.order.client_order_id in self._orders:
            raise InvariantViolation(f"order {recovered.order.client_order_id} restored twice")
        managed = ManagedOrder(
            recovered.order, recovered.status, recovered.filled_quantity, recovered.avg_fill_price,
            set(recovered.exec_ids), list(recovered.fills), booked_quantity=recovered.filled_quantity, broker=broker,
        )  # fmt: skip
        self._index(managed)
        if managed.is_terminal:
            self._working.pop(managed.order.client_order_id, None)
        elif managed.remaining > 0:
            self._open_for_decisions(managed)
            log.info("event=working_order_adopted client_order_id=%s symbol=%s side=%s remaining=%d "
                     "reserved_cash=%.2f", managed.order.client_order_id, managed.order.symbol, managed.order.side,
                     managed.remaining, managed.reserved_cash)  # fmt: skip
        return managed

    def record(self, record: OrderRecord) -> None:
        """Hand one lifecycle event to every appender, in order (the journal first)."""
        for recorder in self._recorders:
            recorder.append(record)

    def get(self, client_order_id: str) -> ManagedOrder | None:
        return self._orders.get(client_order_id)

    def by_ib_order_id(self, ib_order_id: int) -> ManagedOrder | None:
        return self._by_ib_id.get(ib_order_id)

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def all(self) -> list[ManagedOrder]:
        return list(self._orders.values())

    def working(self) -> list[ManagedOrder]:
        """Orders not in a terminal state (the executor's view: the broker may still act on these)."""
        return list(self._working.values())

    def has_working(self) -> bool:
        return bool(self._working)

    def settle_terminal(self, managed: ManagedOrder) -> None:
        """Drop an order from the working index once it reached a terminal state."""
        if managed.is_terminal:
            self._working.pop(managed.order.client_order_id, None)

    # -- what the books have received (queue handlers, routed next to the books' own) ----------------------------
    def on_fill_booked(self, fill: FillEvent) -> None:
        managed = self._orders.get(fill.client_order_id)
        if managed is None:
            return
        managed.booked_quantity += fill.quantity
        if managed.reserved_cash:
            self._release(managed, min(managed.reserved_cash, fill.quantity * fill.price + fill.commission))
        if managed.booked_quantity >= managed.order.quantity:
            self._close_for_decisions(managed)

    def on_failure_booked(self, event: OrderFailedEvent) -> None:
        managed = self._orders.get(event.client_order_id)
        if managed is not None:
            self._close_for_decisions(managed)

    # -- the decision core's view (``execution.router.WorkingOrders``) ------------------------------------------
    def is_working(self, symbol: str) -> bool:
        return bool(self._open.get(symbol))

    def working_quantity(self, symbol: str, side: Side, strategy_id: str) -> int:
        """Shares still to trade in working orders of ``strategy_id`` on ``symbol`` and ``side``."""
        orders = self._open.get(symbol, {}).values()
        return sum(m.order.quantity - m.booked_quantity for m in orders
                   if m.order.side is side and m.order.strategy_id == strategy_id)  # fmt: skip

    def working_at_broker(self, symbol: str, side: Side, strategy_id: str) -> int:
        """Shares still to trade in orders of ``strategy_id`` on ``symbol`` and ``side`` that the broker may still
        fill: the executor's view (not terminal; remaining by the executions it counted).

        A flatten from the broker's positions nets against this, not against the books' view: a flatten order the
        broker has just confirmed cancelled no longer covers anything, even before the books hear of it.
        """
        orders = self._working.values()
        return sum(m.remaining for m in orders
                   if m.order.symbol == symbol and m.order.side is side and m.order.strategy_id == strategy_id)

    def reserved_cash(self) -> float:
        return self._reserved_total

    def order_event(self, client_order_id: str) -> OrderEvent | None:
        """The order as it was sent (an entry's ``protective_stop_distance``), or None if unknown."""
        managed = self._orders.get(client_order_id)
        return None if managed is None else managed.order

    def open_stops(self, symbol: str) -> list[str]:
        """Client order ids of the protective stops on ``symbol`` whose end (fill or cancel) the books have not
        received yet: an exit waits until this is empty, so the position it closes is the one the books hold."""
        return list(self._open_stops.get(symbol, {}))

    def stops_at_broker(self, symbol: str, side: Side) -> int:
        """Shares the broker may still fill in protective stops on ``symbol`` and ``side`` (the executor's view)."""
        return sum(m.remaining for m in self._working.values() if m.order.order_type is OrderType.STP
                   and m.order.symbol == symbol and m.order.side is side)  # fmt: skip

    def working_symbols(self) -> set[str]:
        return set(self._open)

    # -- internals ----------------------------------------------------------------------------------------------
    def _index(self, managed: ManagedOrder) -> None:
        coid = managed.order.client_order_id
        self._orders[coid] = managed
        self._working[coid] = managed
        if managed.broker is not None:
            self._by_ib_id[managed.broker.ib_order_id] = managed

    def _open_for_decisions(self, managed: ManagedOrder) -> None:
        order = managed.order
        if order.order_type is OrderType.STP:
            self._open_stops.setdefault(order.symbol, {})[order.client_order_id] = managed
            return  # reduce-only: reserves nothing
        self._open.setdefault(order.symbol, {})[order.client_order_id] = managed
        if order.side is Side.BUY and not order.reduce_only:
            managed.reserved_cash = managed.remaining * order.reference_price * (1.0 + self._cash_buffer)
            self._reserved_total += managed.reserved_cash

    def _close_for_decisions(self, managed: ManagedOrder) -> None:
        self._release(managed, managed.reserved_cash)
        index = self._open_stops if managed.order.order_type is OrderType.STP else self._open
        orders = index.get(managed.order.symbol)
        if orders is None:
            return
        orders.pop(managed.order.client_order_id, None)
        if not orders:
            del index[managed.order.symbol]
        if not self._open:
            self._reserved_total = 0.0  # nothing reserves any more: drop the float residue of the running sum

    def _release(self, managed: ManagedOrder, amount: float) -> None:
        managed.reserved_cash -= amount
        self._reserved_total -= amount
