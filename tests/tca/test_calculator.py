"""Implementation shortfall on scripted fills, checked against numbers worked out by hand, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tca_builders import make_execution, make_unfilled

from tca.calculator import aggregate, order_shortfalls, records_frame, shortfall_for_order

TOL = 1e-9


def test_buy_filled_in_two_executions_is_volume_weighted() -> None:
    # BUY 1000 decided at 100.00 (notional D = 1000 × 100 = 100,000), arrival 100.10,
    # fills 600 @ 100.20 (commission 3.00) and 400 @ 100.25 (commission 2.00).
    order = {"client_order_id": "B1", "order_quantity": 1000, "decision_price": 100.0, "arrival_price": 100.10}
    fills = [
        make_execution(exec_id="b1", quantity=600, price=100.20, commission=3.0, **order),
        make_execution(exec_id="b2", quantity=400, price=100.25, commission=2.0, **order),
    ]
    result = shortfall_for_order(fills)
    assert result.filled_quantity == 1000 and result.unfilled_quantity == 0
    assert result.avg_fill_price == pytest.approx(100.22, abs=TOL)  # (600·100.20 + 400·100.25) / 1000
    assert result.delay_bps == pytest.approx(10.0, abs=TOL)  # 1000 · (100.10 − 100.00) = 100 → 100/100,000 · 1e4
    assert result.execution_bps == pytest.approx(12.0, abs=TOL)  # 600·0.10 + 400·0.15 = 120 → 12 bps
    assert result.opportunity_bps == 0.0
    assert result.fees_bps == pytest.approx(0.5, abs=TOL)  # 5.00 / 100,000 · 1e4
    assert result.total_bps == pytest.approx(22.5, abs=TOL)  # 10 + 12 + 0 + 0.5
    assert result.execution_benchmark == "arrival"


def test_sell_cost_is_positive_when_the_price_falls() -> None:
    # SELL 500 decided at 50.00 (D = 25,000), arrival 49.90, fill 500 @ 49.80, commission 2.50.
    fill = make_execution(side="SELL", order_quantity=500, quantity=500, decision_price=50.0, arrival_price=49.90,
                          price=49.80, commission=2.5)  # fmt: skip
    result = shortfall_for_order([fill])
    assert result.delay_bps == pytest.approx(20.0, abs=TOL)  # −1 · 500 · (49.90 − 50.00) = 50 → 50/25,000 · 1e4
    assert result.execution_bps == pytest.approx(20.0, abs=TOL)  # −1 · 500 · (49.80 − 49.90) = 50 → 20 bps
    assert result.fees_bps == pytest.approx(1.0, abs=TOL)  # 2.50 / 25,000 · 1e4
    assert result.total_bps == pytest.approx(41.0, abs=TOL)


def test_sell_into_a_rising_price_is_a_negative_cost() -> None:
    # SELL 100 decided at 10.00 (D = 1,000), arrival 10.05, fill 100 @ 10.07, no commission.
    fill = make_execution(side="SELL", decision_price=10.0, arrival_price=10.05, price=10.07, commission=0.0)
    result = shortfall_for_order([fill])
    assert result.delay_bps == pytest.approx(-50.0, abs=TOL)  # −1 · 100 · 0.05 = −5 → −5/1,000 · 1e4
    assert result.execution_bps == pytest.approx(-20.0, abs=TOL)  # −1 · 100 · 0.02 = −2 → −20 bps
    assert result.total_bps == pytest.approx(-70.0, abs=TOL)


def test_partial_fill_with_the_rest_cancelled_has_opportunity_cost_from_the_cancel_price() -> None:
    # BUY 1000 decided at 20.00 (D = 20,000), arrival 20.02, fill 300 @ 20.05 (commission 1.50),
    # the other 700 cancelled when the price was 20.30.
    order = {"client_order_id": "P1", "order_quantity": 1000, "decision_price": 20.0}
    fill = make_execution(quantity=300, price=20.05, commission=1.5, arrival_price=20.02, **order)
    end = make_unfilled(unfilled_quantity=700, end_price=20.30, **order)
    result = shortfall_for_order([fill], end)
    assert (result.filled_quantity, result.unfilled_quantity, result.unaccounted_quantity) == (300, 700, 0)
    assert result.delay_bps == pytest.approx(3.0, abs=TOL)  # 300 · 0.02 = 6 → 6/20,000 · 1e4
    assert result.execution_bps == pytest.approx(4.5, abs=TOL)  # 300 · (20.05 − 20.02) = 9 → 4.5 bps
    assert result.opportunity_bps == pytest.approx(105.0, abs=TOL)  # 700 · (20.30 − 20.00) = 210 → 105 bps
    assert result.fees_bps == pytest.approx(0.75, abs=TOL)  # 1.50 / 20,000 · 1e4
    assert result.total_bps == pytest.approx(113.25, abs=TOL)  # 3 + 4.5 + 105 + 0.75


def test_order_that_never_filled_costs_only_its_opportunity() -> None:
    # BUY 100 decided at 10.00 (D = 1,000), nothing filled, ended at 10.50: 100 · 0.50 = 50 → 500 bps.
    result = shortfall_for_order([], make_unfilled(end_price=10.5))
    assert (result.delay_bps, result.execution_bps, result.fees_bps) == (0.0, 0.0, 0.0)
    assert result.opportunity_bps == pytest.approx(500.0, abs=TOL)
    assert result.total_bps == pytest.approx(500.0, abs=TOL)
    assert result.avg_fill_price is None


def test_missing_arrival_price_measures_execution_from_the_decision() -> None:
    # SELL 200 decided at 10.00 (D = 2,000), arrival unknown, fill 200 @ 9.95, commission 1.00.
    fill = make_execution(side="SELL", order_quantity=200, quantity=200, price=9.95, commission=1.0,
                          arrival_price=None, arrival_ts=None)  # fmt: skip
    result = shortfall_for_order([fill])
    assert result.delay_bps is None
    assert result.execution_benchmark == "decision"
    assert result.execution_bps == pytest.approx(50.0, abs=TOL)  # −1 · 200 · (9.95 − 10.00) = 10 → 50 bps
    assert result.total_bps == pytest.approx(55.0, abs=TOL)  # 50 + 1.00/2,000 · 1e4


def test_order_still_working_counts_its_open_shares_as_unaccounted() -> None:
    result = shortfall_for_order([make_execution(order_quantity=300, quantity=100)])
    assert (result.filled_quantity, result.unfilled_quantity, result.unaccounted_quantity) == (100, 0, 200)
    assert result.opportunity_bps == 0.0


def test_records_of_one_order_must_agree() -> None:
    with pytest.raises(ValueError, match="disagree on \\['decision_price'\\]"):
        shortfall_for_order([make_execution(exec_id="a"), make_execution(exec_id="b", decision_price=11.0)])
    with pytest.raises(ValueError, match="unfilled record disagree on side"):
        shortfall_for_order([make_execution(order_quantity=200)], make_unfilled(order_quantity=200, side="SELL"))
    with pytest.raises(ValueError, match="exceed order_quantity"):
        shortfall_for_order([make_execution(order_quantity=200, quantity=150)], make_unfilled(order_quantity=200))
    with pytest.raises(ValueError, match="client order ids"):
        shortfall_for_order([make_execution(exec_id="a"), make_execution(exec_id="b", client_order_id="O2")])


def test_buckets_by_adv_participation_and_minutes_to_close() -> None:
    participations = [0.005, 0.01, 0.049, 0.05, 0.10, 0.5, None]
    minutes = [0.0, 9.99, 10.0, 30.0, 119.0, 120.0, None]
    fills = [
        make_execution(exec_id=f"e{i}", client_order_id=f"o{i}", adv_participation=p, minutes_to_close=m)
        for i, (p, m) in enumerate(zip(participations, minutes, strict=True))
    ]
    frame = order_shortfalls(records_frame(fills), records_frame([]))
    assert list(frame["size_bucket"]) == ["<1%", "1-5%", "1-5%", "5-10%", ">=10%", ">=10%", "unknown"]
    assert list(frame["minutes_to_close_bucket"]) == [
        "<10 min", "<10 min", "10-30 min", "30-120 min", "30-120 min", ">=120 min", "unknown",
    ]  # fmt: skip


def _orders_with_totals(totals_by_algo: dict[str, list[float]]) -> pd.DataFrame:
    """One fully filled BUY per value, its execution cost alone making the total (commission 0, arrival = decision)."""
    fills = []
    for algo, totals in totals_by_algo.items():
        for i, total in enumerate(totals):
            # BUY 100 at decision/arrival 10.00: price 10 · (1 + total/1e4) costs exactly `total` bps
            fills.append(make_execution(exec_id=f"{algo}{i}", client_order_id=f"{algo}{i}", algo=algo, commission=0.0,
                                        price=10.0 * (1 + total / 1e4)))  # fmt: skip
    return order_shortfalls(records_frame(fills), records_frame([]))


def test_aggregate_counts_means_and_seeded_intervals() -> None:
    shortfalls = _orders_with_totals({"MKT": [10.0, 20.0, 30.0, 40.0], "TWAP": [5.0, 5.0], "MOC": [7.0]})
    table = aggregate(shortfalls, by="algo", n_resamples=2000, seed=1).set_index("algo")
    assert list(table.index) == ["MKT", "MOC", "TWAP"]
    assert table.loc["MKT", "count"] == 4
    assert table.loc["MKT", "mean_total_bps"] == pytest.approx(25.0, abs=1e-6)
    low, high = table.loc["MKT", ["ci_low_bps", "ci_high_bps"]]
    assert 10.0 <= low < 25.0 < high <= 40.0
    assert table.loc["TWAP", ["ci_low_bps", "ci_high_bps"]].tolist() == pytest.approx([5.0, 5.0], abs=1e-6)
    assert math.isnan(table.loc["MOC", "ci_low_bps"])  # one order: no interval
    again = aggregate(shortfalls, by="algo", n_resamples=2000, seed=1).set_index("algo")
    pd.testing.assert_frame_equal(table, again)
    only_mkt = aggregate(shortfalls[shortfalls["algo"] == "MKT"], by="algo", seed=1).set_index("algo")
    assert only_mkt.loc["MKT", "ci_low_bps"] == low  # a group's interval does not depend on the other groups


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    covered = 0
    for trial in range(200):
        values = rng.normal(3.0, 10.0, size=60)
        frame = pd.DataFrame({"algo": "MKT", "total_bps": values, "delay_bps": values, "execution_bps": values,
                              "opportunity_bps": 0.0, "fees_bps": 0.0, "decision_notional": 1.0})  # fmt: skip
        row = aggregate(frame, by="algo", n_resamples=500, seed=trial).iloc[0]
        covered += row["ci_low_bps"] <= 3.0 <= row["ci_high_bps"]
    assert 0.88 <= covered / 200 <= 0.99


def test_aggregate_orders_buckets_naturally_and_refuses_unknown_columns() -> None:
    fills = [make_execution(exec_id=f"e{i}", client_order_id=f"o{i}", adv_participation=p)
             for i, p in enumerate([0.2, None, 0.001, 0.02])]  # fmt: skip
    table = aggregate(order_shortfalls(records_frame(fills), records_frame([])), by="size_bucket")
    assert list(table["size_bucket"]) == ["<1%", "1-5%", ">=10%", "unknown"]
    with pytest.raises(ValueError, match="by: must be a column"):
        aggregate(order_shortfalls(records_frame(fills), records_frame([])), by="venue")


prices = st.floats(min_value=1.0, max_value=1000.0, allow_nan=False, allow_infinity=False)
moves = st.floats(min_value=-0.2, max_value=0.2, allow_nan=False, allow_infinity=False)


@st.composite
def orders(draw: st.DrawFn) -> dict[str, object]:
    decision = draw(prices)
    quantity = draw(st.integers(1, 10_000))
    fills = draw(st.lists(st.tuples(st.integers(1, 1000), moves, st.floats(0.0, 50.0)), min_size=0, max_size=5))
    filled = sum(q for q, _, _ in fills)
    order_quantity = max(quantity, filled + draw(st.integers(0, 1000)))
    return {"decision": decision, "arrival": draw(st.none() | moves), "end": draw(moves),
            "order_quantity": order_quantity, "fills": fills, "cancel_rest": draw(st.booleans())}  # fmt: skip


def _build(spec: dict[str, object], side: str, mirror: bool) -> tuple[list, object]:
    """The order of ``spec``; ``mirror`` reflects every price about the decision price (d + x·d → d − x·d)."""
    d = spec["decision"]
    sign = -1.0 if mirror else 1.0

    def price(move: float) -> float:
        return d * (1.0 + sign * move)

    common = {"client_order_id": "H", "side": side, "order_quantity": spec["order_quantity"], "decision_price": d}
    arrival = None if spec["arrival"] is None else price(spec["arrival"])
    fills = [make_execution(exec_id=f"h{i}", quantity=q, price=price(m), commission=c, arrival_price=arrival, **common)
             for i, (q, m, c) in enumerate(spec["fills"])]  # fmt: skip
    rest = spec["order_quantity"] - sum(q for q, _, _ in spec["fills"])
    end = None
    if (spec["cancel_rest"] and rest > 0) or not fills:
        end = make_unfilled(unfilled_quantity=rest, end_price=price(spec["end"]), **common)
    return fills, end


@settings(max_examples=100, deadline=None)
@given(orders())
def test_a_buy_and_the_mirrored_sell_cost_the_same(spec: dict[str, object]) -> None:
    buy = shortfall_for_order(*_build(spec, "BUY", mirror=False))
    sell = shortfall_for_order(*_build(spec, "SELL", mirror=True))
    for name in ("execution_bps", "opportunity_bps", "fees_bps", "total_bps"):
        assert getattr(buy, name) == pytest.approx(getattr(sell, name), rel=1e-9, abs=1e-7), name
    assert (buy.delay_bps is None) == (sell.delay_bps is None)
    if buy.delay_bps is not None:
        assert buy.delay_bps == pytest.approx(sell.delay_bps, rel=1e-9, abs=1e-7)


@settings(max_examples=100, deadline=None)
@given(orders(), st.sampled_from(["BUY", "SELL"]))
def test_total_is_the_sum_of_its_components(spec: dict[str, object], side: str) -> None:
    result = shortfall_for_order(*_build(spec, side, mirror=False))
    parts = (result.delay_bps or 0.0) + result.execution_bps + result.opportunity_bps + result.fees_bps
    assert result.total_bps == pytest.approx(parts, rel=1e-12, abs=1e-9)
    assert result.filled_quantity + result.unfilled_quantity + result.unaccounted_quantity == result.order_quantity


@settings(max_examples=75, deadline=None)
@given(orders(), st.integers(1, 999))
def test_splitting_an_execution_at_the_same_price_changes_nothing(spec: dict[str, object], cut: int) -> None:
    fills, end = _build(spec, "BUY", mirror=False)
    if not fills or fills[0].quantity < 2:
        return
    first = fills[0]
    part = 1 + cut % (first.quantity - 1)
    halves = [
        make_execution(**{**_fields(first), "exec_id": "s1", "quantity": part, "commission": first.commission / 2}),
        make_execution(**{**_fields(first), "exec_id": "s2", "quantity": first.quantity - part,
                          "commission": first.commission / 2}),
    ]  # fmt: skip
    whole = shortfall_for_order(fills, end)
    split = shortfall_for_order(halves + fills[1:], end)
    assert split.total_bps == pytest.approx(whole.total_bps, rel=1e-9, abs=1e-7)
    assert split.avg_fill_price == pytest.approx(whole.avg_fill_price, rel=1e-12)


def _fields(record: object) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}
