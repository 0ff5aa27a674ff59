"""Off-policy estimates from logged decisions recover a target policy's on-policy mean cost (seeded simulation).

The market is the AlgoWheel benchmark's synthetic one (planted costs per arm and context, noise), so a policy's
true mean cost is known: it is measured on-policy on fresh orders and compared with the estimates' intervals.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ml.off_policy import LoggedDecision, deterministic, doubly_robust, evaluate, ips, snips
from portfolio.algo_wheel import ALL_ARMS, AlgoWheel, AlgoWheelConfig, context_features, eligible_arms

CONFIG = AlgoWheelConfig()
NOISE_SD_BPS = 5.0


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "bench" / "algo_wheel_regret.py"
    spec = importlib.util.spec_from_file_location("algo_wheel_regret", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def rule(features: np.ndarray, eligible: tuple[str, ...]) -> str:
    """A fixed policy: TWAP for big orders when it can, else MOC when it can, else Adaptive Urgent."""
    if "TWAP" in eligible and features[1] > 1.5:
        return "TWAP"
    return "MOC" if "MOC" in eligible else "ADAPTIVE_URGENT"


FIXED = deterministic(rule)


def half_and_half(features: np.ndarray, eligible: tuple[str, ...]) -> Mapping[str, float]:
    """A stochastic policy: Adaptive Urgent or Normal with equal odds where they are allowed, else LOC/MOC."""
    if "ADAPTIVE_URGENT" in eligible:
        return {"ADAPTIVE_URGENT": 0.5, "ADAPTIVE_NORMAL": 0.5}
    return {"LOC": 0.5, "MOC": 0.5} if "LOC" in eligible else {"MOC": 1.0}


def uniform_logs(bench: ModuleType, seed: int, n: int) -> list[LoggedDecision]:
    """Decisions taken uniformly at random among the eligible arms, with their noisy rewards (−bps)."""
    rng = np.random.default_rng(seed)
    logs = []
    while len(logs) < n:
        order = bench.make_order(rng)
        eligible, _ = eligible_arms(order.context, order.session, CONFIG)
        x = context_features(order.context, order.session)
        arm = eligible[int(rng.integers(len(eligible)))]
        cost = order.expected_cost_bps[ALL_ARMS.index(arm)] + rng.normal(0.0, NOISE_SD_BPS)
        logs.append(
            LoggedDecision(
                features=tuple(x),
                eligible=tuple(a.value for a in eligible),
                action=arm.value,
                propensity=1.0 / len(eligible),
                reward=-float(cost),
            )
        )
    return logs


def on_policy_mean_reward(
    bench: ModuleType, policy: Callable[[np.ndarray, tuple[str, ...]], Mapping[str, float]], seed: int, n: int
) -> float:
    """The policy run for real on fresh orders: its mean expected reward (the truth the estimates aim at)."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(n):
        order = bench.make_order(rng)
        eligible, _ = eligible_arms(order.context, order.session, CONFIG)
        probs = policy(context_features(order.context, order.session), tuple(a.value for a in eligible))
        total -= sum(
            p * order.expected_cost_bps[ALL_ARMS.index(next(a for a in ALL_ARMS if a.value == arm))]
            for arm, p in probs.items()
        )
    return total / n


@pytest.fixture(scope="module")
def fixed_truth(bench: ModuleType) -> float:
    return on_policy_mean_reward(bench, FIXED, seed=999, n=30_000)


def test_every_estimate_of_a_fixed_policy_covers_its_on_policy_mean(bench: ModuleType, fixed_truth: float) -> None:
    logs = uniform_logs(bench, seed=1, n=3000)
    estimates = evaluate(logs, FIXED, n_boot=1000, confidence=0.95, seed=5)
    for name, estimate in estimates.items():
        assert estimate.covers(fixed_truth), (name, estimate, fixed_truth)
    # informative, not vacuous: plain IPS pays for the rewards' level (about -30 bps) in variance, SNIPS and DR not
    assert estimates["snips"].ci_high - estimates["snips"].ci_low < 2.5
    assert estimates["dr"].ci_high - estimates["dr"].ci_low < 2.0
    logged_mean = float(np.mean([log.reward for log in logs]))
    assert not estimates["dr"].covers(logged_mean)  # it estimates the target, not the logging policy


