"""AlgoWheel regret against the oracle and against always-MOC, on ibsim's planted cost profile (or a synthetic one).

Default environment, ``--env ibsim``: orders drawn from ``ibsim.cost_profiles.PLANTED_REGIONS`` (equal weights:
small orders mid-day, big orders with time, big and small orders near the close where TWAP is no longer allowed,
a fast market, orders after the auction cut-off where only Adaptive is), priced by the ``planted`` profile, the
very model ibsim's MOC/LOC/Adaptive/TWAP fills use, through its pure functions (no socket). Each decision:
``AlgoWheel.decide``, then the chosen arm's shortfall is drawn with ``sample_shortfall_bps`` (a LOC that does not
fill costs the profile's ``unfilled_cost_bps``: the order is redone) and ``update`` learns from it. The session's
volume is the order's ADV here, so the profile's participation is the wheel's ``quantity / ADV``.

Printed: cumulative pseudo-regret (expected cost of the chosen arm minus the oracle's, the cheapest arm the guard
rails allow, by ``expected_shortfall_bps``) at the checkpoints 100/500/1000/2000 and per decision in each window;
the cumulative cost against always-MOC (MOC where it is allowed, else Adaptive Normal, the caller's fallback;
negative = the wheel was cheaper); regret in the first and last 500 and 1000 decisions (sublinear growth: the
later windows cost less); the share of decisions that took the region's planted arm where that arm was allowed,
per region too; choices of an arm the guard rails forbid (checked independently of the wheel: MOC/LOC after the
cut-off, TWAP too close to the close); and the decision time of ``AlgoWheel.decide`` (p50/p99/max,
``time.perf_counter_ns`` around each call, after a warm-up on a throwaway wheel; goal p99 <= 200 us on the live
path, reported, not enforced: it depends on the machine). Exit 1 when a goal fails: any forbidden choice, or a
planted-arm share under 80 % (checked from 2,000 decisions on, the horizon the goal is stated for).

``--env synthetic``: the older synthetic market, kept because ``tests/portfolio`` and ``tests/ml`` use its orders
(``make_order``, ``run``): every arm's expected shortfall is linear in the wheel's own features (well specified),
six regions each with a planted cheapest arm by 2-15 bps, Gaussian noise of ``NOISE_SD_BPS``. The ibsim profile is
the misspecified test (power-law impact, square-root drift, LOC non-fills).

Seeded: the same seed prints the same regret numbers (the times depend on the machine and its load).

Usage: ``python bench/algo_wheel_regret.py [--env ibsim|synthetic] [--seed 7] [--decisions 2000]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.events import Side  # noqa: E402
from ibsim.cost_profiles import (  # noqa: E402
    PLANTED,
    PLANTED_REGIONS,
    CostContext,
    CostProfile,
    PlantedRegion,
    expected_shortfall_bps,
    sample_shortfall_bps,
)
from portfolio.algo_wheel import (  # noqa: E402
    ALL_ARMS,
    AlgoWheel,
    AlgoWheelConfig,
    Arm,
    SessionClock,
    WheelContext,
    WheelDecision,
    context_features,
)

NOISE_SD_BPS = 5.0
CHECKPOINTS = (100, 500, 1000, 2000)
SESSION_START_NS = 1_704_983_400_000_000_000  # 2024-01-11 14:30 UTC, 09:30 New York
AUCTION_CUTOFF_MINUTES = 10.0  # NYSE: MOC/LOC entry closes 10 minutes before the close

# Expected shortfall (bps) = features · coefficients; columns in FEATURE_NAMES order:
# intercept, sqrt_participation, volatility, spread, time_to_close, impact (= volatility × sqrt_participation).
PLANTED_COST_BPS = {
    Arm.MOC: (6.0, 0.0, 2.0, 0.0, 32.0, 5.0),  # auction absorbs size; far from the close = drift vs arrival
    Arm.LOC: (1.0, 0.0, 2.0, 0.0, 32.0, 10.0),  # as MOC, cheaper for small orders, worse when the limit binds
    Arm.ADAPTIVE_URGENT: (2.0, 0.0, 0.0, 16.0, 0.0, 8.0),  # pays the spread, little timing risk
    Arm.ADAPTIVE_NORMAL: (7.0, 0.0, 0.0, 8.0, 0.0, 8.0),
    Arm.ADAPTIVE_PATIENT: (13.0, 0.0, 2.0, 3.0, 0.0, 10.0),  # earns the spread, bears impact and timing risk
    Arm.TWAP: (8.0, 0.0, 6.0, 10.0, 0.0, 2.0),  # spreads a big order over time, bears volatility
}
_COEF = np.array([PLANTED_COST_BPS[a] for a in ALL_ARMS])


@dataclass(frozen=True, slots=True)
class Region:
    """A kind of order whose planted cheapest eligible arm is ``cheapest`` (tests/portfolio checks the table)."""

    cheapest: Arm
    participation: tuple[float, float]  # of ADV, log-uniform
    volatility_pct: tuple[float, float]
    spread_bps: tuple[float, float]  # log-uniform
    minutes_to_close: tuple[float, float]
    premarket_share: float = 0.0  # orders placed before the open instead (only MOC/LOC are eligible then)


REGIONS = (
    Region(Arm.ADAPTIVE_URGENT, (0.0005, 0.005), (12, 35), (1, 4), (120, 370)),
    Region(Arm.ADAPTIVE_NORMAL, (0.0005, 0.005), (12, 30), (9, 14), (240, 370)),
    Region(Arm.ADAPTIVE_PATIENT, (0.0005, 0.003), (12, 25), (24, 40), (300, 380)),
    Region(Arm.TWAP, (0.05, 0.15), (20, 40), (1, 6), (150, 370)),
    Region(Arm.MOC, (0.03, 0.15), (25, 60), (5, 15), (12, 28), premarket_share=0.2),
    Region(Arm.LOC, (0.0005, 0.003), (12, 40), (5, 20), (12, 28), premarket_share=0.2),
)
HALF_DAY_SHARE = 0.1  # of the near-close regions' regular-hours orders


@dataclass(frozen=True, slots=True)
class Order:
    """One synthetic order: what the wheel sees, and the planted expected cost of every arm (bps)."""

    region: Region
    context: WheelContext
    session: SessionClock
    now_ns: int
    expected_cost_bps: np.ndarray  # (len(ALL_ARMS),), in ALL_ARMS order


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


def _session(rng: np.random.Generator, region: Region) -> SessionClock:
    if rng.random() < region.premarket_share:
        minutes_to_close = 390.0 + rng.uniform(1.0, 60.0)
        regular_hours, half_day = False, False
    else:
        minutes_to_close = rng.uniform(*region.minutes_to_close)
        regular_hours, half_day = True, region.minutes_to_close[1] < 210 and rng.random() < HALF_DAY_SHARE
    return SessionClock(
        minutes_to_auction_cutoff=minutes_to_close - AUCTION_CUTOFF_MINUTES,
        minutes_to_close=minutes_to_close,
        regular_hours=regular_hours,
        half_day=half_day,
    )


def make_order(rng: np.random.Generator) -> Order:
    """A random order from a random region (equal weights), its session facts and its planted costs."""
    region = REGIONS[int(rng.integers(len(REGIONS)))]
    adv = 2_000_000.0
    context = WheelContext(
        side=Side.BUY if rng.random() < 0.5 else Side.SELL,
        quantity_shares=max(1.0, round(_log_uniform(rng, region.participation) * adv)),
        adv_shares=adv,
        volatility_20d_pct=float(rng.uniform(*region.volatility_pct)),
        spread_bps=_log_uniform(rng, region.spread_bps),
        reference_price=float(rng.uniform(10.0, 300.0)),
        collar_pct=5.0,
    )
    session = _session(rng, region)
    x = context_features(context, session)
    if x is None:
        raise RuntimeError(f"synthetic context is unusable: {context} {session}")
    half_day_minutes = 210.0 if session.half_day else 390.0
    now_ns = SESSION_START_NS + int((half_day_minutes - session.minutes_to_close) * 60e9)
    return Order(region=region, context=context, session=session, now_ns=now_ns, expected_cost_bps=_COEF @ x)


@dataclass(frozen=True, slots=True)
class RunResult:
    """Per decision (index = decision number): regret and cost gaps in bps, hits, decision times in ns."""

    regret_bps: np.ndarray  # expected cost of the chosen arm minus the cheapest eligible arm's
    floor_regret_bps: np.ndarray  # the part the ε floor causes by design: ε × mean gap of the eligible arms
    learned_regret_bps: np.ndarray  # the rest of the policy's expected regret: (1 − ε) × Σ wins_a × gap_a
    vs_moc_bps: np.ndarray  # expected cost of the chosen arm minus the always-MOC baseline's
    took_cheapest: np.ndarray  # bool
    cheapest_arm: list[Arm]
    chosen_arm: list[Arm]
    decide_ns: np.ndarray
    no_arm: int  # orders for which nothing was eligible (the caller's fallback; not counted above)


def _baseline_cost(order: Order, eligible: tuple[Arm, ...]) -> float:
    arm = Arm.MOC if Arm.MOC in eligible else Arm.ADAPTIVE_NORMAL
    return float(order.expected_cost_bps[ALL_ARMS.index(arm)])


def bench_config() -> AlgoWheelConfig:
    """The default wheel with its noise set to the market's, as an integrator sets it from TCA residuals."""
    return AlgoWheelConfig(noise_sd_bps=NOISE_SD_BPS)


