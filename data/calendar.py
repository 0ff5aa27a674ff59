"""The exchange calendar: which dates are sessions, and when each session opens and closes.

Every session, holiday and early close comes from ``exchange_calendars`` (XNYS by default), never from
literals in our code, so an unscheduled closure (2001-09-11, Hurricane Sandy, a national day of mourning)
is handled the same way as Thanksgiving.

Dates in and out are *session labels*: tz-naive midnight ``Timestamp``s. Inputs may be strings,
``datetime.date``, ``np.datetime64`` or ``Timestamp``; a tz-aware timestamp is converted to the exchange's
local date first, and a time of day on a tz-naive input is ignored. Times out are UTC epoch nanoseconds
(``int`` / ``np.int64``), the unit every event in the system carries.

The underlying ``ExchangeCalendar`` takes ~0.3 s to build, so it is cached per ``(name, start, end)``;
building many ``TradingCalendar`` objects is cheap.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

import exchange_calendars as xcals
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

NS_PER_MINUTE = 60_000_000_000
NS_PER_DAY = 86_400_000_000_000

DateLike = str | dt.date | dt.datetime | np.datetime64 | pd.Timestamp


def floor_to_day_ns(epoch_ns: np.ndarray) -> np.ndarray:
    """Midnight of each instant (epoch ns of naive wall times), as ``DatetimeIndex.normalize()`` computes it but
    without its frequency inference (~0.2-0.3 ms on two years of sessions); numpy's % floors, so times before 1970
    work too."""
    return epoch_ns - epoch_ns % NS_PER_DAY


@dataclass(frozen=True, slots=True)
class _CalendarArrays:
    """Session labels and their open/close times as int64 arrays, for O(log n) vectorized lookups."""

    name: str
    tz: dt.tzinfo
    sessions_ns: np.ndarray  # tz-naive midnight labels, int64, ascending
    opens_ns: np.ndarray  # UTC epoch ns
    closes_ns: np.ndarray  # UTC epoch ns
    early_close_ns: np.ndarray  # session labels with an early close, int64, ascending


@functools.lru_cache(maxsize=16)
def _load_calendar(name: str, start: str, end: str | None) -> _CalendarArrays:
    """Build (once per arguments) the exchange_calendars calendar and extract the arrays we query."""
    cal = xcals.get_calendar(name, start=start, end=end)
    arrays = _CalendarArrays(
        name=name,
        tz=cal.tz,
        sessions_ns=np.ascontiguousarray(cal.sessions.as_unit("ns").asi8, dtype=np.int64),
        opens_ns=np.ascontiguousarray(pd.DatetimeIndex(cal.opens).as_unit("ns").asi8, dtype=np.int64),
        closes_ns=np.ascontiguousarray(pd.DatetimeIndex(cal.closes).as_unit("ns").asi8, dtype=np.int64),
        early_close_ns=np.sort(np.asarray(cal.early_closes.as_unit("ns").asi8, dtype=np.int64)),
    )
    for arr in (arrays.sessions_ns, arrays.opens_ns, arrays.closes_ns, arrays.early_close_ns):
        arr.setflags(write=False)
    log.debug(
        "event=calendar_loaded name=%s first=%s last=%s sessions=%d",
        name,
        cal.first_session.date(),
        cal.last_session.date(),
        len(arrays.sessions_ns),
    )
    return arrays


class TradingCalendar:
    """Sessions and session times of one exchange (XNYS by default), from ``exchange_calendars``.

    ``start`` defaults to 1990 because exchange_calendars otherwise covers only the last 20 years and our
    reference data starts in 1995. ``end=None`` takes exchange_calendars' default (about a year ahead).
    Asking about a date outside ``[first_session, last_session]`` raises ``ValueError`` rather than
    guessing; ``session_mask`` is the one query that answers False there (see its docstring).
    """

    def __init__(self, name: str = "XNYS", start: str = "1990-01-01", end: str | None = None) -> None:
        self._arrays = _load_calendar(name, start, end)
        self.name = name

    def __repr__(self) -> str:
        return (
            f"TradingCalendar(name={self.name!r}, first={self.first_session.date()}, last={self.last_session.date()})"
        )

    @property
    def first_session(self) -> pd.Timestamp:
        return pd.Timestamp(self._arrays.sessions_ns[0])

    @property
    def last_session(self) -> pd.Timestamp:
        return pd.Timestamp(self._arrays.sessions_ns[-1])

    @property
    def tz(self) -> dt.tzinfo:
        """The exchange's local time zone (session labels are local dates)."""
        return self._arrays.tz

    # ----------------------------------------------------------------- sessions
    def sessions(self, start: DateLike, end: DateLike) -> pd.DatetimeIndex:
        """All sessions with ``start <= label <= end`` (tz-naive labels named "date"); bounds need not be sessions."""
        start_ns = self._day_ns(start)
        end_ns = self._day_ns(end)
        self._require_in_range(start_ns, end_ns)
        s = self._arrays.sessions_ns
        lo = np.searchsorted(s, start_ns, side="left")
        hi = np.searchsorted(s, end_ns, side="right")
        return pd.DatetimeIndex(s[lo:hi].astype("datetime64[ns]"), name="date")

    def is_session(self, date: DateLike) -> bool:
        """True if the exchange holds a regular or early-close session on this date."""
        day_ns = self._day_ns(date)
        self._require_in_range(day_ns)
        return bool(self._index_of(day_ns) >= 0)

    def session_mask(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Vectorized ``is_session`` (bool array); dates the calendar does not cover are False.

        Unlike ``is_session`` this does not raise outside the calendar's range, because it is used to screen
        untrusted data: a typo such as 1900-01-01 must be quarantined, not crash the load.
        """
        days = self._days_ns(dates)
        s = self._arrays.sessions_ns
        pos = np.searchsorted(s, days, side="left")
        clipped = np.minimum(pos, len(s) - 1)
        return (pos < len(s)) & (s[clipped] == days)

    def next_session(self, date: DateLike) -> pd.Timestamp:
        """The first session strictly after ``date`` (``date`` need not be a session)."""
        day_ns = self._day_ns(date)
        self._require_in_range(day_ns)
        pos = int(np.searchsorted(self._arrays.sessions_ns, day_ns, side="right"))
        if pos >= len(self._arrays.sessions_ns):
            raise ValueError(f"no session after {pd.Timestamp(day_ns).date()} in {self!r}; build it with a later end")
        return pd.Timestamp(self._arrays.sessions_ns[pos])

    def previous_session(self, date: DateLike) -> pd.Timestamp:
        """The last session strictly before ``date`` (``date`` need not be a session)."""
        day_ns = self._day_ns(date)
        self._require_in_range(day_ns)
        pos = int(np.searchsorted(self._arrays.sessions_ns, day_ns, side="left")) - 1
        if pos < 0:
            raise ValueError(
                f"no session before {pd.Timestamp(day_ns).date()} in {self!r}; build it with an earlier start"
            )
        return pd.Timestamp(self._arrays.sessions_ns[pos])

    def missing_sessions(self, dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
        """The sessions between the first and the last of ``dates`` that ``dates`` lacks (a day dropped from a
        file, a feed's gap); empty for fewer than two dates. Non-session dates in ``dates`` are ignored here
        (the bad-bar guard reports those)."""
        if len(dates) < 2:
            return pd.DatetimeIndex([])
        days = pd.DatetimeIndex(dates).normalize()
        expected = self.sessions(days.min(), days.max())
        return expected.difference(days)

    # ------------------------------------------------------------ session times
    def session_open_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Open of each session as UTC epoch ns (int64 array); every date must be a session (else ValueError)."""
        return self._arrays.opens_ns[self._session_positions(dates)]

    def session_close_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Close of each session as UTC epoch ns (int64 array), early closes included; non-sessions raise."""
        return self._arrays.closes_ns[self._session_positions(dates)]

    def is_half_day(self, date: DateLike) -> bool:
        """True if the session closes early (e.g. the day after Thanksgiving); False for non-sessions."""
        day_ns = self._day_ns(date)
        self._require_in_range(day_ns)
        e = self._arrays.early_close_ns
        pos = int(np.searchsorted(e, day_ns))
        return bool(pos < len(e) and e[pos] == day_ns)

    def moc_cutoff_ns(self, date: DateLike, minutes_before_close: int) -> int:
        """Deadline for market-on-close orders: that session's real close minus ``minutes_before_close``.

        Relative to the day's actual close, so on a half day the cutoff moves earlier with the close.
        """
        if minutes_before_close < 0:
            raise ValueError(f"minutes_before_close must be >= 0 (got {minutes_before_close})")
        day_ns = self._day_ns(date)
        pos = self._session_positions(np.array([day_ns], dtype="datetime64[ns]"))[0]
        open_ns = int(self._arrays.opens_ns[pos])
        close_ns = int(self._arrays.closes_ns[pos])
        cutoff_ns = close_ns - minutes_before_close * NS_PER_MINUTE
        if cutoff_ns < open_ns:
            raise ValueError(
                f"minutes_before_close={minutes_before_close} puts the MOC cutoff before the open on "
                f"{pd.Timestamp(day_ns).date()} (session lasts {(close_ns - open_ns) // NS_PER_MINUTE} minutes)"
            )
        return cutoff_ns

    # ------------------------------------------------------------------ helpers
    def _day_ns(self, date: DateLike) -> int:
        ts = pd.Timestamp(date)
        if ts is pd.NaT:
            raise ValueError("date is NaT; a session date is required")
        if ts.tzinfo is not None:
            ts = ts.tz_convert(self._arrays.tz).tz_localize(None)
        return int(ts.normalize().value)

    def _days_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """Local midnight of each date as epoch ns (NaT stays NaT). Floored with numpy: ``normalize`` would also
        infer a frequency, ~0.3 ms for two years of sessions, paid by every backtest of a sweep."""
        idx = pd.DatetimeIndex(dates)
        if idx.tz is not None:
            idx = idx.tz_convert(self._arrays.tz).tz_localize(None)
        ns = idx.as_unit("ns").asi8
        return np.where(idx.isna(), ns, floor_to_day_ns(ns))

    def _index_of(self, day_ns: int) -> int:
        s = self._arrays.sessions_ns
        pos = int(np.searchsorted(s, day_ns))
        return pos if pos < len(s) and s[pos] == day_ns else -1

    def _session_positions(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        days = self._days_ns(dates)
        mask = self.session_mask(days.astype("datetime64[ns]"))
        if not mask.all():
            bad = [str(pd.Timestamp(d).date()) for d in days[~mask][:5]]
            raise ValueError(
                f"{int((~mask).sum())} date(s) are not {self.name} sessions (first: {', '.join(bad)}); "
                f"session times exist only for sessions between {self.first_session.date()} and "
                f"{self.last_session.date()}"
            )
        return np.searchsorted(self._arrays.sessions_ns, days)

    def _require_in_range(self, *days_ns: int) -> None:
        s = self._arrays.sessions_ns
        for day_ns in days_ns:
            if day_ns < s[0] or day_ns > s[-1]:
                raise ValueError(
                    f"date {pd.Timestamp(day_ns).date()} is outside {self!r}; build TradingCalendar with "
                    f"start/end covering it"
                )
