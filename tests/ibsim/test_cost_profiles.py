"""ibsim's cost profiles as pure functions: seeded, impact and LOC non-fills growing with size, the planted
profile's cheapest arm per region with its margin, validation; and the AlgoWheel regret benchmark on them."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from core.config_models import AlgoWheelConfig, WheelArm
from core.events import Side
from ibsim import SimConfig
from ibsim.cost_profiles import (
    DEFAULT,
    PLANTED,
    PLANTED_REGIONS,
    PROFILES,
    REALISTIC,
    AdaptivePriority,
    CostContext,
    CostProfile,
    ImpactCurve,
    LocModel,
    PlantedRegion,
    TwapModel,
    close_auction_impact_bps,
    expected_shortfall_bps,
    get_profile,
    sample_shortfall_bps,
)
from portfolio.algo_wheel import SessionClock, WheelContext, eligible_arms

ARMS = tuple(WheelArm)
MIDDAY = CostContext(participation=0.002, volatility_20d_pct=25.0, spread_bps=8.0, minutes_to_close=200.0)
MIN_MARGIN_BPS = 3.0


def samples(profile: CostProfile, seed: int, n: int = 50) -> list[float | None]:
    rng = np.random.default_rng(seed)
    return [sample_shortfall_bps(arm, MIDDAY, rng, profile) for _ in range(n) for arm in ARMS]


# -- determinism -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [DEFAULT, REALISTIC, PLANTED], ids=lambda p: p.name)
def test_same_seed_same_costs(profile: CostProfile) -> None:
    assert samples(profile, seed=5) == samples(profile, seed=5)
    assert samples(profile, seed=5) != samples(profile, seed=6)


def test_sampled_costs_average_to_the_expected_cost() -> None:
    """The sampler and the expectation are one model: the mean of many draws is the expected shortfall."""
    rng = np.random.default_rng(1)
    for region in PLANTED_REGIONS:
        ctx = region.draw(rng)
        for arm in region.eligible:
            draws = [sample_shortfall_bps(arm, ctx, rng, PLANTED) for _ in range(3000)]
            costs = [PLANTED.loc.unfilled_cost_bps if d is None else d for d in draws]
            expected = expected_shortfall_bps(arm, ctx, PLANTED)
            assert np.mean(costs) == pytest.approx(expected, abs=4 * np.std(costs) / np.sqrt(len(costs)) + 0.05)


# -- the terms ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", [REALISTIC, PLANTED], ids=lambda p: p.name)
@pytest.mark.parametrize("arm", [WheelArm.MOC, WheelArm.LOC])
def test_close_auction_impact_grows_with_participation(profile: CostProfile, arm: WheelArm) -> None:
    curve = profile.moc_impact if arm is WheelArm.MOC else profile.loc.impact
    sizes = [0.0005, 0.001, 0.01, 0.05, 0.2]
    impacts = [close_auction_impact_bps(profile, arm, p) for p in sizes]
    assert impacts == sorted(impacts) and len(set(impacts)) == len(impacts)
    assert impacts[2] == pytest.approx(curve.coef_bps)  # coef × (1 % / 1 %) ** exponent
    assert impacts[3] == pytest.approx(curve.coef_bps * 5.0**curve.exponent)
    moc = [expected_shortfall_bps(WheelArm.MOC, replace(MIDDAY, participation=p), profile) for p in sizes]
    assert moc == sorted(moc)


def test_the_default_profile_is_ibsim_before_profiles() -> None:
    """No auction impact, no LOC non-fill, no drift: MOC/LOC fill exactly at the close (live/backtest parity)."""
    for p in (0.0, 0.01, 0.5):
        assert (
            close_auction_impact_bps(DEFAULT, WheelArm.MOC, p)
            == close_auction_impact_bps(DEFAULT, WheelArm.LOC, p)
            == 0.0
        )
        assert DEFAULT.loc.non_fill_probability(p) == 0.0
    assert DEFAULT.is_neutral and not PLANTED.is_neutral and not REALISTIC.is_neutral
    captures = {name: (p.capture_min, p.capture_max) for name, p in DEFAULT.adaptive.items()}
    assert captures == {"URGENT": (0.0, 0.3), "NORMAL": (0.2, 0.6), "PATIENT": (0.4, 0.9)}
    assert DEFAULT.twap.slices is None  # SimConfig.twap_slices decides


def test_loc_non_fill_probability_grows_with_participation_up_to_certainty() -> None:
    loc = PLANTED.loc
    sizes = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.5]
    probs = [loc.non_fill_probability(p) for p in sizes]
    assert probs[0] == loc.non_fill_base_prob and probs == sorted(probs)
    assert probs[3] == pytest.approx(loc.non_fill_base_prob + loc.non_fill_prob_at_1pct)
    assert probs[-2] == probs[-1] == 1.0
    rng = np.random.default_rng(2)
    for p in (0.02, 0.05):
        ctx = replace(MIDDAY, participation=p)
        draws = [sample_shortfall_bps(WheelArm.LOC, ctx, rng, PLANTED) for _ in range(4000)]
        unfilled = np.mean([d is None for d in draws])
        q = loc.non_fill_probability(p)
        assert unfilled == pytest.approx(q, abs=4 * np.sqrt(q * (1 - q) / 4000) + 1e-9)
        # in expectation a non-fill costs what redoing the order costs
        filled = expected_shortfall_bps(WheelArm.MOC, ctx, replace(PLANTED, moc_impact=loc.impact))
        assert expected_shortfall_bps(WheelArm.LOC, ctx, PLANTED) == pytest.approx(
            (1 - q) * filled + q * loc.unfilled_cost_bps
        )
    assert sample_shortfall_bps(WheelArm.MOC, replace(MIDDAY, participation=0.05), rng, PLANTED) is not None


def test_patient_waits_longer_and_twap_slicing_lowers_impact() -> None:
    calm = replace(MIDDAY, spread_bps=0.0)  # no spread to capture: only impact and drift are left
    urgent, patient = (
        expected_shortfall_bps(a, calm, PLANTED) - PLANTED.priority(n).impact.bps(calm.participation)
        for a, n in ((WheelArm.ADAPTIVE_URGENT, "Urgent"), (WheelArm.ADAPTIVE_PATIENT, "Patient"))
    )
    assert patient > urgent > 0  # the same volatility, a longer wait: more adverse drift
    big = replace(MIDDAY, participation=0.1)
    by_slices = [
        expected_shortfall_bps(WheelArm.TWAP, big, replace(PLANTED, twap=replace(PLANTED.twap, slices=n)))
        for n in (1, 5, 20)
    ]
    assert by_slices == sorted(by_slices, reverse=True)


# -- the planted profile ----------------------------------------------------------------------------------------


def _region_contexts(region: PlantedRegion, rng: np.random.Generator, n: int) -> list[CostContext]:
    """``n`` draws of the region and every corner of its box."""
    corners = itertools.product(
        region.participation, region.volatility_20d_pct, region.spread_bps, region.minutes_to_close
    )
    drawn = [region.draw(rng) for _ in range(n)]
    return drawn + [
        CostContext(participation=p, volatility_20d_pct=v, spread_bps=s, minutes_to_close=m) for p, v, s, m in corners
    ]


@pytest.mark.parametrize("region", PLANTED_REGIONS, ids=lambda r: r.name)
def test_each_planted_region_has_its_cheapest_arm_by_a_clear_margin(region: PlantedRegion) -> None:
    rng = np.random.default_rng(3)
    for ctx in _region_contexts(region, rng, 500):
        costs = {arm: expected_shortfall_bps(arm, ctx, PLANTED) for arm in region.eligible}
        runner_up = min(cost for arm, cost in costs.items() if arm is not region.cheapest)
        assert runner_up - costs[region.cheapest] >= MIN_MARGIN_BPS, (ctx, costs)


def test_the_planted_regions_cover_the_guard_rails_and_state_them_as_the_wheel_does() -> None:
    """Eligibility as the AlgoWheel's default guard rails decide it (10-minute cut-off); both rails occur."""
    rng = np.random.default_rng(4)
    config = AlgoWheelConfig()
    for region in PLANTED_REGIONS:
        for ctx in _region_contexts(region, rng, 50):
            session = SessionClock(
                minutes_to_auction_cutoff=ctx.minutes_to_close - 10.0,
                minutes_to_close=ctx.minutes_to_close,
                regular_hours=True,
                half_day=False,
            )
            context = WheelContext(
                side=Side.BUY,
                quantity_shares=100,
                adv_shares=1e6,
                volatility_20d_pct=ctx.volatility_20d_pct,
                spread_bps=ctx.spread_bps,
                reference_price=50.0,
                collar_pct=5.0,
            )
            allowed, _ = eligible_arms(context, session, config)
            assert set(allowed) == region.eligible, (region.name, ctx)
    assert any(WheelArm.MOC not in r.eligible for r in PLANTED_REGIONS)  # after the auction cut-off
    assert any(WheelArm.MOC in r.eligible and WheelArm.TWAP not in r.eligible for r in PLANTED_REGIONS)
    assert {r.cheapest for r in PLANTED_REGIONS} >= {WheelArm.ADAPTIVE_PATIENT, WheelArm.TWAP, WheelArm.MOC}


