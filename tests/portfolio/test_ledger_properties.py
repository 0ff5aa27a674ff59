"""Ledger properties over random fill sequences (hypothesis), plus a rule-based state machine.

Properties checked at every step: (a) cash + market value == equity, and equity == initial + realized +
unrealized - commissions; (b) settled cash never negative in a cash account; (c) once flat, realized P&L minus
commissions is the equity change; (d) every applied exec_id is recorded exactly once; (e) a snapshot restores
to identical equity. Cash is also checked against math.fsum of the signed flows.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from core.errors import InvariantViolation
from core.events import FillEvent, Side
from portfolio.ledger import Ledger
from testkit.fills import make_fill

CONFIGURED = ("AAA", "BBB", "CCC")
ALL_SYMBOLS = (*CONFIGURED, "ZZZ")  # ZZZ arrives only through fills, as an unconfigured broker position
DAY_NS = 86_400 * 1_000_000_000
INITIAL_CASH = 100_000.0

prices_st = st.floats(min_value=0.01, max_value=500.0, allow_nan=False, allow_infinity=False)
commissions_st = st.floats(min_value=0.0, max_value=20.0, allow_nan=False)
settle_delays_st = st.integers(min_value=0, max_value=3 * DAY_NS)
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Tracker:
    """What the test knows independently of the ledger: flows, applied ids, last prices, realized sum."""

    flows: list[float] = field(default_factory=lambda: [INITIAL_CASH])
    applied: list[FillEvent] = field(default_factory=list)
    realized: list[float] = field(default_factory=list)
    prices: dict[str, float] = field(default_factory=dict)

    def record(self, fill: FillEvent, realized: float) -> None:
        self.flows += [-fill.side.sign * fill.quantity * fill.price, -fill.commission]
        self.applied.append(fill)
        self.realized.append(realized)
        self.prices[fill.symbol] = fill.price

    def price_array(self, ledger: Ledger) -> np.ndarray:
        return np.array([self.prices.get(symbol, math.nan) for symbol in ledger.symbols])


def check_step(ledger: Ledger, tracker: Tracker) -> None:
    prices = tracker.price_array(ledger)
    equity = ledger.equity(prices)
    # (a) both accounting identities
    assert equity == ledger.cash + ledger.market_value(prices)
    reconstructed = INITIAL_CASH + ledger.realized_pnl + ledger.unrealized_pnl(prices) - ledger.commissions_paid
    scale = INITIAL_CASH + ledger.gross_exposure(prices) + sum(f.quantity * f.price for f in tracker.applied)
    assert math.isclose(equity, reconstructed, rel_tol=1e-6, abs_tol=1e-9 * scale), (equity, reconstructed)
    # NaN prices, or none at all, mean the last known prices
    assert ledger.equity(np.full(len(ledger.symbols), np.nan)) == ledger.equity() == ledger.equity(np.array([]))
    # cash is the exact sum of the flows (within 2 ulp, however many flows there were)
    exact_cash = math.fsum(tracker.flows)
    assert abs(ledger.cash - exact_cash) <= 2 * math.ulp(exact_cash) + 1e-12, (ledger.cash, exact_cash)
    assert math.isclose(ledger.cash, ledger.settled_cash + ledger.unsettled_cash, rel_tol=1e-12, abs_tol=1e-6)
    # (b)
    if ledger.account_type == "cash":
        assert ledger.settled_cash >= 0.0
        assert min(ledger.quantities, default=0.0) >= 0.0
    # (d)
    ids = ledger.applied_exec_ids()
    assert list(ids) == [f.exec_id for f in tracker.applied]
    assert len(set(ids)) == len(ids)
    assert math.isclose(ledger.realized_pnl, math.fsum(tracker.realized), rel_tol=1e-9, abs_tol=1e-6)
    slippage = math.fsum(f.slippage_cost for f in tracker.applied)
    assert math.isclose(ledger.slippage_paid, slippage, rel_tol=1e-9, abs_tol=1e-9)


def check_snapshot_round_trip(ledger: Ledger, tracker: Tracker) -> None:
    """(e) equity, and everything else, identical after a JSON round trip of the snapshot."""
    snapshot = json.loads(json.dumps(ledger.snapshot(), allow_nan=False))
    restored = Ledger.from_snapshot(snapshot)
    prices = tracker.price_array(ledger)
    assert restored.equity(prices) == ledger.equity(prices)
    assert restored.equity() == ledger.equity()
    assert restored.snapshot() == ledger.snapshot()


def close_everything(ledger: Ledger, tracker: Tracker, data: st.DataObject, ts_ns: int) -> None:
    for symbol, quantity in ledger.open_positions().items():
        side = Side.SELL if quantity > 0 else Side.BUY
        price = data.draw(prices_st, label=f"closing price {symbol}")
        commission = data.draw(commissions_st, label="closing commission")
        if ledger.account_type == "cash":
            commission = min(commission, abs(quantity) * price)
        fill = make_fill(symbol, side, abs(quantity), price, commission, ts_event_ns=ts_ns)
        tracker.record(fill, ledger.apply_fill(fill, settles_at_ns=ts_ns + DAY_NS))
    assert ledger.open_positions() == {}


def check_flat(ledger: Ledger, tracker: Tracker) -> None:
    """(c) flat book: realized over the round trips minus commissions is the whole equity change."""
    commissions = math.fsum(f.commission for f in tracker.applied)
    change = ledger.equity(tracker.price_array(ledger)) - INITIAL_CASH
    assert math.isclose(ledger.commissions_paid, commissions, rel_tol=1e-9, abs_tol=1e-9)
    expected = math.fsum(tracker.realized) - commissions
    scale = INITIAL_CASH + sum(f.quantity * f.price for f in tracker.applied)
    assert math.isclose(change, expected, rel_tol=1e-6, abs_tol=1e-9 * scale), (change, expected)
    assert math.isclose(ledger.cash, ledger.equity(tracker.price_array(ledger)), rel_tol=0, abs_tol=0)


fills_st = st.tuples(
    st.sampled_from(ALL_SYMBOLS),
    st.sampled_from(Side),
    st.integers(min_value=1, max_value=1_000),
    prices_st,
    commissions_st,
    settle_delays_st,
    st.floats(min_value=0.0, max_value=5.0),  # slippage cost
    st.booleans(),  # replay the previous fill (a duplicate exec_id) after this one
)


@PROPERTY_SETTINGS
@given(steps=st.lists(fills_st, min_size=1, max_size=40), data=st.data())
def test_margin_account_properties(steps: list[tuple], data: st.DataObject) -> None:
    ledger = Ledger(INITIAL_CASH, CONFIGURED, account_type="margin", allow_short=True)
    tracker = Tracker()
    ts = 0
    for symbol, side, quantity, price, commission, delay, slippage, replay in steps:
        ts += DAY_NS // 4
        ledger.settle(ts)
        fill = make_fill(symbol, side, quantity, price, commission, ts_event_ns=ts, slippage_cost=slippage)
        tracker.record(fill, ledger.apply_fill(fill, settles_at_ns=ts + delay))
        if replay:
            assert ledger.apply_fill(fill, settles_at_ns=ts + delay) == 0.0
        check_step(ledger, tracker)
    check_snapshot_round_trip(ledger, tracker)
    close_everything(ledger, tracker, data, ts + 1)
    check_step(ledger, tracker)
    check_flat(ledger, tracker)
    check_snapshot_round_trip(ledger, tracker)


def expect_rejected(ledger: Ledger, fill: FillEvent, settles_at_ns: int) -> None:
    before = ledger.snapshot()
    try:
        ledger.apply_fill(fill, settles_at_ns=settles_at_ns)
    except InvariantViolation:
        pass
    else:
        raise AssertionError(f"ledger accepted a fill the cash account cannot afford or hold: {fill}")
    assert ledger.snapshot() == before
    assert not ledger.has_exec_id(fill.exec_id)


def affordable_quantity(settled_cash: float, price: float, commission: float) -> int:
    """Shares the test believes a cash account can buy, kept a micro-dollar away from the edge (float dust)."""
    spendable = settled_cash - commission - 1e-6
    return math.floor(spendable / price) if spendable > 0.0 else 0


def cash_account_step(ledger: Ledger, tracker: Tracker, data: st.DataObject, ts: int) -> None:
    """One random action on a cash account: an affordable buy, a sale of what is held, or a fill that must fail."""
    symbol = data.draw(st.sampled_from(ALL_SYMBOLS), label="symbol")
    price = data.draw(prices_st, label="price")
    commission = data.draw(commissions_st, label="commission")
    settles_at = ts + data.draw(settle_delays_st, label="settlement delay")
    held = ledger.position(symbol)
    action = data.draw(st.sampled_from(["buy", "sell", "unaffordable_buy", "oversell"]), label="action")
    # The test's own belief about affordability, with a margin so float rounding cannot decide it.
    settled = ledger.settled_cash
    affordable = affordable_quantity(settled, price, commission)
    if action == "buy" and affordable >= 1:
        quantity = data.draw(st.integers(min_value=1, max_value=min(affordable, 5_000)), label="quantity")
        fill = make_fill(symbol, Side.BUY, quantity, price, commission, ts_event_ns=ts)
        tracker.record(fill, ledger.apply_fill(fill, settles_at_ns=settles_at))
    elif action == "sell" and held > 0:
        quantity = data.draw(st.integers(min_value=1, max_value=held), label="quantity")
        # A commission above the proceeds would be owed from settled cash; keep sales self-financing here.
        fill = make_fill(symbol, Side.SELL, quantity, price, min(commission, quantity * price), ts_event_ns=ts)
        tracker.record(fill, ledger.apply_fill(fill, settles_at_ns=settles_at))
    elif action == "oversell":
        quantity = held + data.draw(st.integers(min_value=1, max_value=1_000), label="excess")
        expect_rejected(ledger, make_fill(symbol, Side.SELL, quantity, price, commission, ts_event_ns=ts), settles_at)
    else:  # an unaffordable buy, also when the drawn buy or sale is impossible in the current state
        quantity = affordable + data.draw(st.integers(min_value=1, max_value=1_000), label="excess")
        if quantity * price + commission > settled + 1e-6:
            expect_rejected(
                ledger, make_fill(symbol, Side.BUY, quantity, price, commission, ts_event_ns=ts), settles_at
            )


@PROPERTY_SETTINGS
@given(n_steps=st.integers(min_value=1, max_value=40), data=st.data())
def test_cash_account_properties(n_steps: int, data: st.DataObject) -> None:
    ledger = Ledger(INITIAL_CASH, CONFIGURED, account_type="cash")
    tracker = Tracker()
    ts = 0
    for _ in range(n_steps):
        ts += data.draw(st.integers(min_value=0, max_value=DAY_NS), label="time step")
        unsettled_before = ledger.unsettled_cash
        moved = ledger.settle(ts)
        assert math.isclose(ledger.unsettled_cash, unsettled_before - moved, rel_tol=1e-12, abs_tol=1e-6)
        cash_account_step(ledger, tracker, data, ts)
        check_step(ledger, tracker)
    check_snapshot_round_trip(ledger, tracker)
    close_everything(ledger, tracker, data, ts + 1)
    check_step(ledger, tracker)
    check_flat(ledger, tracker)
    ledger.settle(ts + 10 * DAY_NS)
    assert ledger.unsettled_cash == 0.0
    assert math.isclose(ledger.settled_cash, ledger.cash, rel_tol=1e-12, abs_tol=1e-6)


class CashLedgerMachine(RuleBasedStateMachine):
    """A cash account driven by buys, sales, duplicates, settlement, marks and restarts from a snapshot."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(INITIAL_CASH, CONFIGURED, account_type="cash")
        self.tracker = Tracker()
        self.ts = 0

    @initialize(start=st.integers(min_value=0, max_value=10 * DAY_NS))
    def start_clock(self, start: int) -> None:
        self.ts = start

    @rule(
        symbol=st.sampled_from(ALL_SYMBOLS),
        price=prices_st,
        commission=commissions_st,
        fraction=st.floats(min_value=0.0, max_value=1.0),
        excess=st.integers(min_value=1, max_value=1_000),
        within_means=st.booleans(),
    )
    def buy(
        self, symbol: str, price: float, commission: float, fraction: float, excess: int, within_means: bool
    ) -> None:
        settled = self.ledger.settled_cash
        affordable = affordable_quantity(settled, price, commission)
        if within_means and affordable >= 1:
            quantity = max(1, min(5_000, math.floor(affordable * fraction)))
            fill = make_fill(symbol, Side.BUY, quantity, price, commission, ts_event_ns=self.ts)
            self.tracker.record(fill, self.ledger.apply_fill(fill, settles_at_ns=self.ts + DAY_NS))
        elif (affordable + excess) * price + commission > settled + 1e-6:
            fill = make_fill(symbol, Side.BUY, affordable + excess, price, commission, ts_event_ns=self.ts)
            expect_rejected(self.ledger, fill, self.ts + DAY_NS)

    @precondition(lambda self: bool(self.ledger.open_positions()))
    @rule(data=st.data(), price=prices_st, commission=commissions_st)
    def sell(self, data: st.DataObject, price: float, commission: float) -> None:
        symbol = data.draw(st.sampled_from(sorted(self.ledger.open_positions())))
        quantity = data.draw(st.integers(min_value=1, max_value=self.ledger.position(symbol)))
        fill = make_fill(symbol, Side.SELL, quantity, price, min(commission, quantity * price), ts_event_ns=self.ts)
        self.tracker.record(fill, self.ledger.apply_fill(fill, settles_at_ns=self.ts + DAY_NS))

    @precondition(lambda self: bool(self.tracker.applied))
    @rule(data=st.data())
    def replay_duplicate(self, data: st.DataObject) -> None:
        fill = data.draw(st.sampled_from(self.tracker.applied))
        before = self.ledger.snapshot()
        assert self.ledger.apply_fill(fill, settles_at_ns=self.ts) == 0.0
        assert self.ledger.snapshot() == before

    @rule(step=st.integers(min_value=0, max_value=2 * DAY_NS))
    def advance_and_settle(self, step: int) -> None:
        self.ts += step
        self.ledger.settle(self.ts)
        assert all(ts > self.ts for ts, _ in self.ledger.snapshot()["unsettled"])

    @rule(data=st.data())
    def mark(self, data: st.DataObject) -> None:
        n = len(self.ledger.symbols)
        marks = data.draw(st.lists(st.one_of(st.just(math.nan), prices_st), min_size=n, max_size=n))
        self.ledger.mark(np.array(marks))
        for symbol, price in zip(self.ledger.symbols, marks, strict=True):
            if not math.isnan(price):
                self.tracker.prices[symbol] = price

    @rule()
    def restart_from_snapshot(self) -> None:
        equity = self.ledger.equity()
        self.ledger = Ledger.from_snapshot(json.loads(json.dumps(self.ledger.snapshot(), allow_nan=False)))
        assert self.ledger.equity() == equity

    @invariant()
    def books_balance(self) -> None:
        check_step(self.ledger, self.tracker)


