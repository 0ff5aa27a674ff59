"""Monte Carlo resampling: seeded determinism, stationary-bootstrap properties, outcome summaries, memory bounds."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

from backtester.monte_carlo import (
    PERCENTILE_KEYS,
    bootstrap_trade_returns,
    simulate,
    stationary_block_bootstrap,
    trade_paths_equity,
)


def _daily(n: int = 756, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0004, 0.01, n)


def _trades(n: int = 120, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.003, 0.03, n)


def _run(seed: int = 7, **overrides: object) -> dict[str, object]:
    kwargs: dict[str, object] = {"daily_returns": _daily(), "trade_returns": _trades(), "initial_equity": 100_000.0,
                                 "n_paths": 500, "mean_block": 10.0, "seed": seed, "kill_drawdown_pct": 20.0}
    kwargs.update(overrides)
    return simulate(**kwargs).to_dict()


def _plain(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


# --- determinism and result shape -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_numbers_and_another_seed_different_ones() -> None:
    first, second = _run(seed=7), _run(seed=7)
    assert json.dumps(first) == json.dumps(second)
    other = _run(seed=8)
    assert other["block_bootstrap"] != first["block_bootstrap"]
    assert other["trade_bootstrap"] != first["trade_bootstrap"]


def test_to_dict_is_json_of_plain_python_types_only() -> None:
    result = _run()
    assert _plain(result)
    json.dumps(result, allow_nan=False)
    assert result["n_days"] == 756 and result["n_trades"] == 120
    assert len(result["fan_chart"]["day"]) == 757 and set(result["fan_chart"]) == {"day", *PERCENTILE_KEYS}


def test_the_two_methods_draw_from_independent_streams() -> None:
    """Adding trades leaves the block bootstrap alone, and a longer daily history leaves the trade paths alone
    (only their CAGR, which uses the history's span, may move)."""
    with_trades, without = _run(), _run(trade_returns=np.array([]))
    assert without["trade_bootstrap"] is None
    assert with_trades["block_bootstrap"] == without["block_bootstrap"]
    assert with_trades["fan_chart"] == without["fan_chart"]
    longer = _run(daily_returns=_daily(1260))
    for quantity in ("final_equity", "max_drawdown", "kill_probability"):
        assert longer["trade_bootstrap"][quantity] == with_trades["trade_bootstrap"][quantity]


def test_drawdown_is_measured_from_the_running_peak_not_from_the_start() -> None:
    """Doubling then halving never goes below the start, yet it is a 50 % drawdown from the peak. With one
    endless block each path is [+100 %, -50 %] or [-50 %, +100 %]: both fall 50 % from their peak."""
    result = _run(daily_returns=np.array([1.0, -0.5]), trade_returns=np.array([1.0, -0.5]), mean_block=1e9,
                  kill_drawdown_pct=50.0)
    assert result["block_bootstrap"]["max_drawdown"]["p5"] == result["block_bootstrap"]["max_drawdown"]["p95"] == 0.5
    assert result["block_bootstrap"]["kill_probability"] == 1.0


def test_percentiles_are_ordered_for_every_quantity_and_method() -> None:
    result = _run()
    for method in ("block_bootstrap", "trade_bootstrap"):
        for quantity in ("final_equity", "cagr", "max_drawdown"):
            values = [result[method][quantity][key] for key in PERCENTILE_KEYS]
            assert values == sorted(values) and values[0] < values[-1], (method, quantity)
    fan = result["fan_chart"]
    bands = np.array([fan[key] for key in PERCENTILE_KEYS])
    assert np.all(np.diff(bands, axis=0) >= 0)
    assert np.all(bands[:, 0] == 100_000.0)  # day 0 is the initial equity on every path


def test_summary_statistics_are_consistent_with_each_other() -> None:
    result = _run(n_paths=501)  # odd: the median is one path's value, so it commutes with the CAGR transform
    for method in ("block_bootstrap", "trade_bootstrap"):
        summary = result[method]
        years = 756 / 252
        assert summary["cagr"]["p50"] == pytest.approx((summary["final_equity"]["p50"] / 100_000.0) ** (1 / years) - 1)
        assert summary["max_drawdown"]["p5"] >= 0.0 and summary["max_drawdown"]["p95"] <= 1.0


# --- kill probability -----------------------------------------------------------------------------------------------


def test_kill_probability_is_zero_for_a_strictly_rising_series() -> None:
    rising = np.random.default_rng(3).uniform(0.0001, 0.01, 500)
    result = _run(daily_returns=rising, trade_returns=rising[:50], kill_drawdown_pct=1.0)
    assert result["block_bootstrap"]["kill_probability"] == 0.0
    assert result["trade_bootstrap"]["kill_probability"] == 0.0
    assert result["block_bootstrap"]["max_drawdown"]["p95"] == 0.0


def test_kill_probability_is_one_for_a_series_that_always_crashes() -> None:
    crashing = np.tile([0.01, 0.01, -0.2], 100)  # no block of 3 days or more escapes a 20 % fall
    trades = np.tile([0.02, -0.3], 20)  # 40 trades a path: P(no -30 % trade) = 2^-40
    result = _run(daily_returns=crashing, trade_returns=trades, kill_drawdown_pct=25.0)
    assert result["block_bootstrap"]["kill_probability"] == 1.0
    assert result["trade_bootstrap"]["kill_probability"] == 1.0


def test_kill_probability_counts_paths_whose_drawdown_reaches_the_threshold() -> None:
    result = _run()
    block = result["block_bootstrap"]
    threshold = block["max_drawdown"]["p50"] * 100
    at_median = _run(kill_drawdown_pct=threshold)["block_bootstrap"]["kill_probability"]
    assert at_median == pytest.approx(0.5, abs=0.01)


def test_returns_below_minus_100_percent_mean_ruin_not_negative_equity() -> None:
    equity = trade_paths_equity(np.array([[0.5, -1.5, 0.2]]), 100.0)
    np.testing.assert_allclose(equity, [[100.0, 150.0, 0.0, 0.0]])
    result = _run(daily_returns=np.array([0.01, -2.0]), trade_returns=np.array([-1.0]))
    assert result["block_bootstrap"]["final_equity"]["p5"] == 0.0
    assert result["trade_bootstrap"]["cagr"]["p95"] == -1.0
    assert result["trade_bootstrap"]["kill_probability"] == 1.0


# --- stationary block bootstrap -------------------------------------------------------------------------------------


def test_block_bootstrap_preserves_the_mean_and_the_variance() -> None:
    daily = np.random.default_rng(4).standard_t(4, 1000) * 0.01 + 0.0005
    paths = stationary_block_bootstrap(daily, 2000, 500, 20.0, np.random.default_rng(5))
    assert paths.shape == (2000, 500)
    assert paths.mean() == pytest.approx(daily.mean(), abs=0.1 * daily.std() / np.sqrt(1000))
    assert paths.var() == pytest.approx(daily.var(), rel=0.03)


@pytest.mark.parametrize("mean_block", [1.0, 5.0, 20.0])
def test_block_lengths_have_the_requested_mean(mean_block: float) -> None:
    """Day values 0..n-1 make the output its own index: a block continues where the next value is previous + 1
    (mod n), so the number of blocks per path is 1 + the number of breaks, expected 1 + (length - 1) / mean_block."""
    n, length = 100_000, 1000
    paths = stationary_block_bootstrap(np.arange(n, dtype=float), 400, length, mean_block, np.random.default_rng(6))
    breaks = (np.diff(paths, axis=1) % n) != 1
    blocks_per_path = 1 + breaks.sum(axis=1).mean()
    assert length / blocks_per_path == pytest.approx(length / (1 + (length - 1) / mean_block), rel=0.03)


def test_blocks_wrap_around_the_end_of_the_history() -> None:
    paths = stationary_block_bootstrap(np.arange(5, dtype=float), 50, 12, 1e9, np.random.default_rng(7))
    expected = (paths[:, :1] + np.arange(12)) % 5  # one block per path, running 3, 4, 0, 1, ...
    np.testing.assert_array_equal(paths, expected)
    assert len(np.unique(paths[:, 0])) == 5  # blocks start anywhere


def test_blocks_keep_serial_dependence_that_iid_resampling_destroys() -> None:
    rng = np.random.default_rng(8)
    shocks = rng.normal(0.0, 0.01, 5000)
    ar1 = np.empty_like(shocks)
    ar1[0] = shocks[0]
    for t in range(1, len(shocks)):
        ar1[t] = 0.5 * ar1[t - 1] + shocks[t]

    def lag1(paths: np.ndarray) -> float:
        centred = paths - paths.mean()
        return float((centred[:, 1:] * centred[:, :-1]).mean() / centred.var())

    blocky = stationary_block_bootstrap(ar1, 300, 500, 50.0, np.random.default_rng(9))
    iid = stationary_block_bootstrap(ar1, 300, 500, 1.0, np.random.default_rng(9))
    assert lag1(blocky) == pytest.approx(0.5 * (1 - 1 / 50), abs=0.05)
    assert abs(lag1(iid)) < 0.02


# --- trade bootstrap ------------------------------------------------------------------------------------------------


def test_trade_bootstrap_draws_iid_with_replacement_from_the_trades() -> None:
    trades = np.array([-0.05, 0.01, 0.02, 0.10])
    paths = bootstrap_trade_returns(trades, 50, 2000, np.random.default_rng(10))
    assert paths.shape == (2000, 50)
    assert set(np.unique(paths)) == set(trades)
    shares = np.array([(paths == t).mean() for t in trades])
    np.testing.assert_allclose(shares, 0.25, atol=0.01)
    assert any(len(np.unique(row)) < len(row) for row in paths[:, :4])  # replacement: repeats within a path


def test_trade_paths_compound_from_the_initial_equity() -> None:
    equity = trade_paths_equity(np.array([[0.1, -0.5], [0.0, 0.2]]), 100.0)
    np.testing.assert_allclose(equity, [[100.0, 110.0, 55.0], [100.0, 100.0, 120.0]])


# --- limits and input checks ----------------------------------------------------------------------------------------


def test_ten_thousand_paths_of_ten_years_stay_within_the_memory_budget() -> None:
    """10,000 paths x 2,520 days would be ~1 GB of temporaries in one piece; in chunks the peak of numpy's traced
    allocations stays under 300 MB (the float32 fan-chart store is ~100 MB of it)."""
    tracemalloc.start()
    try:
        result = simulate(_daily(2520), _trades(400), 1_000_000.0, 10_000, 10.0, 1, 25.0)
        peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak_bytes < 300e6
    assert result.n_paths == 10_000 and result.n_days == 2520
    assert len(result.fan_chart.day) == 2521 and result.fan_chart.to_frame().shape == (2521, 5)
    assert 0.0 <= result.block_bootstrap.kill_probability <= 1.0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"daily_returns": np.array([0.01])}, "daily_returns must be a 1-D array of at least 2"),
    ({"daily_returns": np.array([0.01, np.nan, 0.0])}, "daily_returns must be finite"),
    ({"n_paths": 0}, "n_paths must be a positive integer"),
    ({"mean_block": 0.5}, "mean_block"),
    ({"initial_equity": 0.0}, "initial_equity must be > 0"),
    ({"kill_drawdown_pct": 0.0}, "kill_drawdown_pct is a percent"),
    ({"kill_drawdown_pct": 150.0}, "kill_drawdown_pct is a percent"),
])
def test_simulate_rejects_unusable_input_with_a_clear_message(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _run(**overrides)


def test_issue_15_trade_returns_are_pnl_over_account_equity_at_entry() -> None:
    """A +1,000 trade on a 100,000 account is +1 %, whatever its return on the position; the second trade is
    measured against the equity after the first (101,000), the first trade before any close against the start."""
    import pandas as pd

    from backtester.monte_carlo import account_trade_returns

    equity = pd.Series([100_000.0, 100_000.0, 101_000.0, 101_000.0, 100_495.0],
                       index=pd.date_range("2024-01-02", periods=5, freq="B"))  # fmt: skip
    trades = pd.DataFrame({"entry_date": [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-05")],
                           "pnl": [1_000.0, -505.0], "return_pct": [10.0, -5.0]})  # fmt: skip
    returns = account_trade_returns(trades, equity, initial_equity=100_000.0)
    assert returns.tolist() == [0.01, -0.005]


def test_issue_15_trade_bootstrap_known_answer() -> None:
    """Two trades of +1 % and -0.5 % of the account: each path's final equity is 100,000 x one of (1.01², 1.01 x
    0.995, 0.995²) with probabilities 1/4, 1/2, 1/4, so the median is the mixed one and the 5th/95th percentiles
    the extremes; no path can lose more than 1 % of the account."""
    result = simulate(_daily(), np.array([0.01, -0.005]), initial_equity=100_000.0, n_paths=4_000, mean_block=5,
                      seed=3, kill_drawdown_pct=25.0)  # fmt: skip
    trade = result.trade_bootstrap
    assert trade is not None
    final = trade.final_equity
    assert final.p50 == pytest.approx(100_000 * 1.01 * 0.995, rel=1e-12)
    assert final.p5 == pytest.approx(100_000 * 0.995**2, rel=1e-12)
    assert final.p95 == pytest.approx(100_000 * 1.01**2, rel=1e-12)
    assert trade.max_drawdown.p95 <= 0.01 + 1e-12 and trade.kill_probability == 0.0