# -- names and validation ---------------------------------------------------------------------------------------


def test_an_unknown_profile_name_is_refused_naming_the_allowed_ones() -> None:
    assert set(PROFILES) == {"default", "realistic", "planted"}
    for refuse in (lambda: get_profile("cheap"), lambda: SimConfig(cost_profile="cheap")):
        with pytest.raises(ValueError, match=r"unknown cost profile 'cheap'.*'default', 'planted', 'realistic'"):
            refuse()
    assert get_profile("planted") is PLANTED and get_profile(PLANTED) is PLANTED
    assert SimConfig().cost_profile == "default"


def test_invalid_parameters_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match=r"impact coef_bps must be >= 0 \(got -1.0\)"):
        ImpactCurve(coef_bps=-1.0)
    with pytest.raises(ValueError, match="adaptive capture range"):
        AdaptivePriority(capture_min=0.8, capture_max=0.2)
    with pytest.raises(ValueError, match="loc non_fill_base_prob"):
        LocModel(non_fill_base_prob=1.5)
    with pytest.raises(ValueError, match="twap slices"):
        TwapModel(slices=0)
    with pytest.raises(ValueError, match="adaptive priorities"):
        CostProfile(name="x", description="", adaptive={"URGENT": DEFAULT.adaptive["URGENT"]})
    with pytest.raises(ValueError, match="context participation"):
        CostContext(participation=float("nan"), volatility_20d_pct=20.0, spread_bps=1.0, minutes_to_close=10.0)
    with pytest.raises(TypeError):
        PLANTED.adaptive["URGENT"] = DEFAULT.adaptive["URGENT"]  # type: ignore[index]