def test_cash_ledger_state_machine() -> None:
    run_state_machine_as_test(
        CashLedgerMachine, settings=settings(max_examples=60, stateful_step_count=30, deadline=None)
    )


@given(
    fills=st.lists(
        st.tuples(st.sampled_from(["AAA", "BBB", "ZZZ"]), st.booleans(), st.integers(1, 500), st.floats(1.0, 500.0)),
        max_size=40,
    ),
    prices=st.lists(st.floats(1.0, 500.0), min_size=2, max_size=2),
)
def test_issue_3_one_pass_valuation_equals_equity_and_gross(fills: list, prices: list) -> None:
    """``valuation()`` (the per-bar fast path) must give exactly what equity() and gross_exposure() give."""
    import numpy as np

    from core.events import Side
    from portfolio.ledger import Ledger
    from testkit.fills import make_fill

    ledger = Ledger(1e9, ["AAA", "BBB"], account_type="margin", allow_short=True)
    for symbol, buy, quantity, price in fills:
        ledger.apply_fill(make_fill(symbol, Side.BUY if buy else Side.SELL, quantity, price, 1.0), 0)
        ledger.mark(np.array(prices + [np.nan] * (len(ledger.symbols) - 2)))
    equity, gross = ledger.valuation()
    assert equity == ledger.equity() and gross == ledger.gross_exposure()


