"""The order state machine: legal paths only, never overfilled, duplicate executions ignored."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.errors import InvariantViolation
from core.events import OrderStatus
from execution.order_state import ALLOWED, TERMINAL, ManagedOrder
from testkit.orders import make_order


def test_fill_sequence_reaches_filled_with_average_price() -> None:
    managed = ManagedOrder(make_order(quantity=100))
    managed.transition(OrderStatus.SUBMITTED)
    assert managed.apply_fill("e1", 40, 10.0)
    assert managed.status is OrderStatus.PARTIALLY_FILLED
    assert not managed.apply_fill("e1", 40, 10.0)  # the same execution again: ignored
    assert managed.filled_quantity == 40
    assert managed.apply_fill("e2", 60, 11.0)
    assert managed.status is OrderStatus.FILLED and managed.is_terminal
    assert managed.avg_fill_price == pytest.approx(10.6)


def test_overfill_and_fill_after_cancel_are_invariant_violations() -> None:
    managed = ManagedOrder(make_order(quantity=10))
    managed.transition(OrderStatus.SUBMITTED)
    with pytest.raises(InvariantViolation, match="remaining"):
        managed.apply_fill("e1", 11, 1.0)
    managed.transition(OrderStatus.CANCELLED)
    with pytest.raises(InvariantViolation):
        managed.apply_fill("e2", 5, 1.0)
    with pytest.raises(InvariantViolation, match="illegal transition"):
        managed.transition(OrderStatus.SUBMITTED)


def test_terminal_states_have_no_exit() -> None:
    for status in TERMINAL:
        assert ALLOWED[status] == frozenset()


class OrderLifecycle(RuleBasedStateMachine):
    """Random event sequences, legal or not: the books never lie."""

    def __init__(self) -> None:
        super().__init__()
        self.quantity = 50
        self.managed = ManagedOrder(make_order(quantity=self.quantity))
        self.exec_seq = 0
        self.expected_filled = 0

    @rule(status=st.sampled_from(list(OrderStatus)))
    def transition(self, status: OrderStatus) -> None:
        before = self.managed.status
        m = self.managed
        consistent = not (
            (status is OrderStatus.FILLED and m.remaining != 0)
            or (status is OrderStatus.PARTIALLY_FILLED and not 0 < m.filled_quantity < m.order.quantity)
        )
        if status in ALLOWED[before] and consistent:
            self.managed.transition(status)
            assert self.managed.status is status
        else:
            with pytest.raises(InvariantViolation):
                self.managed.transition(status)
            assert self.managed.status is before

    @precondition(lambda self: not self.managed.is_terminal and self.managed.status is not OrderStatus.PENDING_SUBMIT)
    @rule(quantity=st.integers(min_value=-2, max_value=60), repeat=st.booleans())
    def fill(self, quantity: int, repeat: bool) -> None:
        if repeat and self.managed.exec_ids:
            assert not self.managed.apply_fill(next(iter(self.managed.exec_ids)), max(quantity, 1), 1.0)
            return
        self.exec_seq += 1
        if 0 < quantity <= self.managed.remaining:
            assert self.managed.apply_fill(f"e{self.exec_seq}", quantity, 1.0)
            self.expected_filled += quantity
        else:
            with pytest.raises(InvariantViolation):
                self.managed.apply_fill(f"e{self.exec_seq}", quantity, 1.0)

    @invariant()
    def never_overfilled(self) -> None:
        assert 0 <= self.managed.filled_quantity <= self.quantity
        assert self.managed.filled_quantity == self.expected_filled
        if self.managed.status is OrderStatus.FILLED:
            assert self.managed.remaining == 0


TestOrderLifecycle = OrderLifecycle.TestCase


def test_a_refused_fill_changes_nothing() -> None:
    managed = ManagedOrder(make_order(quantity=10))
    managed.transition(OrderStatus.SUBMITTED)
    managed.transition(OrderStatus.CANCELLED)
    with pytest.raises(InvariantViolation):
        managed.apply_fill("late", 5, 1.0)
    assert managed.filled_quantity == 0 and managed.exec_ids == set() and managed.status is OrderStatus.CANCELLED
