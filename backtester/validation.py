"""Overfitting statistics: how much of a backtest's Sharpe ratio is skill and how much is selection.

A research sweep runs many parameter sets and keeps the best; the best backtest's Sharpe ratio is then biased
upward by the selection itself, and more so the more trials were run, the shorter the record and the fatter its
left tail. The functions here put numbers on that bias before a parameter set may be promoted:

- ``probabilistic_sharpe_ratio`` (PSR): probability that the true Sharpe ratio exceeds a benchmark, given the
  sample's length, skewness and kurtosis. Bailey & López de Prado (2012), "The Sharpe Ratio Efficient Frontier",
  Journal of Risk 15(2), eq. (10) [PSR]. Note it uses the non-excess kurtosis (3 for a normal).
- ``expected_max_sharpe`` and ``deflated_sharpe_ratio`` (DSR): the PSR against the Sharpe ratio the best of N
  skill-less trials would show by luck alone. Bailey & López de Prado (2014), "The Deflated Sharpe Ratio:
  Correcting for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5),
  eqs. (1)-(2).
- ``probability_of_backtest_overfitting`` (PBO) by combinatorially symmetric cross-validation (CSCV): how often the
  in-sample winner ranks in the bottom half out of sample. Bailey, Borwein, López de Prado & Zhu (2017), "The
  Probability of Backtest Overfitting", Journal of Computational Finance 20(4), section 2 (CSCV) and section 3
  (overfit statistics: PBO, performance degradation, probability of loss).

Conventions a caller must know: every Sharpe ratio here is **per period** (not annualized) unless a function says
otherwise, because that is the unit the formulas above are written in; returns are simple per-period returns as
fractions; skewness and kurtosis are the sample (biased, moment) estimators, as in the papers. Malformed input
(wrong shape, non-finite values, too few observations) raises ``ValueError`` saying what was wrong and what is
allowed; a zero-variance return series has no Sharpe ratio and yields nan.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

log = logging.getLogger(__name__)

EULER_MASCHERONI = 0.5772156649015329
_ZERO_STD = 1e-12  # below this a return series is treated as constant (same rule as backtester.performance)
_NORMAL = NormalDist()
_MAX_CELLS_PER_CHUNK = 2_000_000  # combinations x trials held at once by the CSCV fast path (~16 MB per array)

Metric = Callable[[np.ndarray], np.ndarray | float]


@dataclass(frozen=True, slots=True, kw_only=True)
class DsrResult:
    """Deflated Sharpe ratio and the numbers it was built from (all Sharpe ratios per period)."""

    dsr: float
    psr_vs_zero: float
    sharpe: float
    sr0: float
    n_trials: int
    sr_variance: float


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class PboResult:
    """CSCV outcome (Bailey et al. 2017, section 3). Compared by identity: it holds arrays (``==`` on them is
    element-wise, so a generated field-by-field ``__eq__`` would raise).

    ``logits`` holds one λ per combination (in ``itertools.combinations`` order of the in-sample blocks);
    ``is_performance`` / ``oos_performance`` are the selected trial's in- and out-of-sample metric per combination
    (the paper's performance-degradation scatter); ``degradation_slope`` / ``degradation_intercept`` fit
    OOS = intercept + slope x IS over them (a slope well below 1 means in-sample performance does not carry over);
    ``probability_of_loss`` is the fraction of combinations whose selected trial has OOS performance < 0.
    ``n_rows_used`` is the number of rows after the oldest were dropped to make equal blocks.
    """

    pbo: float
    logits: np.ndarray
    is_performance: np.ndarray
    oos_performance: np.ndarray
    n_combinations: int
    n_partitions: int
    n_rows_used: int
    degradation_slope: float
    degradation_intercept: float
    probability_of_loss: float


def sharpe_ratio(returns: np.ndarray, periods_per_year: int | None = None) -> np.ndarray | float:
    """Sharpe ratio mean / std (ddof=1) of simple returns, per period unless ``periods_per_year`` is given.

    Per period is the default because PSR, DSR and CSCV are all written in per-period units; multiply by
    sqrt(periods_per_year) only for display. A 1-D input gives a float; a 2-D input (rows time, columns trials)
    gives one Sharpe ratio per column. No risk-free rate is subtracted: pass excess returns if that matters.
    A series with (near) zero standard deviation has no Sharpe ratio: nan.
    """
    values = np.asarray(returns, dtype=float)
    if values.ndim not in (1, 2) or values.shape[0] < 2:
        raise ValueError(f"returns must be 1-D or 2-D (rows time) with at least 2 rows; got shape {values.shape}")
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(std > _ZERO_STD, mean / np.where(std > _ZERO_STD, std, 1.0), np.nan)
    if periods_per_year is not None:
        ratio = ratio * math.sqrt(periods_per_year)
    return float(ratio) if values.ndim == 1 else ratio


def psr_from_moments(sharpe: float, benchmark_sr: float, n_obs: int, skewness: float, kurtosis: float) -> float:
    """PSR from summary statistics: Bailey & López de Prado (2012), eq. (10).

    PSR = Φ((SR̂ − SR*) √(T − 1) / √(1 − γ3 SR̂ + (γ4 − 1)/4 SR̂²)), with SR̂ and SR* per period, γ3 the skewness
    and γ4 the non-excess kurtosis. Exposed so published worked examples (which quote moments, not returns) can be
    reproduced exactly. The variance term is never negative for sample moments (Pearson's inequality γ4 ≥ 1 + γ3²
    makes it ≥ (1 − γ3 SR̂ / 2)²); if it is zero the sign of SR̂ − SR* decides.
    """
    if n_obs < 2:
        raise ValueError(f"PSR needs at least 2 observations; got n_obs={n_obs}")
    if not math.isfinite(sharpe):
        return math.nan
    variance_term = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    numerator = (sharpe - benchmark_sr) * math.sqrt(n_obs - 1)
    if variance_term <= 0.0:
        return 1.0 if numerator > 0 else 0.0 if numerator < 0 else 0.5
    return _NORMAL.cdf(numerator / math.sqrt(variance_term))


def probabilistic_sharpe_ratio(returns: np.ndarray, benchmark_sr: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio of ``returns`` exceeds ``benchmark_sr`` (per period).

    Bailey & López de Prado (2012), eq. (10), with the sample skewness and non-excess kurtosis of ``returns``:
    a short, negatively skewed, fat-tailed record earns less confidence than a long normal one with the same SR̂.
    """
    values = _as_returns(returns)
    return psr_from_moments(sharpe_ratio(values), benchmark_sr, len(values), *_skew_kurtosis(values))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """E[max SR̂] over ``n_trials`` independent skill-less trials whose SR̂ have variance ``sr_variance``.

    Bailey & López de Prado (2014), eq. (1) (from the Gumbel limit of the maximum of N normals):
    √V ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ the Euler–Mascheroni constant. Units follow
    ``sr_variance``: pass the variance of per-period Sharpe ratios to get a per-period benchmark. With one trial
    there is no selection, so the expected best of one null trial is its mean, 0 (the formula itself would give
    Φ⁻¹(0) = −∞). The approximation is asymptotic: it overstates the exact expectation by ~2 % at N = 10 and ~1 %
    at N = 100.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1; got {n_trials}")
    if not (sr_variance >= 0.0 and math.isfinite(sr_variance)):
        raise ValueError(f"sr_variance must be a finite number >= 0; got {sr_variance}")
    if n_trials == 1:
        return 0.0
    z_max = ((1.0 - EULER_MASCHERONI) * _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
             + EULER_MASCHERONI * _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e)))
    return math.sqrt(sr_variance) * z_max


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int, trial_sharpes: np.ndarray) -> DsrResult:
    """DSR: the PSR of the selected strategy's ``returns`` against SR0 = E[max SR̂] of ``n_trials`` null trials.

    Bailey & López de Prado (2014), eq. (2). ``trial_sharpes`` are the per-period Sharpe ratios of the trials the
    optimizer ran (the selected one included); their variance is V in ``expected_max_sharpe``. ``n_trials`` is the
    number of trials actually run. Normally ``n_trials == len(trial_sharpes)``. A caller may pass *more* trials
    than Sharpe ratios when it knows the true count but kept only a sample of the results (a sweep that logs a
    subset, trials run by hand before the sweep): V is then estimated from the sample, while the selection
    penalty must still use the true count, since the maximum was taken over all of them. Fewer trials than
    Sharpe ratios is a contradiction and raises. Trials whose Sharpe ratio is undefined (nan: constant returns, e.g.
    a parameter set that never traded) were still run: they count in ``n_trials`` but are left out of V, with a
    warning. With ``n_trials == 1`` there is no selection: SR0 = 0 and the
    DSR equals the PSR against zero (V is then not needed and reported as nan if it cannot be estimated).
    """
    values = _as_returns(returns)
    sharpes = np.asarray(trial_sharpes, dtype=float).ravel()
    if n_trials < len(sharpes):
        raise ValueError(f"n_trials={n_trials} is less than the {len(sharpes)} trial Sharpe ratios given; "
                         "n_trials must count every trial run, so it can only equal or exceed that number")
    undefined = int(np.sum(~np.isfinite(sharpes)))
    if undefined:
        log.warning("event=dsr_trials_without_sharpe n_undefined=%d n_sharpes=%d reason=excluded_from_variance",
                    undefined, len(sharpes))
        sharpes = sharpes[np.isfinite(sharpes)]
    if n_trials > 1 and len(sharpes) < 2:
        raise ValueError(f"n_trials={n_trials} needs at least 2 finite trial Sharpe ratios to estimate their "
                         f"variance; got {len(sharpes)}")
    if n_trials > len(sharpes) + undefined:
        log.warning("event=dsr_trials_sampled n_trials=%d n_sharpes=%d reason=variance_from_sample",
                    n_trials, len(sharpes))
    sr_variance = float(np.var(sharpes, ddof=1)) if len(sharpes) >= 2 else math.nan
    sr0 = expected_max_sharpe(n_trials, sr_variance if n_trials > 1 else 0.0)
    sharpe = sharpe_ratio(values)
    skewness, kurtosis = _skew_kurtosis(values)
    return DsrResult(
        dsr=psr_from_moments(sharpe, sr0, len(values), skewness, kurtosis),
        psr_vs_zero=psr_from_moments(sharpe, 0.0, len(values), skewness, kurtosis),
        sharpe=sharpe,
        sr0=sr0,
        n_trials=n_trials,
        sr_variance=sr_variance,
    )


def probability_of_backtest_overfitting(
    returns_matrix: np.ndarray,
    n_partitions: int = 16,
    metric: Metric = sharpe_ratio,
) -> PboResult:
    """PBO by CSCV, Bailey, Borwein, López de Prado & Zhu (2017), section 2.

    ``returns_matrix`` is T x N: rows are periods (oldest first), columns the N trials of one sweep. The rows are
    cut into ``n_partitions`` = S contiguous blocks of equal length; when T is not a multiple of S the oldest
    T mod S rows are dropped, so the most recent data is always used. For each of the C(S, S/2) ways to pick S/2
    blocks as in-sample (the rest, in time order, is out-of-sample): select the trial with the best in-sample
    metric, take its relative rank ω̄ = rank / (N + 1) among the N out-of-sample metrics (rank 1 = worst, ties
    averaged) and its logit λ = ln(ω̄ / (1 − ω̄)). PBO is the fraction of combinations with λ ≤ 0, i.e. where the
    in-sample winner did no better than the out-of-sample median.

    ``metric`` maps a (rows x N) return matrix to N scores, higher is better. The default, ``sharpe_ratio`` (per
    period), is computed from per-block sums and sums of squares, O(N) per combination (12,870 combinations for
    S = 16); any other callable is evaluated on the gathered rows of every combination, which is exact but slower.
    A trial whose metric is nan (e.g. constant returns) ranks below every other.
    """
    matrix = np.asarray(returns_matrix, dtype=float)
    _check_cscv_input(matrix, n_partitions)
    n_rows = matrix.shape[0] - matrix.shape[0] % n_partitions
    matrix = matrix[matrix.shape[0] - n_rows:]
    in_sample_blocks = np.array(list(itertools.combinations(range(n_partitions), n_partitions // 2)), dtype=np.intp)
    if metric is sharpe_ratio:
        is_scores, oos_scores = _cscv_sharpe(matrix, n_partitions, in_sample_blocks)
    else:
        is_scores, oos_scores = _cscv_generic(matrix, n_partitions, in_sample_blocks, metric)
    rows = np.arange(len(in_sample_blocks))
    best = np.argmax(np.where(np.isnan(is_scores), -np.inf, is_scores), axis=1)
    selected_is, selected_oos = is_scores[rows, best], oos_scores[rows, best]
    oos_scores = np.where(np.isnan(oos_scores), -np.inf, oos_scores)
    ranked_oos = np.where(np.isnan(selected_oos), -np.inf, selected_oos)
    below = (oos_scores < ranked_oos[:, None]).sum(axis=1)
    ties = (oos_scores == ranked_oos[:, None]).sum(axis=1)  # includes the selected trial itself
    rank = below + (ties + 1) / 2.0
    n_trials = matrix.shape[1]
    omega = rank / (n_trials + 1.0)
    logits = np.log(omega / (1.0 - omega))
    slope, intercept = _degradation_fit(selected_is, selected_oos)
    result = PboResult(
        pbo=float(np.mean(logits <= 0.0)),
        logits=logits,
        is_performance=selected_is,
        oos_performance=selected_oos,
        n_combinations=len(in_sample_blocks),
        n_partitions=n_partitions,
        n_rows_used=n_rows,
        degradation_slope=slope,
        degradation_intercept=intercept,
        probability_of_loss=float(np.mean(selected_oos < 0.0)),
    )
    log.info("event=pbo_computed pbo=%.4f n_trials=%d n_rows=%d n_partitions=%d n_combinations=%d",
             result.pbo, n_trials, n_rows, n_partitions, result.n_combinations)
    return result


# --- helpers -----------------------------------------------------------------------------------------------------


def _as_returns(returns: np.ndarray) -> np.ndarray:
    values = np.asarray(returns, dtype=float)
    if values.ndim != 1 or len(values) < 2:
        raise ValueError(f"returns must be a 1-D array of at least 2 per-period returns; got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"returns must be finite; found {int(np.sum(~np.isfinite(values)))} nan/inf values")
    return values


def _skew_kurtosis(values: np.ndarray) -> tuple[float, float]:
    """Sample skewness m3 / m2^1.5 and non-excess kurtosis m4 / m2² (biased moment estimators, as in the papers)."""
    centred = values - values.mean()
    m2 = float(np.mean(centred**2))
    if m2 <= _ZERO_STD**2:
        return 0.0, 3.0
    return float(np.mean(centred**3)) / m2**1.5, float(np.mean(centred**4)) / m2**2


def _check_cscv_input(matrix: np.ndarray, n_partitions: int) -> None:
    if matrix.ndim != 2:
        raise ValueError(f"returns_matrix must be 2-D (rows time, columns trials); got shape {matrix.shape}")
    if matrix.shape[1] < 2:
        raise ValueError(f"CSCV needs at least 2 trials (columns) to rank; got {matrix.shape[1]}")
    if n_partitions < 2 or n_partitions % 2:
        raise ValueError(f"n_partitions must be an even number >= 2 (half in-sample, half out); got {n_partitions}")
    if matrix.shape[0] < 2 * n_partitions:
        raise ValueError(f"CSCV needs at least 2 rows per block: {2 * n_partitions} rows for n_partitions="
                         f"{n_partitions}; got {matrix.shape[0]}. Use fewer partitions or a longer sample")
    if not np.all(np.isfinite(matrix)):
        raise ValueError(f"returns_matrix must be finite; found {int(np.sum(~np.isfinite(matrix)))} nan/inf values")


def _cscv_sharpe(matrix: np.ndarray, n_partitions: int, in_sample_blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-combination in- and out-of-sample Sharpe ratios (ddof=1) of every trial from per-block moments.

    Returns are centred on each trial's full-sample mean first, so the sums of squares do not lose precision to
    the mean (the variance is shift-invariant; the mean is added back).
    """
    n_rows, n_trials = matrix.shape
    block_len = n_rows // n_partitions
    column_mean = matrix.mean(axis=0)
    blocks = (matrix - column_mean).reshape(n_partitions, block_len, n_trials)
    block_sums, block_squares = blocks.sum(axis=1), (blocks**2).sum(axis=1)
    membership = np.zeros((len(in_sample_blocks), n_partitions))
    np.put_along_axis(membership, in_sample_blocks, 1.0, axis=1)
    half = n_rows // 2
    is_scores = np.empty((len(in_sample_blocks), n_trials))
    oos_scores = np.empty_like(is_scores)
    step = max(1, _MAX_CELLS_PER_CHUNK // n_trials)
    total_sums, total_squares = block_sums.sum(axis=0), block_squares.sum(axis=0)
    for start in range(0, len(in_sample_blocks), step):
        part = membership[start:start + step]
        sums, squares = part @ block_sums, part @ block_squares
        is_scores[start:start + step] = _sharpe_from_sums(sums, squares, half, column_mean)
        oos_scores[start:start + step] = _sharpe_from_sums(total_sums - sums, total_squares - squares,
                                                           n_rows - half, column_mean)
    return is_scores, oos_scores


def _sharpe_from_sums(sums: np.ndarray, squares: np.ndarray, count: int, shift: np.ndarray) -> np.ndarray:
    variance = np.maximum(squares - sums**2 / count, 0.0) / (count - 1)
    std = np.sqrt(variance)
    mean = sums / count + shift
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > _ZERO_STD, mean / np.where(std > _ZERO_STD, std, 1.0), np.nan)


def _cscv_generic(
    matrix: np.ndarray, n_partitions: int, in_sample_blocks: np.ndarray, metric: Metric,
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate an arbitrary metric on every combination's gathered rows (one call per half per combination)."""
    n_rows, n_trials = matrix.shape
    blocks = matrix.reshape(n_partitions, n_rows // n_partitions, n_trials)
    all_blocks = np.arange(n_partitions)
    is_scores = np.empty((len(in_sample_blocks), n_trials))
    oos_scores = np.empty_like(is_scores)
    for i, chosen in enumerate(in_sample_blocks):
        rest = np.setdiff1d(all_blocks, chosen, assume_unique=True)
        is_scores[i] = np.asarray(metric(blocks[chosen].reshape(-1, n_trials)), dtype=float)
        oos_scores[i] = np.asarray(metric(blocks[rest].reshape(-1, n_trials)), dtype=float)
    return is_scores, oos_scores


def _degradation_fit(in_sample: np.ndarray, out_of_sample: np.ndarray) -> tuple[float, float]:
    """Least-squares OOS = intercept + slope x IS over combinations (Bailey et al. 2017, section 3.2)."""
    usable = np.isfinite(in_sample) & np.isfinite(out_of_sample)
    x, y = in_sample[usable], out_of_sample[usable]
    if len(x) < 2 or np.ptp(x) <= 0.0:
        return math.nan, math.nan
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)