def run(seed: int, n_decisions: int, config: AlgoWheelConfig | None = None, warmup: int = 200) -> RunResult:
    """``n_decisions`` orders through a fresh wheel: decide, fill (planted cost + noise), update.

    The warm-up runs on a throwaway wheel and its own random stream, so it changes no result but the times.
    """
    config = config or bench_config()
    warm_rng = np.random.default_rng([seed, 1])
    throwaway = AlgoWheel(config, rng_seed=seed + 1)
    for _ in range(warmup):
        order = make_order(warm_rng)
        throwaway.update(throwaway.decide(order.context, order.now_ns, order.session), 10.0)
    env_rng = np.random.default_rng(seed)
    wheel = AlgoWheel(config, rng_seed=seed)
    regret, vs_moc, hits, times, cheapest, chosen, no_arm = [], [], [], [], [], [], 0
    floor_regret: list[float] = []
    learned_regret: list[float] = []
    while len(regret) < n_decisions:
        order = make_order(env_rng)
        start = time.perf_counter_ns()
        decision = wheel.decide(order.context, order.now_ns, order.session)
        times.append(time.perf_counter_ns() - start)
        if decision.arm is None:
            no_arm += 1
            continue
        costs = order.expected_cost_bps
        rows = [ALL_ARMS.index(a) for a in decision.eligible]
        best = rows[int(np.argmin(costs[rows]))]
        gaps = costs[rows] - costs[best]
        floor_part = config.epsilon * float(gaps.mean())
        floor_regret.append(floor_part)
        learned_regret.append(float(np.dot(list(decision.probabilities.values()), gaps)) - floor_part)
        k = ALL_ARMS.index(decision.arm)
        regret.append(costs[k] - costs[best])
        vs_moc.append(costs[k] - _baseline_cost(order, decision.eligible))
        hits.append(k == best)
        cheapest.append(ALL_ARMS[best])
        chosen.append(decision.arm)
        wheel.update(decision, float(costs[k] + env_rng.normal(0.0, NOISE_SD_BPS)))
    return RunResult(
        regret_bps=np.array(regret),
        floor_regret_bps=np.array(floor_regret),
        learned_regret_bps=np.array(learned_regret),
        vs_moc_bps=np.array(vs_moc),
        took_cheapest=np.array(hits),
        cheapest_arm=cheapest,
        chosen_arm=chosen,
        decide_ns=np.array(times),
        no_arm=no_arm,
    )


