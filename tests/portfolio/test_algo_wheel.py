"""The AlgoWheel: learns the planted cheapest arm, logs true propensities, renders IB orders, persists exactly."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from ibapi.order import Order
from pydantic import ValidationError

from core.errors import StateCorruptError
from core.events import OrderEvent, OrderType, Side
from execution.ib_translate import to_ib_order
from portfolio.algo_wheel import (
    ALL_ARMS,
    AlgoWheel,
    AlgoWheelConfig,
    Arm,
    SessionClock,
    WheelContext,
    WheelDecision,
    loc_limit_price,
)

NOW_NS = 1_704_997_800_000_000_000  # 2024-01-11 18:30 UTC = 13:30 New York
MIDDAY = SessionClock(minutes_to_auction_cutoff=140.0, minutes_to_close=150.0, regular_hours=True, half_day=False)


def load_bench() -> ModuleType:
    """The benchmark's synthetic market (bench/ is scripts, not a package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "algo_wheel_regret.py"
    spec = importlib.util.spec_from_file_location("algo_wheel_regret", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench()


def context(side: Side = Side.BUY, reference_price: float = 50.0, collar_pct: float = 5.0) -> WheelContext:
    return WheelContext(
        side=side,
        quantity_shares=2_000,
        adv_shares=1_000_000,
        volatility_20d_pct=30.0,
        spread_bps=5.0,
        reference_price=reference_price,
        collar_pct=collar_pct,
    )


def only(arm: Arm, **settings: object) -> AlgoWheel:
    return AlgoWheel(AlgoWheelConfig(arms=(arm,), **settings), rng_seed=1)


# -- learning --------------------------------------------------------------------------------------------------


def test_learns_the_planted_cheapest_arm_with_sublinear_regret(bench: ModuleType) -> None:
    result = bench.run(seed=7, n_decisions=2000, warmup=0)
    assert result.took_cheapest.mean() >= 0.80
    first, last = result.regret_bps[:1000].sum(), result.regret_bps[1000:].sum()
    learned = result.learned_regret_bps
    # the learned part of the regret flattens; the ε floor adds a linear ε × mean gap by design
    assert learned[1000:].sum() < 0.5 * learned[:1000].sum()
    assert last < 0.75 * first
    assert result.vs_moc_bps.sum() < 0  # cheaper than always-MOC overall


def test_every_region_plants_its_cheapest_arm(bench: ModuleType) -> None:
    """The benchmark's claim "a known cheapest arm per region" holds for its orders."""
    rng = np.random.default_rng(11)
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=0)
    hits = []
    for _ in range(1200):
        order = bench.make_order(rng)
        eligible, _ = wheel.eligible_arms(order.context, order.session)
        rows = [ALL_ARMS.index(a) for a in eligible]
        hits.append(ALL_ARMS[rows[int(np.argmin(order.expected_cost_bps[rows]))]] is order.region.cheapest)
    assert np.mean(hits) >= 0.99


# -- propensities ----------------------------------------------------------------------------------------------


def test_propensities_are_the_policy_probabilities_with_the_exploration_floor(bench: ModuleType) -> None:
    rng = np.random.default_rng(3)
    wheel = AlgoWheel(AlgoWheelConfig(epsilon=0.05), rng_seed=3)
    for _ in range(400):
        order = bench.make_order(rng)
        decision = wheel.decide(order.context, order.now_ns, order.session)
        assert decision.arm in decision.eligible
        assert set(decision.probabilities) == set(decision.eligible)
        assert sum(decision.probabilities.values()) == pytest.approx(1.0)
        assert 0.0 < decision.propensity <= 1.0
        assert decision.propensity == decision.probabilities[decision.arm]
        floor = 0.05 / len(decision.eligible)
        assert min(decision.probabilities.values()) >= floor - 1e-12
        wheel.update(decision, float(order.expected_cost_bps[ALL_ARMS.index(decision.arm)]))


