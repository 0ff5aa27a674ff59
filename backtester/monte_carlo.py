"""Monte Carlo resampling of a backtest: how wide is the range of outcomes the same edge could have produced?

One backtest is one path. Resampling its returns gives the distribution of final equity, CAGR and maximum
drawdown the strategy's return process implies, and how likely a drawdown kill switch is to fire. Two resamplers:

- **Trade bootstrap**: closed-trade returns drawn iid with replacement (Efron 1979). Keeps the distribution of
  trade outcomes, destroys any ordering (streaks); each trade's return is compounded on the whole account, so
  pass returns on account equity (P&L / equity at entry), not on the position. Drawdowns are measured from trade
  to trade and so understate intra-trade drawdowns.
- **Stationary block bootstrap** of daily returns (Politis & Romano 1994, "The Stationary Bootstrap", JASA
  89(428)): blocks start at uniform random days and have geometric lengths with mean ``mean_block``, wrapping
  circularly past the last day. Blocks keep volatility clustering and serial dependence up to roughly the block
  length; the random lengths make the resampled series stationary, and the circular wrap gives every day the
  same chance to appear (so the resampled mean is unbiased).

Conventions: returns are simple per-period fractions; returns below -100 % are clipped to -100 % (ruin: equity
stays at 0). Drawdowns and CAGR are fractions (0.25 = 25 %); ``kill_drawdown_pct`` is a percent (25 = 25 %), as
in the config. Everything is seeded: the same arguments and seed give bit-identical results. Paths are generated
in chunks of about ``CHUNK_CELLS`` path-days, so 10,000 paths of 2,520 days need ~200 MB, most of it the float32
per-day equity kept for the fan chart.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)
PERCENTILE_KEYS: tuple[str, ...] = tuple(f"p{q}" for q in PERCENTILES)
CHUNK_CELLS = 1_000_000  # path-days (or path-trades) generated at once: ~40 MB of temporaries
_FAN_COLUMNS_PER_CHUNK = 256  # days whose cross-path percentiles are computed at once (copies 10 MB at 10k paths)


@dataclass(frozen=True, slots=True, kw_only=True)
class Percentiles:
    """The 5th, 25th, 50th, 75th and 95th percentiles of one quantity across paths (linear interpolation)."""

    p5: float
    p25: float
    p50: float
    p75: float
    p95: float

    @classmethod
    def of(cls, values: np.ndarray) -> Percentiles:
        return cls(**dict(zip(PERCENTILE_KEYS, (float(v) for v in np.percentile(values, PERCENTILES)), strict=True)))

    def to_dict(self) -> dict[str, float]:
        return {key: getattr(self, key) for key in PERCENTILE_KEYS}


@dataclass(frozen=True, slots=True, kw_only=True)
class PathSummary:
    """Outcome distribution of one resampling method; ``path_length`` counts days or trades."""

    method: str
    path_length: int
    final_equity: Percentiles
    cagr: Percentiles
    max_drawdown: Percentiles
    kill_probability: float

    def to_dict(self) -> dict[str, object]:
        return {"method": self.method, "path_length": self.path_length, "final_equity": self.final_equity.to_dict(),
                "cagr": self.cagr.to_dict(), "max_drawdown": self.max_drawdown.to_dict(),
                "kill_probability": self.kill_probability}


@dataclass(frozen=True, slots=True, kw_only=True)
class FanChart:
    """Per-step cross-path percentiles of equity; step 0 is the initial equity. A step is a session for the block
    bootstrap (``fan_chart``) and a round trip for the trade bootstrap (``trade_fan_chart``)."""

    day: tuple[int, ...]
    p5: tuple[float, ...]
    p25: tuple[float, ...]
    p50: tuple[float, ...]
    p75: tuple[float, ...]
    p95: tuple[float, ...]

    def to_frame(self) -> pd.DataFrame:
        """Columns p5..p95 indexed by step number (the name "day" is kept for both kinds of step)."""
        data = {key: list(getattr(self, key)) for key in PERCENTILE_KEYS}
        return pd.DataFrame(data, index=pd.Index(list(self.day), name="day"))

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {"day": list(self.day), **{key: list(getattr(self, key)) for key in PERCENTILE_KEYS}}


@dataclass(frozen=True, slots=True, kw_only=True)
class MonteCarloResult:
    """Inputs that determine the run and the outcome per method. ``trade_bootstrap`` is None without trades."""

    seed: int
    n_paths: int
    n_days: int
    n_trades: int
    mean_block: float
    initial_equity: float
    kill_drawdown_pct: float
    periods_per_year: int
    block_bootstrap: PathSummary
    trade_bootstrap: PathSummary | None
    fan_chart: FanChart
    trade_fan_chart: FanChart | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain dict of Python ints, floats, strings and lists: ``json.dumps`` works on it as is."""
        return {
            "seed": self.seed, "n_paths": self.n_paths, "n_days": self.n_days, "n_trades": self.n_trades,
            "mean_block": self.mean_block, "initial_equity": self.initial_equity,
            "kill_drawdown_pct": self.kill_drawdown_pct, "periods_per_year": self.periods_per_year,
            "block_bootstrap": self.block_bootstrap.to_dict(),
            "trade_bootstrap": None if self.trade_bootstrap is None else self.trade_bootstrap.to_dict(),
            "fan_chart": self.fan_chart.to_dict(),
            "trade_fan_chart": None if self.trade_fan_chart is None else self.trade_fan_chart.to_dict(),
        }


