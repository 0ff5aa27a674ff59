"""The crash-safe order journal (``state/order_journal.jsonl``): what we intended and what the broker told us.

Write-ahead rule: ``record_intent`` is written and **fsynced before ``placeOrder`` is sent**, so after a crash
the restarted engine knows every order it may have sent (client order id, IB order id) and can ask the broker
about it instead of sending it again. Acks, fills (by ``exec_id``), cancels and rejects follow as events.

Format: JSON Lines, one record per line, append-only, ASCII. Every record has ``v`` (format version), ``seq``
(1, 2, 3, ... with no gaps), ``kind``, ``client_order_id`` and ``crc`` (CRC-32, 8 hex digits, of the record's
canonical JSON without ``crc``: sorted keys, no spaces). Intents add ``ib_order_id`` and ``order`` (the
OrderEvent's fields); fills add ``exec_id``, ``quantity`` (shares) and ``price``; any kind may add more fields
(``reason``, ``code``, ``ts_ns``...), which are kept in the file for people and ignored by replay.

Failure policy:
- A last line without its newline is a torn write from a crash: replay ignores and reports it (the state is
  the one before that record). Opening the journal for writing moves those bytes to ``<name>.torn`` (kept as
  evidence) and truncates them, so new records do not glue onto the fragment.
- Any other bad line (not JSON, wrong crc, seq gap, unknown order, impossible transition) raises
  ``StateCorruptError`` naming the file and line: it is never skipped or replaced.
- An event that our order state machine refuses raises ``InvariantViolation`` and is not written.

Owned by the dispatcher thread. Every record is fsynced (orders are rare; a lost fill is not).

The journal and its ``.torn`` evidence are ``PRIVATE_FILE_MODE`` (0600) whatever the umask: they list every order
of the account. An existing journal with looser bits is tightened when opened (logged).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InvariantViolation, StateCorruptError
from core.events import ExecutionChoice, OrderEvent, OrderStatus, OrderType, Side, TimeInForce
from execution.order_state import FINAL_KIND, ManagedOrder, OrderEventKind
from utils.atomic_files import PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, make_dir, open_with_mode
from utils.crc_lines import TornTail, checked_record, complete_lines, encode_line

if TYPE_CHECKING:
    from execution.order_store import OrderRecord

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
DEFAULT_JOURNAL_PATH = Path("state/order_journal.jsonl")


_TERMINAL_EVENT = {kind: status for status, kind in FINAL_KIND.items()}


@dataclass(slots=True)
class JournalState:
    """Every journaled order as a ``ManagedOrder`` (its ``order.broker_order_id`` is the IB order id)."""

    orders: dict[str, ManagedOrder] = field(default_factory=dict)
    last_seq: int = 0
    max_ib_order_id: int = 0
    torn_tail: TornTail | None = None

    def working(self) -> list[ManagedOrder]:
        """Orders not known to be finished: ask the broker about these after a restart."""
        return [m for m in self.orders.values() if not m.is_terminal]

    def exec_ids(self) -> set[str]:
        """Every execution already counted, to drop repeats from reqExecutions after a restart."""
        return {e for m in self.orders.values() for e in m.exec_ids}


_ORDER_FIELDS = tuple(f.name for f in fields(OrderEvent) if f.name not in ("broker_order_id", "execution"))
"""The journaled fields of an order, in the dataclass's order: listed once, not per intent."""


def _order_to_json(order: OrderEvent) -> dict[str, object]:
    body = {name: getattr(order, name) for name in _ORDER_FIELDS}
    if order.execution is not None:  # absent otherwise: journals written before it existed read the same
        body["execution"] = order.execution.to_json()
    for name in ("stop_price", "protective_stop_distance"):  # only on stops and protected entries, for the same
        if body[name] is None:  # reason: an order without them is journaled as before they existed
            del body[name]
    return body


