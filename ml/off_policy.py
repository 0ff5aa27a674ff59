"""Off-policy evaluation: what a target policy's mean reward would have been, from another policy's logs.

Used to judge a candidate AlgoWheel (or a fixed rule such as "always MOC") from the decisions the live wheel
logged, before letting it trade. Each logged decision holds the context features, the eligible arms, the arm
taken, the probability with which the logging policy took it (``WheelDecision.propensity``) and the reward
(minus the implementation shortfall, bps). Estimators:

- IPS: mean of ``w·r`` with ``w = π_target(a|x) / p_logged(a|x)``. Unbiased when the logged propensities are the
  true ones and every arm the target may take had a positive logging probability (the wheel's ε floor).
- SNIPS: ``Σ w·r / Σ w``. Slightly biased, much lower variance when the weights are uneven.
- DR (doubly robust): ``Σ_a π_target(a|x)·q̂(x, a) + w·(r − q̂(x, a))`` with ``q̂`` a per-arm ridge regression of
  the reward on the features, cross-fitted (each fold's ``q̂`` is fitted on the other folds, so no decision is
  scored by a model that saw its reward). Unbiased if either the propensities or ``q̂`` are right.

Confidence intervals are percentile bootstraps over decisions (seeded). For DR the fitted ``q̂`` is held fixed
in the resampling, a standard approximation that slightly understates the width. Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

_BOOT_CHUNK_CELLS = 4_000_000  # bootstrap index matrices are built in chunks of at most this many cells


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedDecision:
    """One decision of the logging policy and its outcome; ``reward`` is in the policy's units (−bps)."""

    features: tuple[float, ...]
    eligible: tuple[str, ...]
    action: str
    propensity: float
    reward: float

    @classmethod
    def from_record(cls, record: Mapping[str, Any], reward: float) -> LoggedDecision:
        """From ``WheelDecision.to_record()`` and its realized reward (``-shortfall_bps``)."""
        if record.get("arm") is None:
            raise ValueError(f"a decision without an arm cannot be evaluated (reason: {record.get('reason')!r})")
        return cls(
            features=tuple(float(v) for v in record["features"]),
            eligible=tuple(record["eligible"]),
            action=str(record["arm"]),
            propensity=float(record["propensity"]),
            reward=float(reward),
        )


class TargetPolicy(Protocol):
    """The policy being evaluated: its probability of every eligible arm (summing to 1) at these features."""

    def __call__(self, features: np.ndarray, eligible: tuple[str, ...]) -> Mapping[str, float]: ...


def deterministic(choose: Callable[[np.ndarray, tuple[str, ...]], str]) -> TargetPolicy:
    """A target policy that always takes ``choose(features, eligible)`` (which must be one of ``eligible``)."""

    def policy(features: np.ndarray, eligible: tuple[str, ...]) -> Mapping[str, float]:
        return {choose(features, eligible): 1.0}

    return policy


@dataclass(frozen=True, slots=True)
class Estimate:
    """A policy value with its bootstrap interval; ``effective_sample_size`` = (Σw)² / Σw² (small = unreliable)."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    effective_sample_size: float

    def covers(self, value: float) -> bool:
        return self.ci_low <= value <= self.ci_high


@dataclass(frozen=True, slots=True)
class _Arrays:
    """The logs as arrays over a fixed arm vocabulary: one row per decision."""

    arms: tuple[str, ...]
    features: np.ndarray  # (n, d)
    action: np.ndarray  # (n,) index into arms
    reward: np.ndarray  # (n,)
    target: np.ndarray  # (n, k) target probabilities, zero outside the eligible set
    weight: np.ndarray  # (n,) target(action) / propensity


def _arrays(logs: Sequence[LoggedDecision], target: TargetPolicy) -> _Arrays:
    """Validate the logs and evaluate the target once per decision; raises ValueError naming the bad row."""
    if not logs:
        raise ValueError("no logged decisions to evaluate")
    arms = tuple(dict.fromkeys(a for log in logs for a in (*log.eligible, log.action)))
    index = {a: i for i, a in enumerate(arms)}
    n, k = len(logs), len(arms)
    target_probs = np.zeros((n, k))
    for row, log in enumerate(logs):
        if log.action not in log.eligible:
            raise ValueError(f"decision {row}: action {log.action!r} is not among the eligible {log.eligible}")
        if not (0.0 < log.propensity <= 1.0) or not math.isfinite(log.reward):
            raise ValueError(
                f"decision {row}: propensity must be in (0, 1] and reward finite (got {log.propensity}, {log.reward})"
            )
        probs = target(np.asarray(log.features, dtype=float), log.eligible)
        outside = set(probs) - set(log.eligible)
        total = sum(probs.values())
        if outside or abs(total - 1.0) > 1e-6 or min(probs.values()) < 0.0:
            raise ValueError(
                f"decision {row}: the target policy must give probabilities summing to 1 over the "
                f"eligible arms {log.eligible} (got {dict(probs)})"
            )
        for arm, p in probs.items():
            target_probs[row, index[arm]] = p
    action = np.array([index[log.action] for log in logs])
    propensity = np.array([log.propensity for log in logs])
    return _Arrays(
        arms=arms,
        features=np.array([log.features for log in logs], dtype=float),
        action=action,
        reward=np.array([log.reward for log in logs], dtype=float),
        target=target_probs,
        weight=target_probs[np.arange(n), action] / propensity,
    )


def _bootstrap_means(
    values: np.ndarray, n_boot: int, rng: np.random.Generator, denominators: np.ndarray | None = None
) -> np.ndarray:
    """``n_boot`` resampled means of ``values`` (or ratios Σvalues/Σdenominators), in chunks to bound memory."""
    n = len(values)
    per_chunk = max(1, _BOOT_CHUNK_CELLS // n)
    out = np.empty(n_boot)
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        if denominators is None:
            out[start:stop] = values[idx].mean(axis=1)
        else:
            out[start:stop] = values[idx].sum(axis=1) / np.maximum(denominators[idx].sum(axis=1), 1e-300)
    return out


def _estimate(
    name: str,
    value: float,
    boot: np.ndarray,
    confidence: float,
    weight: np.ndarray,
) -> Estimate:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    ess = float(weight.sum() ** 2 / max(float((weight**2).sum()), 1e-300))
    return Estimate(name, float(value), float(low), float(high), confidence, len(weight), ess)


def _check(n_boot: int, confidence: float) -> None:
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a percentile interval (got {n_boot})")
    if not 0.5 <= confidence < 1.0:
        raise ValueError(f"confidence must be in [0.5, 1) (got {confidence})")


def ips(
    logs: Sequence[LoggedDecision],
    target: TargetPolicy,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Inverse-propensity estimate of the target's mean reward."""
    _check(n_boot, confidence)
    data = _arrays(logs, target)
    terms = data.weight * data.reward
    boot = _bootstrap_means(terms, n_boot, np.random.default_rng(seed))
    return _estimate("ips", float(terms.mean()), boot, confidence, data.weight)