def test_logged_propensity_is_the_frequency_with_which_the_arm_is_chosen() -> None:
    """Over repeated decisions on one context the mean logged π of an arm matches how often it was taken."""
    wheel = AlgoWheel(AlgoWheelConfig(noise_sd_bps=5.0), rng_seed=5)
    trained = wheel.decide(context(), NOW_NS, MIDDAY)
    for arm, cost in zip(ALL_ARMS, (8.0, 7.0, 6.0, 6.5, 9.0, 12.0), strict=True):
        for _ in range(3):  # a few observations each: the posterior is uncertain, so π is spread out
            wheel.update(replace(trained, arm=arm), cost)
    n = 6000
    taken = {arm: 0 for arm in ALL_ARMS}
    mean_pi = {arm: 0.0 for arm in ALL_ARMS}
    for _ in range(n):
        decision = wheel.decide(context(), NOW_NS, MIDDAY)
        assert decision.arm is not None
        taken[decision.arm] += 1
        for arm, p in decision.probabilities.items():
            mean_pi[arm] += p / n
    for arm in ALL_ARMS:
        sd = (mean_pi[arm] * (1 - mean_pi[arm]) / n) ** 0.5
        assert abs(taken[arm] / n - mean_pi[arm]) < 4 * sd + 1e-3, (arm, taken[arm] / n, mean_pi[arm])
    assert max(mean_pi.values()) < 0.9  # a non-trivial distribution, else the check above proves little


# -- guard rails and no-arm decisions ----------------------------------------------------------------------------


def test_no_eligible_arm_gives_no_arm_and_the_reasons() -> None:
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=1)
    after_close = SessionClock(
        minutes_to_auction_cutoff=-20.0, minutes_to_close=-10.0, regular_hours=False, half_day=False
    )
    decision = wheel.decide(context(), NOW_NS, after_close)
    assert decision.arm is None and decision.order_type is None and decision.eligible == ()
    assert decision.propensity == 0.0
    assert "MOC needs > 1 min to the auction cut-off (got -20)" in decision.reason
    assert "TWAP runs only in regular trading hours" in decision.reason
    with pytest.raises(ValueError, match="without an arm"):
        wheel.update(decision, 5.0)


def test_unusable_context_gives_no_arm() -> None:
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=1)
    bad = WheelContext(
        side=Side.BUY,
        quantity_shares=100,
        adv_shares=0.0,
        volatility_20d_pct=30.0,
        spread_bps=5.0,
        reference_price=50.0,
        collar_pct=5.0,
    )
    decision = wheel.decide(bad, NOW_NS, MIDDAY)
    assert decision.arm is None and "unusable context" in decision.reason
    nan_vol = WheelContext(
        side=Side.BUY,
        quantity_shares=100,
        adv_shares=1e6,
        volatility_20d_pct=float("nan"),
        spread_bps=5.0,
        reference_price=50.0,
        collar_pct=5.0,
    )
    assert wheel.decide(nan_vol, NOW_NS, MIDDAY).arm is None


def test_a_disabled_arm_is_never_chosen() -> None:
    wheel = AlgoWheel(AlgoWheelConfig(arms=(Arm.ADAPTIVE_NORMAL, Arm.TWAP)), rng_seed=2)
    arms = {wheel.decide(context(), NOW_NS, MIDDAY).arm for _ in range(200)}
    assert arms == {Arm.ADAPTIVE_NORMAL, Arm.TWAP}


def test_half_days_can_switch_the_auction_arms_off() -> None:
    half_day = SessionClock(minutes_to_auction_cutoff=60.0, minutes_to_close=70.0, regular_hours=True, half_day=True)
    eligible, refused = AlgoWheel(AlgoWheelConfig(auction_on_half_days=False), 1).eligible_arms(context(), half_day)
    assert Arm.MOC not in eligible and Arm.LOC not in eligible and "half days" in refused[Arm.MOC]
    eligible, _ = AlgoWheel(AlgoWheelConfig(), 1).eligible_arms(context(), half_day)
    assert Arm.MOC in eligible


def test_loc_without_a_reference_price_is_ineligible() -> None:
    eligible, refused = AlgoWheel(AlgoWheelConfig(), 1).eligible_arms(context(reference_price=float("nan")), MIDDAY)
    assert Arm.LOC not in eligible and Arm.MOC in eligible and "reference price" in refused[Arm.LOC]


# -- IB rendering --------------------------------------------------------------------------------------------------


