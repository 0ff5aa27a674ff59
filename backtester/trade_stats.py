"""Trade and benchmark statistics of the tear sheet, defined as backtesting.py's ``compute_stats`` defines them.

``backtester.performance.compute_metrics`` keeps the portfolio metrics (tested against empyrical and quantstats);
this module adds what a trader reads beside them: best, worst and average trade, trade durations, expectancy, SQN,
the Kelly fraction, exposure time, and alpha and beta against a benchmark. Units follow the repo's rule: ``_pct``
keys are percents (2.5 = 2.5 %), everything else is a fraction or a count. Undefined values are nan, never raise.

Definitions (backtesting.py's, so the numbers can be compared with a run there):

- ``avg_trade_pct``: geometric mean of the trades' returns; ``expectancy_pct``: their arithmetic mean.
- ``sqn``: Van Tharp's system quality number, sqrt(n) * mean(P&L) / std(P&L) (sample std).
- ``kelly``: win rate - (1 - win rate) / (mean win / mean loss), both in money.
- ``beta``: covariance of the strategy's and the benchmark's daily log returns over the benchmark's variance
  (sample moments); ``alpha``: Jensen's alpha over the whole period, total return - rf - beta * (benchmark total
  return - rf), with ``risk_free_return`` the period's risk-free return as a fraction.
- ``exposure_time``: fraction of sessions that closed with a position (gross exposure > 0), where ``gross_exposure``
  is given, else with a round trip open (entry <= session < exit).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

TRADE_STAT_KEYS: tuple[str, ...] = (
    "best_trade_pct", "worst_trade_pct", "avg_trade_pct", "expectancy_pct", "avg_trade_sessions",
    "max_trade_sessions", "avg_trade_days", "max_trade_days", "sqn", "kelly", "exposure_time",
    "benchmark_return", "alpha", "beta",
)
_NAN = float("nan")


def trade_statistics(
    trades: pd.DataFrame,
    equity: pd.Series,
    *,
    benchmark: pd.Series | None = None,
    gross_exposure: pd.Series | None = None,
    risk_free_return: float = 0.0,
) -> dict[str, float]:
    """All of ``TRADE_STAT_KEYS`` for one run: ``trades`` as ``round_trips_from_fills`` makes them (``return_pct``,
    ``pnl``, ``bars_held``, ``entry_date``, ``exit_date``), ``equity`` at each session close, ``benchmark`` a price
    or equity series (any scale) over the same sessions."""
    eq = pd.Series(equity, dtype=float).dropna().sort_index()
    stats = {**_trade_returns(trades), **_durations(trades), **_sqn_kelly(trades),
             "exposure_time": _exposure_time(eq, trades, gross_exposure),
             **_alpha_beta(eq, benchmark, risk_free_return)}  # fmt: skip
    return {key: stats[key] for key in TRADE_STAT_KEYS}


def geometric_mean(returns: np.ndarray) -> float:
    """Per-trade geometric mean of simple returns (fractions); nan when empty, -1 when any trade lost everything."""
    growth = 1.0 + np.asarray(returns, dtype=float)
    growth = growth[np.isfinite(growth)]
    if growth.size == 0:
        return _NAN
    if np.any(growth <= 0):
        return -1.0
    return float(np.exp(np.mean(np.log(growth))) - 1.0)


def _column(trades: pd.DataFrame, name: str) -> np.ndarray:
    if trades.empty or name not in trades:
        return np.zeros(0)
    values = pd.to_numeric(trades[name], errors="coerce").to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _trade_returns(trades: pd.DataFrame) -> dict[str, float]:
    returns_pct = _column(trades, "return_pct")
    if returns_pct.size == 0:
        return {"best_trade_pct": _NAN, "worst_trade_pct": _NAN, "avg_trade_pct": _NAN, "expectancy_pct": _NAN}
    return {
        "best_trade_pct": float(returns_pct.max()),
        "worst_trade_pct": float(returns_pct.min()),
        "avg_trade_pct": geometric_mean(returns_pct / 100.0) * 100.0,
        "expectancy_pct": float(returns_pct.mean()),
    }


def _durations(trades: pd.DataFrame) -> dict[str, float]:
    sessions = _column(trades, "bars_held")
    if trades.empty or not {"entry_date", "exit_date"} <= set(trades.columns):
        days = np.zeros(0)
    else:
        span = pd.to_datetime(trades["exit_date"]) - pd.to_datetime(trades["entry_date"])
        days = (span.dt.total_seconds() / 86_400.0).dropna().to_numpy(dtype=float)
    return {
        "avg_trade_sessions": float(sessions.mean()) if sessions.size else _NAN,
        "max_trade_sessions": float(sessions.max()) if sessions.size else _NAN,
        "avg_trade_days": float(days.mean()) if days.size else _NAN,
        "max_trade_days": float(days.max()) if days.size else _NAN,
    }


def _sqn_kelly(trades: pd.DataFrame) -> dict[str, float]:
    pnl = _column(trades, "pnl")
    sqn = _NAN
    if pnl.size >= 2:
        std = float(np.std(pnl, ddof=1))
        sqn = math.sqrt(pnl.size) * float(pnl.mean()) / std if std > 0 else _NAN
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    kelly = _NAN
    if wins.size and losses.size:
        win_rate = wins.size / pnl.size
        kelly = win_rate - (1.0 - win_rate) / (float(wins.mean()) / float(-losses.mean()))
    return {"sqn": sqn, "kelly": kelly}


def _exposure_time(eq: pd.Series, trades: pd.DataFrame, gross_exposure: pd.Series | None) -> float:
    if eq.empty:
        return _NAN
    if gross_exposure is not None:
        gross = pd.Series(gross_exposure, dtype=float).reindex(eq.index).fillna(0.0)
        return float(np.mean(gross.abs().to_numpy() > 0))
    if trades.empty:
        return 0.0
    starts = eq.index.searchsorted(pd.DatetimeIndex(trades["entry_date"]), side="left")
    ends = eq.index.searchsorted(pd.DatetimeIndex(trades["exit_date"]), side="left")
    open_count = np.zeros(len(eq) + 1, dtype=np.int64)
    np.add.at(open_count, starts, 1)
    np.add.at(open_count, ends, -1)
    return float(np.mean(np.cumsum(open_count)[:-1] > 0))


def _alpha_beta(eq: pd.Series, benchmark: pd.Series | None, risk_free_return: float) -> dict[str, float]:
    none = {"benchmark_return": _NAN, "alpha": _NAN, "beta": _NAN}
    if benchmark is None or len(eq) < 3:
        return none
    bench = pd.Series(benchmark, dtype=float).reindex(eq.index).ffill()
    both = pd.DataFrame({"strategy": eq, "benchmark": bench}).dropna()
    both = both[(both > 0).all(axis=1)]
    if len(both) < 3:
        return none
    logs = np.log(both).diff().dropna()
    bench_var = float(np.var(logs["benchmark"], ddof=1))
    beta = float(np.cov(logs["strategy"], logs["benchmark"], ddof=1)[0, 1]) / bench_var if bench_var > 0 else _NAN
    total = float(both["strategy"].iloc[-1] / both["strategy"].iloc[0] - 1.0)
    bench_total = float(both["benchmark"].iloc[-1] / both["benchmark"].iloc[0] - 1.0)
    alpha = total - risk_free_return - beta * (bench_total - risk_free_return) if math.isfinite(beta) else _NAN
    return {"benchmark_return": bench_total, "alpha": alpha, "beta": beta}
