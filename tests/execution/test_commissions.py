"""IB commission models: IB's published Fixed examples, Tiered tiers by New York month, sale-only fees."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.config_models import CostsConfig, IbFixedConfig, IbTieredConfig, Tier
from core.events import Side
from execution.commissions import (
    IbFixedCommission,
    IbTieredCommission,
    NoCommission,
    build_commission_model,
)

NY = ZoneInfo("America/New_York")


def ny_ns(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=NY).timestamp()) * 1_000_000_000


def simple_tiered(**overrides: object) -> IbTieredCommission:
    """Two tiers, no fees, no minimum and no cap, so the per-share rate alone is visible."""
    fields: dict[str, object] = {
        "tiers": (
            Tier(up_to_shares_per_month=1000, per_share_usd=0.01),
            Tier(up_to_shares_per_month=math.inf, per_share_usd=0.005),
        ),
        "min_per_order_usd": 0.0,
        "max_pct_of_value": 100.0,
        "exchange_fee_per_share_usd": 0.0,
        "clearing_fee_per_share_usd": 0.0,
        "finra_pass_through_pct_of_commission": 0.0,
        "sec_fee_rate_of_sale_value": 0.0,
        "finra_taf_per_share_sold_usd": 0.0,
    }
    fields.update(overrides)
    return IbTieredCommission(IbTieredConfig(**fields))


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [(100, 25.0, 1.00), (1000, 25.0, 5.00), (100, 0.25, 0.25)],
    ids=["minimum", "per-share", "one-percent-cap"],
)
def test_fixed_matches_ib_published_examples(quantity: int, price: float, expected: float) -> None:
    model = IbFixedCommission(IbFixedConfig())
    assert model.commission(Side.BUY, quantity, price, 0) == pytest.approx(expected, abs=1e-12)
    assert model.commission(Side.SELL, quantity, price, 0) == pytest.approx(expected, abs=1e-12)


def test_fixed_is_not_rounded_to_cents() -> None:
    # 333 shares at USD 0.30: 1% of 99.90 is 0.999, below the 1.00 minimum, and stays 0.999.
    assert IbFixedCommission(IbFixedConfig()).commission(Side.BUY, 333, 0.30, 0) == pytest.approx(0.999, abs=1e-12)


def test_zero_quantity_costs_nothing_and_negative_quantity_is_refused() -> None:
    for model in (IbFixedCommission(IbFixedConfig()), IbTieredCommission(IbTieredConfig())):
        assert model.commission(Side.BUY, 0, 10.0, 0) == 0.0
        with pytest.raises(ValueError, match="non-negative"):
            model.commission(Side.BUY, -5, 10.0, 0)


@given(
    quantity=st.integers(min_value=1, max_value=10_000_000),
    price=st.floats(min_value=1e-4, max_value=1e5, allow_nan=False),
    side=st.sampled_from(Side),
)
def test_fixed_stays_within_zero_and_one_percent_and_respects_minimum(quantity: int, price: float, side: Side) -> None:
    cfg = IbFixedConfig()
    value = quantity * price
    cap = cfg.max_pct_of_value / 100 * value
    fee = IbFixedCommission(cfg).commission(side, quantity, price, 0)
    assert 0.0 <= fee <= cap * (1 + 1e-12)
    assert fee >= cfg.min_per_order_usd or fee == pytest.approx(cap, rel=1e-12)
    assert fee >= min(cfg.per_share_usd * quantity, cap) * (1 - 1e-12)


def test_tiered_default_sale_formula_by_hand() -> None:
    model = IbTieredCommission(IbTieredConfig())
    ts = ny_ns(2024, 3, 5)
    ib = 0.0035 * 1000  # first tier; above the 0.35 minimum, below 1% of 50,000
    buy = ib + 0.003 * 1000 + 0.0002 * 1000 + 0.00056 * ib
    sell = buy + 0.0000278 * 50_000 + 0.000166 * 1000
    assert model.commission(Side.BUY, 1000, 50.0, ts) == pytest.approx(buy, rel=1e-12)
    assert model.commission(Side.SELL, 1000, 50.0, ts) == pytest.approx(sell, rel=1e-12)


def test_tiered_sec_fee_and_taf_only_on_sales_and_taf_is_capped() -> None:
    model = IbTieredCommission(IbTieredConfig())
    ts = ny_ns(2024, 3, 5)
    for quantity, price in [(100, 20.0), (10_000, 3.0), (200_000, 1.5)]:
        difference = model.commission(Side.SELL, quantity, price, ts) - model.commission(Side.BUY, quantity, price, ts)
        expected = 0.0000278 * quantity * price + min(0.000166 * quantity, 8.30)
        assert difference == pytest.approx(expected, rel=1e-9)
    large = model.commission(Side.SELL, 200_000, 1.5, ts) - model.commission(Side.BUY, 200_000, 1.5, ts)
    assert large == pytest.approx(0.0000278 * 300_000 + 8.30, rel=1e-9)  # 0.000166 * 200,000 = 33.2 capped


def test_tiered_minimum_and_cap_limit_ib_commission_only() -> None:
    cfg = IbTieredConfig()
    model = IbTieredCommission(cfg)
    # 10 shares at USD 100: 0.035 raised to the 0.35 minimum; fees per share on top.
    assert model.commission(Side.BUY, 10, 100.0, 0) == pytest.approx(0.35 * (1 + 0.00056) + 10 * 0.0032, rel=1e-12)
    # 1000 shares at USD 0.10: 1% of 100 = 1.00 caps the 3.50 per-share commission; exchange and clearing are extra.
    assert model.commission(Side.BUY, 1000, 0.10, 0) == pytest.approx(1.0 * (1 + 0.00056) + 1000 * 0.0032, rel=1e-12)


def test_tiered_uses_volume_before_the_order_and_crosses_tiers() -> None:
    model = simple_tiered()
    ts = ny_ns(2024, 1, 10)
    assert model.commission(Side.BUY, 600, 10.0, ts) == pytest.approx(6.0)
    model.record_fill(600, ts)
    # 600 traded so far: still the first tier, even though this order takes the month past 1000.
    assert model.commission(Side.BUY, 500, 10.0, ts) == pytest.approx(5.0)
    model.record_fill(500, ts)
    assert model.month_to_date_shares(ts) == 1100
    assert model.commission(Side.BUY, 100, 10.0, ts) == pytest.approx(0.5)


def test_tiered_bound_belongs_to_the_next_tier() -> None:
    model = simple_tiered()
    ts = ny_ns(2024, 1, 10)
    model.record_fill(999, ts)
    assert model.per_share_rate(ts) == 0.01
    model.record_fill(1, ts)
    assert model.per_share_rate(ts) == 0.005


def test_tiered_volume_resets_at_new_york_month_boundary() -> None:
    model = simple_tiered()
    late_january_ny = ny_ns(2024, 1, 31, 23, 30)  # already 1 February in UTC
    model.record_fill(5000, late_january_ny)
    assert model.per_share_rate(late_january_ny) == 0.005
    assert model.per_share_rate(ny_ns(2024, 1, 2)) == 0.005  # same month
    february = ny_ns(2024, 2, 1, 0, 30)
    assert model.month_to_date_shares(february) == 0
    assert model.commission(Side.BUY, 100, 10.0, february) == pytest.approx(1.0)
    model.record_fill(100, february)
    assert model.month_to_date_shares(february) == 100
    assert model.month_to_date_shares(late_january_ny) == 5000  # a late January fill still sees January


def test_tiered_month_boundary_across_year_end_and_dst() -> None:
    model = simple_tiered()
    model.record_fill(2000, ny_ns(2023, 12, 31, 23, 59))
    assert model.per_share_rate(ny_ns(2024, 1, 1, 0, 1)) == 0.01
    model.record_fill(2000, ny_ns(2024, 3, 10, 12))  # DST starts 10 March 2024
    assert model.per_share_rate(ny_ns(2024, 3, 31, 23, 59)) == 0.005
    assert model.per_share_rate(ny_ns(2024, 4, 1, 0, 0)) == 0.01


@given(
    quantity=st.integers(min_value=1, max_value=1_000_000),
    price=st.floats(min_value=0.01, max_value=5000, allow_nan=False),
    prior_volume=st.integers(min_value=0, max_value=200_000_000),
)
def test_tiered_sale_costs_exactly_the_sale_fees_more_than_a_purchase(
    quantity: int, price: float, prior_volume: int
) -> None:
    cfg = IbTieredConfig()
    model = IbTieredCommission(cfg)
    ts = ny_ns(2024, 6, 14)
    model.record_fill(prior_volume, ts)
    buy = model.commission(Side.BUY, quantity, price, ts)
    sell = model.commission(Side.SELL, quantity, price, ts)
    sale_fees = cfg.sec_fee_rate_of_sale_value * quantity * price + min(
        cfg.finra_taf_per_share_sold_usd * quantity, cfg.finra_taf_max_per_trade_usd
    )
    assert buy > 0.0
    assert sell - buy == pytest.approx(sale_fees, rel=1e-9, abs=1e-9)


def test_no_commission_is_free_and_build_picks_the_configured_model() -> None:
    assert NoCommission().commission(Side.SELL, 1000, 10.0, 0) == 0.0
    assert isinstance(build_commission_model(CostsConfig(commission_model="ib_fixed")), IbFixedCommission)
    assert isinstance(build_commission_model(CostsConfig(commission_model="ib_tiered")), IbTieredCommission)
    assert isinstance(build_commission_model(CostsConfig(commission_model="none")), NoCommission)
    fixed = build_commission_model(CostsConfig(ib_fixed=IbFixedConfig(per_share_usd=0.01)))
    assert fixed.commission(Side.BUY, 1000, 25.0, 0) == pytest.approx(10.0)