def _report(result: RunResult, seed: int) -> None:
    n = len(result.regret_bps)
    cum, cum_moc = np.cumsum(result.regret_bps), np.cumsum(result.vs_moc_bps)
    print(f"AlgoWheel, synthetic planted costs: seed {seed}, {n:,} decisions, noise sd {NOISE_SD_BPS:g} bps")
    print(f"{'decisions':>10} {'regret bps':>11} {'per decision':>13} {'vs always-MOC bps':>18} {'took cheapest':>14}")
    previous = 0
    for mark in (c for c in CHECKPOINTS if c <= n):
        window = result.regret_bps[previous:mark]
        share = result.took_cheapest[:mark].mean()
        print(f"{mark:>10,} {cum[mark - 1]:>11.1f} {window.mean():>13.3f} {cum_moc[mark - 1]:>18.1f} {share:>13.1%}")
        previous = mark
    half = n // 2
    first, last = result.regret_bps[:half].sum(), result.regret_bps[half:].sum()
    print(f"regret first {half:,}: {first:.1f} bps, last {n - half:,}: {last:.1f} bps (ratio {last / first:.2f})")
    learned, floor = result.learned_regret_bps, result.floor_regret_bps
    print(
        f"  of the policy's expected regret, the learned part: first {learned[:half].sum():.1f}, last "
        f"{learned[half:].sum():.1f} (ratio {learned[half:].sum() / learned[:half].sum():.2f}); the ε floor's "
        f"(linear by design): {floor.mean():.3f} bps per decision"
    )
    print(
        f"took the planted cheapest arm: {result.took_cheapest.mean():.1%} overall, "
        f"{result.took_cheapest[half:].mean():.1%} in the last {n - half:,}"
    )
    for arm in ALL_ARMS:
        where = [i for i, c in enumerate(result.cheapest_arm) if c is arm]
        if where:
            share = np.mean([result.chosen_arm[i] is arm for i in where])
            print(f"  cheapest {arm.value:<17} {len(where):>5} orders, taken {share:.1%}")
    us = result.decide_ns / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    print(
        f"decide(): p50 {p50:.1f} us, p99 {p99:.1f} us, max {us.max():.1f} us over {len(us):,} calls "
        f"(goal p99 <= 200 us); orders with no eligible arm: {result.no_arm}"
    )


