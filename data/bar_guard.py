"""The bad-bar guard: the one place that decides whether a daily bar may be traded on.

A bar that fails a rule is *quarantined* (kept with its reason, logged at WARNING), never silently fixed and
never passed on: a NaN or a high below the low reaching a strategy or the simulated executor produces
nonsense orders. Two forms share the same per-value rules (``_VALUE_RULES``, evaluated by
``value_reasons`` for arrays and ``value_reason`` for one bar):

- ``guard_frame`` screens a whole file or frame at once (vectorized), for loaders and the bar store;
- ``BarGuard.check`` screens bars one at a time as they arrive live, remembering the last accepted
  timestamp per symbol.

Rules are applied in the order of ``BadBarReason``; a bar gets the first reason that applies. Timestamp rules
(duplicate, out of order) only look at bars that passed every per-value rule, so a NaN bar never blocks a
good bar with the same date.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from core.errors import DataError
from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
QUARANTINE_COLUMNS: tuple[str, ...] = (*BAR_COLUMNS, "reason")


class BadBarReason(StrEnum):
    """Why a bar was quarantined, in the order the rules are checked."""

    PARSE_ERROR = "parse_error"  # the source row could not be read (set by loaders, not by the guard)
    NAN_VALUE = "nan_value"  # a price or the volume is NaN or infinite (or the date is missing)
    NON_POSITIVE_PRICE = "non_positive_price"
    HIGH_BELOW_LOW = "high_below_low"
    OPEN_OUTSIDE_RANGE = "open_outside_range"
    CLOSE_OUTSIDE_RANGE = "close_outside_range"
    NEGATIVE_VOLUME = "negative_volume"
    NOT_A_SESSION = "not_a_session"  # only checked when a calendar is given
    DUPLICATE_TIMESTAMP = "duplicate_timestamp"
    OUT_OF_ORDER_TIMESTAMP = "out_of_order_timestamp"


# Each predicate takes (open, high, low, close, volume) as floats or equal-length float arrays and returns a
# bool or bool array. numpy ufuncs keep them valid for both, so the frame and the streaming guard cannot drift.
_Predicate = Callable[..., "np.bool_ | np.ndarray"]
_VALUE_RULES: tuple[tuple[BadBarReason, _Predicate], ...] = (
    (
        BadBarReason.NAN_VALUE,
        lambda o, h, lo, c, v: ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c) & np.isfinite(v)),
    ),
    (
        BadBarReason.NON_POSITIVE_PRICE,
        lambda o, h, lo, c, v: np.less_equal(o, 0) | np.less_equal(h, 0) | np.less_equal(lo, 0) | np.less_equal(c, 0),
    ),
    (BadBarReason.HIGH_BELOW_LOW, lambda o, h, lo, c, v: np.less(h, lo)),
    (BadBarReason.OPEN_OUTSIDE_RANGE, lambda o, h, lo, c, v: np.less(o, lo) | np.greater(o, h)),
    (BadBarReason.CLOSE_OUTSIDE_RANGE, lambda o, h, lo, c, v: np.less(c, lo) | np.greater(c, h)),
    (BadBarReason.NEGATIVE_VOLUME, lambda o, h, lo, c, v: np.less(v, 0)),
)


def value_reason(open_: float, high: float, low: float, close: float, volume: float) -> BadBarReason | None:
    """The first per-value rule one bar breaks, or None if its values are usable."""
    for reason, broken in _VALUE_RULES:
        if broken(open_, high, low, close, volume):
            return reason
    return None


def value_reasons(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray
) -> np.ndarray:
    """Vectorized ``value_reason``: an object array holding a ``BadBarReason`` or None per bar."""
    reasons = np.full(len(close), None, dtype=object)
    with np.errstate(invalid="ignore"):
        for reason, broken in _VALUE_RULES:
            hit = np.asarray(broken(open_, high, low, close, volume), dtype=bool) & (reasons == None)  # noqa: E711
            reasons[hit] = reason
    return reasons


@dataclass(frozen=True, slots=True)
class GuardResult:
    """Outcome of screening one symbol's bars.

    ``clean`` is a bar frame (tz-naive "date" index, ascending and unique, float64 open/high/low/close/volume);
    ``quarantined`` holds the rejected rows in input order with the same columns plus ``reason`` (a
    ``BadBarReason`` value as str); its "date" index may hold NaT for rows whose date could not be read.
    """

    clean: pd.DataFrame
    quarantined: pd.DataFrame
    symbol: str = ""


def empty_bar_frame() -> pd.DataFrame:
    """A bar frame with no rows (the right index and dtypes, so concatenation keeps them)."""
    index = pd.DatetimeIndex(np.array([], dtype="datetime64[ns]"), name="date")
    return pd.DataFrame({c: np.array([], dtype=np.float64) for c in BAR_COLUMNS}, index=index)


def guard_frame(df: pd.DataFrame, symbol: str, calendar: TradingCalendar | None = None) -> GuardResult:
    """Split ``df`` (rows in file order, dates in the index) into clean bars and quarantined rows.

    ``df`` needs a tz-naive midnight DatetimeIndex and the five bar columns (extra columns are ignored).
    Raises ``DataError`` if the frame itself is unusable (missing columns, wrong index); bad rows never raise.
    """
    return guard_rows(df, symbol, calendar)


def guard_rows(
    df: pd.DataFrame,
    symbol: str,
    calendar: TradingCalendar | None = None,
    preset_reasons: np.ndarray | None = None,
) -> GuardResult:
    """``guard_frame`` for loaders that already rejected some rows (e.g. ``PARSE_ERROR``).

    ``preset_reasons`` (object array, None for rows the loader could read) marks rows that are quarantined
    with that reason before any rule runs; they never count as accepted for the timestamp rules.
    """
    dates = _checked_dates(df, symbol)
    values = {c: df[c].to_numpy(dtype=np.float64, copy=False) for c in BAR_COLUMNS}
    reasons = value_reasons(values["open"], values["high"], values["low"], values["close"], values["volume"])
    reasons[np.isnat(dates)] = BadBarReason.NAN_VALUE
    if preset_reasons is not None:
        if len(preset_reasons) != len(df):
            raise ValueError(f"preset_reasons has {len(preset_reasons)} entries for {len(df)} rows")
        has_preset = preset_reasons != None  # noqa: E711
        reasons[has_preset] = preset_reasons[has_preset]
    if calendar is not None:
        not_session = (reasons == None) & ~calendar.session_mask(dates)  # noqa: E711
        reasons[not_session] = BadBarReason.NOT_A_SESSION
    _apply_timestamp_rules(dates.view(np.int64), reasons)
    return _split(df, dates, values, reasons, symbol)


def _checked_dates(df: pd.DataFrame, symbol: str) -> np.ndarray:
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"bars for symbol={symbol}: missing columns {missing} (found {list(df.columns)})")
    index = df.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(f"bars for symbol={symbol}: index must be a DatetimeIndex of session dates (got {type(index)})")
    if index.tz is not None:
        raise DataError(f"bars for symbol={symbol}: index must be tz-naive session dates (got tz={index.tz})")
    dates = index.to_numpy(dtype="datetime64[ns]")
    valid = ~np.isnat(dates)
    if (dates[valid].view(np.int64) % (86_400 * 10**9)).any():
        raise DataError(f"bars for symbol={symbol}: index has times of day; daily bars need midnight session labels")
    return dates


def _apply_timestamp_rules(dates_ns: np.ndarray, reasons: np.ndarray) -> None:
    """Mark duplicates and out-of-order rows among the rows with no reason yet, in file order.

    The last accepted date before row i is the running max of the candidate dates before i: a candidate that
    is rejected is never above that max, so it cannot move it. A row equal to any accepted date is a
    duplicate (the first one wins); a row below the last accepted date and equal to none is out of order.
    """
    candidate = reasons == None  # noqa: E711
    if not candidate.any():
        return
    floor = np.iinfo(np.int64).min
    running = np.maximum.accumulate(np.where(candidate, dates_ns, floor))
    previous_max = np.concatenate(([floor], running[:-1]))
    accepted = candidate & (dates_ns > previous_max)
    late = candidate & ~accepted
    if not late.any():
        return
    duplicate = late & np.isin(dates_ns, dates_ns[accepted])
    reasons[duplicate] = BadBarReason.DUPLICATE_TIMESTAMP
    reasons[late & ~duplicate] = BadBarReason.OUT_OF_ORDER_TIMESTAMP


def _split(
    df: pd.DataFrame, dates: np.ndarray, values: dict[str, np.ndarray], reasons: np.ndarray, symbol: str
) -> GuardResult:
    good = reasons == None  # noqa: E711
    clean = pd.DataFrame(
        {c: values[c][good] for c in BAR_COLUMNS},
        index=pd.DatetimeIndex(dates[good], name="date"),
    )
    bad = ~good
    quarantined = pd.DataFrame(
        {**{c: values[c][bad] for c in BAR_COLUMNS}, "reason": np.array([str(r) for r in reasons[bad]], dtype=object)},
        index=pd.DatetimeIndex(dates[bad], name="date"),
    )
    for date, reason in zip(quarantined.index, quarantined["reason"], strict=True):
        log.warning("event=bar_quarantined symbol=%s date=%s reason=%s", symbol, _fmt_date(date), reason)
    return GuardResult(clean=clean, quarantined=quarantined, symbol=symbol)


def _fmt_date(date: pd.Timestamp) -> str:
    return "NaT" if pd.isna(date) else str(date.date())


class BarGuard:
    """Streaming form of the guard for live bars, one call per bar as it arrives.

    Remembers the last accepted ``ts_ns`` per symbol: a bar at that same time is a duplicate, an earlier one
    is out of order. Unlike ``guard_frame`` it does not keep every accepted date, so a replayed bar older than
    the last accepted one is reported as out of order. Not thread-safe: call it from the dispatcher thread.
    With a calendar, ``ts_ns`` (UTC epoch ns) must fall on a session date in the exchange's time zone.
    """

    def __init__(self, calendar: TradingCalendar | None = None) -> None:
        self._calendar = calendar
        self._last_accepted_ns: dict[str, int] = {}
        self._is_session_by_day: dict[dt.date, bool] = {}  # memo: a live feed sees few distinct dates

    def last_accepted_ns(self, symbol: str) -> int | None:
        return self._last_accepted_ns.get(symbol)

    def check(
        self, symbol: str, ts_ns: int, open: float, high: float, low: float, close: float, volume: float
    ) -> BadBarReason | None:
        """Return why the bar must be quarantined, or None (and remember ``ts_ns``) if it is accepted."""
        reason = value_reason(open, high, low, close, volume)
        if reason is None and self._calendar is not None and not self._is_session(self._calendar, ts_ns):
            reason = BadBarReason.NOT_A_SESSION
        if reason is None:
            last_ns = self._last_accepted_ns.get(symbol)
            if last_ns is not None and ts_ns == last_ns:
                reason = BadBarReason.DUPLICATE_TIMESTAMP
            elif last_ns is not None and ts_ns < last_ns:
                reason = BadBarReason.OUT_OF_ORDER_TIMESTAMP
        if reason is None:
            self._last_accepted_ns[symbol] = ts_ns
            return None
        log.warning(
            "event=bar_quarantined symbol=%s ts_ns=%d date=%s reason=%s",
            symbol,
            ts_ns,
            self._local_date(ts_ns),
            reason,
        )
        return reason

    def _local_date(self, ts_ns: int) -> dt.date:
        """The exchange-local date of ``ts_ns`` (the UTC date when there is no calendar)."""
        tz = dt.UTC if self._calendar is None else self._calendar.tz
        return dt.datetime.fromtimestamp(ts_ns // 1_000_000_000, tz).date()

    def _is_session(self, calendar: TradingCalendar, ts_ns: int) -> bool:
        day = self._local_date(ts_ns)
        known = self._is_session_by_day.get(day)
        if known is None:
            known = bool(calendar.session_mask(pd.DatetimeIndex([day]))[0])
            self._is_session_by_day[day] = known
        return known
