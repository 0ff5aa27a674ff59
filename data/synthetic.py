"""A deterministic synthetic equity market: realistic-looking daily OHLCV for any number of symbols.

Used by the demo, tests and benchmarks where real data is too small or must not be shipped. The model is
deliberately simple but has the features that break naive trading code:

- a one-factor structure: each symbol's return is ``beta_i * market + idiosyncratic``, so returns are
  cross-correlated (diversification is imperfect);
- GARCH(1,1) variance on both the market and each idiosyncratic component, so volatility clusters;
- an overnight return between the previous close and the open, with occasional large gaps (earnings, news);
- an intraday range around open and close, volume that rises with the size of the move;
- sessions, holidays and half days from the exchange calendar; prices on the cent grid.

Determinism: the market factor is drawn from ``seed``; each symbol's own parameters and shocks are drawn
from a stream keyed by ``(seed, symbol name)``, so a symbol's idiosyncratic path does not depend on which
other symbols were requested. The whole cross-section is then simulated together with array operations.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.bar_guard import BAR_COLUMNS
from data.calendar import TradingCalendar
from data.panel import BarPanel

log = logging.getLogger(__name__)

TRADING_DAYS_PER_YEAR = 252
_MIN_PRICE = 0.01


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticMarketParams:
    """Knobs of the synthetic market; annual figures are converted with 252 sessions a year.

    Volatility is split into a market share ``market_weight`` of the variance (before betas) and an
    idiosyncratic rest, each following GARCH(1,1) around its long-run level with ``garch_alpha`` (reaction to
    yesterday's shock) and ``garch_beta`` (persistence); ``garch_alpha + garch_beta < 1`` keeps it stationary.
    """

    start_price_min: float = 10.0
    start_price_max: float = 200.0
    annual_drift: float = 0.07
    base_annual_vol: float = 0.30
    vol_dispersion: float = 0.3  # lognormal sigma of each symbol's vol around base_annual_vol
    garch_alpha: float = 0.08
    garch_beta: float = 0.90
    market_weight: float = 0.35  # share of a beta-1 symbol's variance that comes from the market factor
    beta_min: float = 0.6
    beta_max: float = 1.4
    overnight_var_share: float = 0.25  # share of the daily variance realised between close and next open
    gap_probability: float = 0.01  # per symbol and session
    gap_scale: float = 0.05  # standard deviation of a gap's log return
    intraday_range_scale: float = 0.6  # extension of high/low beyond open/close, in intraday sigmas
    volume_level: float = 1_000_000.0  # median daily shares of a typical symbol
    volume_dispersion: float = 1.0  # lognormal sigma of the volume level across symbols
    volume_return_link: float = 0.5  # volume multiplier per intraday sigma of |return|
    volume_noise: float = 0.3  # lognormal sigma of day-to-day volume noise

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.start_price_min <= self.start_price_max:
            problems.append(
                f"need 0 < start_price_min <= start_price_max (got {self.start_price_min}, {self.start_price_max})"
            )
        if self.base_annual_vol <= 0:
            problems.append(f"base_annual_vol must be > 0 (got {self.base_annual_vol})")
        if self.garch_alpha < 0 or self.garch_beta < 0 or self.garch_alpha + self.garch_beta >= 1:
            problems.append(
                f"need garch_alpha, garch_beta >= 0 and alpha + beta < 1 (got {self.garch_alpha}, {self.garch_beta})"
            )
        if not 0 <= self.market_weight <= 1:
            problems.append(f"market_weight must be in [0, 1] (got {self.market_weight})")
        if not self.beta_min <= self.beta_max:
            problems.append(f"need beta_min <= beta_max (got {self.beta_min}, {self.beta_max})")
        if not 0 <= self.overnight_var_share < 1:
            problems.append(f"overnight_var_share must be in [0, 1) (got {self.overnight_var_share})")
        if not 0 <= self.gap_probability <= 1 or self.gap_scale < 0:
            problems.append(
                f"need gap_probability in [0, 1] and gap_scale >= 0 (got {self.gap_probability}, {self.gap_scale})"
            )
        if self.volume_level < 1 or min(self.vol_dispersion, self.volume_dispersion, self.volume_noise) < 0:
            problems.append("need volume_level >= 1 and non-negative dispersions/noise")
        if self.intraday_range_scale < 0 or self.volume_return_link < 0:
            problems.append("need intraday_range_scale >= 0 and volume_return_link >= 0")
        if problems:
            raise ValueError("invalid SyntheticMarketParams: " + "; ".join(problems))


def generate_market(
    symbols: Sequence[str] | int,
    start: str,
    end: str,
    seed: int,
    calendar: TradingCalendar,
    params: SyntheticMarketParams | None = None,
) -> dict[str, pd.DataFrame]:
    """Bar frames for ``symbols`` (or ``SYM000``.. when an int) on the sessions of ``calendar`` in [start, end].

    The same arguments always give identical frames; every frame passes ``guard_frame`` with nothing
    quarantined (positive cent prices, low <= open, close <= high, whole positive volumes).
    """
    params = params or SyntheticMarketParams()
    names = _symbol_names(symbols)
    dates = calendar.sessions(start, end)
    if len(dates) == 0:
        raise ValueError(f"no {calendar.name} sessions between {start} and {end}")
    bars = _simulate(names, len(dates), seed, params)
    frames = {
        name: pd.DataFrame({c: bars[c][:, j] for c in BAR_COLUMNS}, index=dates.copy()) for j, name in enumerate(names)
    }
    log.info("event=synthetic_market symbols=%d sessions=%d seed=%d", len(names), len(dates), seed)
    return frames


def generate_panel(
    symbols: Sequence[str] | int,
    start: str,
    end: str,
    seed: int,
    calendar: TradingCalendar,
    params: SyntheticMarketParams | None = None,
) -> BarPanel:
    """``generate_market`` aligned into a ``BarPanel`` (all symbols share every session, so no NaN)."""
    return BarPanel.from_frames(generate_market(symbols, start, end, seed, calendar, params), calendar)


def _symbol_names(symbols: Sequence[str] | int) -> list[str]:
    if isinstance(symbols, int):
        if symbols < 1:
            raise ValueError(f"need at least one symbol (got {symbols})")
        return [f"SYM{i:03d}" for i in range(symbols)]
    names = list(symbols)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"symbols must be a non-empty list of distinct names (got {names})")
    return names


def _symbol_rng(seed: int, symbol: str) -> np.random.Generator:
    """A stream that depends only on (seed, symbol), stable across runs and Python versions."""
    key = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))


def _simulate(names: list[str], n_days: int, seed: int, p: SyntheticMarketParams) -> dict[str, np.ndarray]:
    """Simulate all symbols at once; returns (T, N) arrays keyed by bar column."""
    n = len(names)
    market_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x4D4B54])))
    market_z = market_rng.standard_normal((2, n_days))  # overnight, intraday
    # Per-symbol parameters and shocks; each symbol draws its own block, in a fixed order.
    start_price, beta, vol, volume_level = (np.empty(n) for _ in range(4))
    idio_z = np.empty((2, n_days, n))
    gap_u = np.empty((n_days, n))
    gap_z = np.empty((n_days, n))
    range_z = np.empty((2, n_days, n))
    volume_z = np.empty((n_days, n))
    log_lo, log_hi = np.log(p.start_price_min), np.log(p.start_price_max)
    for j, name in enumerate(names):
        rng = _symbol_rng(seed, name)
        start_price[j] = np.exp(rng.uniform(log_lo, log_hi))
        beta[j] = rng.uniform(p.beta_min, p.beta_max)
        vol[j] = p.base_annual_vol * np.exp(p.vol_dispersion * rng.standard_normal() - 0.5 * p.vol_dispersion**2)
        volume_level[j] = p.volume_level * np.exp(p.volume_dispersion * rng.standard_normal())
        idio_z[:, :, j] = rng.standard_normal((2, n_days))
        gap_u[:, j] = rng.random(n_days)
        gap_z[:, j] = rng.standard_normal(n_days)
        range_z[:, :, j] = np.abs(rng.standard_normal((2, n_days)))
        volume_z[:, j] = rng.standard_normal(n_days)

    daily_vol = vol / np.sqrt(TRADING_DAYS_PER_YEAR)
    market_var = p.market_weight * (p.base_annual_vol / np.sqrt(TRADING_DAYS_PER_YEAR)) ** 2
    idio_var = np.maximum(daily_vol**2 - beta**2 * market_var, 0.1 * daily_vol**2)
    q = p.overnight_var_share
    market_shock = np.sqrt(q) * market_z[0], np.sqrt(1 - q) * market_z[1]
    idio_shock = np.sqrt(q) * idio_z[0], np.sqrt(1 - q) * idio_z[1]
    market_sd = _garch_sd(market_shock[0] + market_shock[1], np.array([market_var]), p)[:, 0]
    idio_sd = _garch_sd(idio_shock[0] + idio_shock[1], idio_var, p)

    total_sd = np.sqrt((beta * market_sd[:, None]) ** 2 + idio_sd**2)
    drift = np.log1p(p.annual_drift) / TRADING_DAYS_PER_YEAR - 0.5 * daily_vol**2
    gaps = np.where(gap_u < p.gap_probability, p.gap_scale * gap_z, 0.0)
    overnight = q * drift + beta * market_sd[:, None] * market_shock[0][:, None] + idio_sd * idio_shock[0] + gaps
    intraday = (1 - q) * drift + beta * market_sd[:, None] * market_shock[1][:, None] + idio_sd * idio_shock[1]

    log_close = np.log(start_price) + np.cumsum(overnight + intraday, axis=0)
    prev_log_close = np.vstack([np.log(start_price)[None, :], log_close[:-1]])
    open_ = _cents(np.exp(prev_log_close + overnight))
    close = _cents(np.exp(log_close))
    intraday_sd = np.sqrt(1 - q) * total_sd
    extension = p.intraday_range_scale * intraday_sd
    # open and close are already on the cent grid, so these also hold exactly after rounding.
    high = np.maximum.reduce([_cents(np.maximum(open_, close) * np.exp(extension * range_z[0])), open_, close])
    low = np.minimum.reduce([_cents(np.minimum(open_, close) * np.exp(-extension * range_z[1])), open_, close])

    move = np.abs(overnight + intraday) / total_sd
    volume = (
        volume_level * (1.0 + p.volume_return_link * move) * np.exp(p.volume_noise * volume_z - 0.5 * p.volume_noise**2)
    )
    volume = np.maximum(np.rint(volume), 1.0)
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _garch_sd(shocks: np.ndarray, long_run_var: np.ndarray, p: SyntheticMarketParams) -> np.ndarray:
    """Conditional standard deviations of GARCH(1,1) driven by unit-variance ``shocks`` (T, N).

    h_t = omega + alpha * e_{t-1}^2 + beta * h_{t-1}, e_t = sqrt(h_t) * z_t, started at the long-run variance.
    """
    shocks = shocks.reshape(len(shocks), -1)
    omega = long_run_var * (1.0 - p.garch_alpha - p.garch_beta)
    var = np.empty_like(shocks)
    h = np.broadcast_to(long_run_var, shocks.shape[1:]).astype(np.float64)
    for t in range(len(shocks)):
        var[t] = h
        h = omega + (p.garch_alpha * shocks[t] ** 2 + p.garch_beta) * h
    return np.sqrt(var)


def _cents(prices: np.ndarray) -> np.ndarray:
    """Round to the cent grid, never below one cent (a price of 0.00 is not a price)."""
    return np.maximum(np.round(prices, 2), _MIN_PRICE)
