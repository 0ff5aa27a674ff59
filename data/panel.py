"""``BarPanel``: every symbol's daily bars aligned on one date axis as (T, N) float64 arrays.

This is the shape the engine runs on: one ``MarketEvent`` per date carrying row ``t`` of each array, and
indicators computed over whole columns at once. A symbol without a valid bar on a date (not yet listed,
delisted, or quarantined) has NaN there, never a forward-filled value, so a strategy cannot trade on a
price that did not print.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS
from data.calendar import TradingCalendar

log = logging.getLogger(__name__)

_FINGERPRINT_VERSION = b"barpanel-fingerprint-v1"


@dataclass(frozen=True, slots=True, eq=False)
class BarPanel:
    """Aligned bars: ``dates`` (T,) ascending session labels, ``ts_event_ns`` (T,) session close in UTC ns,
    and ``open``/``high``/``low``/``close``/``volume`` (T, N) C-contiguous float64, columns in ``symbols`` order.

    Arrays are read-only so the panel can be shared between the backtester, strategies and workers without
    anyone mutating the data under the others; ``truncate``/``select`` return views, not copies.
    """

    symbols: tuple[str, ...]
    dates: pd.DatetimeIndex
    ts_event_ns: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.symbols))
        if self.ts_event_ns.shape != shape[:1] or self.ts_event_ns.dtype != np.int64:
            raise ValueError(f"ts_event_ns must be int64 of shape {shape[:1]} (got {self.ts_event_ns.shape})")
        for name in BAR_COLUMNS:
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != np.float64 or not arr.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous float64 of shape {shape} (got {arr.shape} {arr.dtype})")
        for arr in (self.ts_event_ns, *(getattr(self, name) for name in BAR_COLUMNS)):
            arr.setflags(write=False)

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame], calendar: TradingCalendar) -> BarPanel:
        """Align guarded bar frames (one per symbol) on the union of their dates; symbols are sorted.

        Raises ``DataError`` if a frame is not a bar frame (columns, index, order) or holds a date that is not
        a session of ``calendar`` (there would be no close time to stamp it with).
        """
        symbols = tuple(sorted(frames))
        for symbol in symbols:
            _check_bar_frame(symbol, frames[symbol])
        date_arrays = [frames[s].index.as_unit("ns").asi8 for s in symbols]
        dates_ns = np.unique(np.concatenate(date_arrays)) if date_arrays else np.array([], dtype=np.int64)
        dates = pd.DatetimeIndex(dates_ns.astype("datetime64[ns]"), name="date")
        not_session = ~calendar.session_mask(dates)
        if not_session.any():
            bad = [str(d.date()) for d in dates[not_session][:5]]
            raise DataError(f"bar frames hold {int(not_session.sum())} non-session dates of {calendar.name}: {bad}")
        ts_event_ns = np.ascontiguousarray(calendar.session_close_ns(dates), dtype=np.int64)
        shape = (len(dates), len(symbols))
        arrays = {name: np.full(shape, np.nan, dtype=np.float64) for name in BAR_COLUMNS}
        for j, (symbol, day_ns) in enumerate(zip(symbols, date_arrays, strict=True)):
            rows = np.searchsorted(dates_ns, day_ns)
            values = frames[symbol].to_numpy(dtype=np.float64)  # columns checked to be BAR_COLUMNS
            for k, name in enumerate(BAR_COLUMNS):
                arrays[name][rows, j] = values[:, k]
        panel = cls(symbols=symbols, dates=dates, ts_event_ns=ts_event_ns, **arrays)
        log.debug("event=panel_built symbols=%d dates=%d bars=%d", len(symbols), len(dates), panel.n_bars)
        return panel

    @property
    def n_bars(self) -> int:
        """Number of (date, symbol) cells with a bar (non-NaN close)."""
        return int(np.count_nonzero(~np.isnan(self.close)))

    def truncate(self, n_rows: int) -> BarPanel:
        """The first ``n_rows`` dates (all of them if ``n_rows`` exceeds the length)."""
        if n_rows < 0:
            raise ValueError(f"n_rows must be >= 0 (got {n_rows})")
        return self._rows(slice(0, n_rows))

    def select(self, start: str | pd.Timestamp | None = None, end: str | pd.Timestamp | None = None) -> BarPanel:
        """Dates with ``start <= date <= end`` (inclusive; either bound optional, need not be a session)."""
        lo = 0 if start is None else int(self.dates.searchsorted(pd.Timestamp(start), side="left"))
        hi = len(self.dates) if end is None else int(self.dates.searchsorted(pd.Timestamp(end), side="right"))
        return self._rows(slice(lo, max(lo, hi)))

    def fingerprint(self) -> str:
        """SHA-256 (hex) of symbols, dates and the five arrays; identifies the exact data a run used."""
        digest = hashlib.sha256(_FINGERPRINT_VERSION)
        digest.update("\x1f".join(self.symbols).encode() + b"\x1e")
        digest.update(self.dates.as_unit("ns").asi8.astype("<i8").tobytes())
        for name in BAR_COLUMNS:
            digest.update(np.ascontiguousarray(getattr(self, name), dtype="<f8").tobytes())
        return digest.hexdigest()

    def _rows(self, rows: slice) -> BarPanel:
        return BarPanel(
            symbols=self.symbols,
            dates=self.dates[rows],
            ts_event_ns=self.ts_event_ns[rows],
            **{name: getattr(self, name)[rows] for name in BAR_COLUMNS},
        )


def _check_bar_frame(symbol: str, frame: pd.DataFrame) -> None:
    if list(frame.columns) != list(BAR_COLUMNS):
        raise DataError(
            f"bar frame for symbol={symbol}: columns must be {list(BAR_COLUMNS)} (got {list(frame.columns)})"
        )
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is not None:
        raise DataError(f"bar frame for symbol={symbol}: index must be a tz-naive DatetimeIndex of session dates")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise DataError(
            f"bar frame for symbol={symbol}: dates must be unique and ascending; run it through guard_frame"
        )
