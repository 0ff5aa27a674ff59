"""The strategy interface shared by the backtester and the live engine.

A strategy turns bars into *signals* (direction plus a suggested stop distance); sizing, risk and order types
belong to the portfolio. To run millions of bars per second a strategy computes its indicators **causally and
vectorized**: ``compute_signals`` sees the whole (T x N) history it is given and must make row t depend only on
rows <= t (TA-Lib indicators do). The backtester calls it once per run; the live engine calls it again on the
growing history after each new bar, so both read exactly the same numbers. ``on_market`` then only looks up row
``event.bar_index`` and emits ``SignalEvent``s where a signal code is set.

Signal codes in the int8 array: 0 none, 1 LONG, -1 SHORT, 2 EXIT.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.events import MarketEvent, SignalDirection, SignalEvent

NO_SIGNAL = 0
LONG = 1
SHORT = -1
EXIT = 2

_DIRECTIONS = {LONG: SignalDirection.LONG, SHORT: SignalDirection.SHORT, EXIT: SignalDirection.EXIT}


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Aligned (T x N) float64 arrays of one symbol universe; NaN marks a missing or quarantined bar."""

    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True, slots=True)
class SignalArrays:
    codes: np.ndarray  # int8 (T, N)
    stop_distance: np.ndarray  # float64 (T, N); NaN where unknown


class Strategy(ABC):
    """Base class: subclasses implement ``compute_signals``; the rest is shared plumbing."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self._signals: SignalArrays | None = None
        self._rows_with_signals: np.ndarray = np.zeros(0, dtype=bool)
        self._symbols: tuple[str, ...] = ()
        self._put: Callable[[SignalEvent], None] | None = None
        self._now_ns: Callable[[], int] = lambda: 0

    def bind(self, put: Callable[[SignalEvent], None], now_ns: Callable[[], int]) -> None:
        """Give the strategy the dispatcher's ``put`` and the clock; called once by the wiring code."""
        self._put = put
        self._now_ns = now_ns

    @abstractmethod
    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        """Causal, vectorized signals over the whole history given (row t uses rows <= t only)."""

    @property
    def warmup_bars(self) -> int:
        """Bars of history needed before the first signal can appear (live engine history length)."""
        return 0

    def prepare(self, bars: BarArrays) -> None:
        signals = self.compute_signals(bars)
        if signals.codes.shape != bars.close.shape or signals.stop_distance.shape != bars.close.shape:
            raise ValueError(f"{self.strategy_id}: signal arrays must have the bars' shape {bars.close.shape}")
        self._signals = signals
        self._symbols = bars.symbols
        self._rows_with_signals = (signals.codes != NO_SIGNAL).any(axis=1)

    @property
    def signal_rows(self) -> np.ndarray:
        """After ``prepare``: True for the bars on which this strategy emits at least one signal (the backtester
        skips the others in bulk: ``on_market`` does nothing on them)."""
        return self._rows_with_signals

    def on_market(self, event: MarketEvent) -> None:
        t = event.bar_index
        if not self._rows_with_signals[t]:
            return
        assert self._signals is not None and self._put is not None, "prepare() and bind() come first"
        codes = self._signals.codes[t]
        stops = self._signals.stop_distance[t]
        now = self._now_ns()
        for j in np.flatnonzero(codes):
            price = float(event.close[j])
            if price != price:  # NaN close: no valid bar for this symbol now; never signal on it
                continue
            stop = float(stops[j])
            self._put(
                SignalEvent(
                    ts_event_ns=event.ts_event_ns,
                    ts_init_ns=now,
                    strategy_id=self.strategy_id,
                    symbol=self._symbols[j],
                    direction=_DIRECTIONS[int(codes[j])],
                    reference_price=price,
                    stop_distance=stop if stop == stop and stop > 0 else None,
                )
            )


def per_symbol(func: Callable[..., np.ndarray], *columns: np.ndarray) -> np.ndarray:
    """Apply a 1-D indicator to each column over its valid (non-NaN) rows only, scattering results back.

    TA-Lib's running windows are poisoned by a NaN; computing over the valid rows of each symbol means a
    not-yet-listed period or a quarantined bar is skipped rather than contaminating everything after it.
    """
    first = columns[0]
    out = np.full(first.shape, np.nan)
    for j in range(first.shape[1]):
        valid = ~np.isnan(first[:, j])
        for col in columns[1:]:
            valid &= ~np.isnan(col[:, j])
        if not valid.any():
            continue
        if valid.all():
            out[:, j] = func(*(np.ascontiguousarray(c[:, j]) for c in columns))
        else:
            out[valid, j] = func(*(np.ascontiguousarray(c[valid, j]) for c in columns))
    return out


def crossed_above(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Strict cross: a[t] > b[t] and a[t-1] <= b[t-1] (False where either side is NaN)."""
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def crossed_below(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Strict cross: a[t] < b[t] and a[t-1] >= b[t-1] (False where either side is NaN)."""
    out = np.zeros(a.shape, dtype=bool)
    out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
    return out


def became_true(condition: np.ndarray) -> np.ndarray:
    """Rows where a boolean condition switches from False to True (the first row counts if True)."""
    out = condition.copy()
    out[1:] &= ~condition[:-1]
    return out
