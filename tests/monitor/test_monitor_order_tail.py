"""``monitor.order_tail``: the engine's order log read by the monitor (rows written by the engine's own writer)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import NS_PER_SECOND
from core.events import OrderEvent, OrderStatus, OrderType, Side
from execution.order_log import COLUMNS, OrderLogEvent, OrderLogRow, OrderSubmissionLog
from monitor.order_tail import ORDER_LOG_COLUMNS, OrderLogWatcher, SlidingWindowCount, parse_order_row

S = NS_PER_SECOND
START = int(datetime(2024, 3, 5, 15, 0, tzinfo=UTC).timestamp()) * S  # 10:00 in New York
YESTERDAY = int(datetime(2024, 3, 4, 18, 0, tzinfo=UTC).timestamp()) * S


def order(coid: str, qty: int = 10, symbol: str = "SPY", limit: float | None = None) -> OrderEvent:
    return OrderEvent(
        ts_event_ns=0,
        ts_init_ns=0,
        client_order_id=coid,
        strategy_id="sma",
        symbol=symbol,
        side=Side.BUY,
        quantity=qty,
        order_type=OrderType.LMT if limit else OrderType.MKT,
        limit_price=limit,
        reference_price=100.0,
    )


def write(
    log: OrderSubmissionLog,
    ts_ns: int,
    event: OrderLogEvent,
    o: OrderEvent,
    filled: int = 0,
    price: float | None = None,
) -> None:
    log.write(
        OrderLogRow(
            ts_ns=ts_ns,
            event=event,
            order=o,
            ib_order_id=7,
            filled_quantity=filled,
            status=OrderStatus.SUBMITTED,
            fill_price=price,
            reason="why, with a comma",
        )
    )


def test_the_monitor_reads_the_columns_the_engine_writes(tmp_path: Path) -> None:
    assert ORDER_LOG_COLUMNS == COLUMNS  # the contract of execution/order_log.py
    path = tmp_path / "orders.csv"
    with OrderSubmissionLog(path) as log:
        write(log, START, OrderLogEvent.SUBMIT, order("a", 10, limit=101.5))
        write(log, START + 1, OrderLogEvent.PARTIAL, order("a", 10, limit=101.5), filled=4, price=101.25)
    header, submit, partial = path.read_text().splitlines()
    assert parse_order_row(header) is None
    row = parse_order_row(submit)
    assert row is not None and (row.ts_ns, row.event, row.symbol, row.quantity, row.limit_price) == (
        START,
        "submit",
        "SPY",
        10.0,
        "101.5",
    )
    fill = parse_order_row(partial)
    assert fill is not None and (fill.filled_quantity, fill.fill_price) == (4.0, 101.25)
    for bad in ("1,2,3", "x," * 14 + "x"):
        with pytest.raises(ValueError):
            parse_order_row(bad)


def test_rate_counts_only_submits_after_the_start_in_a_sliding_window(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    log = OrderSubmissionLog(path)
    for i in range(30):  # history: a busy morning before the monitor (re)started
        write(log, START - 30 * S + i * S // 10, OrderLogEvent.SUBMIT, order(f"old{i}", qty=i + 1))
    watcher = OrderLogWatcher(path, started_ns=START, window_s=10.0)
    watcher.poll()
    assert watcher.status(START).submits_in_window == 0
    write(log, START - S, OrderLogEvent.SUBMIT, order("late", 3))  # stamped before the start, read after: old
    for i in range(5):
        write(log, START + i * S, OrderLogEvent.SUBMIT, order(f"n{i}", qty=100 + i))
        write(log, START + i * S + 1, OrderLogEvent.ACK, order(f"n{i}", qty=100 + i))  # not a submission
    watcher.poll()
    assert watcher.status(START + 5 * S).submits_in_window == 5
    assert watcher.status(START + 12 * S).submits_in_window == 2  # rows at +3 s and +4 s are still in (now-10, now]
    assert watcher.status(START + 15 * S).submits_in_window == 0
    log.close()


def test_identical_orders_are_counted_per_identity(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    watcher = OrderLogWatcher(path, started_ns=START, window_s=60.0)
    with OrderSubmissionLog(path) as log:
        for i in range(4):
            write(log, START + i * S, OrderLogEvent.SUBMIT, order(f"same{i}", 5, "QQQ", limit=350.0))
            write(log, START + i * S, OrderLogEvent.SUBMIT, order(f"other{i}", 6 + i, "QQQ", limit=350.0))
    watcher.poll()
    status = watcher.status(START + 4 * S)
    assert (status.worst_duplicate_count, status.worst_duplicate) == (4, "sma:BUY:5:QQQ:LMT:350.0")
    assert watcher.status(START + 70 * S).worst_duplicate_count == 0  # out of the window


def test_fills_of_the_day_include_those_before_the_start_and_reset_at_midnight(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    log = OrderSubmissionLog(path)
    write(log, YESTERDAY, OrderLogEvent.FILL, order("y", 100), filled=100, price=50.0)  # not today
    write(log, START - 3600 * S, OrderLogEvent.SUBMIT, order("a", 10))
    write(log, START - 3500 * S, OrderLogEvent.PARTIAL, order("a", 10), filled=4, price=100.0)
    watcher = OrderLogWatcher(path, started_ns=START, window_s=60.0)
    write(log, START + S, OrderLogEvent.FILL, order("a", 10), filled=10, price=101.0)  # the 6 remaining shares
    write(log, START + 2 * S, OrderLogEvent.FILL, order("b", 3), filled=3, price=10.0)
    watcher.poll()
    status = watcher.status(START + 3 * S)
    assert status.fills_today == 3
    assert status.fill_notional_today_usd == pytest.approx(4 * 100.0 + 6 * 101.0 + 3 * 10.0)
    next_day = START + 24 * 3600 * S
    assert watcher.status(next_day).fills_today == 0
    log.close()


def test_torn_and_foreign_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    watcher = OrderLogWatcher(path, started_ns=START, window_s=60.0)
    with path.open("a") as f:
        f.write(f"2024-03-05T15:00:01Z,{START + S},submit,a,,sma,SP")  # the crash tore it...
        f.write("\n")  # ...and the engine's next start ended it
        f.write("not,a,row\n")
    with OrderSubmissionLog(path) as log:
        write(log, START + 2 * S, OrderLogEvent.SUBMIT, order("b"))
    watcher.poll()
    status = watcher.status(START + 3 * S)
    assert status.malformed_rows == 2 and status.submits_in_window == 1


def test_sliding_window_rejects_a_non_positive_window() -> None:
    with pytest.raises(ValueError):
        SlidingWindowCount(0)
