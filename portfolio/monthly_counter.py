"""Trade-frequency limit: at most N trades per calendar month, months counted in the exchange's time zone.

Why the time zone matters: 2024-02-01 03:00 UTC is still 31 January in New York, so counting in UTC would open
a new month five hours early. One "trade" is one accepted order (partial fills do not count twice).

Reduce-only orders are never refused, because a cap must not trap a position, but they are counted: they are
trades. ``check`` trusts the order's ``reduce_only`` flag unless the caller passes ``position``, in which case the
flag must be confirmed by it (the risk manager verifies the flag upstream either way).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.clock import NS_PER_SECOND
from core.events import OrderEvent
from portfolio.pre_trade import Rejection, describe, reduces_position

log = logging.getLogger(__name__)


class MonthlyTradeCounter:
    """Counts accepted orders per calendar month in ``tz``; ``max_trades_per_month=None`` means unlimited."""

    def __init__(self, max_trades_per_month: int | None, tz: str = "America/New_York") -> None:
        if max_trades_per_month is not None and max_trades_per_month < 1:
            raise ValueError(f"max_trades_per_month must be at least 1 or None (got {max_trades_per_month})")
        try:
            self._zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"tz must be an IANA time zone name such as 'America/New_York' (got {tz!r})") from exc
        self.max_trades_per_month = max_trades_per_month
        self.tz = tz
        self._counts: Counter[tuple[int, int]] = Counter()
        self._month_span: tuple[int, int, tuple[int, int]] | None = None  # [start s, end s) of the last month seen

    def _month(self, now_ns: int) -> tuple[int, int]:
        """(year, month) in ``tz`` of ``now_ns``; the last month's bounds are kept, as orders come in time order."""
        second = now_ns // NS_PER_SECOND
        span = self._month_span
        if span is None or not span[0] <= second < span[1]:
            local = datetime.fromtimestamp(second, tz=self._zone)
            start = datetime(local.year, local.month, 1, tzinfo=self._zone)
            end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=self._zone)
            span = self._month_span = (int(start.timestamp()), int(end.timestamp()), (local.year, local.month))
        return span[2]

    def count(self, now_ns: int) -> int:
        """Trades recorded in the calendar month (in ``tz``) that contains ``now_ns``."""
        return self._counts[self._month(now_ns)]

    def check(self, order: OrderEvent, now_ns: int, *, position: int | None = None) -> Rejection | None:
        """Refuse an exposure-increasing order once this month holds the maximum; never mutates anything."""
        if self.max_trades_per_month is None:
            return None
        reduce_only = order.reduce_only and (position is None or reduces_position(order.side, order.quantity, position))
        if reduce_only:
            return None
        year, month = self._month(now_ns)
        used = self._counts[(year, month)]
        if used >= self.max_trades_per_month:
            rejection = Rejection(
                "max_trades_per_month",
                f"{describe(order)}: {used} trades were already made in {year}-{month:02d} ({self.tz}), the limit "
                f"is {self.max_trades_per_month} per month (portfolio.max_trades_per_month); only reduce-only "
                "orders are accepted until the next month.",
            )
            log.warning(
                'event=order_rejected check=%s client_order_id=%s symbol=%s reason="%s"',
                rejection.check,
                order.client_order_id,
                order.symbol,
                rejection.reason,
            )
            return rejection
        return None

    def record(self, order: OrderEvent, now_ns: int) -> None:
        """Count an accepted order (reduce-only included) in its month; call it once per accepted order."""
        key = self._month(now_ns)
        self._counts[key] += 1
        log.debug(
            "event=trade_counted client_order_id=%s month=%d-%02d count=%d",
            order.client_order_id,
            *key,
            self._counts[key],
        )
