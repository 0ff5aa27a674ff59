"""Slippage model: direction, the formula, monotone in size, the volume cap and the zero model."""

from __future__ import annotations

import math
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config_models import SlippageConfig
from core.events import Side
from execution.slippage import SlippageModel

prices = st.floats(min_value=0.01, max_value=10_000, allow_nan=False)
volumes = st.floats(min_value=1.0, max_value=1e9, allow_nan=False)


def test_formula_by_hand_buys_pay_up_and_sells_receive_less() -> None:
    model = SlippageModel(SlippageConfig(half_spread_bps=2.0, impact_coefficient_bps=10.0, impact_exponent=0.5))
    # participation 1000 / 100,000 = 1%; sqrt 0.1; 2 + 10 * 0.1 = 3 bps of 100 = 0.03
    assert model.fill_price(Side.BUY, 100.0, 1000, 100_000) == pytest.approx(100.03, abs=1e-12)
    assert model.fill_price(Side.SELL, 100.0, 1000, 100_000) == pytest.approx(99.97, abs=1e-12)


@pytest.mark.parametrize("bar_volume", [math.nan, 0.0, -5.0])
def test_unknown_bar_volume_counts_as_full_participation(bar_volume: float) -> None:
    model = SlippageModel(SlippageConfig(half_spread_bps=2.0, impact_coefficient_bps=10.0, impact_exponent=0.5))
    assert model.fill_price(Side.BUY, 100.0, 10, bar_volume) == pytest.approx(100.0 * (1 + 12e-4), abs=1e-12)
    assert model.max_fill_quantity(bar_volume) == 0


@given(
    side=st.sampled_from(Side),
    reference=prices,
    quantity=st.integers(min_value=0, max_value=10_000_000),
    bar_volume=volumes,
)
def test_fill_price_direction(side: Side, reference: float, quantity: int, bar_volume: float) -> None:
    model = SlippageModel(SlippageConfig())
    price = model.fill_price(side, reference, quantity, bar_volume)
    if side is Side.BUY:
        assert price > reference
    else:
        assert 0.0 <= price < reference


@given(
    reference=prices,
    small=st.integers(min_value=0, max_value=5_000_000),
    extra=st.integers(min_value=0, max_value=5_000_000),
    bar_volume=volumes,
    exponent=st.floats(min_value=0.1, max_value=2.0),
)
def test_fill_price_is_monotone_in_quantity(
    reference: float, small: int, extra: int, bar_volume: float, exponent: float
) -> None:
    model = SlippageModel(SlippageConfig(impact_exponent=exponent))
    large = small + extra
    assert model.fill_price(Side.BUY, reference, small, bar_volume) <= model.fill_price(
        Side.BUY, reference, large, bar_volume
    )
    assert model.fill_price(Side.SELL, reference, small, bar_volume) >= model.fill_price(
        Side.SELL, reference, large, bar_volume
    )


@given(
    side=st.sampled_from(Side),
    reference=prices,
    quantity=st.integers(min_value=0, max_value=10_000_000),
    bar_volume=st.one_of(volumes, st.just(math.nan), st.just(0.0)),
)
def test_zero_model_is_identity_without_volume_cap(
    side: Side, reference: float, quantity: int, bar_volume: float
) -> None:
    model = SlippageModel.zero()
    assert model.fill_price(side, reference, quantity, bar_volume) == reference
    assert model.max_fill_quantity(bar_volume) == sys.maxsize


def test_max_fill_quantity_floors_the_participation_cap() -> None:
    assert SlippageModel(SlippageConfig(max_participation_pct=10.0)).max_fill_quantity(12_345.0) == 1234
    # 29 / 100 * 100 is 28.999999999999996 in floats; the cap must still be 29 shares.
    assert SlippageModel(SlippageConfig(max_participation_pct=29.0)).max_fill_quantity(100.0) == 29
    assert SlippageModel(SlippageConfig(max_participation_pct=100.0)).max_fill_quantity(0.5) == 0


def test_bad_reference_price_is_refused() -> None:
    model = SlippageModel(SlippageConfig())
    for reference in (math.nan, 0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="reference_price"):
            model.fill_price(Side.BUY, reference, 10, 1000.0)
    with pytest.raises(ValueError, match="quantity"):
        model.fill_price(Side.BUY, 10.0, -1, 1000.0)
