"""Builders of daily bars for tests: a hand-written close series as a bar frame, or a small synthetic panel.

They produce data that passes the bad-bar guard, so a test starts from valid bars and damages exactly what
it wants to test.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_panel

log = logging.getLogger(__name__)


def make_bar_frame(
    closes: Sequence[float],
    start: str = "2024-01-02",
    calendar: TradingCalendar | None = None,
    spread_pct: float = 1.0,
    volume: float = 1_000_000,
) -> pd.DataFrame:
    """A bar frame with the given closes on consecutive sessions from ``start`` (the first session >= start).

    Each bar opens at the previous close (the first at its own close); high and low sit ``spread_pct / 2``
    percent above max(open, close) and below min(open, close), so the bar is always valid.
    """
    calendar = calendar or TradingCalendar()
    close = np.asarray(closes, dtype=np.float64)
    if close.ndim != 1 or not len(close) or not np.all(np.isfinite(close) & (close > 0)):
        raise ValueError(f"closes must be a non-empty sequence of positive finite prices (got {closes!r})")
    if spread_pct < 0 or volume < 0:
        raise ValueError(f"spread_pct and volume must be >= 0 (got {spread_pct}, {volume})")
    dates = calendar.sessions(start, calendar.last_session)[: len(close)]
    if len(dates) < len(close):
        raise ValueError(f"only {len(dates)} sessions from {start} in {calendar!r}; {len(close)} closes given")
    open_ = np.concatenate(([close[0]], close[:-1]))
    half_spread = spread_pct / 200.0
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + half_spread),
            "low": np.minimum(open_, close) * (1.0 - half_spread),
            "close": close,
            "volume": np.full(len(close), float(volume)),
        },
        index=dates,
    )


def synthetic_panel(n_symbols: int = 5, start: str = "2020-01-02", end: str = "2021-12-31", seed: int = 7) -> BarPanel:
    """A small deterministic ``BarPanel`` from the synthetic market (XNYS sessions, ``SYM000``..)."""
    return generate_panel(n_symbols, start, end, seed, TradingCalendar())
