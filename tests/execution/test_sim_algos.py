"""The simulated venue's daily-bar models of IB Adaptive and TWAP, and the journal keeping a WHEEL order's choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.events import ExecutionChoice, OrderEvent, OrderType, Side
from execution.order_journal import OrderJournal, replay_journal
from execution.sim_algos import algo_fill, twap_window_minutes

OPEN, HIGH, LOW, CLOSE = 100.0, 104.0, 98.0, 103.0  # typical price (HIGH + LOW + CLOSE) / 3 = 101.666...


def test_adaptive_priorities_wait_longer_and_capture_more_of_the_spread() -> None:
    priorities = ("Urgent", "Normal", "Patient")
    fills = {p: algo_fill("Adaptive", {"adaptivePriority": p}, OPEN, HIGH, LOW, CLOSE, 390.0) for p in priorities}
    typical = (HIGH + LOW + CLOSE) / 3
    assert fills["Urgent"].raw_price == OPEN
    assert fills["Normal"].raw_price == pytest.approx(OPEN + 0.05 * (typical - OPEN), abs=1e-12)
    assert fills["Patient"].raw_price == pytest.approx(OPEN + 0.15 * (typical - OPEN), abs=1e-12)
    assert [fills[p].spread_share for p in ("Urgent", "Normal", "Patient")] == pytest.approx([0.85, 0.60, 0.35])
    assert fills["Patient"].minutes_after_open == pytest.approx(0.15 * 390)


def test_twap_moves_toward_the_typical_price_by_its_window_share_of_the_session() -> None:
    params = {"strategyType": "Marketable", "startTime": "20240311 09:30:00 US/Eastern",
              "endTime": "20240311 10:30:00 US/Eastern", "allowPastEndTime": "1"}  # fmt: skip
    assert twap_window_minutes(params, 390.0) == 60.0
    fill = algo_fill("Twap", params, OPEN, HIGH, LOW, CLOSE, 390.0)
    share = 60.0 / 390.0
    assert fill.raw_price == pytest.approx(OPEN + share * ((HIGH + LOW + CLOSE) / 3 - OPEN), abs=1e-12)
    assert (fill.spread_share, fill.volume_share, fill.minutes_after_open) == (1.0, pytest.approx(share), 30.0)
    assert twap_window_minutes({}, 210.0) == 210.0  # no times: the whole (half-day) session
    with pytest.raises(ValueError, match="Adaptive or Twap"):
        algo_fill("Vwap", {}, OPEN, HIGH, LOW, CLOSE, 390.0)


def test_the_journal_keeps_a_wheel_orders_choice_across_a_replay(tmp_path: Path) -> None:
    choice = ExecutionChoice(arm="ADAPTIVE_PATIENT", algo="Adaptive", algo_params=(("adaptivePriority", "Patient"),),
                             policy_id="algo_wheel-abc", propensity=0.42,
                             decision={"arm": "ADAPTIVE_PATIENT", "context": {"vol_20d": 0.2}})  # fmt: skip
    order = OrderEvent(ts_event_ns=1, ts_init_ns=2, client_order_id="c-1", strategy_id="momentum", symbol="SPY",
                       side=Side.BUY, quantity=10, order_type=OrderType.MKT, reference_price=100.0,
                       execution=choice)  # fmt: skip
    plain = OrderEvent(ts_event_ns=1, ts_init_ns=2, client_order_id="c-2", strategy_id="momentum", symbol="GLD",
                       side=Side.BUY, quantity=10, order_type=OrderType.MOC, reference_price=100.0)  # fmt: skip
    path = tmp_path / "journal.jsonl"
    with OrderJournal(path) as journal:
        journal.record_intent(order, 7)
        journal.record_intent(plain, 8)
    state = replay_journal(path)
    assert state.orders["c-1"].order.execution == choice
    assert state.orders["c-2"].order.execution is None
    assert '"execution"' not in path.read_text().splitlines()[1]  # a plain order's line is what it always was
