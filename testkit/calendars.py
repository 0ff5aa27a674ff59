"""Calendars for tests and benchmarks that need more sessions than the exchange calendar covers.

``WeekdayCalendar`` treats every Monday to Friday as a session, opening at 09:30 and closing at 16:00
America/New_York, with no holidays and no half days. It exists for synthetic histories such as 100,000 daily
bars (about 400 years from 1800), far outside what ``exchange_calendars`` builds for XNYS. It implements the
part of ``data.calendar.TradingCalendar`` that ``BarPanel.from_frames`` and ``backtester.engine.session_times``
call (``name``, ``session_mask``, ``session_open_ns``, ``session_close_ns``) plus ``sessions`` and
``is_session`` for building data. Never use it for real market data: it knows no holidays.

Dates before 1883 convert with the zone's local mean time (UTC-4:56:02), as ``zoneinfo`` defines it; only the
order of timestamps matters to the engine.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

NEW_YORK = "America/New_York"
_OPEN = pd.Timedelta(hours=9, minutes=30)
_CLOSE = pd.Timedelta(hours=16)


class WeekdayCalendar:
    """Mon-Fri sessions, 09:30-16:00 New York time, no holidays. Dates in are tz-naive session labels."""

    name = "WEEKDAYS"

    def __repr__(self) -> str:
        return "WeekdayCalendar(Mon-Fri 09:30-16:00 America/New_York, no holidays)"

    def sessions(self, start: str | pd.Timestamp, end: str | pd.Timestamp) -> pd.DatetimeIndex:
        """Every weekday with ``start <= label <= end``, as tz-naive midnight labels named "date"."""
        return pd.DatetimeIndex(pd.bdate_range(pd.Timestamp(start).normalize(), pd.Timestamp(end)), name="date")

    def is_session(self, date: str | pd.Timestamp) -> bool:
        return bool(self.session_mask(pd.DatetimeIndex([pd.Timestamp(date)]))[0])

    def session_mask(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """True where the date is a weekday label (tz-naive midnight); any time of day other than 00:00 is False."""
        idx = _labels(dates)
        return np.asarray((idx.dayofweek < 5) & (idx == idx.normalize()), dtype=bool)

    def session_open_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """09:30 New York time of each session as UTC epoch ns; a non-session raises ``ValueError``."""
        return self._local_time_ns(dates, _OPEN)

    def session_close_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
        """16:00 New York time of each session as UTC epoch ns; a non-session raises ``ValueError``."""
        return self._local_time_ns(dates, _CLOSE)

    def _local_time_ns(self, dates: pd.DatetimeIndex | np.ndarray, time_of_day: pd.Timedelta) -> np.ndarray:
        idx = _labels(dates)
        mask = self.session_mask(idx)
        if not mask.all():
            bad = [str(d) for d in idx[~mask][:5]]
            raise ValueError(f"{int((~mask).sum())} date(s) are not weekday session labels (first: {', '.join(bad)})")
        return np.asarray((idx + time_of_day).tz_localize(NEW_YORK).as_unit("ns").asi8, dtype=np.int64)


def _labels(dates: pd.DatetimeIndex | np.ndarray) -> pd.DatetimeIndex:
    """Tz-naive labels; a tz-aware input is first converted to New York local time."""
    idx = pd.DatetimeIndex(dates)
    return idx.tz_convert(NEW_YORK).tz_localize(None) if idx.tz is not None else idx
