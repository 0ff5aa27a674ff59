"""The order state machine shared by the simulated executor and the IB executor.

One ``ManagedOrder`` per client order id; every status change goes through ``transition`` so an impossible
sequence (a fill after a cancel, more shares filled than ordered) is caught as an ``InvariantViolation``
instead of silently corrupting positions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.errors import InvariantViolation
from core.events import OrderEvent, OrderStatus

TERMINAL: frozenset[OrderStatus] = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)

ALLOWED: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING_SUBMIT: frozenset(
        {OrderStatus.SUBMITTED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.PARTIALLY_FILLED,
         OrderStatus.FILLED}
    ),
    OrderStatus.SUBMITTED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED,
         OrderStatus.EXPIRED}
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


@dataclass(slots=True)
class ManagedOrder:
    order: OrderEvent
    status: OrderStatus = OrderStatus.PENDING_SUBMIT
    filled_quantity: int = 0
    avg_fill_price: float = 0.0
    exec_ids: set[str] = field(default_factory=set)

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

    def apply_fill(self, exec_id: str, quantity: int, price: float) -> bool:
        """Record one execution; False (and no change) when this exec_id was already seen."""
        if exec_id in self.exec_ids:
            return False
        if quantity <= 0 or quantity > self.remaining:
            raise InvariantViolation(
                f"order {self.order.client_order_id}: fill of {quantity} with {self.remaining} remaining"
            )
        target = OrderStatus.FILLED if quantity == self.remaining else OrderStatus.PARTIALLY_FILLED
        if target not in ALLOWED[self.status]:  # check before changing anything: a refused fill leaves no trace
            raise InvariantViolation(
                f"order {self.order.client_order_id}: fill of {quantity} in status {self.status}"
            )
        new_filled = self.filled_quantity + quantity
        self.avg_fill_price = (self.avg_fill_price * self.filled_quantity + price * quantity) / new_filled
        self.filled_quantity = new_filled
        self.exec_ids.add(exec_id)
        self.transition(OrderStatus.FILLED if self.remaining == 0 else OrderStatus.PARTIALLY_FILLED)
        return True


class OrderBook:
    """Every order this process knows, by client order id, with the working (non-terminal) ones indexed."""

    def __init__(self) -> None:
        self._orders: dict[str, ManagedOrder] = {}
        self._working: dict[str, ManagedOrder] = {}

    def add(self, order: OrderEvent) -> ManagedOrder:
        if order.client_order_id in self._orders:
            raise InvariantViolation(f"duplicate client_order_id {order.client_order_id}: orders are idempotent")
        managed = ManagedOrder(order)
        self._orders[order.client_order_id] = managed
        self._working[order.client_order_id] = managed
        return managed

    def get(self, client_order_id: str) -> ManagedOrder | None:
        return self._orders.get(client_order_id)

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def working(self) -> list[ManagedOrder]:
        return list(self._working.values())

    def has_working(self) -> bool:
        return bool(self._working)

    def settle_terminal(self, managed: ManagedOrder) -> None:
        """Drop an order from the working index once it reached a terminal state."""
        if managed.is_terminal:
            self._working.pop(managed.order.client_order_id, None)
