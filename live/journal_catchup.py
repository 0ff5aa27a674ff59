"""Start-up catch-up of fills the journal holds and the last portfolio snapshot predates."""

from __future__ import annotations

import json
from pathlib import Path

from core.events import FillEvent
from execution.order_journal import JournalState
from execution.order_state import OrderEventKind


def journal_fills_missing_from(path: Path, state: JournalState, applied: set[str]) -> list[FillEvent]:
    """The journal's fill records whose exec id is not in ``applied``, in journal order, as FillEvents.

    Reads the file again because ``JournalState`` keeps exec ids only, not each fill's quantity, price and
    commission. The journal was validated by its replay already; a line it set aside (torn tail) is skipped.
    """
    fills: list[FillEvent] = []
    if not path.exists():
        return fills
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("kind") != OrderEventKind.FILL or record.get("exec_id") in applied:
            continue
        managed = state.orders.get(record.get("client_order_id", ""))
        if managed is None or record["exec_id"] not in managed.exec_ids:
            continue
        order = managed.order
        ts_ns = int(record.get("ts_ns") or 0)
        fills.append(FillEvent(
            ts_event_ns=ts_ns, ts_init_ns=ts_ns, client_order_id=order.client_order_id,
            broker_order_id=order.broker_order_id, exec_id=record["exec_id"], strategy_id=order.strategy_id,
            symbol=order.symbol, side=order.side, quantity=int(record["quantity"]), price=float(record["price"]),
            commission=float(record.get("commission") or 0.0), order_type=order.order_type,
        ))  # fmt: skip
        applied.add(record["exec_id"])
    return fills
