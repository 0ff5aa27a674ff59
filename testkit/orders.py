"""``make_order``: an OrderEvent with sensible defaults, so a test states only what it is about."""

from __future__ import annotations

import itertools

from core.events import OrderEvent, OrderType, Side

_order_ids = itertools.count(1)


def make_order(
    symbol: str = "AAA",
    side: Side = Side.BUY,
    quantity: int = 100,
    order_type: OrderType = OrderType.MKT,
    reference_price: float = 10.0,
    limit_price: float | None = None,
    reduce_only: bool = False,
    ts_event_ns: int = 0,
) -> OrderEvent:
    """A test order; ``client_order_id`` is ``test-000001``, ``test-000002``, ... in creation order."""
    return OrderEvent(
        ts_event_ns=ts_event_ns,
        ts_init_ns=ts_event_ns,
        client_order_id=f"test-{next(_order_ids):06d}",
        strategy_id="test",
        symbol=symbol,
        side=side,
        quantity=quantity,
        order_type=order_type,
        limit_price=limit_price,
        reference_price=reference_price,
        reduce_only=reduce_only,
    )
