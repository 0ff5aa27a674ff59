"""Plain SMA crossover: the reference strategy used to validate the engine against other backtesters.

LONG when the fast mean crosses strictly above the slow mean (fast[t] > slow[t] and fast[t-1] <= slow[t-1]);
EXIT on the strict cross below (fast[t] < slow[t] and fast[t-1] >= slow[t-1]). Means are rolling arithmetic
means over valid bars.

Tie rule. Each mean is the *correctly rounded* sum of its window divided by the period, i.e. exactly
``math.fsum(window) / period``, which is what backtrader's ``SMA`` computes. A running sum (TA-Lib ``SMA``)
carries rounding error from every earlier bar, so two means that are equal in exact arithmetic can come out
an ulp apart, in either direction, depending on history: in ``orcl-1995-2014.txt`` TA-Lib put fast above slow
on 2004-06-29, where both means are exactly 11.375, and bought a day before backtrader. With correctly rounded
window sums a mean depends only on its own window, so:

- on a bar where ``fast == slow`` neither cross fires (the comparisons are strict);
- on the next bar the tie counts as both ``<=`` and ``>=``, so a cross in either direction fires there;
- a bar where the means are equal in exact arithmetic but not after the one rounding of the division is
  decided by those rounded values, the same ones backtrader compares.

The exact window sums are vectorized: every float of a column is an integer multiple of a common power of two,
so it splits exactly into two int64 limbs whose prefix sums are exact; a window sum is then recombined and
rounded once by a single float addition (``exact_rolling_means``, about 40 ms for 500 symbols x 2,520 bars).
A column whose values span too many binades for the limbs (largest / smallest non-zero value above about 2**24
for daily histories and periods up to a few hundred) falls back to ``math.fsum`` per window: the same numbers,
slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import talib

from core.config_models import SmaCrossoverParams
from strategy.base import EXIT, LONG, BarArrays, SignalArrays, Strategy, crossed_above, crossed_below, per_symbol

_LIMB_BITS = 32
_LIMB = float(2**_LIMB_BITS)
_MANTISSA_BITS = 53
_BLOCK_COLUMNS = 32  # (T, 32) int64 work arrays stay in a 2 MiB L2 cache for daily histories


class SmaCrossover(Strategy):
    def __init__(self, params: SmaCrossoverParams, strategy_id: str = "sma_crossover") -> None:
        super().__init__(strategy_id)
        self.params = params

    @property
    def warmup_bars(self) -> int:
        return max(self.params.slow_period, self.params.atr_period) + 1

    def moving_averages(self, bars: BarArrays) -> tuple[np.ndarray, np.ndarray]:
        """The (fast, slow) rolling means of the closes, (T, N) each, NaN until a window is full."""
        p = self.params
        if np.isnan(bars.close).any():
            fast = per_symbol(lambda c: exact_rolling_mean(c, p.fast_period), bars.close)
            slow = per_symbol(lambda c: exact_rolling_mean(c, p.slow_period), bars.close)
            return fast, slow
        fast, slow = exact_rolling_means(bars.close, (p.fast_period, p.slow_period))  # no gaps: all columns at once
        return fast, slow

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        p = self.params
        fast, slow = self.moving_averages(bars)
        atr = per_symbol(lambda h, lo, c: talib.ATR(h, lo, c, timeperiod=p.atr_period), bars.high, bars.low, bars.close)
        codes = np.zeros(bars.close.shape, dtype=np.int8)
        codes[crossed_above(fast, slow)] = LONG
        codes[crossed_below(fast, slow)] = EXIT
        return SignalArrays(codes=codes, stop_distance=atr * p.atr_stop_multiple)


def exact_rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
    """Causal rolling mean along axis 0, bit-identical to ``math.fsum(window) / period`` for every element.

    ``values`` is 1-D or (T, N) with independent columns; row ``t`` uses rows ``t - period + 1 .. t`` and the
    first ``period - 1`` rows are NaN. Values must be finite (the caller drops NaN bars first).
    """
    return exact_rolling_means(values, (period,))[0]


def exact_rolling_means(values: np.ndarray, periods: Sequence[int]) -> tuple[np.ndarray, ...]:
    """``exact_rolling_mean`` for several periods at once, sharing the exact prefix sums (fast and slow mean).

    Columns are processed in blocks of ``_BLOCK_COLUMNS`` so the int64 work arrays stay in the CPU cache.
    """
    x = np.asarray(values, dtype=np.float64)
    one_d = x.ndim == 1
    if one_d:
        x = x[:, None]
    for period in periods:
        if period < 1:
            raise ValueError(f"period must be >= 1 (got {period})")
    outs = tuple(np.full(x.shape, np.nan) for _ in periods)
    for first in range(0, x.shape[1], _BLOCK_COLUMNS):
        block = slice(first, first + _BLOCK_COLUMNS)
        for out, period, sums in zip(outs, periods, _block_window_sums(x[:, block], periods), strict=True):
            out[period - 1 :, block] = sums / period
    return tuple(out[:, 0] for out in outs) if one_d else outs


def _block_window_sums(x: np.ndarray, periods: Sequence[int]) -> list[np.ndarray]:
    """Correctly rounded sums of every full window of each column of ``x``, one (T - period + 1, n) per period.

    With ``2**(e_min - 1) <= min |x|`` (non-zero values of a column) and ``max |x| < 2**e_max``, every value is a
    multiple of ``2**(e_min - 53)``, so ``x * 2**k`` (``k = 53 - e_min``) is an integer below ``2**(e_max + k)``
    in magnitude; it splits exactly into ``hi * 2**32 + lo`` with ``0 <= lo < 2**32``, and window sums of both
    limbs are exact int64 differences of prefix sums. After carrying ``lo``'s excess into ``hi`` a window sum is
    ``hi * 2**32 + lo`` with both terms exact doubles, so one float addition rounds it correctly (round half to
    even, as ``math.fsum``). Columns outside these bounds are summed with ``math.fsum`` instead.
    """
    n, n_cols = x.shape
    abs_x = np.abs(x)
    smallest = abs_x.min(axis=0, initial=np.inf)
    if (smallest == 0.0).any():
        smallest = np.where(abs_x > 0.0, abs_x, np.inf).min(axis=0, initial=np.inf)
    largest = abs_x.max(axis=0, initial=0.0)
    finite = np.isfinite(largest)
    e_min = np.frexp(np.where(np.isfinite(smallest), smallest, 1.0))[1]
    e_max = np.frexp(np.where(finite & (largest > 0.0), largest, 1.0))[1]
    k = (_MANTISSA_BITS - e_min).astype(np.int32)
    hi_bits = np.maximum(e_max + k - _LIMB_BITS, 0)
    # prefix sums of hi must fit int64, and every scaled value must stay a normal double
    exact = finite & (hi_bits + math.ceil(math.log2(n + 1)) <= 62) & (e_max + k <= 1000) & (e_min >= -900)
    original = x
    if not exact.all():
        x = np.where(exact, x, 0.0)
        k = np.where(exact, k, 0).astype(np.int32)
    scaled = np.ldexp(x, k)
    hi_float = np.floor(scaled * (1.0 / _LIMB))
    lo = (scaled - hi_float * _LIMB).astype(np.int64)  # an integer in [0, 2**32), exact in float
    hi_prefix = np.zeros((n + 1, n_cols), dtype=np.int64)
    np.cumsum(hi_float.astype(np.int64), axis=0, out=hi_prefix[1:])
    lo_prefix = np.zeros((n + 1, n_cols), dtype=np.int64)
    np.cumsum(lo, axis=0, out=lo_prefix[1:])
    results = []
    for period in periods:
        if n < period:
            results.append(np.empty((0, n_cols)))
            continue
        hi = hi_prefix[period:] - hi_prefix[:-period]
        lo_sum = lo_prefix[period:] - lo_prefix[:-period]
        hi += lo_sum >> _LIMB_BITS
        lo_sum &= (1 << _LIMB_BITS) - 1
        sums = np.ldexp(hi.astype(np.float64) * _LIMB + lo_sum.astype(np.float64), -k)
        # the window's hi sum must be an exact double, so that the addition is the only rounding
        for j in np.flatnonzero(~(exact & (hi_bits + math.ceil(math.log2(period)) + 1 <= 52))):
            column = original[:, j]
            sums[:, j] = [math.fsum(column[t - period + 1 : t + 1]) for t in range(period - 1, n)]
        results.append(sums)
    return results