# ------------------------------------------------------------------------------ ibsim's planted cost profile
PROFILE_ADV_SHARES = 2_000_000.0  # also the session's volume: the profile's participation is quantity / ADV
GOAL_SHARE = 0.80
GOAL_HORIZON = 2000  # the share goal is stated after 2,000 decisions; shorter runs only report it
GOAL_P99_US = 200.0


@dataclass(frozen=True, slots=True)
class ProfileOrder:
    """One order from a planted region: what the wheel sees, what the profile prices, each arm's expected cost."""

    region: PlantedRegion
    cost_context: CostContext
    context: WheelContext
    session: SessionClock
    now_ns: int
    expected_cost_bps: np.ndarray  # (len(ALL_ARMS),), in ALL_ARMS order


def make_profile_order(rng: np.random.Generator, profile: CostProfile = PLANTED) -> ProfileOrder:
    """A random order from a random planted region (equal weights), its session facts and expected costs."""
    region = PLANTED_REGIONS[int(rng.integers(len(PLANTED_REGIONS)))]
    drawn = region.draw(rng)
    quantity = max(1.0, float(round(drawn.participation * PROFILE_ADV_SHARES)))
    cost_context = replace(drawn, participation=quantity / PROFILE_ADV_SHARES)
    context = WheelContext(
        side=Side.BUY if rng.random() < 0.5 else Side.SELL,
        quantity_shares=quantity,
        adv_shares=PROFILE_ADV_SHARES,
        volatility_20d_pct=drawn.volatility_20d_pct,
        spread_bps=drawn.spread_bps,
        reference_price=float(rng.uniform(10.0, 300.0)),
        collar_pct=5.0,
    )
    minutes = drawn.minutes_to_close
    session = SessionClock(
        minutes_to_auction_cutoff=minutes - AUCTION_CUTOFF_MINUTES,
        minutes_to_close=minutes,
        regular_hours=True,
        half_day=False,
    )
    now_ns = SESSION_START_NS + int((390.0 - minutes) * 60e9)
    expected = np.array([expected_shortfall_bps(arm, cost_context, profile) for arm in ALL_ARMS])
    return ProfileOrder(region, cost_context, context, session, now_ns, expected)


def allowed_arms(session: SessionClock, config: AlgoWheelConfig) -> tuple[Arm, ...]:
    """The guard rails restated apart from the wheel (regular hours, full days), to check its choices against."""
    allowed = []
    for arm in config.arms:
        if arm in (Arm.MOC, Arm.LOC):
            ok = session.minutes_to_auction_cutoff > config.auction_cutoff_margin_minutes
        elif arm is Arm.TWAP:
            ok = session.regular_hours and session.minutes_to_close >= config.twap_min_minutes
        else:
            ok = session.regular_hours and session.minutes_to_close >= config.adaptive_min_minutes
        if ok:
            allowed.append(arm)
    return tuple(allowed)


