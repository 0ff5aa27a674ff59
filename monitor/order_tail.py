"""The engine's order log (``logs/order_submissions.csv``) as the monitor reads it.

Three facts come out of it:

- the **order rate**: ``submit`` rows in a sliding window of ``operational_risk.order_rate_window_s`` (a runaway
  loop shows up here first: the engine writes and flushes the row *before* sending the order);
- **duplicate orders**: the same order (strategy, symbol, side, quantity, type, limit) submitted again and again
  inside that window, the signature of a retry loop or a strategy stuck on one signal;
- the **fills of the day**: executions and their notional since New York midnight (``fill``/``partial`` rows;
  ``filled_quantity`` is cumulative per order, so an execution's size is the step from the order's previous row).

Restart rule (no false kill from history): rows stamped before the monitor started never count for the rate or
duplicates, and the file is followed from its end. Fills of today written before the start *do* count towards the
daily budget (they happened today); ``scan_back`` reads them once at start.

The format is the contract documented at the top of ``execution/order_log.py`` (15 columns, header once, one row
per physical line, a torn last line possible). It is parsed here on purpose: the monitor imports no engine runtime
module. Rows with the wrong field count or unparsable numbers are skipped and counted (``malformed_rows``).
"""

from __future__ import annotations

import csv
import logging
from collections import deque
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import NS_PER_SECOND
from monitor.tail import LineTail, scan_back
from monitor.trading_day import NEW_YORK, day_start_ns, local_date

log = logging.getLogger(__name__)

ORDER_LOG_COLUMNS: tuple[str, ...] = (
    "ts_utc",
    "ts_ns",
    "event",
    "client_order_id",
    "ib_order_id",
    "strategy_id",
    "symbol",
    "side",
    "quantity",
    "order_type",
    "limit_price",
    "filled_quantity",
    "fill_price",
    "status",
    "reason",
)
FILL_EVENTS = frozenset({"partial", "fill"})
SCAN_BACK_MAX_BYTES = 64 * 1024 * 1024  # today's rows at start-up; beyond this the day's budget is undercounted


@dataclass(frozen=True, slots=True)
class OrderRow:
    """One parsed row; quantities in shares, prices in USD, ``ts_ns`` UTC epoch ns (the engine's wall clock)."""

    ts_ns: int
    event: str
    client_order_id: str
    strategy_id: str
    symbol: str
    side: str
    quantity: float
    order_type: str
    limit_price: str
    filled_quantity: float
    fill_price: float | None

    @property
    def identity(self) -> str:
        """What makes two submissions "the same order" (the client order id differs on every retry)."""
        return f"{self.strategy_id}:{self.side}:{self.quantity:g}:{self.symbol}:{self.order_type}:{self.limit_price}"


def parse_order_row(line: str) -> OrderRow | None:
    """The row on ``line``; None for the header; ``ValueError`` saying what is wrong otherwise."""
    fields = next(csv.reader([line]), [])
    if tuple(fields) == ORDER_LOG_COLUMNS:
        return None
    if len(fields) != len(ORDER_LOG_COLUMNS):
        raise ValueError(f"expected {len(ORDER_LOG_COLUMNS)} fields, got {len(fields)} (torn or foreign row)")
    row = dict(zip(ORDER_LOG_COLUMNS, fields, strict=True))
    try:
        return OrderRow(
            ts_ns=int(row["ts_ns"]),
            event=row["event"],
            client_order_id=row["client_order_id"],
            strategy_id=row["strategy_id"],
            symbol=row["symbol"],
            side=row["side"],
            quantity=float(row["quantity"] or 0.0),
            order_type=row["order_type"],
            limit_price=row["limit_price"],
            filled_quantity=float(row["filled_quantity"] or 0.0),
            fill_price=float(row["fill_price"]) if row["fill_price"] else None,
        )
    except ValueError as exc:
        raise ValueError(f"unparsable number in order log row ({exc})") from exc


def row_ts_ns(line: str) -> int | None:
    """``ts_ns`` of a row without parsing all of it (None for the header or a broken line)."""
    parts = line.split(",", 2)
    try:
        return int(parts[1]) if len(parts) > 2 else None
    except ValueError:
        return None


class SlidingWindowCount:
    """Timestamps in the last ``window_s`` seconds (``(now - window, now]``); amortized O(1) per event."""

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0 (got {window_s})")
        self.window_ns = int(window_s * NS_PER_SECOND)
        self._times: deque[int] = deque()

    def add(self, ts_ns: int) -> None:
        self._times.append(ts_ns)

    def count(self, now_ns: int) -> int:
        cutoff = now_ns - self.window_ns
        while self._times and self._times[0] <= cutoff:
            self._times.popleft()
        return len(self._times)


