"""Trainers and evaluators of the learning loop: off-policy evaluation of execution policies (the AlgoWheel)."""

from ml.off_policy import (
    Estimate,
    LoggedDecision,
    RidgeRewardModel,
    TargetPolicy,
    deterministic,
    doubly_robust,
    evaluate,
    ips,
    snips,
)

__all__ = [
    "Estimate",
    "LoggedDecision",
    "RidgeRewardModel",
    "TargetPolicy",
    "deterministic",
    "doubly_robust",
    "evaluate",
    "ips",
    "snips",
]