def snips(
    logs: Sequence[LoggedDecision],
    target: TargetPolicy,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Self-normalized IPS: the weights are rescaled to average 1, trading a small bias for less variance."""
    _check(n_boot, confidence)
    data = _arrays(logs, target)
    if data.weight.sum() <= 0.0:
        raise ValueError("the target never takes a logged action: SNIPS is undefined (use DR)")
    terms = data.weight * data.reward
    boot = _bootstrap_means(terms, n_boot, np.random.default_rng(seed), denominators=data.weight)
    return _estimate("snips", float(terms.sum() / data.weight.sum()), boot, confidence, data.weight)


class RidgeRewardModel:
    """One ridge regression of the reward on the features (plus an intercept) per arm: the DR model ``q̂``."""

    def __init__(self, n_arms: int, ridge: float = 1.0) -> None:
        if ridge <= 0:
            raise ValueError(f"ridge must be > 0 (got {ridge})")
        self.n_arms = n_arms
        self.ridge = ridge
        self.coef: np.ndarray | None = None

    def fit(self, features: np.ndarray, action: np.ndarray, reward: np.ndarray) -> RidgeRewardModel:
        design = np.column_stack([np.ones(len(features)), features])
        dim = design.shape[1]
        coef = np.zeros((self.n_arms, dim))
        for arm in range(self.n_arms):
            rows = action == arm
            x, y = design[rows], reward[rows]
            coef[arm] = np.linalg.solve(x.T @ x + self.ridge * np.eye(dim), x.T @ y)
        self.coef = coef
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n, n_arms) predicted rewards; an arm never taken in training predicts 0 (its ridge shrinks to 0)."""
        if self.coef is None:
            raise ValueError("fit the reward model before predicting")
        return np.column_stack([np.ones(len(features)), features]) @ self.coef.T


def doubly_robust(
    logs: Sequence[LoggedDecision],
    target: TargetPolicy,
    *,
    n_folds: int = 2,
    ridge: float = 1.0,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Doubly robust estimate with a cross-fitted ridge reward model per arm."""
    _check(n_boot, confidence)
    data = _arrays(logs, target)
    n = len(data.reward)
    if not 2 <= n_folds <= n:
        raise ValueError(f"n_folds must be between 2 and the number of decisions {n} (got {n_folds})")
    rng = np.random.default_rng(seed)
    fold = rng.permutation(n) % n_folds
    predicted = np.empty((n, len(data.arms)))
    for f in range(n_folds):
        train, test = fold != f, fold == f
        model = RidgeRewardModel(len(data.arms), ridge).fit(
            data.features[train], data.action[train], data.reward[train]
        )
        predicted[test] = model.predict(data.features[test])
    direct = (data.target * predicted).sum(axis=1)
    residual = data.reward - predicted[np.arange(n), data.action]
    terms = direct + data.weight * residual
    boot = _bootstrap_means(terms, n_boot, rng)
    return _estimate("dr", float(terms.mean()), boot, confidence, data.weight)


def evaluate(
    logs: Sequence[LoggedDecision],
    target: TargetPolicy,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Estimate]:
    """All three estimates with the same bootstrap settings (a report shows them side by side)."""
    kwargs: dict[str, Any] = {"n_boot": n_boot, "confidence": confidence, "seed": seed}
    return {
        "ips": ips(logs, target, **kwargs),
        "snips": snips(logs, target, **kwargs),
        "dr": doubly_robust(logs, target, **kwargs),
    }
