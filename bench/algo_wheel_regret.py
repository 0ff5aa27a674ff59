"""AlgoWheel regret on a synthetic market with planted costs (the ibsim cost-profile version comes later).

This is the **synthetic** version: every order's expected implementation shortfall per arm is a planted function
of its context, so the cheapest arm of every order is known exactly and regret can be counted against it. Orders
come from six regions of equal weight (``REGIONS``: small tight-spread orders, wide-spread ones, large orders with
time left, large and small orders near the close or before the open, some on half days), each with its own
planted cheapest arm by a margin of about 2-15 bps. The planted costs are linear in the wheel's own features
(``portfolio.algo_wheel.FEATURE_NAMES``), i.e. the model is well specified, plus Gaussian noise of
``NOISE_SD_BPS``; ibsim's cost profiles will test it misspecified.

Printed: cumulative pseudo-regret (expected cost of the chosen arm minus the cheapest eligible arm's) at the
checkpoints 100/500/1000/2000 and per decision in each window (sublinear growth shows as a falling rate); the
cumulative cost against always-MOC (MOC where eligible, else Adaptive Normal, the caller's fallback; negative =
the wheel was cheaper); the learned part of the regret apart from the ε floor's (linear by design); the share
of decisions that took the planted cheapest arm; and the decision time of ``AlgoWheel.decide`` (p50/p99/max,
``time.perf_counter_ns`` around each call, after a warm-up on a throwaway wheel). Seeded: the same seed prints
the same regret numbers (the times depend on the machine and its load).

Usage: ``python bench/algo_wheel_regret.py [--seed 7] [--decisions 2000]``; exit 0 when it ran.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.events import Side  # noqa: E402
from portfolio.algo_wheel import (  # noqa: E402
    ALL_ARMS,
    AlgoWheel,
    AlgoWheelConfig,
    Arm,
    SessionClock,
    WheelContext,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the market and of the wheel")
    parser.add_argument("--decisions", type=int, default=2000, help="orders decided and learned from")
    args = parser.parse_args(argv)
    if args.decisions < 2:
        print("--decisions must be at least 2", file=sys.stderr)
        return 2
    _report(run(args.seed, args.decisions), args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