class DuplicateOrders:
    """Per order identity, how many submissions fell in the window; reports the most repeated one."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._by_identity: dict[str, SlidingWindowCount] = {}

    def add(self, row: OrderRow) -> None:
        counter = self._by_identity.get(row.identity)
        if counter is None:
            counter = self._by_identity[row.identity] = SlidingWindowCount(self.window_s)
        counter.add(row.ts_ns)

    def worst(self, now_ns: int) -> tuple[int, str]:
        """(count, identity) of the most repeated order in the window; (0, "") when there is none."""
        best = (0, "")
        for identity, counter in list(self._by_identity.items()):
            count = counter.count(now_ns)
            if count == 0:
                del self._by_identity[identity]
            elif count > best[0]:
                best = (count, identity)
        return best


class DailyFills:
    """Executions and their notional (USD) on the current New York date; restarts at each new date."""

    def __init__(self, tz: ZoneInfo = NEW_YORK) -> None:
        self.tz = tz
        self.day: date | None = None
        self.count = 0
        self.notional_usd = 0.0
        self._cumulative: dict[str, float] = {}

    def roll(self, now_ns: int) -> None:
        today = local_date(now_ns, self.tz)
        if self.day is None or today > self.day:
            self.day, self.count, self.notional_usd, self._cumulative = today, 0, 0.0, {}

    def add(self, row: OrderRow) -> None:
        """Count ``row`` if it is an execution of today (or later: the day rolls forward)."""
        if row.event not in FILL_EVENTS:
            if row.event == "submit":
                self._cumulative.setdefault(row.client_order_id, 0.0)
            return
        self.roll(row.ts_ns)
        if local_date(row.ts_ns, self.tz) != self.day:
            return  # a replayed execution of an earlier day
        previous = self._cumulative.get(row.client_order_id, 0.0)
        shares = max(0.0, row.filled_quantity - previous)
        self._cumulative[row.client_order_id] = max(previous, row.filled_quantity)
        self.count += 1
        self.notional_usd += shares * (row.fill_price or 0.0)


@dataclass(frozen=True, slots=True)
class OrderLogStatus:
    """What the checks need from the order log at one instant."""

    submits_in_window: int
    worst_duplicate_count: int
    worst_duplicate: str
    fills_today: int
    fill_notional_today_usd: float
    malformed_rows: int
    following: bool
    last_row_ts_ns: int | None


class OrderLogWatcher:
    """Tails the order log and keeps the rate, duplicate and daily-fill counters (monitor loop thread only)."""

    def __init__(self, path: Path | str, *, started_ns: int, window_s: float, tz: ZoneInfo = NEW_YORK) -> None:
        self.path = Path(path)
        self.started_ns = started_ns
        self._tail = LineTail(self.path, start_at_end=True)
        self._rate = SlidingWindowCount(window_s)
        self._duplicates = DuplicateOrders(window_s)
        self._fills = DailyFills(tz)
        self._fills.roll(started_ns)
        self.malformed_rows = 0
        self.last_row_ts_ns: int | None = None
        midnight = day_start_ns(started_ns, tz)
        if self._tail.following and self._tail.start_offset > 0:
            earlier = scan_back(
                self.path,
                self._tail.start_offset,
                lambda line: (ts := row_ts_ns(line)) is not None and ts < midnight,
                SCAN_BACK_MAX_BYTES,
            )
            for line in earlier:
                self._take(line, counting=False)
            log.info(
                "event=order_log_start path=%s offset=%d rows_today_before_start=%d fills_today=%d "
                "fill_notional_today_usd=%.2f",
                self.path,
                self._tail.start_offset,
                len(earlier),
                self._fills.count,
                self._fills.notional_usd,
            )

    def poll(self) -> int:
        """Read the rows appended since the last call; returns how many lines were read."""
        lines = self._tail.read_lines()
        for line in lines:
            self._take(line, counting=True)
        return len(lines)

    def status(self, now_ns: int) -> OrderLogStatus:
        self._fills.roll(now_ns)
        dup_count, dup_identity = self._duplicates.worst(now_ns)
        return OrderLogStatus(
            submits_in_window=self._rate.count(now_ns),
            worst_duplicate_count=dup_count,
            worst_duplicate=dup_identity,
            fills_today=self._fills.count,
            fill_notional_today_usd=round(self._fills.notional_usd, 2),
            malformed_rows=self.malformed_rows,
            following=self._tail.following,
            last_row_ts_ns=self.last_row_ts_ns,
        )

    def close(self) -> None:
        self._tail.close()

    def _take(self, line: str, *, counting: bool) -> None:
        if not line.strip():
            return
        try:
            row = parse_order_row(line)
        except ValueError as exc:
            self.malformed_rows += 1
            log.warning(
                "event=order_log_row_skipped path=%s reason=%r malformed_rows=%d line=%r",
                self.path,
                str(exc),
                self.malformed_rows,
                line[:200],
            )
            return
        if row is None:
            return
        self.last_row_ts_ns = row.ts_ns
        self._fills.add(row)
        if counting and row.event == "submit" and row.ts_ns >= self.started_ns:
            self._rate.add(row.ts_ns)
            self._duplicates.add(row)
