"""The order submission log (``logs/order_submissions.csv``): one CSV row per order event, for people and the
independent risk monitor, which tails it.

Format (the contract with ``risk_monitor.py``; change it only together with the reader):

- UTF-8 CSV, comma-separated, ``\\n`` line ends, RFC 4180 quoting (a field with a comma or a quote is quoted,
  quotes doubled). Line breaks inside ``reason`` are replaced by spaces, so **one row is one physical line**
  and a reader may split on newlines before parsing.
- Header, written once when the file is created or empty: ``ts_utc,ts_ns,event,client_order_id,ib_order_id,
  strategy_id,symbol,side,quantity,order_type,limit_price,filled_quantity,fill_price,status,reason``.
- ``ts_utc``: ISO 8601 UTC with microseconds and a ``Z`` (``2024-01-02T14:31:05.123456Z``); ``ts_ns``: the
  same instant as UTC epoch nanoseconds (exact; sort and compare on this).
- ``event``: ``submit`` (written and flushed **before** the order is sent), ``ack``, ``partial``, ``fill``,
  ``cancel``, ``reject``, ``expire``.
- ``side``: BUY/SELL; ``quantity``: ordered shares; ``order_type``: MKT/LMT/MOC/LOC/STP; ``limit_price``: empty for
  MKT/MOC/STP; ``ib_order_id``: empty until known. A protective stop (STP) names its stop price and its entry in
  the ``reason`` of its ``submit`` row (``protective stop 95.12 of <entry client order id>``): the 15 columns, and
  so the monitor's reader, stay as they are.
- ``filled_quantity``: cumulative shares filled after this event; ``fill_price``: this execution's price
  (``partial``/``fill`` only, else empty); ``status``: our ``OrderStatus`` after the event; ``reason``: free
  text (rejection reason with the IB code, cancel cause).
- A last line without a newline is a torn write from a crash; the reopened log ends it with a newline, so a
  reader must skip (and report) rows whose field count is not 15.

Each row is flushed to the OS on write (enough for a tailing reader); ``fsync=True`` also makes it durable.
Reopening after a restart appends without a second header; a file whose header differs is refused
(``StateCorruptError``), since appending rows in another layout would mislead the monitor.
Owned by the dispatcher thread.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from core.events import FillEvent, OrderEvent, OrderFailedEvent, OrderStatus
from execution.order_state import OrderEventKind
from utils.append_csv import AppendOnlyCsv

if TYPE_CHECKING:
    from execution.order_store import OrderRecord

log = logging.getLogger(__name__)

DEFAULT_ORDER_LOG_PATH = Path("logs/order_submissions.csv")
COLUMNS: tuple[str, ...] = (
    "ts_utc", "ts_ns", "event", "client_order_id", "ib_order_id", "strategy_id", "symbol", "side", "quantity",
    "order_type", "limit_price", "filled_quantity", "fill_price", "status", "reason",
)  # fmt: skip
_NS_PER_US = 1_000


class OrderLogEvent(StrEnum):
    SUBMIT = "submit"
    ACK = "ack"
    PARTIAL = "partial"
    FILL = "fill"
    CANCEL = "cancel"
    REJECT = "reject"
    EXPIRE = "expire"


_FAILED_EVENT = {
    OrderStatus.CANCELLED: OrderLogEvent.CANCEL,
    OrderStatus.REJECTED: OrderLogEvent.REJECT,
    OrderStatus.EXPIRED: OrderLogEvent.EXPIRE,
}


_KIND_EVENT = {
    OrderEventKind.CANCELLED: OrderLogEvent.CANCEL,
    OrderEventKind.REJECTED: OrderLogEvent.REJECT,
    OrderEventKind.EXPIRED: OrderLogEvent.EXPIRE,
}


@dataclass(frozen=True, slots=True)
class OrderLogRow:
    """One row; ``None`` numbers are written as empty fields."""

    ts_ns: int
    event: OrderLogEvent
    order: OrderEvent
    ib_order_id: int | None
    filled_quantity: int
    status: OrderStatus
    fill_price: float | None = None
    reason: str = ""


_second_text: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text: rows come in bursts


def format_ts_utc(ts_ns: int) -> str:
    """``2024-01-02T14:31:05.123456Z`` (microseconds: the exact value is in ``ts_ns``).

    The date and time of day are formatted once per second (``strftime`` was a third of an order's log row).
    """
    global _second_text
    seconds, rem_ns = divmod(ts_ns, 1_000_000_000)
    cached_second, text = _second_text
    if cached_second != seconds:
        text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_text = (seconds, text)
    return f"{text}.{rem_ns // _NS_PER_US:06d}Z"


def _num(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


class OrderSubmissionLog:
    """Append-only CSV of order events at ``path`` (see the module doc for the format)."""

    def __init__(self, path: Path | str = DEFAULT_ORDER_LOG_PATH, fsync: bool = False) -> None:
        self._csv = AppendOnlyCsv(path, COLUMNS, "order log", fsync=fsync)
        self.path = self._csv.path

    def close(self) -> None:
        self._csv.close()

    def __enter__(self) -> OrderSubmissionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, row: OrderLogRow) -> None:
        """Append ``row`` and flush it before returning."""
        order = row.order
        self._write(
            [
                format_ts_utc(row.ts_ns),
                str(row.ts_ns),
                row.event.value,
                order.client_order_id,
                _num(row.ib_order_id),
                order.strategy_id,
                order.symbol,
                order.side.value,
                str(order.quantity),
                order.order_type.value,
                _num(order.limit_price),
                str(row.filled_quantity),
                _num(row.fill_price),
                row.status.value,
                _one_line(row.reason),
            ]
        )

    def append(self, record: OrderRecord) -> None:
        """The order store's appender: one lifecycle event as one row (a cancel request writes none)."""
        kind, order = record.kind, record.order
        if kind is OrderEventKind.INTENT:
            self.submit(order, record.ib_order_id, record.ts_ns)
        elif kind is OrderEventKind.ACK:
            self.ack(order, record.ib_order_id, record.ts_ns, record.filled_quantity)
        elif kind is OrderEventKind.FILL and record.fill is not None:
            done = record.filled_quantity >= order.quantity
            self.write(
                OrderLogRow(
                    record.ts_ns,
                    OrderLogEvent.FILL if done else OrderLogEvent.PARTIAL,
                    order,
                    record.ib_order_id,
                    record.filled_quantity,
                    record.status,
                    fill_price=record.fill.price,
                )
            )
        elif kind in _KIND_EVENT:
            reason = record.reason if record.code is None else f"[{record.code}] {record.reason}"
            self.write(OrderLogRow(record.ts_ns, _KIND_EVENT[kind], order, record.ib_order_id,
                                   record.filled_quantity, record.status, reason=reason))  # fmt: skip

    def submit(self, order: OrderEvent, ib_order_id: int | None, ts_ns: int) -> None:
        """The row the monitor sees first; call before ``placeOrder`` (it is flushed when this returns)."""
        self.write(
            OrderLogRow(
                ts_ns, OrderLogEvent.SUBMIT, order, ib_order_id, 0, OrderStatus.PENDING_SUBMIT, reason=order.reason
            )
        )

    def ack(self, order: OrderEvent, ib_order_id: int | None, ts_ns: int, filled_quantity: int = 0) -> None:
        status = OrderStatus.PARTIALLY_FILLED if filled_quantity else OrderStatus.SUBMITTED
        self.write(OrderLogRow(ts_ns, OrderLogEvent.ACK, order, ib_order_id, filled_quantity, status))

    def fill(self, order: OrderEvent, fill: FillEvent, filled_quantity: int, ts_ns: int) -> None:
        """One execution; ``filled_quantity`` is cumulative after it, which decides ``partial`` vs ``fill``."""
        done = filled_quantity >= order.quantity
        self.write(
            OrderLogRow(
                ts_ns,
                OrderLogEvent.FILL if done else OrderLogEvent.PARTIAL,
                order,
                fill.broker_order_id,
                filled_quantity,
                OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED,
                fill_price=fill.price,
            )
        )

    def failed(self, order: OrderEvent, failed: OrderFailedEvent, ib_order_id: int | None, ts_ns: int) -> None:
        """A cancel, reject or expiry; the IB error code, if any, is put in front of the reason."""
        event = _FAILED_EVENT.get(failed.status)
        if event is None:
            raise ValueError(f"OrderFailedEvent status must be one of {list(_FAILED_EVENT)} (got {failed.status})")
        reason = failed.reason if failed.code is None else f"[{failed.code}] {failed.reason}"
        self.write(OrderLogRow(ts_ns, event, order, ib_order_id, failed.filled_quantity, failed.status, reason=reason))

    def _write(self, fields: list[str]) -> None:
        self._csv.append(fields)