@dataclass(slots=True)
class ProfileRunResult:
    """Per decision (index = decision number) regret and cost gaps in bps, planted-arm hits; counts; times in ns."""

    regret_bps: list[float] = field(default_factory=list)  # expected cost of the choice minus the oracle's
    floor_regret_bps: list[float] = field(default_factory=list)  # the ε floor's part: ε × mean gap of the allowed
    learned_regret_bps: list[float] = field(default_factory=list)  # the rest of the policy's expected regret
    vs_moc_bps: list[float] = field(default_factory=list)  # expected cost of the choice minus always-MOC's
    planted_allowed: list[bool] = field(default_factory=list)
    took_planted: list[bool] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    decide_ns: list[int] = field(default_factory=list)
    moc_fallback: int = 0  # decisions where MOC was not allowed: the baseline took Adaptive Normal
    restricted: int = 0  # decisions where the guard rails forbade some arm
    forbidden_choices: int = 0  # choices of a forbidden arm (the goal: none)
    loc_unfilled: int = 0
    no_arm: int = 0

    @property
    def planted_share(self) -> float:
        """Share of the decisions whose planted arm was allowed that took it."""
        hits = [t for t, ok in zip(self.took_planted, self.planted_allowed, strict=True) if ok]
        return float(np.mean(hits)) if hits else float("nan")

    def record(self, order: ProfileOrder, decision: WheelDecision, allowed: tuple[Arm, ...], epsilon: float) -> None:
        """Score one decision against the oracle (cheapest allowed arm) and the always-MOC baseline; the policy's
        expected regret (its probabilities × the gaps) splits into the ε floor's part and the learned rest."""
        costs, arm = order.expected_cost_bps, decision.arm
        if arm is None:
            raise ValueError(f"a decision without an arm has no cost to score (reason: {decision.reason})")
        best = min(costs[ALL_ARMS.index(a)] for a in allowed)
        chosen = costs[ALL_ARMS.index(arm)]
        self.regret_bps.append(float(chosen - best))
        gaps = {a: float(costs[ALL_ARMS.index(a)] - best) for a in decision.eligible}
        floor = epsilon * float(np.mean(list(gaps.values())))
        self.floor_regret_bps.append(floor)
        self.learned_regret_bps.append(sum(p * gaps[a] for a, p in decision.probabilities.items()) - floor)
        baseline = Arm.MOC if Arm.MOC in allowed else Arm.ADAPTIVE_NORMAL
        self.moc_fallback += baseline is not Arm.MOC
        self.vs_moc_bps.append(float(chosen - costs[ALL_ARMS.index(baseline)]))
        self.planted_allowed.append(order.region.cheapest in allowed)
        self.took_planted.append(arm is order.region.cheapest)
        self.region.append(order.region.name)
        self.restricted += len(allowed) < len(ALL_ARMS)
        self.forbidden_choices += arm not in allowed


def run_profile(
    seed: int,
    n_decisions: int,
    profile: CostProfile = PLANTED,
    config: AlgoWheelConfig | None = None,
    warmup: int = 200,
) -> ProfileRunResult:
    """``n_decisions`` planted-region orders through a fresh wheel: decide, sample the profile's cost, update.

    Contexts and sampled costs have streams of their own (``seed`` and ``[seed, 2]``); the warm-up runs on a
    throwaway wheel and its own stream, so it changes no result but the times.
    """
    config = config or bench_config()
    warm_rng, throwaway = np.random.default_rng([seed, 1]), AlgoWheel(config, rng_seed=seed + 1)
    for _ in range(warmup):
        order = make_profile_order(warm_rng, profile)
        throwaway.update(throwaway.decide(order.context, order.now_ns, order.session), 10.0)
    env_rng, cost_rng = np.random.default_rng(seed), np.random.default_rng([seed, 2])
    wheel, result = AlgoWheel(config, rng_seed=seed), ProfileRunResult()
    while len(result.regret_bps) < n_decisions:
        order = make_profile_order(env_rng, profile)
        start = time.perf_counter_ns()
        decision = wheel.decide(order.context, order.now_ns, order.session)
        result.decide_ns.append(time.perf_counter_ns() - start)
        if decision.arm is None:
            result.no_arm += 1
            continue
        result.record(order, decision, allowed_arms(order.session, config), config.epsilon)
        shortfall = sample_shortfall_bps(decision.arm, order.cost_context, cost_rng, profile)
        if shortfall is None:  # a LOC that did not fill: the order is redone, at the profile's cost
            result.loc_unfilled += 1
            shortfall = profile.loc.unfilled_cost_bps
        wheel.update(decision, shortfall)
    return result


def _window_line(regret: np.ndarray, size: int) -> str:
    first, last = regret[:size].sum(), regret[-size:].sum()
    return f"first {size:,}: {first:.1f} bps, last {size:,}: {last:.1f} bps (ratio {last / first:.2f})"


