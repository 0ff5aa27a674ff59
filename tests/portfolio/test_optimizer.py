"""Volatility targeting: leverage from realized volatility (checked against numpy), warm-up, clipping, disabled."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config_models import OptimizerConfig
from portfolio.optimizer import VolatilityTargeter


def _feed(targeter: VolatilityTargeter, returns: np.ndarray, start: float = 100_000.0) -> np.ndarray:
    """Feed the equity path implied by ``returns``; give back the returns as the targeter sees them."""
    equity = start * np.cumprod(np.concatenate(([1.0], 1.0 + returns)))
    for value in equity:
        targeter.update(float(value))
    return equity[1:] / equity[:-1] - 1.0


def _numpy_vol_pct(returns: np.ndarray) -> float:
    return float(np.std(returns, ddof=1) * math.sqrt(252) * 100.0)


def test_realized_vol_matches_numpy_at_every_step() -> None:
    cfg = OptimizerConfig(enabled=True, lookback_days=20)
    targeter = VolatilityTargeter(cfg)
    rng = np.random.default_rng(7)
    equity = 100_000.0
    seen: list[float] = []
    targeter.update(equity)
    for daily_return in rng.normal(0.0005, 0.012, size=300):
        new_equity = equity * (1.0 + daily_return)
        targeter.update(new_equity)
        seen.append(new_equity / equity - 1.0)
        equity = new_equity
        vol = targeter.realized_vol_pct()
        if len(seen) < cfg.lookback_days:
            assert vol is None
        else:
            assert vol == pytest.approx(_numpy_vol_pct(np.array(seen[-cfg.lookback_days :])), rel=1e-9)


def test_running_sums_do_not_drift_on_a_long_run_with_a_large_mean() -> None:
    """Mean/std ≈ 2,000 makes naive running sums lose ~1e-7 relative accuracy; the shifted, re-summed ones keep
    ~1e-15."""
    lookback_days = 7
    targeter = VolatilityTargeter(OptimizerConfig(enabled=True, lookback_days=lookback_days))
    rng = np.random.default_rng(11)
    equity, seen = 1.0, []
    targeter.update(equity)
    for daily_return in 0.02 + rng.normal(0.0, 1e-5, size=3_000):
        new_equity = equity * (1.0 + daily_return)
        targeter.update(new_equity)
        seen.append(new_equity / equity - 1.0)
        equity = new_equity
        if len(seen) >= lookback_days:
            expected = _numpy_vol_pct(np.array(seen[-lookback_days:]))
            assert targeter.realized_vol_pct() == pytest.approx(expected, rel=1e-10)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), min_size=5, max_size=80), st.integers(5, 30))
def test_realized_vol_matches_numpy_for_any_path(returns: list[float], lookback_days: int) -> None:
    targeter = VolatilityTargeter(OptimizerConfig(enabled=True, lookback_days=lookback_days))
    seen = _feed(targeter, np.array(returns))
    vol = targeter.realized_vol_pct()
    if len(seen) < lookback_days:
        assert vol is None
    else:
        assert vol == pytest.approx(_numpy_vol_pct(seen[-lookback_days:]), rel=1e-7, abs=1e-9)


def test_leverage_is_target_over_realized_vol_clipped() -> None:
    cfg = OptimizerConfig(enabled=True, target_annual_vol_pct=15.0, lookback_days=60, max_leverage=4.0)
    rng = np.random.default_rng(3)
    calm = VolatilityTargeter(cfg)
    _feed(calm, rng.normal(0.0, 0.005, size=60))
    vol = calm.realized_vol_pct()
    assert vol is not None and calm.leverage() == pytest.approx(15.0 / vol)
    wild = VolatilityTargeter(cfg)
    _feed(wild, rng.normal(0.0, 0.2, size=60))
    assert wild.leverage() == cfg.min_leverage
    very_calm = VolatilityTargeter(cfg)
    _feed(very_calm, rng.normal(0.0, 0.0001, size=60))
    assert very_calm.leverage() == cfg.max_leverage


def test_flat_equity_gives_max_leverage() -> None:
    cfg = OptimizerConfig(enabled=True, lookback_days=5, max_leverage=2.0)
    targeter = VolatilityTargeter(cfg)
    for _ in range(6):
        targeter.update(100.0)
    assert targeter.realized_vol_pct() == 0.0 and targeter.leverage() == 2.0


def test_warm_up_is_one_capped_by_max_leverage() -> None:
    rng = np.random.default_rng(5)
    for max_leverage, expected in [(2.0, 1.0), (0.5, 0.5)]:
        targeter = VolatilityTargeter(OptimizerConfig(enabled=True, lookback_days=10, max_leverage=max_leverage))
        _feed(targeter, rng.normal(0.0, 0.05, size=9))  # 9 returns < 10
        assert targeter.realized_vol_pct() is None and targeter.leverage() == expected


def test_disabled_is_exactly_one() -> None:
    targeter = VolatilityTargeter(OptimizerConfig(enabled=False, lookback_days=5, max_leverage=0.5))
    _feed(targeter, np.full(20, 0.3))
    assert targeter.leverage() == 1.0 and targeter.realized_vol_pct() is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -100.0])
def test_unusable_equity_is_skipped(bad: float) -> None:
    cfg = OptimizerConfig(enabled=True, lookback_days=5)
    reference, skipping = VolatilityTargeter(cfg), VolatilityTargeter(cfg)
    path = [100.0, 101.0, 99.0, 102.0, 100.5, 103.0]
    for value in path:
        reference.update(value)
    for value in [*path[:3], bad, *path[3:]]:
        skipping.update(value)
    assert reference.realized_vol_pct() is not None
    assert skipping.realized_vol_pct() == reference.realized_vol_pct()
