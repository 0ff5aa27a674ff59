"""The per-symbol ADV (``ring_mean`` over one column of the volume ring): the exact mean of the known volumes,
whatever the ring's rotation, and the same figures as the vectorized masked mean it replaced for share volumes
(whole numbers), so sizing and the ADV-share limit do not move by one share."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from portfolio.portfolio_manager import ring_mean

fractional = st.one_of(st.just(math.nan), st.floats(min_value=0.0, max_value=1e12, allow_nan=False))
shares = st.one_of(st.just(math.nan), st.integers(0, 10**9).map(float))


def masked_mean_by_column(ring: np.ndarray) -> np.ndarray:
    """The earlier vectorized ADV: NaN -> 0, sum down each column, divide by the non-NaN count."""
    missing = np.isnan(ring)
    counts = missing.shape[0] - np.count_nonzero(missing, axis=0)
    sums = np.where(missing, 0.0, ring).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


@settings(max_examples=300, deadline=None)
@given(st.lists(fractional, max_size=60), st.integers(0, 59))
def test_ring_mean_is_the_exactly_summed_mean_in_any_rotation(values: list[float], shift: int) -> None:
    known = [v for v in values if not math.isnan(v)]
    got = ring_mean(values)
    if not known:
        assert math.isnan(got)
        return
    assert got == float(sum(map(Fraction, known))) / len(known)
    k = shift % len(values)
    assert ring_mean(values[k:] + values[:k]) == got


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 40), st.integers(1, 12)), elements=shares))
def test_share_volumes_give_the_vectorized_figures(ring: np.ndarray) -> None:
    expected = masked_mean_by_column(ring)
    for j in range(ring.shape[1]):
        got = ring_mean(ring[:, j].tolist())
        assert got == expected[j] or (math.isnan(got) and math.isnan(expected[j])), (j, got, expected[j])


def test_ring_mean_of_no_known_volume_is_nan() -> None:
    assert math.isnan(ring_mean([math.nan, math.nan]))
    assert math.isnan(ring_mean([]))
    assert ring_mean([math.nan, 3.0, 5.0]) == 4.0