MC_METHODS = (
    ("block_bootstrap", "block bootstrap", "resamples daily returns in blocks (keeps volatility clustering)"),
    ("trade_bootstrap", "trade bootstrap", "resamples round trips, each as P&L over account equity at its entry, "
                                           "taken one after the other"),
)
"""(summary key, name, what the method assumes): how the console and the report describe each method."""


def account_trade_returns(trades: pd.DataFrame, equity: pd.Series, initial_equity: float) -> np.ndarray:
    """Each round trip's P&L (commissions included) as a fraction of the account's equity when it was entered.

    Why not the trade's return on its own position: the trade bootstrap compounds these fractions into account
    equity paths, and a +10 % trade on a position worth a tenth of the account moves the account by about +1 %, not
    +10 % (compounding position returns gave a median drawdown of 95 % for a run whose real drawdown was 20 %).
    Equity at entry is the last session close before the entry date (what the sizing saw), else ``initial_equity``.
    Trades that overlap in time are each measured against that equity, so the bootstrap treats them as sequential
    bets; the console and the report say so.
    """
    if trades.empty:
        return np.zeros(0)
    closes = equity.sort_index()
    positions = closes.index.searchsorted(pd.DatetimeIndex(trades["entry_date"]), side="left") - 1
    before = np.where(positions >= 0, closes.to_numpy(dtype=float)[np.maximum(positions, 0)], initial_equity)
    if not (np.isfinite(before).all() and (before > 0).all()):
        raise ValueError("account equity before a trade's entry must be a positive number")
    return trades["pnl"].to_numpy(dtype=float) / before


def bootstrap_trade_returns(
    trade_returns: np.ndarray, n_trades_per_path: int, n_paths: int, rng: np.random.Generator,
) -> np.ndarray:
    """``n_paths`` x ``n_trades_per_path`` trade returns drawn iid with replacement from ``trade_returns``."""
    values = _finite_1d(trade_returns, "trade_returns", minimum=1)
    _require_positive(n_trades_per_path=n_trades_per_path, n_paths=n_paths)
    return values[rng.integers(0, len(values), size=(n_paths, n_trades_per_path))]


def trade_paths_equity(trade_return_paths: np.ndarray, initial_equity: float) -> np.ndarray:
    """Compound each row of trade returns from ``initial_equity``: paths x (trades + 1), column 0 the start."""
    if not initial_equity > 0:
        raise ValueError(f"initial_equity must be > 0; got {initial_equity}")
    return _equity_paths(np.atleast_2d(np.asarray(trade_return_paths, dtype=float)), initial_equity)