def _ib_order(decision: WheelDecision, side: Side = Side.BUY) -> Order:
    """The decision through the real IB translation: it must be an order TWS would accept."""
    order = OrderEvent(
        ts_event_ns=NOW_NS,
        ts_init_ns=NOW_NS,
        client_order_id="c-1",
        strategy_id="s",
        symbol="X",
        side=side,
        quantity=2000,
        order_type=decision.order_type,
        limit_price=decision.limit_price,
        reference_price=50.0,
    )
    return to_ib_order(order, 7, algo=decision.algo, algo_params=decision.algo_params)


def test_moc_is_an_order_type_without_algo() -> None:
    decision = only(Arm.MOC).decide(context(), NOW_NS, MIDDAY)
    assert (decision.order_type, decision.limit_price, decision.algo, dict(decision.algo_params)) == (
        OrderType.MOC,
        None,
        None,
        {},
    )
    assert _ib_order(decision).orderType == "MOC"


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_loc_limit_is_the_reference_moved_against_us_within_the_collar(side: Side) -> None:
    decision = only(Arm.LOC, loc_offset_bps=10.0).decide(context(side=side), NOW_NS, MIDDAY)
    assert decision.order_type is OrderType.LOC
    assert decision.limit_price == (50.05 if side is Side.BUY else 49.95)
    assert _ib_order(decision, side).lmtPrice == decision.limit_price


def test_loc_offset_is_capped_by_the_collar_and_rounded_inside_it() -> None:
    assert loc_limit_price(Side.BUY, 100.0, collar_pct=0.05, offset_bps=50.0) == 100.05
    assert loc_limit_price(Side.SELL, 100.0, collar_pct=0.05, offset_bps=50.0) == 99.95
    assert loc_limit_price(Side.BUY, 33.337, collar_pct=1.0, offset_bps=10.0) == 33.37  # 33.3703 rounded down
    assert loc_limit_price(Side.SELL, 0.5, collar_pct=1.0, offset_bps=10.0) == 0.4995  # sub-dollar tick
    assert loc_limit_price(Side.BUY, 0.0, collar_pct=1.0, offset_bps=10.0) is None
    assert loc_limit_price(Side.BUY, 10.0, collar_pct=0.0, offset_bps=10.0) is None


@pytest.mark.parametrize(
    ("arm", "priority"),
    [(Arm.ADAPTIVE_URGENT, "Urgent"), (Arm.ADAPTIVE_NORMAL, "Normal"), (Arm.ADAPTIVE_PATIENT, "Patient")],
)
def test_adaptive_arms_are_the_adaptive_algo_with_their_priority(arm: Arm, priority: str) -> None:
    decision = only(arm).decide(context(), NOW_NS, MIDDAY)
    assert (decision.order_type, decision.algo, dict(decision.algo_params)) == (
        OrderType.MKT,
        "Adaptive",
        {"adaptivePriority": priority},
    )
    ib = _ib_order(decision)
    assert ib.algoStrategy == "Adaptive" and [(t.tag, t.value) for t in ib.algoParams] == [
        ("adaptivePriority", priority)
    ]


def test_twap_runs_from_now_to_its_window_in_ib_time_text() -> None:
    decision = only(Arm.TWAP, twap_max_minutes=60.0).decide(context(), NOW_NS, MIDDAY)
    assert (decision.order_type, decision.algo) == (OrderType.MKT, "Twap")
    assert dict(decision.algo_params) == {
        "strategyType": "Marketable",
        "startTime": "20240111 13:30:00 US/Eastern",
        "endTime": "20240111 14:30:00 US/Eastern",
        "allowPastEndTime": "1",
    }
    assert _ib_order(decision).algoStrategy == "Twap"


def test_twap_ends_before_the_close_and_can_be_written_in_utc() -> None:
    near = SessionClock(minutes_to_auction_cutoff=30.0, minutes_to_close=40.0, regular_hours=True, half_day=False)
    decision = only(Arm.TWAP, twap_time_zone="UTC", twap_end_buffer_minutes=2.0).decide(context(), NOW_NS, near)
    assert decision.algo_params["startTime"] == "20240111-18:30:00"
    assert decision.algo_params["endTime"] == "20240111-19:08:00"  # close 19:10 UTC less the 2-minute buffer


