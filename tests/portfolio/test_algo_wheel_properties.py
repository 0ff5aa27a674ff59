"""Property: whatever the session facts, the wheel never chooses an arm its guard rails exclude.

The rules are restated here independently of ``portfolio.algo_wheel`` (MOC/LOC only before the auction cut-off,
LOC only with a limit price, TWAP only with enough session left, Adaptive and TWAP only in regular hours), and
the wheel is trained a little first so that its choice is not uniform.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Side
from portfolio.algo_wheel import AlgoWheel, AlgoWheelConfig, Arm, SessionClock, WheelContext

CONFIG = AlgoWheelConfig(auction_cutoff_margin_minutes=1.0, twap_min_minutes=30.0, adaptive_min_minutes=1.0)
ADAPTIVE = {Arm.ADAPTIVE_URGENT, Arm.ADAPTIVE_NORMAL, Arm.ADAPTIVE_PATIENT}

minutes = st.one_of(
    st.floats(min_value=-600.0, max_value=900.0, allow_nan=False),
    st.sampled_from([0.0, 1.0, 29.999, 30.0, 30.001, float("nan"), float("inf"), -float("inf")]),
)


def allowed(arm: Arm, ctx: WheelContext, clock: SessionClock) -> bool:
    if arm in (Arm.MOC, Arm.LOC):
        if not clock.minutes_to_auction_cutoff > 1.0:
            return False
        return arm is Arm.MOC or (ctx.reference_price > 0 and math.isfinite(ctx.reference_price))
    if not clock.regular_hours:
        return False
    return clock.minutes_to_close >= (30.0 if arm is Arm.TWAP else 1.0)


@settings(max_examples=300, deadline=None)
@given(
    cutoff=minutes,
    to_close=minutes,
    regular_hours=st.booleans(),
    half_day=st.booleans(),
    participation=st.floats(min_value=1e-5, max_value=0.5),
    spread_bps=st.floats(min_value=0.0, max_value=300.0),
    reference_price=st.sampled_from([0.0, 0.5, 25.0, 300.0, float("nan")]),
    side=st.sampled_from(list(Side)),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_an_ineligible_arm_is_never_chosen(
    cutoff: float,
    to_close: float,
    regular_hours: bool,
    half_day: bool,
    participation: float,
    spread_bps: float,
    reference_price: float,
    side: Side,
    seed: int,
) -> None:
    ctx = WheelContext(
        side=side,
        quantity_shares=participation * 1e6,
        adv_shares=1e6,
        volatility_20d_pct=30.0,
        spread_bps=spread_bps,
        reference_price=reference_price,
        collar_pct=5.0,
    )
    clock = SessionClock(
        minutes_to_auction_cutoff=cutoff, minutes_to_close=to_close, regular_hours=regular_hours, half_day=half_day
    )
    wheel = AlgoWheel(CONFIG, rng_seed=seed)
    for _ in range(3):
        decision = wheel.decide(ctx, 1_704_997_800_000_000_000, clock)
        expected = {arm for arm in Arm if allowed(arm, ctx, clock)}
        if decision.arm is None:
            assert not expected or not math.isfinite(to_close), decision.reason
            continue
        assert set(decision.eligible) == expected
        assert allowed(decision.arm, ctx, clock), (decision.arm, clock)
        floor = CONFIG.epsilon / len(decision.eligible)
        assert all(floor - 1e-12 <= p <= 1.0 for p in decision.probabilities.values())
        if decision.arm is Arm.LOC:
            assert decision.limit_price is not None
            assert abs(decision.limit_price / reference_price - 1.0) <= ctx.collar_pct / 100.0
        wheel.update(decision, 10.0 if decision.arm in ADAPTIVE else 2.0)
