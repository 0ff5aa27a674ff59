"""The order state machine shared by the simulated executor and the IB executor, and its one event vocabulary.

One ``ManagedOrder`` per client order id; every status change goes through ``transition`` so an impossible
sequence (a fill after a cancel, more shares filled than ordered) is caught as an ``InvariantViolation``
instead of silently corrupting positions. ``OrderEventKind`` names what can happen to an order; the journal, the
order log and the order store (``execution.order_store``) all speak it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import InvariantViolation
from core.events import OrderEvent, OrderStatus, slot_init


class OrderEventKind(StrEnum):
    """What can happen to an order: the one lifecycle vocabulary (journal ``kind``, order-store records)."""

    INTENT = "intent"  # created and (for the IB executor) journaled before placeOrder
    ACK = "ack"  # the broker accepted the order (Submitted/PreSubmitted)
    FILL = "fill"  # one execution: exec_id, quantity, price
    CANCEL_REQUESTED = "cancel_requested"  # we asked to cancel; fills may still come
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL_KIND: dict[OrderStatus, OrderEventKind] = {
    OrderStatus.CANCELLED: OrderEventKind.CANCELLED,
    OrderStatus.REJECTED: OrderEventKind.REJECTED,
    OrderStatus.EXPIRED: OrderEventKind.EXPIRED,
}

TERMINAL: frozenset[OrderStatus] = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_SUBMIT: frozenset(
        {
            OrderStatus.SUBMITTED,
            OrderStatus.REJECTED,
            OrderStatus.CANCELLED,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
        }
    ),
    OrderStatus.SUBMITTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


@slot_init
@dataclass(frozen=True, slots=True)
class OrderFill:
    """One execution of an order, as booked (TCA reads these with the order's decision context)."""

    exec_id: str
    quantity: int
    price: float
    commission: float | None = None
    ts_ns: int | None = None


@dataclass(slots=True)
class BrokerLeg:
    """What the broker has told us about an order (IB executor only; the simulated venue has none).

    ``generation``: connection generation when it was sent (a reconciliation only judges older orders);
    ``exec_shares_seen``: shares in distinct execDetails, matched to a commission or not yet; ``broker_filled``:
    cumulative filled per the last orderStatus; ``reported``: the broker named it during the current
    reconciliation; ``final``: a terminal state waiting for its executions.
    """

    ib_order_id: int
    client_id: int | None
    generation: int
    perm_id: int = 0
    exec_shares_seen: int = 0
    broker_filled: int = 0
    reported: bool = False
    final: tuple[OrderStatus, str, int | None] | None = None


@dataclass(slots=True)
class ManagedOrder:
    """One order and everything known about it.

    ``order`` carries the decision context TCA needs (``reference_price`` and ``ts_event_ns``: the signal's price
    and time) and ``broker_order_id`` (the IB order id). ``booked_quantity`` counts the shares whose FillEvent the
    books have received: the decision core sees the order as working until every share or its end is booked.
    """

    order: OrderEvent
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    filled_quantity: int = 0
    avg_fill_price: float = 0.0
    exec_ids: set[str] = field(default_factory=set)
    fills: list[OrderFill] = field(default_factory=list)
    reserved_cash: float = 0.0
    booked_quantity: int = 0
    broker: BrokerLeg | None = None

    @property
    def remaining(self) -> int:
        return self.order.quantity - self.filled_quantity

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def transition(self, new_status: OrderStatus) -> None:
        """Move to ``new_status``; fill states must agree with the filled quantity (only fills make them)."""
        if new_status not in ALLOWED[self.status]:
            raise InvariantViolation(
                f"order {self.order.client_order_id}: illegal transition {self.status} -> {new_status}"
            )
        if (new_status is OrderStatus.FILLED and self.remaining != 0) or (
            new_status is OrderStatus.PARTIALLY_FILLED and not 0 < self.filled_quantity < self.order.quantity
        ):
            raise InvariantViolation(
                f"order {self.order.client_order_id}: {new_status} with {self.filled_quantity} of "
                f"{self.order.quantity} filled"
            )
        self.status = new_status

    def check_fill(self, quantity: int) -> None:
        """``InvariantViolation`` when a fill of ``quantity`` is impossible now; changes nothing, so a caller that
        journals before applying (the IB executor) checks first and a refused fill is written nowhere."""
        if quantity <= 0 or quantity > self.remaining:
            raise InvariantViolation(
                f"order {self.order.client_order_id}: fill of {quantity} with {self.remaining} remaining"
            )
        target = OrderStatus.FILLED if quantity == self.remaining else OrderStatus.PARTIALLY_FILLED
        if target not in ALLOWED[self.status]:
            raise InvariantViolation(f"order {self.order.client_order_id}: fill of {quantity} in status {self.status}")

    def apply_fill(self, exec_id: str, quantity: int, price: float, commission: float | None = None,
                   ts_ns: int | None = None) -> bool:  # fmt: skip
        """Record one execution; False (and no change) when this exec_id was already seen."""
        if exec_id in self.exec_ids:
            return False
        self.check_fill(quantity)  # before changing anything: a refused fill leaves no trace
        new_filled = self.filled_quantity + quantity
        self.avg_fill_price = (self.avg_fill_price * self.filled_quantity + price * quantity) / new_filled
        self.filled_quantity = new_filled
        self.exec_ids.add(exec_id)
        self.fills.append(OrderFill(exec_id, quantity, price, commission, ts_ns))
        self.transition(OrderStatus.FILLED if self.remaining == 0 else OrderStatus.PARTIALLY_FILLED)
        return True