# -- determinism and persistence ---------------------------------------------------------------------------------


def _play(wheel: AlgoWheel, bench: ModuleType, seed: int, n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        order = bench.make_order(rng)
        decision = wheel.decide(order.context, order.now_ns, order.session)
        records.append(decision.to_record())
        wheel.update(decision, float(order.expected_cost_bps[ALL_ARMS.index(decision.arm)] + rng.normal(0, 5)))
    return records


def test_same_seed_same_decisions(bench: ModuleType) -> None:
    first = _play(AlgoWheel(AlgoWheelConfig(), rng_seed=42), bench, seed=1, n=300)
    again = _play(AlgoWheel(AlgoWheelConfig(), rng_seed=42), bench, seed=1, n=300)
    other = _play(AlgoWheel(AlgoWheelConfig(), rng_seed=43), bench, seed=1, n=300)
    assert first == again
    assert [r["arm"] for r in first] != [r["arm"] for r in other]


def test_state_round_trip_through_json_continues_identically(bench: ModuleType) -> None:
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=9)
    _play(wheel, bench, seed=2, n=300)
    restored = AlgoWheel.from_state(json.loads(json.dumps(wheel.state())))
    assert restored.policy_id == wheel.policy_id == f"algo_wheel/{wheel.policy_id.split('/')[1]}/u300"
    features = np.array(wheel.decide(context(), NOW_NS, MIDDAY).features)
    restored.decide(context(), NOW_NS, MIDDAY)  # the same draw on both sides keeps the streams aligned
    assert restored.posterior_mean_reward(features) == wheel.posterior_mean_reward(features)
    assert _play(restored, bench, seed=3, n=200) == _play(wheel, bench, seed=3, n=200)


def test_restored_state_may_take_new_settings_but_not_another_model(bench: ModuleType) -> None:
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=9)
    _play(wheel, bench, seed=2, n=50)
    state = wheel.state()
    looser = AlgoWheel.from_state(state, AlgoWheelConfig(epsilon=0.2))
    assert looser.config.epsilon == 0.2 and looser.policy_id != wheel.policy_id
    for broken in (
        {**state, "feature_version": 99},
        {**state, "b": [[0.0]]},
        {k: v for k, v in state.items() if k != "rng"},
    ):
        with pytest.raises(StateCorruptError, match="algo wheel state unusable"):
            AlgoWheel.from_state(broken)


def test_update_refuses_a_non_finite_shortfall() -> None:
    wheel = AlgoWheel(AlgoWheelConfig(), rng_seed=1)
    decision = wheel.decide(context(), NOW_NS, MIDDAY)
    with pytest.raises(ValueError, match="finite"):
        wheel.update(decision, float("nan"))
    assert wheel.policy_id.endswith("/u0")


def test_config_refuses_settings_that_break_the_guarantees() -> None:
    with pytest.raises(ValidationError, match="epsilon"):
        AlgoWheelConfig(epsilon=0.0)  # no floor: off-policy estimates would be unbiased no more
    with pytest.raises(ValidationError, match="twap_max_minutes must be >= twap_min_minutes"):
        AlgoWheelConfig(twap_min_minutes=60.0, twap_max_minutes=30.0)
    with pytest.raises(ValidationError, match="arms must not repeat"):
        AlgoWheelConfig(arms=(Arm.MOC, Arm.MOC))


def test_decision_records_are_json_for_the_tca_log(bench: ModuleType) -> None:
    record = _play(AlgoWheel(AlgoWheelConfig(), rng_seed=1), bench, seed=4, n=1)[0]
    assert json.loads(json.dumps(record)) == record
    assert WheelDecision.from_record(json.loads(json.dumps(record))).to_record() == record
    assert set(record) >= {"arm", "eligible", "propensity", "probabilities", "features", "policy_id"}


def test_the_benchmark_prints_every_checkpoint_and_the_decision_times(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--decisions", "500", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    for mark in ("100", "500"):
        assert any(line.split()[:1] == [mark] for line in out.splitlines()), out
    assert "took the planted cheapest arm" in out and "p99" in out
    assert bench.main(["--decisions", "1"]) == 2