def _order_from_json(data: dict[str, object], ib_order_id: int) -> OrderEvent:
    values = dict(data)
    values["side"] = Side(values["side"])
    values["order_type"] = OrderType(values["order_type"])
    values["time_in_force"] = TimeInForce(values["time_in_force"])
    execution = values.pop("execution", None)
    return OrderEvent(**values, broker_order_id=ib_order_id,
                      execution=None if execution is None else ExecutionChoice.from_json(execution))  # fmt: skip


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _apply(state: JournalState, record: dict[str, object]) -> bool:
    """Apply one record to ``state``; False when it changed nothing that matters (a repeated fill).

    Validates before mutating, so a refused record (``InvariantViolation``) leaves ``state`` as it was.
    """
    kind = OrderEventKind(record["kind"])
    coid = record["client_order_id"]
    if not isinstance(coid, str) or not coid:
        raise ValueError(f"client_order_id must be a non-empty string (got {coid!r})")
    if kind is OrderEventKind.INTENT:
        ib_order_id = record["ib_order_id"]
        if coid in state.orders:
            raise InvariantViolation(f"second intent for client_order_id {coid}: orders are idempotent")
        if not isinstance(ib_order_id, int) or ib_order_id <= state.max_ib_order_id:
            raise InvariantViolation(
                f"order {coid}: IB order id {ib_order_id} must exceed every id used so far "
                f"({state.max_ib_order_id}); IB would answer 103 duplicate order id"
            )
        order = _order_from_json(record["order"], ib_order_id)
        if order.client_order_id != coid:
            raise InvariantViolation(f"intent {coid} carries an order with id {order.client_order_id}")
        state.orders[coid] = ManagedOrder(order)
        state.max_ib_order_id = ib_order_id
        return True
    managed = state.orders.get(coid)
    if managed is None:
        raise InvariantViolation(f"{kind} for client_order_id {coid} which has no intent")
    if kind is OrderEventKind.ACK:
        if managed.status is OrderStatus.PENDING_SUBMIT:
            managed.transition(OrderStatus.SUBMITTED)
        return True
    if kind is OrderEventKind.FILL:
        exec_id, quantity, price = record["exec_id"], record["quantity"], record["price"]
        if not isinstance(exec_id, str) or not exec_id:
            raise ValueError(f"fill exec_id must be a non-empty string (got {exec_id!r})")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise ValueError(f"fill quantity must be a whole number of shares (got {quantity!r})")
        if not _is_number(price):
            raise ValueError(f"fill price must be a number (got {price!r})")
        if exec_id in managed.exec_ids:
            return False
        if managed.is_terminal:  # checked here because ManagedOrder.apply_fill mutates before it transitions
            raise InvariantViolation(f"order {coid}: fill {exec_id} after the order became {managed.status}")
        commission, ts_ns = record.get("commission"), record.get("ts_ns")
        return managed.apply_fill(
            exec_id,
            quantity,
            float(price),
            float(commission) if _is_number(commission) else None,
            ts_ns if isinstance(ts_ns, int) and not isinstance(ts_ns, bool) else None,
        )
    if kind is OrderEventKind.CANCEL_REQUESTED:
        return True
    target = _TERMINAL_EVENT[kind]
    if managed.status is not target:  # TWS repeats final statuses; the repeat is harmless
        managed.transition(target)
    return True


