"""The trading-state machine: every transition of its table, every reason, and its one pre-trade check."""

from __future__ import annotations

import itertools

import pytest

from core.events import OrderEvent, OrderType, Side, TradingState
from portfolio.trading_state import TRANSITIONS, Event, Reason, TradingStateMachine

S = TradingState


def machine_in(state: TradingState, *reasons: Reason) -> TradingStateMachine:
    """A machine brought to ``state`` through its public events only (holding ``reasons``)."""
    machine = TradingStateMachine(starting=state is S.STARTING)
    for reason in reasons:
        machine.reduce(reason, "held", 1)
    if state is S.ACTIVE or state is S.REDUCING:
        machine.reconciled(1)
    if state is S.REDUCING and not reasons:
        machine.reduce(Reason.DRAWDOWN, "held", 1)
    if state is S.HALTED:
        machine.halt("test", 1)
    assert machine.state is state
    return machine


def fire(machine: TradingStateMachine, event: Event, reason: Reason = Reason.OPERATOR) -> TradingState:
    if event is Event.RECONCILED:
        return machine.reconciled(2)
    if event is Event.REDUCE:
        return machine.reduce(reason, "new", 2)
    if event is Event.CLEAR:
        return machine.clear(reason, 2)
    return machine.halt("cause", 2)


def test_the_table_covers_every_state_and_event() -> None:
    assert set(TRANSITIONS) == set(itertools.product(TradingState, Event))


@pytest.mark.parametrize(("state", "event"), list(itertools.product(TradingState, Event)))
def test_every_transition_of_the_table(state: TradingState, event: Event) -> None:
    """Each (state, event) lands where the table says; BY_REASONS (None) resolves by the reasons still held."""
    held = (Reason.OPERATOR,) if state is not S.ACTIVE else ()
    machine = machine_in(state, *held)
    result = fire(machine, event)
    target = TRANSITIONS[(state, event)]
    if target is None:
        target = S.REDUCING if machine.reasons else S.ACTIVE
    assert result is target is machine.state


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_reduces_and_only_its_own_clear_lifts_it(reason: Reason) -> None:
    machine = machine_in(S.ACTIVE)
    machine.reduce(reason, "why", 1)
    assert machine.state is S.REDUCING and machine.holds(reason)
    others = [r for r in Reason if r is not reason]
    machine.reduce(others[0], "another", 2)
    machine.clear(reason, 3)
    assert machine.state is S.REDUCING, "one reason cleared must not lift another"
    machine.clear(others[0], 4)
    assert machine.state is S.ACTIVE and not machine.reasons


def test_reasons_set_while_starting_take_effect_when_reconciled() -> None:
    machine = TradingStateMachine(starting=True)
    machine.reduce(Reason.MONITOR_NEVER_SEEN, "no beat yet", 1)
    assert machine.state is S.STARTING
    assert machine.reconciled(2) is S.REDUCING
    assert [(a, b) for _, a, b, _ in machine.transitions] == [(S.STARTING, S.REDUCING)]


def test_halted_is_one_way_and_keeps_its_first_cause() -> None:
    machine = machine_in(S.REDUCING)
    machine.halt("drawdown limit", 5)
    machine.halt("later", 6)
    machine.clear(Reason.DRAWDOWN, 7)
    machine.reconciled(8)
    assert machine.state is S.HALTED and machine.halt_cause == "drawdown limit"
    assert machine.describe() == {"state": "HALTED", "reasons": {}, "halt_cause": "drawdown limit"}


def order(side: Side, quantity: int, *, reduce_only: bool = False) -> OrderEvent:
    return OrderEvent(ts_event_ns=1, ts_init_ns=1, client_order_id="x", strategy_id="s", symbol="AAA", side=side,
                      quantity=quantity, order_type=OrderType.MKT, reference_price=10.0, reduce_only=reduce_only)


def test_the_one_check_per_state() -> None:
    held = {"AAA": 100}
    buy, sell, cross = order(Side.BUY, 10), order(Side.SELL, 100, reduce_only=True), order(Side.SELL, 150)
    starting = TradingStateMachine(starting=True)
    assert all(starting.check(o, held) is not None for o in (buy, sell))
    assert "STARTING" in starting.check(sell, held).reason
    active = machine_in(S.ACTIVE)
    assert active.check(buy, held) is None and active.check(cross, held) is None
    reducing = machine_in(S.REDUCING, Reason.MONITOR_STALE)
    assert reducing.check(sell, held) is None
    rejection = reducing.check(buy, held)
    assert rejection is not None and rejection.check == "trading_state" and "monitor_stale" in rejection.reason
    assert reducing.check(cross, held) is not None  # crossing through zero is not reducing
    halted = machine_in(S.HALTED)
    assert halted.check(sell, held) is not None and "HALTED" in halted.check(sell, held).reason