# -- the regret benchmark on the planted profile ----------------------------------------------------------------


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """``bench/algo_wheel_regret.py`` (bench/ is scripts, not a package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "algo_wheel_regret.py"
    spec = importlib.util.spec_from_file_location("algo_wheel_regret", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_wheel_finds_the_planted_arms_with_sublinear_regret(bench: ModuleType) -> None:
    result = bench.run_profile(seed=7, n_decisions=2000, warmup=0)
    assert len(result.regret_bps) == 2000 and result.no_arm == 0
    assert result.planted_share >= 0.80
    assert result.forbidden_choices == 0 and result.restricted > 500  # the guard rails were exercised, and held
    regret = np.array(result.regret_bps)
    assert regret[1000:].sum() < regret[:1000].sum()
    assert np.sum(result.vs_moc_bps) < 0  # cheaper than always-MOC


def test_the_benchmark_prints_its_figures_and_fails_a_missed_goal(
    bench: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--decisions", "300", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    for text in ("regret vs the oracle", "vs always-MOC", "took the planted cheapest arm", "forbidden choices", "p99"):
        assert text in out, out
    result = bench.run_profile(seed=2, n_decisions=2000, warmup=0)
    result.forbidden_choices = 1
    assert bench._report_profile(result, 2, PLANTED) == ["1 forbidden choices"]