class OrderJournal:
    """Append-only journal at ``path``; replays the existing file on open (see the module doc for the rules).

    ``now_ns`` (the engine clock) stamps each record with ``ts_ns`` for people reading the file.
    """

    def __init__(self, path: Path | str = DEFAULT_JOURNAL_PATH, now_ns: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self._now_ns = now_ns
        make_dir(self.path.parent, PRIVATE_DIR_MODE)
        created = not self.path.exists()
        self._state = replay_journal(self.path) if not created else JournalState()
        self.recovered_torn_tail = self._state.torn_tail
        if self.recovered_torn_tail is not None:
            self._set_aside_torn_tail(self.recovered_torn_tail)
            self._state.torn_tail = None
        self._fd = open_with_mode(self.path, os.O_WRONLY | os.O_APPEND, PRIVATE_FILE_MODE)
        if created:
            _fsync_dir(self.path.parent)
        self._failed: BaseException | None = None

    @property
    def state(self) -> JournalState:
        """The live state (read-only for callers): what ``replay()`` would return now."""
        return self._state

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> OrderJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record_intent(self, order: OrderEvent, ib_order_id: int, **context: object) -> None:
        """Journal the order and fsync; only after this returns may the caller send ``placeOrder``.

        ``context``: extra fields kept for people and for TCA (the arrival quote, the algo), ignored by replay.
        Raises ``InvariantViolation`` (nothing written) for a second intent with the same client order id or
        an IB order id not above every id journaled so far.
        """
        reserved = {"v", "seq", "kind", "client_order_id", "crc", "ib_order_id", "order"} & set(context)
        if reserved:
            raise ValueError(f"field names {sorted(reserved)} are reserved by the journal format")
        body = {
            **context,
            "kind": OrderEventKind.INTENT.value,
            "client_order_id": order.client_order_id,
            "ib_order_id": ib_order_id,
            "order": _order_to_json(order),
        }
        self._append(body)

    def record_event(self, client_order_id: str, kind: OrderEventKind | str, **fields: object) -> bool:
        """Journal an ack/fill/cancel/reject for a journaled order; False (nothing written) for a repeated fill.

        A fill needs ``exec_id``, ``quantity`` (shares) and ``price``. Raises ``InvariantViolation`` (nothing
        written) when the order state machine refuses the event, ValueError for a malformed call.
        """
        kind = OrderEventKind(kind)
        if kind is OrderEventKind.INTENT:
            raise ValueError("use record_intent for intents")
        reserved = {"v", "seq", "kind", "client_order_id", "crc"} & set(fields)
        if reserved:
            raise ValueError(f"field names {sorted(reserved)} are reserved by the journal format")
        if kind is OrderEventKind.FILL:
            missing = {"exec_id", "quantity", "price"} - set(fields)
            if missing:
                raise ValueError(f"a fill record needs exec_id, quantity and price (missing {sorted(missing)})")
        return self._append({**fields, "kind": kind.value, "client_order_id": client_order_id})

    def append(self, record: OrderRecord) -> None:
        """The order store's appender: one lifecycle event as one journal record (fsynced).

        An order never sent (``ib_order_id`` None) has no intent here and so no record at all.
        """
        if record.ib_order_id is None:
            return
        kind, order = record.kind, record.order
        if kind is OrderEventKind.INTENT:
            self.record_intent(order, record.ib_order_id, **record.extra)
            return
        fields: dict[str, object] = dict(record.extra)
        if kind is OrderEventKind.ACK:
            fields["ib_order_id"] = record.ib_order_id
        elif kind is OrderEventKind.FILL and record.fill is not None:
            fill = record.fill
            fields.update(exec_id=fill.exec_id, quantity=fill.quantity, price=fill.price, commission=fill.commission,
                          commission_estimated=record.commission_estimated)  # fmt: skip
        elif kind is not OrderEventKind.FILL:
            fields["reason"] = record.reason
            if kind is not OrderEventKind.CANCEL_REQUESTED:
                fields["code"] = record.code
        self.record_event(order.client_order_id, kind, **fields)

    def replay(self) -> JournalState:
        """Rebuild the state from the file (independent of the in-memory state)."""
        return replay_journal(self.path)

    def _append(self, body: dict[str, object]) -> bool:
        if self._failed is not None:
            raise StateCorruptError(
                f"{self.path}: an earlier write failed ({self._failed}); restart the engine so it replays the file"
            )
        body = {**body, "v": JOURNAL_VERSION, "seq": self._state.last_seq + 1}
        if self._now_ns is not None and "ts_ns" not in body:
            body["ts_ns"] = self._now_ns()
        line = encode_line(body)  # fails on NaN or unserializable values before anything changes
        if not _apply(self._state, body):
            return False
        self._state.last_seq += 1
        try:
            _write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as exc:
            self._failed = exc
            raise StateCorruptError(f"{self.path}: journal write failed: {exc}") from exc
        return True

    def _set_aside_torn_tail(self, torn: TornTail) -> None:
        with self.path.open("rb") as src:
            src.seek(torn.offset)
            fragment = src.read()
        aside = self.path.with_name(self.path.name + ".torn")
        with open(open_with_mode(aside, os.O_WRONLY | os.O_APPEND, PRIVATE_FILE_MODE), "ab") as out:
            out.write(fragment + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.truncate(self.path, torn.offset)
        with self.path.open("rb+") as f:
            os.fsync(f.fileno())
        log.warning(
            "event=journal_torn_tail path=%s line=%d bytes=%d moved_to=%s",
            self.path,
            torn.line_number,
            torn.length,
            aside,
        )


def replay_journal(path: Path | str) -> JournalState:
    """The state recorded in the journal at ``path``; a missing file is an empty journal.

    Raises ``StateCorruptError`` naming the file and line for any complete line that cannot be trusted.
    """
    path = Path(path)
    state = JournalState()
    if not path.exists():
        return state
    lines, state.torn_tail = complete_lines(path.read_bytes())
    for line_number, raw in lines:
        _replay_line(state, raw, path, line_number)
    if state.torn_tail is not None:
        log.warning("event=journal_torn_tail path=%s line=%d bytes=%d", path, state.torn_tail.line_number,
                    state.torn_tail.length)  # fmt: skip
    return state


def _replay_line(state: JournalState, raw: bytes, path: Path, line_number: int) -> None:
    where = f"{path}:{line_number}"
    advice = "the journal is never repaired automatically: inspect that line, then restore or reconcile by hand"
    record = checked_record(raw, where, advice)
    if record.get("v") != JOURNAL_VERSION:
        raise StateCorruptError(f"{where}: format version {record.get('v')!r}, this code reads {JOURNAL_VERSION}")
    if record.get("seq") != state.last_seq + 1:
        raise StateCorruptError(
            f"{where}: seq {record.get('seq')!r}, expected {state.last_seq + 1} (a record is missing or repeated); "
            f"{advice}"
        )
    try:
        _apply(state, record)
    except (InvariantViolation, KeyError, TypeError, ValueError) as exc:
        raise StateCorruptError(f"{where}: record cannot be applied ({type(exc).__name__}: {exc}); {advice}") from exc
    state.last_seq += 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a newly created file's directory entry durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