def test_intervals_cover_the_truth_at_about_their_stated_rate(bench: ModuleType, fixed_truth: float) -> None:
    covered = {"ips": 0, "snips": 0, "dr": 0}
    seeds = range(100, 130)
    for seed in seeds:
        logs = uniform_logs(bench, seed=seed, n=800)
        for name, estimate in evaluate(logs, FIXED, n_boot=400, confidence=0.9, seed=seed).items():
            covered[name] += estimate.covers(fixed_truth)
    for name, hits in covered.items():
        assert hits / len(seeds) >= 0.75, (name, hits)  # 90 % nominal; 30 seeds leave room for chance


def test_a_stochastic_target_policy(bench: ModuleType) -> None:
    truth = on_policy_mean_reward(bench, half_and_half, seed=998, n=20_000)
    estimate = doubly_robust(uniform_logs(bench, seed=2, n=3000), half_and_half, seed=3)
    assert estimate.covers(truth), (estimate, truth)


def test_doubly_robust_is_tighter_than_ips_with_a_good_reward_model(bench: ModuleType) -> None:
    logs = uniform_logs(bench, seed=3, n=2000)
    plain, robust = ips(logs, FIXED, seed=1), doubly_robust(logs, FIXED, seed=1)
    assert robust.ci_high - robust.ci_low < 0.5 * (plain.ci_high - plain.ci_low)


def test_the_wheels_own_logs_give_unbiased_estimates(bench: ModuleType, fixed_truth: float) -> None:
    """Logged by the learning wheel (uneven propensities, ε floor): the estimates still find the fixed policy."""
    rng = np.random.default_rng(4)
    wheel = AlgoWheel(bench.bench_config(), rng_seed=4)
    logs = []
    for _ in range(3000):
        order = bench.make_order(rng)
        decision = wheel.decide(order.context, order.now_ns, order.session)
        shortfall = float(order.expected_cost_bps[ALL_ARMS.index(decision.arm)] + rng.normal(0.0, NOISE_SD_BPS))
        wheel.update(decision, shortfall)
        logs.append(LoggedDecision.from_record(decision.to_record(), reward=-shortfall))
    for estimate in (snips(logs, FIXED, seed=2), doubly_robust(logs, FIXED, seed=2)):
        assert estimate.covers(fixed_truth), (estimate, fixed_truth)


def test_same_seed_same_interval(bench: ModuleType) -> None:
    logs = uniform_logs(bench, seed=6, n=500)
    assert ips(logs, FIXED, seed=7) == ips(logs, FIXED, seed=7)
    assert ips(logs, FIXED, seed=7).ci_low != ips(logs, FIXED, seed=8).ci_low


def test_malformed_logs_and_policies_are_refused() -> None:
    log = LoggedDecision(features=(1.0, 0.5), eligible=("MOC", "LOC"), action="MOC", propensity=0.5, reward=-3.0)
    with pytest.raises(ValueError, match="not among the eligible"):
        ips([LoggedDecision(features=(1.0,), eligible=("MOC",), action="LOC", propensity=1.0, reward=0.0)], FIXED)
    with pytest.raises(ValueError, match=r"propensity must be in \(0, 1\]"):
        ips([LoggedDecision(features=(1.0,), eligible=("MOC",), action="MOC", propensity=0.0, reward=0.0)], FIXED)
    with pytest.raises(ValueError, match="summing to 1 over the eligible arms"):
        ips([log], lambda x, eligible: {"MOC": 0.4, "LOC": 0.4})
    with pytest.raises(ValueError, match="summing to 1 over the eligible arms"):
        ips([log], lambda x, eligible: {"TWAP": 1.0})
    with pytest.raises(ValueError, match="no logged decisions"):
        ips([], FIXED)
    with pytest.raises(ValueError, match="without an arm"):
        LoggedDecision.from_record({"arm": None, "reason": "no eligible arm"}, reward=0.0)
