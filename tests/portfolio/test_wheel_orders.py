"""The AlgoWheel in the decision path: the session facts it sees, and what a WHEEL order carries."""

from __future__ import annotations

import pandas as pd
import pytest

from core.config_models import AlgoWheelConfig, AppConfig, WheelArm
from core.events import OrderType, Side
from data.calendar import TradingCalendar
from portfolio.algo_wheel import AlgoWheel
from portfolio.wheel_orders import FALLBACK_ORDER_TYPE, WheelExecution, build_wheel_execution, session_at

CALENDAR = TradingCalendar(start="2023-01-01", end="2025-12-31")
CUTOFF_MIN = 10.0


def ny_ns(text: str) -> int:
    return int(pd.Timestamp(text, tz="America/New_York").tz_convert("UTC").value)


def test_a_decision_on_a_close_meets_the_next_sessions_open() -> None:
    clock, active = session_at(CALENDAR, ny_ns("2024-03-08 16:00"), CUTOFF_MIN)  # Friday's close
    assert active == ny_ns("2024-03-11 09:30")  # Monday's open (and across the DST change)
    assert clock.minutes_to_close == 390.0
    assert clock.minutes_to_auction_cutoff == 380.0
    assert clock.regular_hours and not clock.half_day


def test_inside_a_session_the_facts_are_now_and_a_half_day_closes_at_13() -> None:
    clock, active = session_at(CALENDAR, ny_ns("2024-11-29 12:30"), CUTOFF_MIN)  # the day after Thanksgiving
    assert active == ny_ns("2024-11-29 12:30")
    assert (clock.minutes_to_close, clock.minutes_to_auction_cutoff, clock.half_day) == (30.0, 20.0, True)
    clock, active = session_at(CALENDAR, ny_ns("2024-11-28 10:00"), CUTOFF_MIN)  # Thanksgiving: no session
    assert active == ny_ns("2024-11-29 09:30") and clock.minutes_to_close == 210.0


def test_before_the_open_the_order_meets_that_days_open() -> None:
    _, active = session_at(CALENDAR, ny_ns("2024-03-11 07:00"), CUTOFF_MIN)
    assert active == ny_ns("2024-03-11 09:30")


def _execution(at_text: str, *, seed: int = 1, **wheel: object) -> tuple[WheelExecution, int]:
    config = AlgoWheelConfig(**wheel)  # type: ignore[arg-type]
    execution = WheelExecution(AlgoWheel(config, rng_seed=seed), lambda ts: session_at(CALENDAR, ts, CUTOFF_MIN),
                               spread_bps=4.0, collar_pct=10.0)  # fmt: skip
    return execution, ny_ns(at_text)


def test_a_wheel_order_carries_the_algo_the_policy_and_the_raw_context() -> None:
    execution, ts = _execution("2024-03-08 16:00")
    seen: set[str] = set()
    for _ in range(200):
        order = execution.choose(symbol="SPY", side=Side.BUY, quantity=500, reference_price=500.0,
                                 adv_shares=50_000.0, vol_20d=0.2, ts_event_ns=ts)  # fmt: skip
        choice = order.execution
        assert choice is not None and choice.propensity is not None and 0 < choice.propensity <= 1
        seen.add(choice.arm)
        arm = WheelArm(choice.arm)
        expected_type = {WheelArm.MOC: OrderType.MOC, WheelArm.LOC: OrderType.LOC}.get(arm, OrderType.MKT)
        assert order.order_type is expected_type
        assert (order.limit_price is not None) == (arm is WheelArm.LOC)
        if arm is WheelArm.TWAP:
            params = dict(choice.algo_params)
            assert choice.algo == "Twap" and params["startTime"] == "20240311 09:30:00 US/Eastern"
            assert params["endTime"] == "20240311 10:30:00 US/Eastern"
        elif arm.value.startswith("ADAPTIVE"):
            assert choice.algo == "Adaptive" and dict(choice.algo_params)["adaptivePriority"] in ("Urgent", "Normal",
                                                                                                 "Patient")  # fmt: skip
        context = choice.decision["context"]
        assert context["adv_participation"] == pytest.approx(0.01) and context["vol_20d"] == 0.2
        assert context["minutes_to_close"] == 390.0 and choice.decision["arm"] == choice.arm
    assert seen == {a.value for a in WheelArm}  # the ε floor reaches every eligible arm


def test_too_close_to_the_close_only_adaptive_is_left_and_no_arm_means_the_fallback() -> None:
    execution, ts = _execution("2024-03-11 15:55")  # 5 min left: past the cut-off (15:50), too late for TWAP
    arms = {execution.choose(symbol="SPY", side=Side.SELL, quantity=100, reference_price=500.0, adv_shares=1e6,
                             vol_20d=0.2, ts_event_ns=ts).execution.arm for _ in range(100)}  # type: ignore[union-attr]
    assert arms <= {"ADAPTIVE_URGENT", "ADAPTIVE_NORMAL", "ADAPTIVE_PATIENT"}
    only_auction, ts = _execution("2024-03-11 15:55", arms=(WheelArm.MOC, WheelArm.TWAP))
    order = only_auction.choose(symbol="SPY", side=Side.SELL, quantity=100, reference_price=500.0, adv_shares=1e6,
                                vol_20d=0.2, ts_event_ns=ts)  # fmt: skip
    assert (order.order_type, order.execution, only_auction.fallbacks) == (FALLBACK_ORDER_TYPE, None, 1)


def test_an_unknown_volatility_is_an_unusable_context_not_a_guess() -> None:
    execution, ts = _execution("2024-03-08 16:00")
    order = execution.choose(symbol="SPY", side=Side.BUY, quantity=10, reference_price=500.0, adv_shares=1e6,
                             vol_20d=float("nan"), ts_event_ns=ts)  # fmt: skip
    assert order.execution is None and order.order_type is FALLBACK_ORDER_TYPE


def test_the_wheel_is_built_only_for_a_wheel_strategy_and_is_seeded() -> None:
    assert build_wheel_execution(AppConfig(), CALENDAR) is None
    config = AppConfig.model_validate({"strategies": {"momentum": {"order_type": "WHEEL"}}, "algo_wheel": {"seed": 5}})
    first, second = build_wheel_execution(config, CALENDAR), build_wheel_execution(config, CALENDAR)
    assert first is not None and second is not None
    ts = ny_ns("2024-03-08 16:00")
    picks = [[w.choose(symbol="SPY", side=Side.BUY, quantity=100, reference_price=50.0, adv_shares=1e5, vol_20d=0.3,
                       ts_event_ns=ts).execution.arm for _ in range(30)] for w in (first, second)]  # type: ignore[union-attr]
    assert picks[0] == picks[1]
