"""The ports between the decision core and an executor; the rest of the code knows only these Protocols."""

from __future__ import annotations

from typing import Protocol

from core.events import OrderEvent, Side


class OrderRouter(Protocol):
    """Where orders go (the simulated venue or IB). Called synchronously on the dispatcher thread: when ``submit``
    returns, the order is in the executor's order store, so the next decision already sees it working."""

    def submit(self, order: OrderEvent) -> None: ...

    def cancel(self, client_order_id: str, reason: str) -> None: ...

    def cancel_all(self, reason: str) -> None: ...


class WorkingOrders(Protocol):
    """The decision core's read-only view of the order store (``execution.order_store``).

    It follows the books: an order counts as working, and a buy keeps its cash reserved, until the books have
    received its fills or its end. ``working_at_broker`` is the exception, for netting against positions the
    broker just reported: it counts what the broker may still fill. Protective stops (STP) are not "working" for
    ``is_working`` and the quantities; ``open_stops``/``stops_at_broker`` tell about them.
    """

    def is_working(self, symbol: str) -> bool: ...

    def working_quantity(self, symbol: str, side: Side, strategy_id: str) -> int: ...

    def working_at_broker(self, symbol: str, side: Side, strategy_id: str) -> int: ...

    def reserved_cash(self) -> float: ...

    def working_symbols(self) -> set[str]: ...

    def order_event(self, client_order_id: str) -> OrderEvent | None: ...

    def open_stops(self, symbol: str) -> list[str]: ...

    def stops_at_broker(self, symbol: str, side: Side) -> int: ...
