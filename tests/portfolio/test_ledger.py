"""Ledger unit cases: average cost, shorts and flips, duplicates, T+1 settlement, valuation and snapshots."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from core.errors import InvariantViolation, StateCorruptError
from core.events import FillEvent, Side
from portfolio.ledger import Ledger, position_after_fill
from testkit.fills import make_fill

DAY_NS = 86_400 * 1_000_000_000
BUY, SELL = Side.BUY, Side.SELL


def margin_ledger(cash: float = 100_000.0, symbols: tuple[str, ...] = ("AAA", "BBB")) -> Ledger:
    return Ledger(cash, symbols, account_type="margin", allow_short=True)


def test_round_trip_realizes_pnl_and_moves_cash() -> None:
    ledger = Ledger(100_000.0, ["AAA", "BBB"])
    assert ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0, commission=1.0), settles_at_ns=DAY_NS) == 0.0
    assert ledger.position("AAA") == 100
    assert ledger.cash == 100_000.0 - 1000.0 - 1.0
    realized = ledger.apply_fill(make_fill("AAA", SELL, 100, 12.0, commission=1.0), settles_at_ns=DAY_NS)
    assert realized == pytest.approx(200.0)
    assert ledger.realized_pnl == pytest.approx(200.0)
    assert ledger.commissions_paid == pytest.approx(2.0)
    assert ledger.cash == pytest.approx(100_198.0, abs=1e-9)
    assert ledger.open_positions() == {}
    assert ledger.equity(np.array([13.0, 50.0])) == pytest.approx(100_198.0, abs=1e-9)


def test_adding_to_a_position_averages_the_cost() -> None:
    ledger = Ledger(100_000.0, ["AAA"])
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0), settles_at_ns=0)
    ledger.apply_fill(make_fill("AAA", BUY, 300, 20.0), settles_at_ns=0)
    assert ledger.avg_cost[0] == pytest.approx(17.5)
    assert ledger.unrealized_pnl(np.array([18.0])) == pytest.approx(400 * 0.5)


def test_partial_close_keeps_average_cost() -> None:
    ledger = Ledger(100_000.0, ["AAA"])
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0), settles_at_ns=0)
    realized = ledger.apply_fill(make_fill("AAA", SELL, 40, 15.0), settles_at_ns=0)
    assert realized == pytest.approx(200.0)
    assert ledger.position("AAA") == 60
    assert ledger.avg_cost[0] == 10.0
    assert ledger.unrealized_pnl(np.array([15.0])) == pytest.approx(300.0)


def test_flip_through_zero_closes_then_opens_at_fill_price() -> None:
    ledger = margin_ledger()
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0, commission=0.0), settles_at_ns=0)
    realized = ledger.apply_fill(make_fill("AAA", SELL, 150, 12.0, commission=0.0), settles_at_ns=0)
    assert realized == pytest.approx(200.0)
    assert ledger.position("AAA") == -50
    assert ledger.avg_cost[0] == 12.0
    realized = ledger.apply_fill(make_fill("AAA", BUY, 80, 11.0, commission=0.0), settles_at_ns=0)
    assert realized == pytest.approx(50.0)  # short 50 at 12 covered at 11
    assert ledger.position("AAA") == 30
    assert ledger.avg_cost[0] == 11.0
    assert ledger.realized_pnl == pytest.approx(250.0)


def test_short_round_trip_in_margin_account() -> None:
    ledger = margin_ledger()
    ledger.apply_fill(make_fill("BBB", SELL, 100, 10.0, commission=1.0), settles_at_ns=0)
    assert ledger.position("BBB") == -100
    assert ledger.market_value(np.array([10.0, 9.0])) == pytest.approx(-900.0)
    realized = ledger.apply_fill(make_fill("BBB", BUY, 100, 8.0, commission=1.0), settles_at_ns=0)
    assert realized == pytest.approx(200.0)
    assert ledger.equity(np.array([10.0, 8.0])) == pytest.approx(100_000.0 + 200.0 - 2.0)


def test_position_after_fill_pure_cases() -> None:
    assert position_after_fill(0.0, 0.0, 10.0, 5.0) == (10.0, 5.0, 0.0)
    assert position_after_fill(-10.0, 5.0, -10.0, 7.0) == (-20.0, 6.0, 0.0)
    assert position_after_fill(-10.0, 5.0, 10.0, 7.0) == (0.0, 0.0, -20.0)
    assert position_after_fill(10.0, 5.0, -4.0, 7.0) == (6.0, 5.0, 8.0)


@pytest.mark.parametrize(
    ("account_type", "allow_short", "held"),
    [("cash", False, 0), ("cash", False, 50), ("margin", False, 0), ("margin", False, 50)],
)
def test_short_rejected_and_ledger_unchanged(account_type: str, allow_short: bool, held: int) -> None:
    ledger = Ledger(100_000.0, ["AAA"], account_type=account_type, allow_short=allow_short)  # type: ignore[arg-type]
    if held:
        ledger.apply_fill(make_fill("AAA", BUY, held, 10.0), settles_at_ns=0)
    before = ledger.snapshot()
    with pytest.raises(InvariantViolation, match="does not allow shorts"):
        ledger.apply_fill(make_fill("AAA", SELL, held + 1, 10.0), settles_at_ns=0)
    assert ledger.snapshot() == before


def test_short_allowed_only_with_margin() -> None:
    with pytest.raises(ValueError, match="margin"):
        Ledger(1000.0, ["AAA"], account_type="cash", allow_short=True)


def test_duplicate_exec_id_is_ignored() -> None:
    ledger = Ledger(100_000.0, ["AAA"])
    fill = make_fill("AAA", BUY, 100, 10.0, commission=1.0)
    ledger.apply_fill(fill, settles_at_ns=0)
    after_first = ledger.snapshot()
    assert ledger.apply_fill(fill, settles_at_ns=0) == 0.0
    sell_with_same_id = make_fill("AAA", SELL, 100, 20.0, exec_id=fill.exec_id)
    assert ledger.apply_fill(sell_with_same_id, settles_at_ns=0) == 0.0
    assert ledger.snapshot() == after_first
    assert ledger.applied_exec_ids() == (fill.exec_id,)
    assert ledger.has_exec_id(fill.exec_id)


def test_settlement_t_plus_one() -> None:
    ledger = Ledger(10_000.0, ["AAA", "BBB"])
    ledger.apply_fill(make_fill("AAA", BUY, 900, 10.0, commission=1.0), settles_at_ns=DAY_NS)
    assert ledger.settled_cash == pytest.approx(999.0)
    assert ledger.unsettled_cash == 0.0
    ledger.apply_fill(make_fill("AAA", SELL, 900, 11.0, commission=1.0), settles_at_ns=DAY_NS)
    assert ledger.settled_cash == pytest.approx(999.0)  # the sale commission is netted from its proceeds
    assert ledger.unsettled_cash == pytest.approx(9899.0)
    assert ledger.cash == pytest.approx(10_898.0)
    assert ledger.available_for_buying() == pytest.approx(999.0)

    before = ledger.snapshot()
    with pytest.raises(InvariantViolation, match="settled cash"):
        ledger.apply_fill(make_fill("BBB", BUY, 100, 10.0, commission=1.0), settles_at_ns=DAY_NS)
    assert ledger.snapshot() == before

    assert ledger.settle(DAY_NS - 1) == 0.0
    assert ledger.available_for_buying() == pytest.approx(999.0)
    assert ledger.settle(DAY_NS) == pytest.approx(9899.0)
    assert ledger.settled_cash == pytest.approx(10_898.0)
    assert ledger.unsettled_cash == 0.0
    ledger.apply_fill(make_fill("BBB", BUY, 100, 10.0, commission=1.0), settles_at_ns=2 * DAY_NS)
    assert ledger.settled_cash == pytest.approx(9897.0)


def test_buying_exactly_all_settled_cash_is_allowed() -> None:
    ledger = Ledger(1001.0, ["AAA"])
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0, commission=1.0), settles_at_ns=0)
    assert ledger.settled_cash == 0.0


def test_sale_commission_above_proceeds_is_debited_from_settled_cash() -> None:
    ledger = Ledger(100.0, ["AAA"])
    ledger.apply_fill(make_fill("AAA", BUY, 1, 0.5, commission=0.0), settles_at_ns=0)
    ledger.apply_fill(make_fill("AAA", SELL, 1, 0.5, commission=1.0), settles_at_ns=DAY_NS)
    assert ledger.settled_cash == pytest.approx(99.0)
    assert ledger.unsettled_cash == 0.0


def test_margin_account_may_borrow_and_buys_with_all_cash() -> None:
    ledger = Ledger(1000.0, ["AAA"], account_type="margin")
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0, commission=0.0), settles_at_ns=0)
    ledger.apply_fill(make_fill("AAA", SELL, 50, 10.0, commission=0.0), settles_at_ns=DAY_NS)
    assert ledger.available_for_buying() == pytest.approx(500.0)  # cash, unsettled included
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.0, commission=0.0), settles_at_ns=0)
    assert ledger.cash == pytest.approx(-500.0)


def test_nan_prices_use_last_marked_price() -> None:
    ledger = Ledger(100_000.0, ["AAA", "BBB", "CCC"])
    ledger.apply_fill(make_fill("AAA", BUY, 10, 10.0, commission=0.0), settles_at_ns=0)
    ledger.apply_fill(make_fill("BBB", BUY, 20, 5.0, commission=0.0), settles_at_ns=0)
    ledger.mark(np.array([11.0, 6.0, np.nan]))
    prices = np.array([12.0, np.nan, np.nan])  # CCC never priced, but flat: it must not matter
    assert ledger.market_value(prices) == pytest.approx(10 * 12.0 + 20 * 6.0)
    assert ledger.gross_exposure(prices) == pytest.approx(240.0)
    assert ledger.equity() == pytest.approx(ledger.cash + 10 * 11.0 + 20 * 6.0)
    ledger.mark(np.array([np.nan, 7.0, np.nan]))
    assert ledger.last_price("AAA") == 11.0
    assert ledger.last_price("BBB") == 7.0
    assert math.isnan(ledger.last_price("CCC"))


def test_unknown_symbol_grows_the_arrays() -> None:
    ledger = margin_ledger(symbols=("AAA",))
    ledger.apply_fill(make_fill("AAA", BUY, 10, 10.0, commission=0.0), settles_at_ns=0)
    ledger.apply_fill(make_fill("ZZZ", SELL, 5, 20.0, commission=0.0), settles_at_ns=0)
    assert ledger.symbols == ("AAA", "ZZZ")
    assert ledger.quantities.tolist() == [10.0, -5.0]
    assert ledger.open_positions() == {"AAA": 10, "ZZZ": -5}
    # A caller's array built before ZZZ appeared still values ZZZ, at its fill price.
    assert ledger.market_value(np.array([11.0])) == pytest.approx(110.0 - 100.0)
    assert ledger.market_value(np.array([11.0, 21.0])) == pytest.approx(110.0 - 105.0)
    with pytest.raises(ValueError, match="aligned"):
        ledger.market_value(np.array([1.0, 2.0, 3.0]))


def test_exposed_arrays_are_read_only() -> None:
    ledger = Ledger(1000.0, ["AAA"])
    with pytest.raises(ValueError, match="read-only"):
        ledger.quantities[0] = 5.0


@pytest.mark.parametrize(
    "bad",
    [
        {"quantity": 0},
        {"quantity": -5},
        {"price": math.nan},
        {"price": 0.0},
        {"commission": math.inf},
        {"exec_id": ""},
    ],
)
def test_malformed_fill_raises_and_changes_nothing(bad: dict) -> None:
    ledger = Ledger(1000.0, ["AAA"])
    before = ledger.snapshot()
    with pytest.raises(InvariantViolation):
        ledger.apply_fill(make_fill(**{"symbol": "AAA", "quantity": 1, "price": 1.0, **bad}), settles_at_ns=0)
    assert ledger.snapshot() == before


def test_cash_is_the_exact_sum_of_signed_flows() -> None:
    rng = random.Random(7)
    ledger = Ledger(1_000_000.0, ["AAA", "BBB"], account_type="margin", allow_short=True)
    flows = [1_000_000.0]
    for _ in range(20_000):
        side = rng.choice([BUY, SELL])
        quantity = rng.randint(1, 50)
        price = rng.uniform(0.001, 3.0)  # sub-cent, split-adjusted style prices
        commission = rng.uniform(0.0, 0.05)
        ledger.apply_fill(make_fill(rng.choice(["AAA", "BBB"]), side, quantity, price, commission), settles_at_ns=0)
        flows += [-side.sign * quantity * price, -commission]
    assert abs(ledger.cash - math.fsum(flows)) <= 1e-9
    assert round(ledger.cash, 2) == round(math.fsum(flows), 2)


def test_snapshot_round_trip_through_json() -> None:
    ledger = margin_ledger(symbols=("AAA", "BBB"))
    ledger.apply_fill(make_fill("AAA", BUY, 100, 10.123456, commission=1.0, slippage_cost=0.3), settles_at_ns=0)
    ledger.apply_fill(make_fill("BBB", SELL, 30, 7.77, commission=1.0), settles_at_ns=5 * DAY_NS)
    ledger.apply_fill(make_fill("CCC", BUY, 7, 3.3, commission=0.5), settles_at_ns=0)
    ledger.mark(np.array([10.5, np.nan, np.nan]))
    restored = Ledger.from_snapshot(json.loads(json.dumps(ledger.snapshot(), allow_nan=False)))
    prices = np.array([np.nan, 7.0, 3.5])
    assert restored.equity(prices) == ledger.equity(prices)
    assert restored.snapshot() == ledger.snapshot()
    assert restored.slippage_paid == pytest.approx(0.3)
    assert restored.settle(5 * DAY_NS) == pytest.approx(30 * 7.77 - 1.0)
    duplicate = make_fill("AAA", BUY, 100, 10.0, exec_id=ledger.applied_exec_ids()[0])
    assert restored.apply_fill(duplicate, settles_at_ns=0) == 0.0
    assert restored.position("AAA") == 100


@pytest.mark.parametrize("damage", ["version", "quantities", "cash", "symbols"])
def test_malformed_snapshot_raises_state_corrupt(damage: str) -> None:
    ledger = Ledger(1000.0, ["AAA", "BBB"])
    snapshot = ledger.snapshot()
    if damage == "version":
        snapshot["version"] = 99
    elif damage == "quantities":
        snapshot["quantities"] = [1]
    elif damage == "cash":
        del snapshot["cash"]
    else:
        snapshot["symbols"] = ["AAA", "AAA"]
    with pytest.raises(StateCorruptError):
        Ledger.from_snapshot(snapshot)


def test_restored_ledger_continues_bit_for_bit() -> None:
    rng = random.Random(11)
    flows = [1_000_000.0]

    def random_fill(ts: int) -> FillEvent:
        side = rng.choice([BUY, SELL])
        quantity, price, commission = rng.randint(1, 50), rng.uniform(0.001, 3.0), rng.uniform(0, 0.05)
        flows.extend([-side.sign * quantity * price, -commission])
        return make_fill(rng.choice(["AAA", "BBB"]), side, quantity, price, commission, ts)

    ledger = margin_ledger(cash=flows[0])
    for ts in range(2_000):
        ledger.apply_fill(random_fill(ts), settles_at_ns=ts + 10)
    restored = Ledger.from_snapshot(json.loads(json.dumps(ledger.snapshot())))
    # Spend all but USD 10: cash is now small, so any precision lost at 1e6 in the restore would show.
    big = make_fill("CCC", BUY, 1, ledger.cash - 10.0, commission=0.0)
    flows.append(-big.price)
    for book in (ledger, restored):
        book.apply_fill(big, settles_at_ns=0)
        assert abs(book.cash - math.fsum(flows)) <= 2 * math.ulp(10.0)
    for ts in range(2_000, 2_500):
        fill = random_fill(ts)
        for book in (ledger, restored):
            book.apply_fill(fill, settles_at_ns=ts + 10)
            book.settle(ts)
    assert restored.snapshot() == ledger.snapshot()
    assert restored.cash == ledger.cash
