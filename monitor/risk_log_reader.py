"""The engine's risk log (``logs/risk_log.csv``) as the monitor reads it: the latest row and the first of the day.

The engine appends one row every ``operational_risk.risk_log_interval_s`` with its own view of equity, high-water
mark, drawdown and fills of the day (format: ``portfolio/live_manager.py``'s module docstring; parsed here because
the monitor imports no engine runtime module). The monitor uses it for the engine-side drawdown and daily loss, and
judges the file itself: a risk log that stops growing (the engine's timers are dead or its disk is full) or that
cannot be read is an alarm, because the engine's numbers are then unknown. The broker-side checks (``broker.py``)
do not depend on it.

At start the rows of the current New York date written before the monitor started are read once (``scan_back``),
so the first equity of the day survives a monitor restart; after that the file is tailed.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from core.clock import NS_PER_SECOND
from monitor.tail import LineTail, scan_back
from monitor.trading_day import NEW_YORK, day_start_ns, local_date

log = logging.getLogger(__name__)

RISK_LOG_COLUMNS_BEFORE_VETO: tuple[str, ...] = (
    "ts_utc",
    "ts_ns",
    "equity",
    "peak_equity",
    "drawdown_pct",
    "gross_exposure",
    "net_exposure",
    "positions",
    "open_orders",
    "fills_today",
    "trading_state",
)
# the signal veto's columns come last; rows of an engine from before them (the monitor may still be reading its
# file) have only the columns above and are read the same way
RISK_LOG_COLUMNS: tuple[str, ...] = (*RISK_LOG_COLUMNS_BEFORE_VETO, "vetoed", "vetoed_missing", "veto_passed",
                                     "last_veto")  # fmt: skip
SCAN_BACK_MAX_BYTES = 16 * 1024 * 1024
UNREADABLE_AFTER_BAD_ROWS = 3  # consecutive unusable rows before the file counts as unreadable


@dataclass(frozen=True, slots=True)
class RiskRow:
    """One row; an unknown number (an unpriced position) is None."""

    ts_ns: int
    equity: float | None
    peak_equity: float | None
    drawdown_pct: float | None
    fills_today: int | None
    trading_state: str


def _number(text: str) -> float | None:
    if not text:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_risk_row(line: str) -> RiskRow | None:
    """The row on ``line``; None for the header; ``ValueError`` saying what is wrong otherwise."""
    fields = next(csv.reader([line]), [])
    if tuple(fields) in (RISK_LOG_COLUMNS, RISK_LOG_COLUMNS_BEFORE_VETO):
        return None
    columns = RISK_LOG_COLUMNS if len(fields) == len(RISK_LOG_COLUMNS) else RISK_LOG_COLUMNS_BEFORE_VETO
    if len(fields) != len(columns):
        if fields and fields[0] == "ts_utc":
            raise ValueError(f"header {fields} is not the risk log format {list(RISK_LOG_COLUMNS)}")
        raise ValueError(f"expected {len(RISK_LOG_COLUMNS)} fields, got {len(fields)} (torn or foreign row)")
    row = dict(zip(columns, fields, strict=True))
    try:
        fills = _number(row["fills_today"])
        return RiskRow(
            ts_ns=int(row["ts_ns"]),
            equity=_number(row["equity"]),
            peak_equity=_number(row["peak_equity"]),
            drawdown_pct=_number(row["drawdown_pct"]),
            fills_today=None if fills is None else int(fills),
            trading_state=row["trading_state"],
        )
    except ValueError as exc:
        raise ValueError(f"unparsable number in risk log row ({exc})") from exc


@dataclass(frozen=True, slots=True)
class RiskLogStatus:
    """The risk log at one instant. ``state``: ok, missing, stale, unreadable, or starting (inside the grace)."""

    state: str
    latest: RiskRow | None
    age_s: float | None
    day_start_equity: float | None
    detail: str


class RiskLogReader:
    """Tails the risk log; keeps the latest row and the first equity of the current day (monitor loop only)."""

    def __init__(self, path: Path | str, *, started_ns: int, stale_after_s: float, tz: ZoneInfo = NEW_YORK) -> None:
        self.path = Path(path)
        self.started_ns = started_ns
        self.stale_after_s = stale_after_s
        self.tz = tz
        self.latest: RiskRow | None = None
        self.day_start: RiskRow | None = None
        self.bad_rows = 0
        self._bad_in_a_row = 0
        self._last_problem = ""
        self._tail = LineTail(self.path, start_at_end=True)
        if self._tail.following and self._tail.start_offset > 0:
            midnight = day_start_ns(started_ns, tz)
            earlier = scan_back(
                self.path, self._tail.start_offset, lambda line: self._older_than(line, midnight), SCAN_BACK_MAX_BYTES
            )
            for line in earlier:
                self._take(line)

    def _older_than(self, line: str, midnight_ns: int) -> bool:
        """Boundary of the start-up scan; the newest row before today still becomes ``latest`` (for its age)."""
        try:
            row = parse_risk_row(line)
        except ValueError:
            return False
        if row is None or row.ts_ns >= midnight_ns:
            return False
        if self.latest is None:
            self.latest = row
        return True

    def poll(self) -> int:
        lines = self._tail.read_lines()
        for line in lines:
            self._take(line)
        return len(lines)

    def status(self, now_ns: int) -> RiskLogStatus:
        in_grace = (now_ns - self.started_ns) / NS_PER_SECOND <= self.stale_after_s
        day_equity = self.day_start.equity if self.day_start is not None else None
        if self._bad_in_a_row >= UNREADABLE_AFTER_BAD_ROWS or (self._tail.error and self._tail.following):
            detail = self._last_problem or str(self._tail.error)
            return RiskLogStatus("unreadable", self.latest, self._age_s(now_ns), day_equity, detail)
        if self.latest is None:
            state = "starting" if in_grace else "missing"
            detail = self._tail.error or f"no row in {self.path} yet"
            return RiskLogStatus(state, None, None, day_equity, detail)
        age_s = self._age_s(now_ns)
        if age_s is not None and age_s > self.stale_after_s:
            state = "starting" if in_grace else "stale"
            return RiskLogStatus(
                state, self.latest, age_s, day_equity, f"last row {age_s:.1f} s old, allowed {self.stale_after_s:g} s"
            )
        return RiskLogStatus("ok", self.latest, age_s, day_equity, "")

    def close(self) -> None:
        self._tail.close()

    def _age_s(self, now_ns: int) -> float | None:
        return None if self.latest is None else (now_ns - self.latest.ts_ns) / NS_PER_SECOND

    def _take(self, line: str) -> None:
        if not line.strip():
            return
        try:
            row = parse_risk_row(line)
        except ValueError as exc:
            self.bad_rows += 1
            self._bad_in_a_row += 1
            self._last_problem = f"{self.path}: {exc}"
            log.warning("event=risk_log_row_skipped path=%s reason=%r bad_rows=%d", self.path, str(exc), self.bad_rows)
            return
        if row is None:
            return
        self._bad_in_a_row = 0
        if self.latest is None or row.ts_ns >= self.latest.ts_ns:
            self.latest = row
        if row.equity is not None and (
            self.day_start is None or local_date(row.ts_ns, self.tz) > local_date(self.day_start.ts_ns, self.tz)
        ):
            self.day_start = row
