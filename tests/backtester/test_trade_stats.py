"""Trade statistics of the tear sheet against values worked out by hand (backtesting.py's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backtester.trade_stats import TRADE_STAT_KEYS, geometric_mean, trade_statistics


def _trades() -> pd.DataFrame:
    """Four round trips: +100, -50, +200, -25 in money; +10 %, -5 %, +20 %, -2.5 % on their positions."""
    return pd.DataFrame({
        "symbol": ["A", "B", "A", "B"],
        "entry_date": pd.to_datetime(["2024-01-02", "2024-01-08", "2024-01-10", "2024-01-22"]),
        "exit_date": pd.to_datetime(["2024-01-06", "2024-01-09", "2024-01-17", "2024-01-24"]),
        "quantity": [10, 5, 10, -5],
        "pnl": [100.0, -50.0, 200.0, -25.0],
        "return_pct": [10.0, -5.0, 20.0, -2.5],
        "bars_held": [3, 1, 5, 2],
    })


def _equity(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.bdate_range("2024-01-02", periods=len(values)), dtype=float)


def test_trade_returns_durations_sqn_and_kelly_by_hand() -> None:
    stats = trade_statistics(_trades(), _equity([100.0, 110.0, 99.0, 121.0]))
    assert list(stats) == list(TRADE_STAT_KEYS)
    assert stats["best_trade_pct"] == 20.0 and stats["worst_trade_pct"] == -5.0
    assert stats["avg_trade_pct"] == pytest.approx(((1.10 * 0.95 * 1.20 * 0.975) ** 0.25 - 1) * 100)  # 5.1539
    assert stats["expectancy_pct"] == pytest.approx((10 - 5 + 20 - 2.5) / 4)  # 5.625
    assert stats["avg_trade_sessions"] == 2.75 and stats["max_trade_sessions"] == 5
    assert stats["avg_trade_days"] == pytest.approx((4 + 1 + 7 + 2) / 4) and stats["max_trade_days"] == 7
    # mean P&L 56.25; deviations 43.75, -106.25, 143.75, -81.25 -> sample variance 40468.75 / 3
    assert stats["sqn"] == pytest.approx(math.sqrt(4) * 56.25 / math.sqrt(40468.75 / 3))  # 0.9686
    # win rate 1/2, mean win 150, mean loss 37.5: 0.5 - 0.5 / 4
    assert stats["kelly"] == pytest.approx(0.375)


def test_beta_and_alpha_against_a_benchmark_that_moves_twice_as_much() -> None:
    equity = _equity([100.0, 110.0, 99.0, 121.0])
    benchmark = equity**2  # log returns exactly twice the strategy's: beta = cov(r, 2r) / var(2r) = 1/2
    stats = trade_statistics(_trades(), equity, benchmark=benchmark)
    assert stats["beta"] == pytest.approx(0.5)
    assert stats["benchmark_return"] == pytest.approx(14641 / 10000 - 1)
    assert stats["alpha"] == pytest.approx(0.21 - 0.5 * 0.4641)  # total return - beta x benchmark return
    same = trade_statistics(_trades(), equity, benchmark=equity * 3)  # any scale: only its returns count
    assert same["beta"] == pytest.approx(1.0) and same["alpha"] == pytest.approx(0.0, abs=1e-12)


def test_exposure_time_counts_sessions_closed_with_a_position() -> None:
    equity = _equity([100.0] * 10)
    gross = pd.Series([0, 0, 50, 50, 50, 0, 0, 20, 0, 0], index=equity.index, dtype=float)
    assert trade_statistics(pd.DataFrame(), equity, gross_exposure=gross)["exposure_time"] == pytest.approx(0.4)
    trades = pd.DataFrame({"entry_date": [equity.index[1]], "exit_date": [equity.index[4]], "pnl": [1.0]})
    assert trade_statistics(trades, equity)["exposure_time"] == pytest.approx(0.3)  # sessions 1, 2, 3 open


def test_no_trades_and_no_benchmark_give_nan_not_errors() -> None:
    stats = trade_statistics(pd.DataFrame(), _equity([100.0, 101.0]))
    assert stats["exposure_time"] == 0.0
    assert all(math.isnan(v) for k, v in stats.items() if k != "exposure_time")
    one_sided = _trades().assign(pnl=[1.0, 2.0, 3.0, 4.0])
    assert math.isnan(trade_statistics(one_sided, _equity([1.0, 2.0]))["kelly"])  # no losing trade


def test_geometric_mean_of_a_wipe_out_is_minus_one() -> None:
    assert geometric_mean(np.array([0.5, -1.0])) == -1.0
    assert geometric_mean(np.array([0.21, 0.0])) == pytest.approx(0.1)
    assert math.isnan(geometric_mean(np.array([])))
