"""Panel shocks and historical stress windows: the raw material of scenario analysis.

Each shock is a pure function ``BarPanel -> BarPanel`` that builds new arrays: rows before ``at`` stay
bit-identical, OHLC relations (low <= open, close <= high) and positivity hold wherever the input held them, and
prices are never rounded to the cent grid (a shock is exact, not quantised). ``historical_stress_windows`` finds
the worst real windows of the equal-weight market in the data. ``backtester/scenarios.py`` runs them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.config_models import AppConfig
from data.panel import BarPanel

log = logging.getLogger(__name__)

ScenarioKind = Literal["historical", "synthetic"]
ShockName = Literal[
    "overnight_gap", "volatility_spike", "correlation_to_one", "liquidity_drought", "halt_symbol", "broker_outage"
]
ParamValue = int | float | str
_PRICE_COLUMNS = ("open", "high", "low", "close")
_BAR_COLUMNS = (*_PRICE_COLUMNS, "volume")


# -- panel shocks ------------------------------------------------------------------------------------------------


def overnight_gap(panel: BarPanel, at: int, gap_pct: float = -10.0) -> BarPanel:
    """A permanent level shift that starts with a gap: every price from bar ``at`` on is scaled by
    ``f = 1 + gap_pct / 100``, and the gap bar opens at exactly ``f x`` the previous close.

    Per symbol the gap bar is its first bar at or after ``at`` (normally ``at`` itself); its open is set to
    ``f x`` the symbol's last close before ``at`` (so the original overnight move of that bar becomes part of its
    intraday move), and its high/low are widened to contain that open. Volume is unchanged. A symbol without
    any close before ``at`` only gets the level shift.
    """
    _check_window(panel, at, 1, "overnight_gap")
    if not gap_pct > -100.0:
        raise ValueError(f"overnight_gap: gap_pct must be above -100 so prices stay positive (got {gap_pct})")
    factor = 1.0 + gap_pct / 100.0
    arrays = _copies(panel)
    for name in _PRICE_COLUMNS:
        arrays[name][at:] *= factor
    previous_close = _last_valid_before(panel.close, at)
    gap_rows, has_bar = _first_valid_from(panel.close, at)
    columns = np.flatnonzero(has_bar & np.isfinite(previous_close))
    rows = gap_rows[columns]
    gap_open = factor * previous_close[columns]
    arrays["open"][rows, columns] = gap_open
    arrays["high"][rows, columns] = np.maximum(arrays["high"][rows, columns], gap_open)
    arrays["low"][rows, columns] = np.minimum(arrays["low"][rows, columns], gap_open)
    return _replace(panel, arrays)


def volatility_spike(panel: BarPanel, at: int, days: int = 20, factor: float = 3.0) -> BarPanel:
    """Rows ``[at, at + days)`` move ``factor`` times as much: each bar's close-to-close log return (from the
    symbol's last close) and the log distances of its open, high and low from its close are multiplied by
    ``factor``; closes are chained from the last unshocked close. Later bars are scaled by the ratio of shocked to
    original close at the window's end, so their returns are unchanged and the series stays continuous.
    """
    _check_window(panel, at, days, "volatility_spike")
    if not factor > 0.0:
        raise ValueError(f"volatility_spike: factor must be > 0 (got {factor})")
    returns, distances = _log_bars(panel, at, at + days)
    return _rechain(panel, at, at + days, factor * returns, {k: factor * v for k, v in distances.items()})


def correlation_to_one(panel: BarPanel, at: int, days: int = 20, vol_lookback_days: int = 60) -> BarPanel:
    """Rows ``[at, at + days)``: every symbol's close-to-close log return is replaced by the cross-sectional
    mean log return ``m_t`` times ``sigma_j / sigma_m``, so all pairwise correlations are 1 while each symbol
    keeps its own volatility level.

    ``sigma_j`` is the symbol's standard deviation of daily log returns over the ``vol_lookback_days`` bars
    before ``at``, ``sigma_m`` that of the cross-sectional mean over the same bars (a symbol without two trailing
    returns gets scale 1). Each bar keeps its shape: open, high and low keep their log distance from the close.
    Later bars are re-chained as in ``volatility_spike``.
    """
    _check_window(panel, at, days, "correlation_to_one")
    if vol_lookback_days < 2:
        raise ValueError(f"correlation_to_one: vol_lookback_days must be >= 2 (got {vol_lookback_days})")
    trailing, _ = _log_bars(panel, max(1, at - vol_lookback_days), at)
    common_vol = _nanstd(_nanmean_rows(trailing)[:, None])[0]
    if not (math.isfinite(common_vol) and common_vol > 0.0):
        raise ValueError(
            f"correlation_to_one: the market's trailing volatility before bar {at} is {common_vol} (need at least "
            "two bars of returns with some variation); choose a later `at` or a longer vol_lookback_days"
        )
    scale = _nanstd(trailing) / common_vol
    scale = np.where(np.isfinite(scale), scale, 1.0)
    returns, distances = _log_bars(panel, at, at + days)
    common = _nanmean_rows(returns)[:, None] * scale[None, :]
    return _rechain(panel, at, at + days, np.where(np.isnan(returns), np.nan, common), distances)


def liquidity_drought(panel: BarPanel, at: int, days: int = 20, volume_divisor: float = 5.0) -> BarPanel:
    """Volume of rows ``[at, at + days)`` divided by ``volume_divisor`` (not rounded); prices untouched.

    The venue's volume cap and the impact model react to it; the wider spread of a drought is a config change
    (``with_costs_scaled``), which ``run_scenarios`` applies for the ``liquidity_drought`` scenario.
    """
    _check_window(panel, at, days, "liquidity_drought")
    if not volume_divisor > 0.0:
        raise ValueError(f"liquidity_drought: volume_divisor must be > 0 (got {volume_divisor})")
    volume = np.array(panel.volume, dtype=np.float64, order="C")
    volume[at : at + days] /= volume_divisor
    return dataclasses.replace(panel, volume=volume)


def halt_symbol(panel: BarPanel, symbol: str, at: int, days: int = 5) -> BarPanel:
    """``symbol`` has no bar (all five columns NaN) in rows ``[at, at + days)``: nothing trades in it, working
    orders wait for the first bar after the halt, and it is valued at its last close meanwhile."""
    _check_window(panel, at, days, "halt_symbol")
    if symbol not in panel.symbols:
        raise ValueError(f"halt_symbol: unknown symbol {symbol!r}; the panel has {list(panel.symbols)[:10]}")
    j = panel.symbols.index(symbol)
    arrays = _copies(panel, _BAR_COLUMNS)
    for name in _BAR_COLUMNS:
        arrays[name][at : at + days, j] = np.nan
    return _replace(panel, arrays)


def with_costs_scaled(config: AppConfig, factor: float) -> AppConfig:
    """A copy of ``config`` whose slippage half-spread and impact coefficient are multiplied by ``factor``;
    validated like the file (raises ValueError). The costs apply to the whole run: the engine has no
    time-varying cost model."""
    if not factor >= 0.0:
        raise ValueError(f"cost factor must be >= 0 (got {factor})")
    slippage = config.costs.slippage
    raw = config.model_dump(mode="python")
    raw["costs"]["slippage"]["half_spread_bps"] = slippage.half_spread_bps * factor
    raw["costs"]["slippage"]["impact_coefficient_bps"] = slippage.impact_coefficient_bps * factor
    return AppConfig.model_validate(raw)


# -- historical windows --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StressWindow:
    """Bars ``[start_index, end_index]`` (inclusive); ``market_return`` is a fraction (-0.2 is -20 %)."""

    start_index: int
    end_index: int
    start_date: pd.Timestamp
    end_date: pd.Timestamp
    market_return: float


def equal_weight_market_returns(panel: BarPanel) -> np.ndarray:
    """Daily simple return of the equal-weight market: the mean of the symbols' close-to-close returns over the
    symbols with a close on both days (0.0 on the first bar and where no symbol has one)."""
    close = panel.close
    with np.errstate(invalid="ignore", divide="ignore"):
        returns = close[1:] / close[:-1] - 1.0
    market = np.zeros(len(close))
    market[1:] = np.nan_to_num(_nanmean_rows(returns), nan=0.0)
    return market


def historical_stress_windows(
    panel: BarPanel, window_days: int = 20, top_k: int = 3, min_separation_days: int = 60, *, from_index: int = 1
) -> list[StressWindow]:
    """The ``top_k`` worst windows of ``window_days`` bars by the equal-weight market's compounded return, worst
    first, picked greedily so that any two start at least ``max(window_days, min_separation_days)`` bars apart
    (never overlapping). Windows start at or after ``max(1, from_index)`` (pass the warm-up to keep them out of
    it). They are the worst windows whatever their sign: a calm history yields mild, even positive, ones.
    """
    if window_days < 1 or top_k < 1 or min_separation_days < 0:
        raise ValueError(
            f"need window_days >= 1, top_k >= 1, min_separation_days >= 0 (got {window_days}, {top_k}, "
            f"{min_separation_days})"
        )
    first = max(1, from_index)
    n_bars = len(panel.dates)
    if first + window_days > n_bars:
        log.info("event=no_stress_windows bars=%d window_days=%d from_index=%d", n_bars, window_days, first)
        return []
    growth = np.concatenate(([0.0], np.cumsum(np.log1p(equal_weight_market_returns(panel)))))
    starts = np.arange(first, n_bars - window_days + 1)
    window_log = growth[starts + window_days] - growth[starts]
    separation = max(window_days, min_separation_days)
    chosen: list[int] = []
    for k in np.argsort(window_log, kind="stable"):
        start = int(starts[k])
        if all(abs(start - other) >= separation for other in chosen):
            chosen.append(start)
            if len(chosen) == top_k:
                break
    return [
        StressWindow(
            start_index=s,
            end_index=s + window_days - 1,
            start_date=panel.dates[s],
            end_date=panel.dates[s + window_days - 1],
            market_return=float(np.expm1(growth[s + window_days] - growth[s])),
        )
        for s in chosen
    ]


# -- scenarios -----------------------------------------------------------------------------------------------------


def _check_window(panel: BarPanel, at: int, days: int, what: str) -> None:
    n_bars = len(panel.dates)
    if days < 1 or at < 1 or at + days > n_bars:
        raise ValueError(
            f"{what}: need at >= 1 (a previous close), days >= 1 and at + days <= {n_bars} bars (got at={at}, "
            f"days={days})"
        )


def _copies(panel: BarPanel, names: Sequence[str] = _PRICE_COLUMNS) -> dict[str, np.ndarray]:
    return {name: np.array(getattr(panel, name), dtype=np.float64, order="C") for name in names}


def _replace(panel: BarPanel, arrays: dict[str, np.ndarray]) -> BarPanel:
    return dataclasses.replace(panel, **arrays)


def _last_valid_before(values: np.ndarray, at: int) -> np.ndarray:
    """Per column, the last non-NaN value in rows ``< at`` (NaN if none)."""
    return _ffill(values[:at])[-1] if at > 0 else np.full(values.shape[1], np.nan)


def _first_valid_from(values: np.ndarray, at: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column, the first row ``>= at`` with a value, and whether there is one."""
    valid = ~np.isnan(values[at:])
    return at + np.argmax(valid, axis=0), valid.any(axis=0)


