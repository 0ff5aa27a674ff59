"""Position sizing: worked examples per method and the properties every size must have (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config_models import SizingConfig
from portfolio.shared_sizing_logic import PositionSizer

VOLATILITY = PositionSizer(SizingConfig(method="volatility"), risk_per_trade_pct=0.5)
FRACTION = PositionSizer(SizingConfig(method="fixed_fraction", fixed_fraction_pct=10.0), risk_per_trade_pct=0.5)
SHARES = PositionSizer(SizingConfig(method="fixed_shares", fixed_shares=100), risk_per_trade_pct=0.5)
SIZERS = [VOLATILITY, FRACTION, SHARES]

any_float = st.floats(allow_nan=True, allow_infinity=True)
equities = st.floats(1.0, 1e10)
prices = st.floats(0.01, 1e5)
stops = st.floats(1e-3, 1e4)
scales = st.floats(1e-6, 4.0)


# --- worked examples ---------------------------------------------------------------------------------------------


def test_volatility_sizing_risks_the_budget_over_the_stop() -> None:
    assert VOLATILITY.quantity(100_000.0, 50.0, stop_distance=2.5) == 200  # $500 at risk / $2.50
    assert VOLATILITY.quantity(100_000.0, 50.0, stop_distance=3.0) == 166  # floor(166.67)
    assert VOLATILITY.quantity(100_000.0, 50.0, stop_distance=2.5, scale=0.5) == 100


def test_fixed_fraction_sizing() -> None:
    assert FRACTION.quantity(100_000.0, 10.0, stop_distance=None) == 1_000
    assert FRACTION.quantity(100_000.0, 30.0, stop_distance=None, scale=0.25) == 83  # floor(2,500 / 30)


def test_fixed_shares_are_exact_and_unscaled_but_zero_scale_means_no_trade() -> None:
    assert SHARES.quantity(100_000.0, 10.0, stop_distance=None) == 100
    assert SHARES.quantity(100_000.0, 10.0, stop_distance=None, scale=0.3) == 100
    assert SHARES.quantity(100_000.0, 10.0, stop_distance=None, scale=2.0) == 100
    assert SHARES.quantity(100_000.0, 10.0, stop_distance=None, scale=0.0) == 0


def test_below_min_quantity_gives_zero() -> None:
    sizer = PositionSizer(SizingConfig(method="volatility", min_quantity=5), risk_per_trade_pct=0.5)
    assert sizer.quantity(1_000.0, 10.0, stop_distance=1.0) == 5
    assert sizer.quantity(999.0, 10.0, stop_distance=1.0) == 0  # floor(4.995) = 4 < 5


@pytest.mark.parametrize(
    ("equity", "price", "stop", "scale"),
    [
        (math.nan, 10.0, 1.0, 1.0),
        (-1.0, 10.0, 1.0, 1.0),
        (100_000.0, math.nan, 1.0, 1.0),
        (100_000.0, 0.0, 1.0, 1.0),
        (100_000.0, -10.0, 1.0, 1.0),
        (100_000.0, 10.0, None, 1.0),
        (100_000.0, 10.0, 0.0, 1.0),
        (100_000.0, 10.0, math.nan, 1.0),
        (100_000.0, 10.0, 1.0, math.nan),
        (100_000.0, 10.0, 1.0, -1.0),
        (1e300, 10.0, 1e-300, 1.0),
    ],
)
def test_unusable_inputs_give_zero(equity: float, price: float, stop: float | None, scale: float) -> None:
    assert VOLATILITY.quantity(equity, price, stop, scale) == 0


def test_risk_per_trade_pct_is_validated() -> None:
    with pytest.raises(ValueError, match="risk_per_trade_pct"):
        PositionSizer(SizingConfig(), risk_per_trade_pct=0.0)


# --- properties --------------------------------------------------------------------------------------------------


@given(equity=any_float, price=any_float, stop=st.none() | any_float, scale=any_float, sizer=st.sampled_from(SIZERS))
def test_never_negative_never_nan(
    equity: float, price: float, stop: float | None, scale: float, sizer: PositionSizer
) -> None:
    quantity = sizer.quantity(equity, price, stop, scale)
    assert isinstance(quantity, int) and quantity >= 0


@given(equity_a=equities, equity_b=equities, price=prices, stop=stops, scale=scales, sizer=st.sampled_from(SIZERS))
def test_monotone_in_equity(
    equity_a: float, equity_b: float, price: float, stop: float, scale: float, sizer: PositionSizer
) -> None:
    low, high = sorted((equity_a, equity_b))
    assert sizer.quantity(low, price, stop, scale) <= sizer.quantity(high, price, stop, scale)


@given(equity=equities, price=prices, stop=stops, scale_a=scales, scale_b=scales, sizer=st.sampled_from(SIZERS))
def test_monotone_in_scale(
    equity: float, price: float, stop: float, scale_a: float, scale_b: float, sizer: PositionSizer
) -> None:
    low, high = sorted((scale_a, scale_b))
    assert sizer.quantity(equity, price, stop, low) <= sizer.quantity(equity, price, stop, high)


@given(equity=equities, price=prices, stop=stops, scale=scales, risk_pct=st.floats(0.01, 5.0))
def test_volatility_position_never_risks_more_than_the_budget(
    equity: float, price: float, stop: float, scale: float, risk_pct: float
) -> None:
    sizer = PositionSizer(SizingConfig(method="volatility"), risk_per_trade_pct=risk_pct)
    quantity = sizer.quantity(equity, price, stop, scale)
    budget = equity * (risk_pct / 100.0) * scale
    assert quantity * stop <= budget
    assert quantity == 0 or (quantity + 1) * stop > budget * (1 - 1e-12)  # and uses it up to a whole share