def stationary_block_bootstrap(
    daily_returns: np.ndarray, n_paths: int, length: int, mean_block: float, rng: np.random.Generator,
) -> np.ndarray:
    """``n_paths`` x ``length`` resampled returns by the stationary bootstrap (Politis & Romano 1994).

    Built in chunks of about ``CHUNK_CELLS`` path-days so the temporaries stay small; the output itself is
    n_paths x length float64 (200 MB for 10,000 x 2,520). ``mean_block`` is the mean block length in days (>= 1;
    1 is the iid bootstrap).
    """
    values = _finite_1d(daily_returns, "daily_returns", minimum=1)
    _require_positive(n_paths=n_paths, length=length)
    _check_mean_block(mean_block)
    out = np.empty((n_paths, length))
    for rows in _chunks(n_paths, length):
        out[rows] = values[_block_indices(len(values), rows.stop - rows.start, length, mean_block, rng)]
    return out


def simulate(
    daily_returns: np.ndarray,
    trade_returns: np.ndarray,
    initial_equity: float,
    n_paths: int,
    mean_block: float,
    seed: int,
    kill_drawdown_pct: float,
    periods_per_year: int = 252,
) -> MonteCarloResult:
    """Resample the backtest both ways and summarise the outcomes.

    Block-bootstrap paths are as long as ``daily_returns``; trade-bootstrap paths hold as many trades as
    ``trade_returns`` and are taken to span the same time, so both CAGRs use len(daily_returns) /
    ``periods_per_year`` years. The two methods draw from independent streams spawned from ``seed``, so adding or
    removing trades does not change the block-bootstrap numbers. An empty ``trade_returns`` gives
    ``trade_bootstrap=None``. The kill probability is the fraction of paths whose drawdown from the running peak
    reaches ``kill_drawdown_pct`` at any point.
    """
    days = _finite_1d(daily_returns, "daily_returns", minimum=2)
    trades = _finite_1d(trade_returns, "trade_returns", minimum=0)
    _require_positive(n_paths=n_paths, periods_per_year=periods_per_year)
    _check_mean_block(mean_block)
    if not initial_equity > 0:
        raise ValueError(f"initial_equity must be > 0; got {initial_equity}")
    if not 0 < kill_drawdown_pct <= 100:
        raise ValueError(f"kill_drawdown_pct is a percent in (0, 100]; got {kill_drawdown_pct}")
    block_rng, trade_rng = (np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(2))
    years = len(days) / periods_per_year
    kill_fraction = kill_drawdown_pct / 100.0

    fan = np.empty((n_paths, len(days) + 1), dtype=np.float32)
    final, drawdown = np.empty(n_paths), np.empty(n_paths)
    for rows in _chunks(n_paths, len(days)):
        sample = days[_block_indices(len(days), rows.stop - rows.start, len(days), mean_block, block_rng)]
        equity = _equity_paths(sample, initial_equity)
        fan[rows] = equity
        final[rows], drawdown[rows] = equity[:, -1], _max_drawdown(equity)
    block = _summary("stationary_block_bootstrap", len(days), final, drawdown, initial_equity, years, kill_fraction)
    fan_chart = _fan_chart(fan)
    del fan

    trade, trade_fan = _trade_bootstrap(trades, n_paths, initial_equity, trade_rng, years, kill_fraction)
    log.info("event=monte_carlo_done seed=%d n_paths=%d n_days=%d n_trades=%d block_kill_probability=%.4f",
             seed, n_paths, len(days), len(trades), block.kill_probability)
    return MonteCarloResult(
        seed=int(seed), n_paths=int(n_paths), n_days=len(days), n_trades=len(trades), mean_block=float(mean_block),
        initial_equity=float(initial_equity), kill_drawdown_pct=float(kill_drawdown_pct),
        periods_per_year=int(periods_per_year), block_bootstrap=block, trade_bootstrap=trade, fan_chart=fan_chart,
        trade_fan_chart=trade_fan,
    )


def _trade_bootstrap(trades: np.ndarray, n_paths: int, initial_equity: float, rng: np.random.Generator,
                     years: float, kill_fraction: float) -> tuple[PathSummary | None, FanChart | None]:
    """The trade bootstrap's summary and its per-trade fan (None, None without trades)."""
    if not len(trades):
        return None, None
    final, drawdown = np.empty(n_paths), np.empty(n_paths)
    fan = np.empty((n_paths, len(trades) + 1), dtype=np.float32)
    for rows in _chunks(n_paths, len(trades)):
        equity = _equity_paths(bootstrap_trade_returns(trades, len(trades), rows.stop - rows.start, rng),
                               initial_equity)
        fan[rows] = equity
        final[rows], drawdown[rows] = equity[:, -1], _max_drawdown(equity)
    summary = _summary("trade_bootstrap", len(trades), final, drawdown, initial_equity, years, kill_fraction)
    return summary, _fan_chart(fan)