def _ffill(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    rows = np.where(valid, np.arange(len(values))[:, None], 0)
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = np.take_along_axis(values, rows, axis=0)
    return np.where(np.cumsum(valid, axis=0) > 0, filled, np.nan)


def _log_bars(panel: BarPanel, start: int, end: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Rows ``[start, end)``: log return of each close from the symbol's previous close (NaN where no bar or no
    earlier close), and the log distance of open, high and low from the bar's own close."""
    log_close = np.log(panel.close[:end])
    previous = _ffill(log_close)[start - 1 : end - 1]
    window = log_close[start:end]
    distances = {name: np.log(getattr(panel, name)[start:end]) - window for name in ("open", "high", "low")}
    return window - previous, distances


def _rechain(panel: BarPanel, at: int, end: int, returns: np.ndarray, distances: dict[str, np.ndarray]) -> BarPanel:
    """Rebuild rows ``[at, end)`` from new log returns and bar shapes, chained from the last close before ``at``;
    scale rows ``>= end`` by the shocked/original close ratio at the window's end. Symbols without a close before
    ``at`` are left as they are."""
    log_close = np.log(panel.close)
    anchor = _last_valid_before(log_close, at)
    chained = anchor[None, :] + np.cumsum(np.nan_to_num(returns, nan=0.0), axis=0)  # carried across missing bars
    anchored = np.isfinite(anchor)
    no_bar = np.isnan(panel.close[at:end])
    arrays = _copies(panel)
    new_close = np.where(no_bar, np.nan, chained)
    for name, distance in distances.items():
        window = np.exp(new_close + distance)
        arrays[name][at:end] = np.where(anchored, window, arrays[name][at:end])
    arrays["close"][at:end] = np.where(anchored, np.exp(new_close), arrays["close"][at:end])
    block = {name: arrays[name][at:end] for name in _PRICE_COLUMNS}
    arrays["high"][at:end] = np.fmax.reduce([block["high"], block["open"], block["close"]])
    arrays["low"][at:end] = np.fmin.reduce([block["low"], block["open"], block["close"]])
    ratio = np.where(anchored, np.exp(chained[-1] - _ffill(log_close[:end])[-1]), 1.0)
    for name in _PRICE_COLUMNS:
        arrays[name][end:] *= ratio
    return _replace(panel, arrays)


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    counts = valid.sum(axis=1)
    sums = np.where(valid, values, 0.0).sum(axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _nanstd(values: np.ndarray) -> np.ndarray:
    """Per column sample standard deviation (ddof 1) over non-NaN rows; NaN with fewer than two values."""
    valid = ~np.isnan(values)
    counts = valid.sum(axis=0)
    means = np.where(valid, values, 0.0).sum(axis=0) / np.maximum(counts, 1)
    squares = np.where(valid, (values - means) ** 2, 0.0).sum(axis=0)
    return np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)
