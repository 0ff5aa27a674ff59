"""Pre-trade controls: each check fires with a readable reason and passes just inside its limit; the gate's
order, ``check_all`` and the rule that only ``accept`` moves the duplicate and throttle history."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.clock import NS_PER_SECOND
from core.config_models import PreTradeConfig
from core.events import OrderType, Side
from portfolio.pre_trade import (
    DuplicateOrderGuard,
    MaxAdvParticipation,
    MaxOrderNotional,
    MaxOrderQuantity,
    NoShortSales,
    OrderHistory,
    OrderRateThrottle,
    PreTradeGate,
    PriceCollar,
    RestrictedSymbols,
    reduces_position,
)
from testkit.book import StaticBook
from testkit.orders import make_order

T0 = 1_700_000_000 * NS_PER_SECOND
BOOK = StaticBook(positions={"AAA": 0}, last_prices={"AAA": 10.0}, adv={"AAA": 1_000_000.0})
LONG_100 = StaticBook(positions={"AAA": 100}, last_prices={"AAA": 10.0}, adv={"AAA": 1_000_000.0})
UNKNOWN = StaticBook(positions={"AAA": 100})  # no last price, no volume


def _history() -> OrderHistory:
    return OrderHistory(retention_ns=60 * NS_PER_SECOND, max_records=1_000)


# --- MaxOrderQuantity --------------------------------------------------------------------------------------------


def test_max_order_quantity_passes_at_the_limit_and_fires_above_it() -> None:
    check = MaxOrderQuantity(100_000)
    assert check.check(make_order(quantity=100_000), BOOK, T0) is None
    rejection = check.check(make_order(quantity=100_001), BOOK, T0)
    assert rejection is not None
    assert rejection.check == "max_order_quantity"
    assert "100,001" in rejection.reason and "100,000" in rejection.reason


@pytest.mark.parametrize("quantity", [0, -5])
def test_max_order_quantity_refuses_a_non_positive_quantity(quantity: int) -> None:
    rejection = MaxOrderQuantity(100).check(make_order(quantity=quantity), BOOK, T0)
    assert rejection is not None and f"got {quantity}" in rejection.reason


# --- MaxOrderNotional --------------------------------------------------------------------------------------------


def test_max_order_notional_values_at_the_limit_price_first() -> None:
    check = MaxOrderNotional(250_000.0)
    just_under = make_order(quantity=1_000, order_type=OrderType.LMT, limit_price=250.0, reference_price=1.0)
    assert check.check(just_under, BOOK, T0) is None
    over = make_order(quantity=1_000, order_type=OrderType.LMT, limit_price=250.01, reference_price=1.0)
    rejection = check.check(over, BOOK, T0)
    assert rejection is not None and rejection.check == "max_order_notional"
    assert "$250,010.00" in rejection.reason and "$250,000.00" in rejection.reason and "limit price" in rejection.reason


def test_max_order_notional_falls_back_to_reference_then_last_price() -> None:
    check = MaxOrderNotional(1_000.0)
    assert check.check(make_order(quantity=100, reference_price=10.0), BOOK, T0) is None
    rejection = check.check(make_order(quantity=101, reference_price=10.0), BOOK, T0)
    assert rejection is not None and "reference price" in rejection.reason
    book = StaticBook(last_prices={"AAA": 20.0})
    rejection = check.check(make_order(quantity=51, reference_price=math.nan), book, T0)
    assert rejection is not None and "last price" in rejection.reason and "$1,020.00" in rejection.reason


def test_max_order_notional_without_any_price_refuses_unless_verified_reduce_only() -> None:
    check = MaxOrderNotional(1_000_000.0)
    rejection = check.check(make_order(reference_price=math.nan), UNKNOWN, T0)
    assert rejection is not None and "cannot be valued" in rejection.reason
    exit_order = make_order(side=Side.SELL, quantity=100, reference_price=math.nan, reduce_only=True)
    assert check.check(exit_order, UNKNOWN, T0) is None
    lying = make_order(side=Side.SELL, quantity=150, reference_price=math.nan, reduce_only=True)
    assert check.check(lying, UNKNOWN, T0) is not None


# --- MaxAdvParticipation -----------------------------------------------------------------------------------------


def test_adv_participation_passes_at_the_limit_and_fires_above_it() -> None:
    check = MaxAdvParticipation(5.0)
    assert check.check(make_order(quantity=50_000), BOOK, T0) is None
    rejection = check.check(make_order(quantity=60_000), BOOK, T0)
    assert rejection is not None and rejection.check == "max_adv_participation"
    assert "6.00%" in rejection.reason and "1,000,000" in rejection.reason and "5%" in rejection.reason


def test_unknown_adv_refuses_an_opening_order_with_a_clear_reason() -> None:
    rejection = MaxAdvParticipation(5.0).check(make_order(quantity=1), UNKNOWN, T0)
    assert rejection is not None and "average daily volume of AAA is unknown" in rejection.reason


def test_unknown_adv_passes_a_verified_reduce_only_order_but_not_a_mislabelled_one() -> None:
    check = MaxAdvParticipation(5.0)
    assert check.check(make_order(side=Side.SELL, quantity=100, reduce_only=True), UNKNOWN, T0) is None
    assert check.check(make_order(side=Side.BUY, quantity=100, reduce_only=True), UNKNOWN, T0) is not None


def test_known_adv_binds_reduce_only_orders_too() -> None:
    book = StaticBook(positions={"AAA": 200_000}, adv={"AAA": 1_000_000.0})
    exit_order = make_order(side=Side.SELL, quantity=200_000, reduce_only=True)
    assert MaxAdvParticipation(5.0).check(exit_order, book, T0) is not None


# --- PriceCollar -------------------------------------------------------------------------------------------------


def test_price_collar_on_the_limit_price() -> None:
    check = PriceCollar(10.0)
    inside = make_order(order_type=OrderType.LMT, limit_price=10.99, reference_price=10.0)
    assert check.check(inside, BOOK, T0) is None
    outside = make_order(order_type=OrderType.LMT, limit_price=11.01, reference_price=10.0)
    rejection = check.check(outside, BOOK, T0)
    assert rejection is not None and rejection.check == "price_collar"
    assert "11.01" in rejection.reason and "10.10%" in rejection.reason and "10%" in rejection.reason


def test_price_collar_on_the_last_price() -> None:
    check = PriceCollar(10.0)
    assert check.check(make_order(reference_price=10.0), StaticBook(last_prices={"AAA": 9.01}), T0) is None
    rejection = check.check(make_order(reference_price=10.0), StaticBook(last_prices={"AAA": 8.5}), T0)
    assert rejection is not None and "last price $8.50" in rejection.reason and "15.00%" in rejection.reason


def test_price_collar_unknown_last_price_passes_only_verified_reduce_only() -> None:
    check = PriceCollar(10.0)
    rejection = check.check(make_order(side=Side.BUY), UNKNOWN, T0)
    assert rejection is not None and "last price of AAA is unknown" in rejection.reason
    assert check.check(make_order(side=Side.SELL, quantity=100, reduce_only=True), UNKNOWN, T0) is None
    assert check.check(make_order(side=Side.SELL, quantity=101, reduce_only=True), UNKNOWN, T0) is not None


def test_price_collar_limit_test_binds_reduce_only_orders() -> None:
    fat_finger_exit = make_order(
        side=Side.SELL, quantity=100, order_type=OrderType.LMT, limit_price=1.0, reference_price=10.0, reduce_only=True
    )
    assert PriceCollar(10.0).check(fat_finger_exit, UNKNOWN, T0) is not None


def test_price_collar_refuses_an_order_without_reference_price() -> None:
    rejection = PriceCollar(10.0).check(make_order(reference_price=math.nan), BOOK, T0)
    assert rejection is not None and "no usable reference price" in rejection.reason


# --- NoShortSales ------------------------------------------------------------------------------------------------


def test_no_short_sales_allows_selling_the_long_position_and_refuses_more() -> None:
    check = NoShortSales(allowed=False)
    assert check.check(make_order(side=Side.SELL, quantity=100), LONG_100, T0) is None
    rejection = check.check(make_order(side=Side.SELL, quantity=101), LONG_100, T0)
    assert rejection is not None and rejection.check == "no_short_sales"
    assert "101" in rejection.reason and "position of 100" in rejection.reason and "to -1 shares" in rejection.reason


def test_no_short_sales_refuses_adding_to_an_existing_short() -> None:
    rejection = NoShortSales(allowed=False).check(
        make_order(side=Side.SELL, quantity=10), StaticBook({"AAA": -100}), T0
    )
    assert rejection is not None and "to -110 shares" in rejection.reason


def test_no_short_sales_ignores_buys_and_is_off_when_allowed() -> None:
    assert NoShortSales(allowed=False).check(make_order(side=Side.BUY), BOOK, T0) is None
    assert NoShortSales(allowed=True).check(make_order(side=Side.SELL, quantity=500), BOOK, T0) is None


def test_no_short_sales_catches_a_mislabelled_reduce_only_sell() -> None:
    lying = make_order(side=Side.SELL, quantity=150, reduce_only=True)
    assert NoShortSales(allowed=False).check(lying, LONG_100, T0) is not None


# --- RestrictedSymbols -------------------------------------------------------------------------------------------


def test_restricted_symbols() -> None:
    check = RestrictedSymbols(["AAA", "BBB"])
    assert check.check(make_order(symbol="BBB"), BOOK, T0) is None
    rejection = check.check(make_order(symbol="ZZZ"), BOOK, T0)
    assert rejection is not None and rejection.check == "restricted_symbols" and "'ZZZ'" in rejection.reason


# --- DuplicateOrderGuard -----------------------------------------------------------------------------------------


def test_duplicate_guard_fires_inside_the_window_and_passes_at_its_end() -> None:
    history = _history()
    guard = DuplicateOrderGuard(5.0, history)
    first = make_order()
    history.record(first, T0)
    rejection = guard.check(make_order(), BOOK, T0 + 5 * NS_PER_SECOND - 1)
    assert rejection is not None and rejection.check == "duplicate_order"
    assert first.client_order_id in rejection.reason and "5 s" in rejection.reason
    assert guard.check(make_order(), BOOK, T0 + 5 * NS_PER_SECOND) is None


@pytest.mark.parametrize(
    "other", [dict(symbol="BBB"), dict(side=Side.SELL), dict(quantity=101)], ids=["symbol", "side", "quantity"]
)
def test_duplicate_guard_needs_same_symbol_side_and_quantity(other: dict[str, Any]) -> None:
    history = _history()
    history.record(make_order(), T0)
    assert DuplicateOrderGuard(5.0, history).check(make_order(**other), BOOK, T0 + 1) is None


# --- OrderRateThrottle -------------------------------------------------------------------------------------------


def test_throttle_per_second_sliding_window() -> None:
    history = _history()
    throttle = OrderRateThrottle(max_per_second=3, max_per_minute=100, history=history)
    for i in range(2):
        history.record(make_order(quantity=i + 1), T0 + i)
    assert throttle.check(make_order(), BOOK, T0 + 10) is None
    history.record(make_order(quantity=3), T0 + 10)
    rejection = throttle.check(make_order(), BOOK, T0 + 11)
    assert rejection is not None and rejection.check == "order_rate"
    assert "3 orders were accepted in the last second" in rejection.reason and "3 per second" in rejection.reason
    assert throttle.check(make_order(), BOOK, T0 + NS_PER_SECOND) is None  # the first order left the window


def test_throttle_per_minute_sliding_window() -> None:
    history = _history()
    throttle = OrderRateThrottle(max_per_second=100, max_per_minute=5, history=history)
    for i in range(5):
        history.record(make_order(quantity=i + 1), T0 + i * 10 * NS_PER_SECOND)
    rejection = throttle.check(make_order(), BOOK, T0 + 45 * NS_PER_SECOND)
    assert rejection is not None and "in the last minute" in rejection.reason
    assert throttle.check(make_order(), BOOK, T0 + 60 * NS_PER_SECOND) is None


def test_order_history_forgets_after_retention_and_stays_bounded() -> None:
    history = OrderHistory(retention_ns=NS_PER_SECOND, max_records=3)
    for i in range(5):
        history.record(make_order(quantity=i + 1), T0 + i)
    assert len(history) == 3
    history.record(make_order(), T0 + 2 * NS_PER_SECOND)
    assert len(history) == 1


# --- PreTradeGate ------------------------------------------------------------------------------------------------


def _gate(**overrides: Any) -> PreTradeGate:
    return PreTradeGate(PreTradeConfig(**overrides), allowed_symbols=["AAA", "BBB"])


def test_gate_returns_the_first_failure_and_check_all_returns_every_one_in_order() -> None:
    gate = _gate()
    order = make_order(symbol="ZZZ", side=Side.SELL, quantity=200_000, reference_price=10.0)
    book = StaticBook(last_prices={"ZZZ": 10.0})  # volume unknown, nothing held
    first = gate.check(order, book, T0)
    assert first is not None and first.check == "restricted_symbols"
    assert [r.check for r in gate.check_all(order, book, T0)] == [
        "restricted_symbols",
        "max_order_quantity",
        "max_order_notional",
        "max_adv_participation",
        "no_short_sales",
    ]


def test_gate_check_order_is_fixed() -> None:
    assert [c.name for c in _gate().checks] == [
        "restricted_symbols",
        "max_order_quantity",
        "price_collar",
        "max_order_notional",
        "max_adv_participation",
        "no_short_sales",
        "duplicate_order",
        "order_rate",
    ]


def test_gate_passes_a_sane_order() -> None:
    gate = _gate()
    assert gate.check(make_order(), BOOK, T0) is None
    assert gate.check_all(make_order(), BOOK, T0) == []


def test_gate_check_moves_nothing_and_accept_moves_the_duplicate_and_throttle_history() -> None:
    gate = _gate(max_orders_per_second=2)
    order = make_order()
    for _ in range(10):
        assert gate.check(order, BOOK, T0) is None
    assert len(gate.history) == 0
    gate.accept(order, T0)
    assert len(gate.history) == 1
    duplicate = gate.check(make_order(), BOOK, T0 + 1)
    assert duplicate is not None and duplicate.check == "duplicate_order"
    gate.accept(make_order(quantity=7), T0 + 2)
    throttled = gate.check(make_order(quantity=8), BOOK, T0 + 3)
    assert throttled is not None and throttled.check == "order_rate"


def test_gate_throttles_reduce_only_orders_too() -> None:
    gate = _gate(max_orders_per_second=1)
    gate.accept(make_order(symbol="BBB"), T0)
    exit_order = make_order(side=Side.SELL, quantity=100, reduce_only=True)
    rejection = gate.check(exit_order, LONG_100, T0 + 1)
    assert rejection is not None and rejection.check == "order_rate"


def test_gate_lets_a_verified_exit_through_without_market_data() -> None:
    exit_order = make_order(side=Side.SELL, quantity=100, reduce_only=True, reference_price=10.0)
    assert _gate().check(exit_order, UNKNOWN, T0) is None


@given(
    side=st.sampled_from(list(Side)),
    quantity=st.integers(-10, 300_000),
    reference_price=st.floats(allow_nan=True, allow_infinity=True),
    limit_price=st.none() | st.floats(allow_nan=True, allow_infinity=True),
    reduce_only=st.booleans(),
    position=st.integers(-1_000, 1_000),
)
def test_gate_never_raises_never_mutates_and_explains_every_rejection(
    side: Side, quantity: int, reference_price: float, limit_price: float | None, reduce_only: bool, position: int
) -> None:
    gate = _gate()
    gate.accept(make_order(quantity=1), T0)
    order = make_order(
        side=side, quantity=quantity, reference_price=reference_price, limit_price=limit_price, reduce_only=reduce_only
    )
    book = StaticBook(positions={"AAA": position}, last_prices={"AAA": 10.0}, adv={"AAA": 1_000_000.0})
    rejections = gate.check_all(order, book, T0 + 1)
    first = gate.check(order, book, T0 + 1)
    assert len(gate.history) == 1
    assert first == (rejections[0] if rejections else None)
    for rejection in rejections:
        assert rejection.reason.startswith(f"{side} ") and rejection.reason.endswith(".")


@given(side=st.sampled_from(list(Side)), quantity=st.integers(-5, 50), position=st.integers(-50, 50))
def test_reduces_position_means_toward_zero_without_crossing(side: Side, quantity: int, position: int) -> None:
    after = position + side.sign * quantity
    expected = quantity > 0 and abs(after) < abs(position) and after * position >= 0
    assert reduces_position(side, quantity, position) is expected


def test_issue_3_an_exit_larger_than_the_size_limits_is_still_accepted() -> None:
    """A position that grew past the per-order limits must stay closable; an entry that size is refused."""
    from core.events import Side
    from portfolio.pre_trade import MaxOrderNotional, MaxOrderQuantity
    from testkit.book import StaticBook
    from testkit.orders import make_order

    book = StaticBook(positions={"AAA": 5_000}, last_prices={"AAA": 100.0}, adv={"AAA": 1e7})
    exit_order = make_order(symbol="AAA", side=Side.SELL, quantity=5_000, reference_price=100.0, reduce_only=True)
    entry = make_order(symbol="AAA", side=Side.BUY, quantity=5_000, reference_price=100.0)
    oversell = make_order(symbol="AAA", side=Side.SELL, quantity=6_000, reference_price=100.0, reduce_only=True)
    for check in (MaxOrderQuantity(1_000), MaxOrderNotional(100_000.0)):
        assert check.check(exit_order, book, 0) is None
        assert check.check(entry, book, 0) is not None
        assert check.check(oversell, book, 0) is not None  # claims reduce-only but would cross zero
