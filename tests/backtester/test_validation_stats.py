"""Overfitting statistics: PSR, expected maximum Sharpe, DSR and CSCV's probability of backtest overfitting.

Reference values are computed independently (scipy's moment estimators and normal cdf), taken from the worked
example of Bailey & López de Prado (2014), or derived from the null distribution of CSCV's rank statistic.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from backtester.validation import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    psr_from_moments,
    sharpe_ratio,
)


def _noise(n_rows: int, n_trials: int, seed: int, scale: float = 0.01) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, scale, (n_rows, n_trials))


# --- Sharpe, PSR ---------------------------------------------------------------------------------------------------


def test_sharpe_ratio_is_per_period_by_default_and_column_wise_for_matrices() -> None:
    returns = np.array([0.01, -0.02, 0.03, 0.00, 0.015])
    per_period = returns.mean() / returns.std(ddof=1)
    assert sharpe_ratio(returns) == pytest.approx(per_period, rel=1e-12)
    assert sharpe_ratio(returns, periods_per_year=252) == pytest.approx(per_period * math.sqrt(252), rel=1e-12)
    matrix = np.column_stack([returns, 2 * returns, np.full(5, 0.01)])
    np.testing.assert_allclose(sharpe_ratio(matrix)[:2], [per_period, per_period], rtol=1e-12)
    assert math.isnan(sharpe_ratio(matrix)[2])  # constant column: no Sharpe ratio


def test_psr_matches_an_independent_scipy_computation() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(11)
    returns = 0.004 - rng.lognormal(-5.0, 0.9, 500)  # negatively skewed, fat tailed
    benchmark = 0.02
    sr = returns.mean() / returns.std(ddof=1)
    skew, kurt = stats.skew(returns, bias=True), stats.kurtosis(returns, fisher=False, bias=True)
    assert skew < -1 and kurt > 5  # the example exercises the higher-moment terms
    expected = stats.norm.cdf((sr - benchmark) * math.sqrt(len(returns) - 1)
                              / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2))
    assert probabilistic_sharpe_ratio(returns, benchmark_sr=benchmark) == pytest.approx(expected, abs=1e-10)


def test_dsr_reproduces_the_worked_example_of_bailey_and_lopez_de_prado_2014() -> None:
    """The paper's example: N = 100 trials with V[SR] = 1/2 (annualized), a selected SR of 2.5 (annualized) over
    T = 1,250 daily observations with skewness -3 and kurtosis 10, 250 days a year. It reports a deflated
    benchmark of ~0.1132 per day (~1.79 annualized) and DSR ~0.9004."""
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert psr_from_moments(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0) == pytest.approx(0.9004, abs=5e-5)


def test_psr_penalises_negative_skew_and_fat_tails_and_rewards_longer_records() -> None:
    normal = psr_from_moments(0.05, 0.0, 500, 0.0, 3.0)
    assert psr_from_moments(0.05, 0.0, 500, -2.0, 3.0) < normal
    assert psr_from_moments(0.05, 0.0, 500, 0.0, 12.0) < normal
    assert psr_from_moments(0.05, 0.0, 2000, 0.0, 3.0) > normal
    assert psr_from_moments(0.05, 0.05, 500, 0.0, 3.0) == pytest.approx(0.5)  # SR̂ = SR*: a coin flip


# --- expected maximum Sharpe ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_trials", [10, 100])
def test_expected_max_sharpe_matches_the_monte_carlo_max_of_null_trial_sharpes(n_trials: int) -> None:
    """Run n_trials skill-less strategies (zero-mean returns) many times; the average best Sharpe ratio should
    match the formula fed with the variance of the trials' Sharpe ratios. The formula is an asymptotic (Gumbel)
    approximation, ~2 % high at N = 10, so the tolerance is loose."""
    rng = np.random.default_rng(5)
    n_obs, reps = 250, 400
    best, variances = [], []
    for _ in range(reps):
        sharpes = sharpe_ratio(rng.normal(0.0, 0.01, (n_obs, n_trials)))
        best.append(sharpes.max())
        variances.append(sharpes.var(ddof=1))
    simulated = float(np.mean(best))
    assert expected_max_sharpe(n_trials, float(np.mean(variances))) == pytest.approx(simulated, rel=0.05)


def test_expected_max_sharpe_is_zero_for_one_trial_and_grows_with_trials_and_variance() -> None:
    assert expected_max_sharpe(1, 0.01) == 0.0
    values = [expected_max_sharpe(n, 0.01) for n in (2, 10, 100, 1000)]
    assert values == sorted(values) and values[0] > 0
    assert expected_max_sharpe(100, 0.04) == pytest.approx(2 * expected_max_sharpe(100, 0.01))


# --- DSR -------------------------------------------------------------------------------------------------------------


def test_dsr_equals_psr_against_zero_for_a_single_trial() -> None:
    returns = np.random.default_rng(2).normal(0.0008, 0.01, 750)
    result = deflated_sharpe_ratio(returns, n_trials=1, trial_sharpes=np.array([sharpe_ratio(returns)]))
    assert result.sr0 == 0.0
    assert result.dsr == pytest.approx(probabilistic_sharpe_ratio(returns, 0.0), abs=1e-12)
    assert result.dsr == pytest.approx(result.psr_vs_zero, abs=1e-12)
    assert result.sharpe == pytest.approx(sharpe_ratio(returns))


def test_dsr_falls_as_the_number_of_trials_rises() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.001, 0.01, 1000)
    trial_sharpes = sharpe_ratio(rng.normal(0.0, 0.01, (1000, 20)))
    results = [deflated_sharpe_ratio(returns, n, trial_sharpes) for n in (20, 100, 1000, 10_000)]
    dsrs = [r.dsr for r in results]
    assert dsrs == sorted(dsrs, reverse=True) and len(set(dsrs)) == len(dsrs)
    assert all(r.dsr < r.psr_vs_zero for r in results)
    assert results[0].sr_variance == pytest.approx(float(np.var(trial_sharpes, ddof=1)))
    assert results[0].sr0 == pytest.approx(expected_max_sharpe(20, results[0].sr_variance))


def test_dsr_rejects_fewer_trials_than_sharpe_ratios_and_too_few_sharpes() -> None:
    returns = np.random.default_rng(4).normal(0.0, 0.01, 100)
    with pytest.raises(ValueError, match="n_trials=3 is less than the 5"):
        deflated_sharpe_ratio(returns, 3, np.linspace(-0.1, 0.1, 5))
    with pytest.raises(ValueError, match="at least 2 finite trial Sharpe ratios"):
        deflated_sharpe_ratio(returns, 10, np.array([0.05, np.nan]))


def test_dsr_counts_trials_without_a_sharpe_ratio_but_leaves_them_out_of_the_variance() -> None:
    returns = np.random.default_rng(6).normal(0.001, 0.01, 500)
    defined = np.array([0.01, 0.05, -0.02, 0.03])
    result = deflated_sharpe_ratio(returns, 5, np.append(defined, np.nan))  # one trial never traded
    assert result.sr_variance == pytest.approx(float(np.var(defined, ddof=1)))
    assert result.sr0 == pytest.approx(expected_max_sharpe(5, result.sr_variance))


# --- PBO (CSCV) ------------------------------------------------------------------------------------------------------


def test_pbo_of_iid_noise_is_one_half_not_one() -> None:
    """For N trials of iid zero-mean noise the in-sample winner is, out of sample, just one more independent draw:
    its OOS rank is uniform on 1..N, so P(ω̄ ≤ 1/2) = P(rank ≤ (N + 1)/2) = 1/2 for even N. PBO ≈ 1 is not the
    right expectation for plain noise: selecting among trials with no skill is a coin flip, not a sure loss (see
    the next tests for when PBO does go to 1). A single matrix's PBO is noisy (combinations share blocks), so the
    test averages 300 independent matrices: the standard error is ~0.014."""
    pbos = [probability_of_backtest_overfitting(_noise(160, 10, seed), n_partitions=8).pbo for seed in range(300)]
    assert np.mean(pbos) == pytest.approx(0.5, abs=0.05)


def test_pbo_counts_a_median_rank_as_overfit_so_odd_trial_counts_sit_above_one_half() -> None:
    """λ ≤ 0 counts as overfit (Bailey et al. 2017), and with N = 3 the middle rank gives ω̄ = 2/4, λ = 0: the
    null PBO is 2/3, not 1/2. Checks the rank convention ω̄ = rank / (N + 1) and the ≤."""
    pbos = [probability_of_backtest_overfitting(_noise(160, 3, seed), n_partitions=8).pbo for seed in range(300)]
    assert np.mean(pbos) == pytest.approx(2 / 3, abs=0.05)


def test_pbo_is_one_when_in_sample_winners_are_out_of_sample_losers() -> None:
    """Where PBO ≈ 1 comes from: CSCV's in- and out-of-sample halves are complements, so when every trial's
    full-sample performance is pinned (here noise demeaned per trial, mean exactly 0), an in-sample gain is an
    out-of-sample loss of the same size. The in-sample winner is then the OOS loser in every combination: PBO = 1,
    OOS Sharpe ≈ -IS Sharpe (slope ≈ -1) and every combination loses. This is the 'compensation' mechanism of
    mean-reverting series (Bailey, Borwein, López de Prado & Zhu 2014, "Pseudo-Mathematics and Financial
    Charlatanism"): overfitting noise with memory is worse than a coin flip."""
    noise = _noise(320, 20, seed=8)
    result = probability_of_backtest_overfitting(noise - noise.mean(axis=0))
    assert result.pbo == 1.0
    assert result.probability_of_loss == 1.0
    assert result.degradation_slope == pytest.approx(-1.0, abs=0.1)
    assert np.all(result.logits < 0)


def test_pbo_is_low_when_one_trial_has_a_real_edge() -> None:
    returns = _noise(1000, 20, seed=9)
    returns[:, 7] += 0.003  # per-period Sharpe ≈ 0.3: found in-sample, and it holds out of sample
    result = probability_of_backtest_overfitting(returns)
    assert result.pbo < 0.1
    assert result.probability_of_loss < 0.1
    assert np.median(result.logits) == pytest.approx(math.log(20 / 1), abs=1e-9)  # rank N of N: ω̄ = 20/21


def test_pbo_does_not_depend_on_the_order_of_the_trial_columns() -> None:
    returns = _noise(400, 12, seed=10)
    returns[:, 3] += 0.0008
    base = probability_of_backtest_overfitting(returns)
    permuted = probability_of_backtest_overfitting(returns[:, np.random.default_rng(0).permutation(12)])
    assert permuted.pbo == base.pbo
    np.testing.assert_allclose(permuted.logits, base.logits, rtol=0, atol=1e-12)
    assert permuted.degradation_slope == pytest.approx(base.degradation_slope)


def test_pbo_fast_sharpe_path_equals_evaluating_the_metric_on_every_combination() -> None:
    returns = _noise(120, 7, seed=12) + np.linspace(-0.002, 0.002, 7)
    fast = probability_of_backtest_overfitting(returns, n_partitions=6)
    slow = probability_of_backtest_overfitting(returns, n_partitions=6, metric=lambda m: sharpe_ratio(m))
    np.testing.assert_allclose(fast.logits, slow.logits, rtol=0, atol=1e-12)
    assert fast.pbo == slow.pbo
    np.testing.assert_allclose(fast.is_performance, slow.is_performance, rtol=1e-9)
    np.testing.assert_allclose(fast.oos_performance, slow.oos_performance, rtol=1e-9)
    assert fast.degradation_slope == pytest.approx(slow.degradation_slope, rel=1e-9)
    assert fast.probability_of_loss == slow.probability_of_loss


def test_pbo_degradation_regresses_out_of_sample_on_in_sample_performance_of_the_selected_trial() -> None:
    returns = _noise(400, 12, seed=15) + np.linspace(0.0, 0.001, 12)
    result = probability_of_backtest_overfitting(returns, n_partitions=8)
    assert result.is_performance.shape == result.oos_performance.shape == (70,)
    assert result.is_performance.std() > 0  # the selected trial's IS Sharpe varies across combinations
    slope, intercept = np.polyfit(result.is_performance, result.oos_performance, 1)
    assert result.degradation_slope == pytest.approx(slope) and result.degradation_intercept == pytest.approx(intercept)
    assert result.probability_of_loss == pytest.approx(np.mean(result.oos_performance < 0))


def test_pbo_ranks_tied_trials_by_their_average_rank() -> None:
    """Identical trials (a parameter that changes nothing) tie out of sample: the in-sample pick gets the middle
    rank (N + 1) / 2, so ω̄ = 1/2 and λ = 0, which the paper's λ ≤ 0 rule counts as overfit."""
    column = _noise(160, 1, seed=16)
    result = probability_of_backtest_overfitting(np.tile(column, (1, 4)), n_partitions=8)
    np.testing.assert_allclose(result.logits, 0.0, atol=1e-12)
    assert result.pbo == 1.0


def test_pbo_uses_all_c_s_half_combinations() -> None:
    result = probability_of_backtest_overfitting(_noise(64, 4, seed=13), n_partitions=16)
    assert result.n_combinations == 12_870 == math.comb(16, 8)
    assert result.logits.shape == (12_870,)


def test_pbo_drops_the_oldest_rows_when_rows_do_not_divide_into_blocks() -> None:
    returns = _noise(160, 6, seed=14)
    garbage = np.full((5, 6), 0.5) * np.arange(1, 7)  # would dominate every Sharpe ratio if it were kept
    with_oldest = probability_of_backtest_overfitting(np.vstack([garbage, returns]), n_partitions=8)
    without = probability_of_backtest_overfitting(returns, n_partitions=8)
    assert with_oldest.n_rows_used == 160
    np.testing.assert_array_equal(with_oldest.logits, without.logits)


@pytest.mark.parametrize(("shape", "n_partitions", "message"), [
    ((100, 1), 16, "at least 2 trials"),
    ((100, 5), 7, "even number"),
    ((100, 5), 0, "even number"),
    ((31, 5), 16, "at least 2 rows per block"),
])
def test_pbo_rejects_unusable_input_with_a_clear_message(shape: tuple[int, int], n_partitions: int,
                                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probability_of_backtest_overfitting(np.zeros(shape), n_partitions=n_partitions)