_FILL_OP = st.tuples(  # "ZZZ" is not configured: a fill for it grows the ledger by a symbol
    st.just("fill"), st.sampled_from(["AAA", "BBB", "ZZZ"]), st.booleans(), st.integers(1, 500), st.floats(1.0, 500.0)
)
_MARK_OP = st.tuples(st.just("mark"), st.lists(st.floats(1.0, 500.0) | st.just(math.nan), min_size=2, max_size=3))
_VALUATION_OPS = st.lists(_FILL_OP | _MARK_OP | st.tuples(st.just("settle"), st.integers(0, 3)), max_size=40)


@given(ops=_VALUATION_OPS)
def test_valuation_is_fresh_after_every_change(ops: list[tuple]) -> None:
    """``valuation()`` keeps its last answer until the book or a price moves: after every fill, mark and
    settlement it must equal what ``equity()`` and ``gross_exposure()`` compute from scratch, bit for bit.

    Each step asks for the valuation before the next change, so a stale cached answer (a change that forgot to
    drop it) is caught at the next step."""
    ledger = Ledger(1e9, ["AAA", "BBB"], account_type="margin", allow_short=True)
    for step, op in enumerate(ops):
        if op[0] == "fill":
            _, symbol, buy, quantity, price = op
            side = Side.BUY if buy else Side.SELL
            ledger.apply_fill(make_fill(symbol, side, quantity, price, 1.0, exec_id=f"e{step}"), step)
        elif op[0] == "mark":
            prices = (op[1] + [math.nan] * len(ledger.symbols))[: len(ledger.symbols)]
            ledger.mark(np.array(prices))
        else:
            ledger.settle(op[1])
        first, again = ledger.valuation(), ledger.valuation()
        fresh = (ledger.equity(), ledger.gross_exposure())
        assert all(map(_same_float, first, fresh)) and all(map(_same_float, again, fresh)), (op, first, fresh)


def _same_float(a: float, b: float) -> bool:
    """Equal, NaN included (an unpriced held symbol makes a valuation NaN)."""
    return a == b or (a != a and b != b)
