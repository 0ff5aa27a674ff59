"""Builder of FillEvents for tests across the repo.

Ids come from one process-wide counter, so every fill built in a test run has a distinct ``exec_id`` and
``client_order_id`` (the ledger drops duplicate exec ids) and a run is reproducible for a given test order.
Pass ``exec_id`` explicitly to build a duplicate on purpose.
"""

from __future__ import annotations

import itertools
import logging

from core.events import FillEvent, OrderType, Side

log = logging.getLogger(__name__)

_fill_numbers = itertools.count(1)


def make_fill(
    symbol: str = "AAA",
    side: Side = Side.BUY,
    quantity: int = 100,
    price: float = 10.0,
    commission: float = 1.0,
    ts_event_ns: int = 0,
    exec_id: str | None = None,
    client_order_id: str | None = None,
    *,
    slippage_cost: float = 0.0,
    strategy_id: str = "test",
    order_type: OrderType = OrderType.MKT,
) -> FillEvent:
    """A FillEvent with test defaults; ``ts_init_ns`` equals ``ts_event_ns`` and there is no broker order id."""
    number = next(_fill_numbers)
    return FillEvent(
        ts_event_ns=ts_event_ns,
        ts_init_ns=ts_event_ns,
        client_order_id=client_order_id if client_order_id is not None else f"test-order-{number:06d}",
        broker_order_id=None,
        exec_id=exec_id if exec_id is not None else f"test-exec-{number:06d}",
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        quantity=quantity,
        price=price,
        commission=commission,
        slippage_cost=slippage_cost,
        order_type=order_type,
    )
