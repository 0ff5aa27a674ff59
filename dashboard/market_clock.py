"""The market's clock on the page: the engine's newest 5-s bar time, carried forward at the measured rate.

Why measured: against ibsim the market runs ``speed`` times the wall clock (60 by default, thousands in a demo),
against a real gateway once. The engine reports its newest bar time and the next session close in STATUS
(``market_time_ns``, ``next_close_ns``); two answers a few seconds apart give the rate, so the page can say how
long, in wall time, until the next close (the next decision of the daily strategies) without knowing the speed.

Pure: samples in, numbers out; one owner (the collector thread).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import NS_PER_SECOND


@dataclass(slots=True)
class MarketClock:
    market_ns: int | None = None
    wall_ns: int | None = None
    next_close_ns: int | None = None
    rate: float | None = None  # market seconds per wall second

    def observe(self, market_ns: int | None, next_close_ns: int | None, wall_ns: int) -> None:
        if market_ns is None:
            return
        if self.market_ns is not None and self.wall_ns is not None and wall_ns > self.wall_ns:
            advanced = market_ns - self.market_ns
            if advanced > 0:
                measured = advanced / (wall_ns - self.wall_ns)
                self.rate = measured if self.rate is None else 0.5 * self.rate + 0.5 * measured
        if self.market_ns is None or market_ns != self.market_ns:
            self.market_ns, self.wall_ns = market_ns, wall_ns
        self.next_close_ns = next_close_ns

    def view(self, wall_ns: int) -> dict[str, float | int | None]:
        """Market time now (extrapolated), the next close, and the time to it in market and in wall seconds."""
        if self.market_ns is None or self.wall_ns is None:
            return {"market_time_ns": None, "next_close_ns": None, "to_close_market_s": None,
                    "to_close_wall_s": None, "rate": None}  # fmt: skip
        now = self.market_ns + int((self.rate or 0.0) * (wall_ns - self.wall_ns))
        if self.next_close_ns is not None:
            now = min(now, self.next_close_ns)
        to_close = None if self.next_close_ns is None else (self.next_close_ns - now) / NS_PER_SECOND
        to_close_wall = None if to_close is None or not self.rate else to_close / self.rate
        return {"market_time_ns": now, "next_close_ns": self.next_close_ns, "to_close_market_s": to_close,
                "to_close_wall_s": to_close_wall, "rate": self.rate}  # fmt: skip
