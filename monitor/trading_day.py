"""The trading day of a timestamp: the calendar date in New York, where US equity sessions live.

Why: the daily limits (loss, fills, fill notional) restart each trading day. The engine counts its fills per
New York date (``portfolio.live_manager.DailyFillCounter``), so the monitor uses the same boundary; a UTC date
would split one session in two (the close is 20:00 or 21:00 UTC).
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from core.clock import NS_PER_SECOND

NEW_YORK = ZoneInfo("America/New_York")


def local_date(ts_ns: int, tz: ZoneInfo = NEW_YORK) -> date:
    """The date in ``tz`` of ``ts_ns`` (UTC epoch ns)."""
    return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, tz=tz).date()


def day_start_ns(ts_ns: int, tz: ZoneInfo = NEW_YORK) -> int:
    """Midnight in ``tz`` at the start of the date of ``ts_ns``, as UTC epoch ns."""
    midnight = datetime.combine(local_date(ts_ns, tz), time(0), tzinfo=tz)
    return int(midnight.timestamp()) * NS_PER_SECOND
