"""The order submission log the risk monitor tails: header once, one flushed row per event, CSV quoting."""

from __future__ import annotations

import csv
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StateCorruptError
from core.events import OrderFailedEvent, OrderStatus, OrderType, Side
from execution.order_log import COLUMNS, OrderSubmissionLog, format_ts_utc
from testkit.fills import make_fill
from testkit.orders import make_order

TS = 1_704_205_865_123_456_789  # 2024-01-02T14:31:05.123456789Z


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_submit_row_is_readable_by_another_reader_before_close(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "order_submissions.csv"
    log = OrderSubmissionLog(path)
    order = replace(make_order(symbol="AAPL", order_type=OrderType.LMT, limit_price=185.25, quantity=30),
                    reason="momentum entry")
    log.submit(order, 11, TS)
    [row] = _rows(path)  # flushed: visible without closing the log
    assert row == {
        "ts_utc": "2024-01-02T14:31:05.123456Z", "ts_ns": str(TS), "event": "submit",
        "client_order_id": order.client_order_id, "ib_order_id": "11", "strategy_id": "test", "symbol": "AAPL",
        "side": "BUY", "quantity": "30", "order_type": "LMT", "limit_price": "185.25", "filled_quantity": "0",
        "fill_price": "", "status": "PENDING_SUBMIT", "reason": "momentum entry",
    }
    log.close()


def test_full_lifecycle_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    order = make_order(side=Side.SELL, quantity=100)
    with OrderSubmissionLog(path) as log:
        log.submit(order, None, TS)
        log.ack(order, 5, TS + 1)
        log.fill(order, replace(make_fill(quantity=40, price=10.5), broker_order_id=5), 40, TS + 2)
        log.fill(order, replace(make_fill(quantity=60, price=10.25), broker_order_id=5), 100, TS + 3)
    rows = _rows(path)
    assert [r["event"] for r in rows] == ["submit", "ack", "partial", "fill"]
    assert [r["status"] for r in rows] == ["PENDING_SUBMIT", "SUBMITTED", "PARTIALLY_FILLED", "FILLED"]
    assert [r["filled_quantity"] for r in rows] == ["0", "0", "40", "100"]
    assert [r["fill_price"] for r in rows] == ["", "", "10.5", "10.25"]
    assert [r["ib_order_id"] for r in rows] == ["", "5", "5", "5"]
    assert rows[0]["limit_price"] == "" and rows[0]["side"] == "SELL"


@pytest.mark.parametrize(
    ("status", "event"),
    [(OrderStatus.CANCELLED, "cancel"), (OrderStatus.REJECTED, "reject"), (OrderStatus.EXPIRED, "expire")],
)
def test_failures_with_code_and_commas_in_the_reason(tmp_path: Path, status: OrderStatus, event: str) -> None:
    path = tmp_path / "o.csv"
    order = make_order()
    failed = OrderFailedEvent(ts_event_ns=TS, ts_init_ns=TS, client_order_id=order.client_order_id,
                              strategy_id="test", symbol=order.symbol, status=status,
                              reason='Order rejected - reason: margin, "equity" low\nsee TWS', code=201,
                              filled_quantity=10)
    with OrderSubmissionLog(path) as log:
        log.failed(order, failed, 9, TS)
    text = path.read_text()
    assert len(text.splitlines()) == 2  # one physical line per row, even with a newline in the reason
    [row] = _rows(path)
    assert row["event"] == event and row["status"] == status.value and row["filled_quantity"] == "10"
    assert row["reason"] == '[201] Order rejected - reason: margin, "equity" low see TWS'


def test_failed_with_a_non_failure_status_is_refused(tmp_path: Path) -> None:
    order = make_order()
    failed = OrderFailedEvent(ts_event_ns=0, ts_init_ns=0, client_order_id=order.client_order_id,
                              strategy_id="t", symbol="AAA", status=OrderStatus.FILLED, reason="")
    with OrderSubmissionLog(tmp_path / "o.csv") as log, pytest.raises(ValueError, match="CANCELLED"):
        log.failed(order, failed, 1, 0)


def test_reopen_appends_without_a_second_header(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    with OrderSubmissionLog(path) as log:
        log.submit(make_order(), 1, TS)
    with OrderSubmissionLog(path) as log:
        log.submit(make_order(), 2, TS)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert sum(line.startswith("ts_utc") for line in lines) == 1 and len(lines) == 3


def test_empty_existing_file_gets_a_header(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.touch()
    with OrderSubmissionLog(path) as log:
        log.submit(make_order(), 1, TS)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)


def test_torn_last_row_is_ended_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    with OrderSubmissionLog(path) as log:
        log.submit(make_order(), 1, TS)
    with path.open("a") as f:
        f.write("2024-01-02T14:31:05.123456Z,17042")
    with OrderSubmissionLog(path) as log:
        log.submit(make_order(), 2, TS)
    lines = path.read_text().splitlines()
    assert lines[2] == "2024-01-02T14:31:05.123456Z,17042"
    assert lines[3].split(",")[4] == "2"


def test_foreign_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.csv"
    path.write_text("time,order\n1,2\n")
    with pytest.raises(StateCorruptError, match="header"):
        OrderSubmissionLog(path)


@pytest.mark.parametrize(
    ("ts_ns", "text"),
    [(0, "1970-01-01T00:00:00.000000Z"), (TS, "2024-01-02T14:31:05.123456Z"),
     (1_719_930_665_000_000_999, "2024-07-02T14:31:05.000000Z")],
)
def test_format_ts_utc(ts_ns: int, text: str) -> None:
    assert format_ts_utc(ts_ns) == text


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40),
       st.floats(0.01, 1e6, allow_nan=False))
def test_any_reason_and_price_round_trip(reason: str, price: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "o.csv"
        order = replace(make_order(order_type=OrderType.LMT, limit_price=price), reason=reason)
        with OrderSubmissionLog(path) as log:
            log.submit(order, 3, TS)
        [row] = _rows(path)
        assert row["reason"] == " ".join(reason.splitlines())
        assert float(row["limit_price"]) == price
        assert len(path.read_text(encoding="utf-8").split("\n")) == 3  # header, row, final empty


def _plain_ts_utc(ts_ns: int) -> str:
    seconds, rem_ns = divmod(ts_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rem_ns // 1_000)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 4_000_000_000 * 10**9), min_size=1, max_size=5), st.integers(0, 3 * 10**9))
def test_format_ts_utc_caches_the_second_without_changing_the_text(starts: list[int], step: int) -> None:
    """The per-second cache: bursts inside one second, then jumps back and forth, read as the plain formatting."""
    for start in starts:
        for ts_ns in (start, start + step, start + 999_999_999, start - step if start >= step else start):
            assert format_ts_utc(ts_ns) == _plain_ts_utc(ts_ns)
