"""Start-up: the journal cross-checked against the last portfolio snapshot, then the fills the snapshot predates.

The two files must agree one way: every execution the snapshot's ledger booked went through the journal first (the
executor journals a fill, fsynced, before the ledger sees it), so the journal holds each of the snapshot's exec
ids. The other way round is normal: a crash between a fill and the next snapshot leaves journaled fills the
snapshot lacks, and those are caught up (``journal_fills_missing_from``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.errors import StateCorruptError
from core.events import FillEvent
from execution.order_journal import JournalState, replay_journal
from execution.order_state import OrderEventKind
from portfolio.ledger import Ledger

MISSING_SHOWN = 3  # exec ids quoted in the message; the count says how many more
_ADVICE = ("nothing was changed: restore the journal from a backup (or put back what was cut, e.g. from its .torn "
           "file), or move both files aside and reconcile the account from the broker by hand before restarting")


def check_journal_covers_snapshot(journal_path: Path, snapshot_path: Path, snapshot: Mapping[str, Any] | None) -> None:
    """Raise ``StateCorruptError`` naming both files when the snapshot names executions the journal lacks.

    Why: a journal deleted, emptied or cut at a line boundary is a valid journal of fewer orders, so its replay
    cannot notice; the engine would then adopt no working order, forget what it sent and could send it again, while
    its books say otherwise. A missing journal beside a snapshot is the same case (the journal exists from the
    first start, before any snapshot), and it is refused before anything would create an empty one. Reads only:
    call it before the journal is opened for writing (which sets a torn tail aside). No snapshot: nothing to check.
    """
    if snapshot is None:
        return
    booked = Ledger.from_snapshot(snapshot["ledger"]).applied_exec_ids()
    if not journal_path.exists():
        raise StateCorruptError(f"{journal_path}: the order journal is missing but {snapshot_path} exists (it books "
                                f"{len(booked)} executions{_quoted(list(booked))}): the journal was deleted or "
                                f"moved; {_ADVICE}")  # fmt: skip
    journaled = replay_journal(journal_path).exec_ids()
    missing = [exec_id for exec_id in booked if exec_id not in journaled]
    if missing:
        raise StateCorruptError(
            f"{snapshot_path} lists {len(missing)} of its {len(booked)} executions that {journal_path} does not hold"
            f"{_quoted(missing)}: the journal was deleted, emptied or cut short, or the files come from different "
            f"runs; the engine would forget orders it sent; {_ADVICE}"
        )


def _quoted(exec_ids: list[str]) -> str:
    if not exec_ids:
        return ""
    more = len(exec_ids) - MISSING_SHOWN
    return f": exec ids {', '.join(exec_ids[:MISSING_SHOWN])}{f' and {more} more' if more > 0 else ''}"


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