def _report_profile(result: ProfileRunResult, seed: int, profile: CostProfile) -> list[str]:
    """Print the run; returns the goals it failed (empty = all met)."""
    regret, vs_moc = np.array(result.regret_bps), np.array(result.vs_moc_bps)
    n, cum, cum_moc = len(regret), np.cumsum(regret), np.cumsum(vs_moc)
    took, allowed = np.array(result.took_planted), np.array(result.planted_allowed)
    print(f"AlgoWheel on ibsim cost profile {profile.name!r}: seed {seed}, {n:,} decisions, "
          f"{len(PLANTED_REGIONS)} planted regions")  # fmt: skip
    print(f"{'decisions':>10} {'regret bps':>11} {'per decision':>13} {'vs always-MOC bps':>18} {'took planted':>13}")
    previous = 0
    for mark in (c for c in CHECKPOINTS if c <= n):
        share = took[:mark][allowed[:mark]].mean()
        window = regret[previous:mark].mean()
        print(f"{mark:>10,} {cum[mark - 1]:>11.1f} {window:>13.3f} {cum_moc[mark - 1]:>18.1f} {share:>12.1%}")
        previous = mark
    for size in [s for s in (500, 1000) if 2 * s <= n] or [n // 2]:
        print(f"regret vs the oracle, {_window_line(regret, size)}")
    floor, learned = np.array(result.floor_regret_bps), np.array(result.learned_regret_bps)
    print(f"  the policy's expected regret: the ε floor's part (linear by design) {floor.mean():.3f} bps per "
          f"decision; the learned part, {_window_line(learned, n // 2)}")  # fmt: skip
    print(f"vs always-MOC: {cum_moc[-1]:.1f} bps in total ({vs_moc.mean():.2f} per decision; negative = the wheel "
          f"cheaper); MOC where allowed, else Adaptive Normal, the caller's fallback ({result.moc_fallback:,} "
          f"decisions)")  # fmt: skip
    share = result.planted_share
    print(f"took the planted cheapest arm where it was allowed: {share:.1%} of {int(allowed.sum()):,} decisions "
          f"(goal >= {GOAL_SHARE:.0%}{'' if n >= GOAL_HORIZON else f', checked from {GOAL_HORIZON:,} decisions'})")
    for region in PLANTED_REGIONS:
        where = [i for i, name in enumerate(result.region) if name == region.name and allowed[i]]
        if where:
            print(f"  {region.name:<17} {region.cheapest.value:<17} {len(where):>5} orders, taken "
                  f"{took[where].mean():.1%}")  # fmt: skip
    print(f"forbidden choices (MOC/LOC after the cut-off, TWAP too close to the close): {result.forbidden_choices} "
          f"in {result.restricted:,} decisions with a forbidden arm (goal 0); LOC non-fills: {result.loc_unfilled}")
    us = np.array(result.decide_ns) / 1e3
    p50, p99 = np.percentile(us, [50, 99])
    print(f"decide(): p50 {p50:.1f} us, p99 {p99:.1f} us, max {us.max():.1f} us over {len(us):,} calls "
          f"(goal p99 <= {GOAL_P99_US:g} us: {'met' if p99 <= GOAL_P99_US else 'missed'}, reported only); "
          f"orders with no eligible arm: {result.no_arm}")  # fmt: skip
    failed = [f"{result.forbidden_choices} forbidden choices"] if result.forbidden_choices else []
    if n >= GOAL_HORIZON and not share >= GOAL_SHARE:
        failed.append(f"planted-arm share {share:.1%} < {GOAL_SHARE:.0%}")
    print("goals: " + ("met" if not failed else "FAILED: " + "; ".join(failed)))
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--env", choices=("ibsim", "synthetic"), default="ibsim",
                        help="ibsim's planted cost profile, or the synthetic linear market")  # fmt: skip
    parser.add_argument("--seed", type=int, default=7, help="seed of the market and of the wheel")
    parser.add_argument("--decisions", type=int, default=2000, help="orders decided and learned from")
    args = parser.parse_args(argv)
    if args.decisions < 2:
        print("--decisions must be at least 2", file=sys.stderr)
        return 2
    if args.env == "synthetic":
        _report(run(args.seed, args.decisions), args.seed)
        return 0
    failed = _report_profile(run_profile(args.seed, args.decisions), args.seed, PLANTED)
    if failed:
        print("goal failed: " + "; ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
