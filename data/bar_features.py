"""The daily bar features: the one function that computes them, for the feature store, strategies and models alike.

``bar_features`` turns aligned daily bars into one row per (symbol, session) with seven features and the two
timestamps the feature store needs. It is pure (no I/O, no clock, no ``feast``): the offline store, the online
store, a backtest and the veto model therefore read the same numbers.

Definitions, each over the symbol's own bar history (a session where the symbol has no valid bar, e.g. before
its listing or a quarantined bar, is skipped rather than poisoning the windows after it, as
``strategy.base.per_symbol`` does for TA-Lib):

- ``ret_1d``, ``ret_5d``, ``ret_20d``: simple returns ``close[t] / close[t-k] - 1``, k bars back;
- ``vol_20d``: sample standard deviation (ddof 1) of the last 20 daily simple returns (``ret_1d[t-19..t]``);
- ``rsi_14``: TA-Lib ``RSI(close, 14)``;
- ``atr_14_pct``: TA-Lib ``ATR(high, low, close, 14) / close`` (a fraction, 0.02 is 2 %);
- ``volume_z_20``: ``(volume[t] - mean(volume[t-19..t])) / sd(volume[t-19..t])``, sample sd (ddof 1), the
  window ending at and including today like ``vol_20d``'s; NaN when the 20 volumes are all equal.

A feature without enough history yet is NaN (the row is still there: the session happened). ``event_timestamp``
is that session's close in UTC from the exchange calendar (16:00 New York, 13:00 on a half day): the moment the
value became knowable, which is what point-in-time retrieval needs. ``created_timestamp`` is only a tie-breaker
between two rows of the same symbol and session; it is the caller's ``created_ns`` (e.g. the pipeline's clock)
or, by default, the event timestamp itself, so the function stays deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
import talib

from data.calendar import TradingCalendar
from data.panel import BarPanel

log = logging.getLogger(__name__)

BAR_FEATURE_NAMES: tuple[str, ...] = (
    "ret_1d",
    "ret_5d",
    "ret_20d",
    "vol_20d",
    "rsi_14",
    "atr_14_pct",
    "volume_z_20",
)
FEATURE_FRAME_COLUMNS: tuple[str, ...] = ("symbol", "event_timestamp", "created_timestamp", *BAR_FEATURE_NAMES)

_WINDOW = 20
_TA_PERIOD = 14


def bar_features(
    bars: BarPanel | Mapping[str, pd.DataFrame],
    calendar: TradingCalendar | None = None,
    created_ns: int | None = None,
) -> pd.DataFrame:
    """One row per symbol and session with a valid bar: ``FEATURE_FRAME_COLUMNS``, sorted by symbol then time.

    ``bars`` is a ``BarPanel`` or guarded bar frames keyed by symbol (aligned with ``BarPanel.from_frames``, which
    needs ``calendar``; XNYS by default). Timestamps are tz-aware UTC (``datetime64[ns, UTC]``); features float64.
    """
    panel = bars if isinstance(bars, BarPanel) else BarPanel.from_frames(bars, calendar or TradingCalendar())
    parts = [_symbol_features(panel, j) for j in range(len(panel.symbols))]
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_feature_frame()
    frame = pd.concat(parts, ignore_index=True)
    frame["created_timestamp"] = (
        frame["event_timestamp"] if created_ns is None else pd.Timestamp(created_ns, unit="ns", tz="UTC")
    )
    frame = frame[list(FEATURE_FRAME_COLUMNS)]
    log.debug("event=bar_features symbols=%d rows=%d", len(panel.symbols), len(frame))
    return frame


def empty_feature_frame() -> pd.DataFrame:
    """A frame with ``FEATURE_FRAME_COLUMNS`` and their dtypes but no rows."""
    utc = pd.DatetimeIndex([], tz="UTC").as_unit("ns")
    data: dict[str, object] = {"symbol": pd.Series([], dtype=object), "event_timestamp": utc, "created_timestamp": utc}
    data.update({name: pd.Series([], dtype=np.float64) for name in BAR_FEATURE_NAMES})
    return pd.DataFrame(data)


def _symbol_features(panel: BarPanel, j: int) -> pd.DataFrame:
    high, low, close, volume = (getattr(panel, name)[:, j] for name in ("high", "low", "close", "volume"))
    valid = ~(np.isnan(high) | np.isnan(low) | np.isnan(close) | np.isnan(volume))
    high, low, close, volume = (np.ascontiguousarray(a[valid]) for a in (high, low, close, volume))
    ts = pd.to_datetime(panel.ts_event_ns[valid], unit="ns", utc=True)
    features = {
        "ret_1d": _simple_return(close, 1),
        "ret_5d": _simple_return(close, 5),
        "ret_20d": _simple_return(close, _WINDOW),
    }
    features["vol_20d"] = _rolling_sample_sd(features["ret_1d"], _WINDOW)
    features["rsi_14"] = talib.RSI(close, timeperiod=_TA_PERIOD) if len(close) else close.copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        atr = talib.ATR(high, low, close, timeperiod=_TA_PERIOD) if len(close) else close.copy()
        features["atr_14_pct"] = atr / close
        volume_sd = _rolling_sample_sd(volume, _WINDOW)
        volume_z = (volume - _rolling_mean(volume, _WINDOW)) / volume_sd
    features["volume_z_20"] = np.where(volume_sd > 0, volume_z, np.nan)
    frame = pd.DataFrame(features)
    frame.insert(0, "symbol", panel.symbols[j])
    frame.insert(1, "event_timestamp", ts)
    return frame


def _simple_return(close: np.ndarray, k: int) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    if len(close) > k:
        out[k:] = close[k:] / close[:-k] - 1.0
    return out


def _rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(values).rolling(window, min_periods=window).mean().to_numpy()


def _rolling_sample_sd(values: np.ndarray, window: int) -> np.ndarray:
    """Sample sd (ddof 1) of the ``window`` values ending at each row; NaN until the window is full of numbers."""
    return pd.Series(values).rolling(window, min_periods=window).std(ddof=1).to_numpy()
