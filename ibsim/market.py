"""The simulated market: an accelerated session clock replaying daily bars, with an intraday path per day.

Time model: the sim clock runs only during sessions. Wall time since ``start`` times ``speed`` is mapped onto
the concatenated regular sessions from ``start_session`` on, so at the close of one session the clock jumps
to the next open (no overnight dead time in tests). ``advance_s`` moves the clock forward by sim seconds for
deterministic tests. After the last bar the clock stops at the final close.

Prices: for each (symbol, session) a deterministic path from open through the day's high and low (in a
seeded order) to the close, with a small seeded wiggle, clamped to [low, high] and on the cent grid. So the
replayed day reproduces the stored bar exactly at its open, extremes and close. Quotes put a spread of
``spread_bps`` (at least one cent) around the path price.

Price shocks (a fault for risk tests): ``add_price_shock(pct, at_wall_ns)`` multiplies every price the market
hands out (quotes, marks, fills, closes, daily history) by ``1 + pct / 100`` from that wall-clock instant on;
several shocks compound. The move is a pure function of wall time, so a test that shocks at a known moment sees
the same prices every run; with no shock the prices are exactly those of the replay.

Thread-safety: none; the server calls it under its one lock.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND, WallClock
from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
_PATH_POINTS = 391  # one per minute of a regular session


@dataclass(frozen=True, slots=True)
class Stock:
    """A tradable SMART-routed US stock; ``con_id`` is a stable hash of the symbol."""

    symbol: str
    con_id: int
    primary_exchange: str = "NASDAQ"
    currency: str = "USD"


def con_id_for(symbol: str) -> int:
    """A stable positive conId per symbol (same symbol → same id across runs and processes)."""
    return 100_000 + int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:4], "big") % 900_000_000


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float
    last: float
    bid_size: int
    ask_size: int
    last_size: int
    open: float
    high: float
    low: float
    volume: int
    prev_close: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0


class Market:
    """Replays daily bars on an accelerated clock; see the module docstring for the time and price model."""

    def __init__(
        self,
        frames: dict[str, pd.DataFrame],
        calendar: TradingCalendar,
        start_session: str | pd.Timestamp | None = None,
        speed: float = 60.0,
        seed: int = 7,
        spread_bps: float = 2.0,
        wall_clock: WallClock | None = None,
    ) -> None:
        if not frames:
            raise ValueError("Market needs at least one symbol with bars")
        if speed <= 0:
            raise ValueError(f"speed must be > 0 (got {speed})")
        self.frames = {s: f.sort_index() for s, f in frames.items()}
        self.stocks = {s: Stock(s, con_id_for(s)) for s in sorted(frames)}
        self.calendar = calendar
        self.speed = speed
        self.seed = seed
        self.spread_bps = spread_bps
        self._wall = wall_clock or WallClock()
        dates = sorted(set().union(*(set(f.index) for f in self.frames.values())))
        first = pd.Timestamp(start_session) if start_session is not None else dates[min(len(dates) - 1, 250)]
        self.sessions = pd.DatetimeIndex([d for d in dates if d >= first])
        if len(self.sessions) == 0:
            raise ValueError(f"no bars on or after start_session={first.date()}")
        self._opens = calendar.session_open_ns(self.sessions)
        self._closes = calendar.session_close_ns(self.sessions)
        self._cum_s = np.concatenate([[0.0], np.cumsum((self._closes - self._opens) / NS_PER_SECOND)])
        self._wall_start_ns = self._wall.now_ns()
        self._offset_s = 0.0
        self._paths: dict[tuple[str, int], np.ndarray] = {}
        self._shocks: list[tuple[int, float]] = []  # (wall ns from which it applies, multiplicative factor)

    # ------------------------------------------------------------------ clock
    def elapsed_s(self) -> float:
        """Sim trading seconds since the first replayed open."""
        wall_s = (self._wall.now_ns() - self._wall_start_ns) / NS_PER_SECOND
        return min(wall_s * self.speed + self._offset_s, float(self._cum_s[-1]))

    def advance_s(self, seconds: float) -> None:
        """Move the sim clock forward by ``seconds`` of trading time (tests and fast-forward)."""
        if seconds < 0:
            raise ValueError(f"the sim clock cannot go backwards (got {seconds} s)")
        self._offset_s += seconds

    def position(self) -> tuple[int, int]:
        """(session index, sim time in UTC epoch ns) now."""
        elapsed = self.elapsed_s()
        idx = int(np.searchsorted(self._cum_s, elapsed, side="right")) - 1
        idx = max(0, min(idx, len(self.sessions) - 1))
        ts = int(self._opens[idx]) + int((elapsed - self._cum_s[idx]) * NS_PER_SECOND)
        return idx, min(ts, int(self._closes[idx]))

    def now_ns(self) -> int:
        return self.position()[1]

    def session_bounds_ns(self, idx: int) -> tuple[int, int]:
        return int(self._opens[idx]), int(self._closes[idx])

    def finished(self) -> bool:
        return self.elapsed_s() >= float(self._cum_s[-1])

    # ------------------------------------------------------------------ shocks
    def add_price_shock(self, pct: float, at_wall_ns: int | None = None) -> None:
        """Move every price by ``pct`` percent (-40 = a 40 % fall) from ``at_wall_ns`` (default: now) on."""
        if pct <= -100.0:
            raise ValueError(f"a price shock must keep prices positive: pct > -100 (got {pct})")
        at_ns = self._wall.now_ns() if at_wall_ns is None else int(at_wall_ns)
        self._shocks.append((at_ns, 1.0 + pct / 100.0))
        log.warning("event=price_shock_scheduled pct=%s at_wall_ns=%d in_s=%.3f", pct, at_ns,
                    (at_ns - self._wall.now_ns()) / NS_PER_SECOND)  # fmt: skip

    def add_price_shock_after_start(self, seconds: float, pct: float) -> None:
        """``add_price_shock`` at ``seconds`` of wall time after this market was created."""
        if seconds < 0:
            raise ValueError(f"a price shock cannot be scheduled before the start (got {seconds} s)")
        self.add_price_shock(pct, self._wall_start_ns + int(seconds * NS_PER_SECOND))

    def price_factor(self) -> float:
        """The product of every shock in force now (1.0 without shocks)."""
        if not self._shocks:
            return 1.0
        now_ns = self._wall.now_ns()
        factor = 1.0
        for at_ns, shock in self._shocks:
            if now_ns >= at_ns:
                factor *= shock
        return factor

    def _scaled(self, price: float, factor: float) -> float:
        return price if factor == 1.0 else round(price * factor, 2)

    # ------------------------------------------------------------------ prices
    def has(self, symbol: str) -> bool:
        return symbol in self.stocks

    def bar(self, symbol: str, idx: int) -> pd.Series | None:
        frame = self.frames[symbol]
        day = self.sessions[idx]
        return frame.loc[day] if day in frame.index else None

    def _path(self, symbol: str, idx: int) -> np.ndarray | None:
        key = (symbol, idx)
        if key not in self._paths:
            bar = self.bar(symbol, idx)
            self._paths[key] = None if bar is None else _intraday_path(bar, self.seed, symbol, self.sessions[idx])
        return self._paths[key]

    def price_at(self, symbol: str, idx: int, ts_ns: int) -> float:
        """Path price of ``symbol`` at ``ts_ns`` within session ``idx``; the last close on a missing day."""
        path = self._path(symbol, idx)
        if path is None:
            return self.prev_close(symbol, idx + 1)
        return self._scaled(_path_price(path, self._fraction(idx, ts_ns)), self.price_factor())

    def _fraction(self, idx: int, ts_ns: int) -> float:
        open_ns, close_ns = self.session_bounds_ns(idx)
        return min(max((ts_ns - open_ns) / max(1, close_ns - open_ns), 0.0), 1.0)

    def _minute_index(self, idx: int, ts_ns: int) -> int:
        return int(self._fraction(idx, ts_ns) * (_PATH_POINTS - 1))

    def prev_close(self, symbol: str, idx: int) -> float:
        """Close of the last bar strictly before session ``idx`` (the first open if none)."""
        frame = self.frames[symbol]
        day = self.sessions[min(idx, len(self.sessions) - 1)] if idx < len(self.sessions) else None
        before = frame if day is None else frame.loc[frame.index < day]
        raw = float(before["close"].iloc[-1]) if len(before) else float(frame["open"].iloc[0])
        return self._scaled(raw, self.price_factor())

    def quote(self, symbol: str) -> Quote:
        idx, ts = self.position()
        return self.quote_at(symbol, idx, ts)

    def quote_at(self, symbol: str, idx: int, ts_ns: int) -> Quote:
        path = self._path(symbol, idx)
        prev = self.prev_close(symbol, idx)
        factor = self.price_factor()
        if path is None:
            px = prev
            so_far = np.array([px])
            volume = 0
        else:
            i = self._minute_index(idx, ts_ns)
            px = self._scaled(_path_price(path, self._fraction(idx, ts_ns)), factor)
            so_far = np.append(path[: i + 1] if factor == 1.0 else np.round(path[: i + 1] * factor, 2), px)
            volume = int(float(self.bar(symbol, idx)["volume"]) * i / (_PATH_POINTS - 1))
        spread = max(0.01, round(px * self.spread_bps / 10_000.0, 2))
        bid = round(px - spread / 2.0, 2)
        ask = round(bid + spread, 2)
        return Quote(
            bid=bid,
            ask=ask,
            last=px,
            bid_size=_size(symbol, idx, ts_ns, 1),
            ask_size=_size(symbol, idx, ts_ns, 2),
            last_size=100,
            open=float(so_far[0]),
            high=float(so_far.max()),
            low=float(so_far.min()),
            volume=volume,
            prev_close=prev,
        )

    def close_price(self, symbol: str, idx: int) -> float:
        bar = self.bar(symbol, idx)
        if bar is None:
            return self.prev_close(symbol, idx + 1)
        return self._scaled(float(bar["close"]), self.price_factor())

    def daily_bars(self, symbol: str, end_idx: int, n_days: int) -> pd.DataFrame:
        """Up to ``n_days`` completed daily bars before session ``end_idx`` (the session in progress is excluded).

        Under a price shock the whole history is scaled too (as a back-adjusted series would be).
        """
        frame = self.frames[symbol]
        bars = frame.loc[frame.index < self.sessions[end_idx]].tail(n_days)
        factor = self.price_factor()
        if factor == 1.0:
            return bars
        prices = [c for c in ("open", "high", "low", "close") if c in bars.columns]
        scaled = bars.copy()
        scaled[prices] = (scaled[prices] * factor).round(2)
        return scaled


def _intraday_path(bar: pd.Series, seed: int, symbol: str, day: pd.Timestamp) -> np.ndarray:
    """Minute prices O → first extreme → second extreme → C, wiggled, clamped to [L, H], on the cent grid."""
    key = int.from_bytes(hashlib.sha256(f"{symbol}|{day.date()}".encode()).digest()[:8], "little")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))
    o, h, low, c = (float(bar[k]) for k in ("open", "high", "low", "close"))
    first, second = (h, low) if rng.random() < 0.5 else (low, h)
    a, b = rng.uniform(0.1, 0.45), rng.uniform(0.55, 0.9)
    t = np.linspace(0.0, 1.0, _PATH_POINTS)
    base = np.interp(t, [0.0, a, b, 1.0], [o, first, second, c])
    wiggle = np.cumsum(rng.standard_normal(_PATH_POINTS)) * (h - low) * 0.01
    wiggle -= np.interp(t, [0.0, 1.0], [wiggle[0], wiggle[-1]])
    path = np.clip(np.round(base + wiggle, 2), low, h)
    path[0], path[-1] = o, c
    path[round(a * (_PATH_POINTS - 1))] = first
    path[round(b * (_PATH_POINTS - 1))] = second
    return path


def _path_price(path: np.ndarray, frac: float) -> float:
    """Price at a fraction of the session, linear between minute points, on the cent grid."""
    x = frac * (len(path) - 1)
    i = min(int(x), len(path) - 2)
    return round(float(path[i] + (path[i + 1] - path[i]) * (x - i)), 2)


def _size(symbol: str, idx: int, ts_ns: int, salt: int) -> int:
    """A deterministic quote size in round lots (1..10 × 100) that changes over time."""
    digest = hashlib.sha256(f"{symbol}|{idx}|{ts_ns // (60 * NS_PER_SECOND)}|{salt}".encode()).digest()
    return 100 * (1 + digest[0] % 10)


def session_time_text(ts_ns: int) -> str:
    """``yyyymmdd hh:mm:ss EST`` in New York time, the form TWS uses for its connection time."""
    local = pd.Timestamp(ts_ns, tz="UTC").tz_convert(NEW_YORK)
    return f"{local:%Y%m%d %H:%M:%S} {local.tzname()}"


def exec_time_text(ts_ns: int) -> str:
    """``yyyymmdd  hh:mm:ss`` (two spaces), the execution time format of EXECUTION_DATA."""
    local = pd.Timestamp(ts_ns, tz="UTC").tz_convert(NEW_YORK)
    return f"{local:%Y%m%d}  {local:%H:%M:%S}"