# --- helpers -----------------------------------------------------------------------------------------------------


def _block_indices(n: int, n_paths: int, length: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """Source-day indices of stationary-bootstrap paths, built without a Python loop over days.

    Each day starts a new block with probability 1 / mean_block (day 0 always does), which makes block lengths
    geometric with that mean; a new block starts at a uniform random day. Day t then reads
    (start of its block + days since the block began) mod n, the mod being the circular wrap.
    """
    new_block = rng.random((n_paths, length)) < 1.0 / mean_block
    new_block[:, 0] = True
    steps = np.arange(length)
    block_began = np.where(new_block, steps, 0)
    np.maximum.accumulate(block_began, axis=1, out=block_began)
    block_start = np.zeros((n_paths, length), dtype=np.int64)
    block_start[new_block] = rng.integers(0, n, size=int(new_block.sum()))
    origin = np.take_along_axis(block_start, block_began, axis=1)
    origin += steps - block_began
    origin %= n
    return origin


def _equity_paths(returns: np.ndarray, initial_equity: float) -> np.ndarray:
    """Equity after each period, with the initial equity as column 0; returns below -100 % mean ruin."""
    equity = np.empty((returns.shape[0], returns.shape[1] + 1))
    equity[:, 0] = initial_equity
    np.cumprod(1.0 + np.maximum(returns, -1.0), axis=1, out=equity[:, 1:])
    equity[:, 1:] *= initial_equity
    return equity


def _max_drawdown(equity: np.ndarray) -> np.ndarray:
    """Largest fractional fall from the running peak on each row (0 for a path that never falls)."""
    peak = np.maximum.accumulate(equity, axis=1)
    return np.max(1.0 - equity / peak, axis=1)


def _summary(method: str, path_length: int, final: np.ndarray, drawdown: np.ndarray, initial_equity: float,
             years: float, kill_fraction: float) -> PathSummary:
    cagr = (final / initial_equity) ** (1.0 / years) - 1.0
    return PathSummary(
        method=method,
        path_length=path_length,
        final_equity=Percentiles.of(final),
        cagr=Percentiles.of(cagr),
        max_drawdown=Percentiles.of(drawdown),
        kill_probability=float(np.mean(drawdown >= kill_fraction)),
    )


def _fan_chart(equity: np.ndarray) -> FanChart:
    """Cross-path percentiles per day, a slice of days at a time so the copy ``np.percentile`` makes stays small."""
    columns = [np.percentile(equity[:, lo:lo + _FAN_COLUMNS_PER_CHUNK], PERCENTILES, axis=0)
               for lo in range(0, equity.shape[1], _FAN_COLUMNS_PER_CHUNK)]
    table = np.concatenate(columns, axis=1).astype(float)
    bands = {key: tuple(float(v) for v in row) for key, row in zip(PERCENTILE_KEYS, table, strict=True)}
    return FanChart(day=tuple(range(equity.shape[1])), **bands)


def _chunks(n_paths: int, length: int) -> Iterator[slice]:
    step = max(1, CHUNK_CELLS // max(1, length))
    for start in range(0, n_paths, step):
        yield slice(start, min(start + step, n_paths))


def _finite_1d(values: np.ndarray, name: str, minimum: int) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or len(array) < minimum:
        raise ValueError(f"{name} must be a 1-D array of at least {minimum} returns; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; found {int(np.sum(~np.isfinite(array)))} nan/inf values")
    return array


def _require_positive(**counts: int) -> None:
    for name, value in counts.items():
        if not (isinstance(value, int | np.integer) and value >= 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _check_mean_block(mean_block: float) -> None:
    if not (math.isfinite(mean_block) and mean_block >= 1.0):
        raise ValueError(f"mean_block is a mean block length in days and must be >= 1; got {mean_block}")
