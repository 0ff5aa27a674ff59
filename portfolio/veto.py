"""The signal veto: an entry signal whose model probability is below its strategy's threshold is not traded.

Stand-in for part 2's module (issue 14, contract section A), written only so part 3's live wiring runs; part 2's
version replaces it at merge. Pure: no feast, sklearn or file I/O; the probability comes from a ``SignalScorer``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.events import SignalEvent

LAST_DECISIONS = 100


class SignalScorer(Protocol):
    def probability(self, signal: SignalEvent) -> float | None: ...  # None: no usable (fresh) features


@dataclass(frozen=True, slots=True)
class VetoDecision:
    vetoed: bool
    probability: float | None
    reason: str  # "" when not vetoed


class SignalVeto:
    """Checks entry signals of the strategies in ``thresholds``; any other strategy's signal passes unscored."""

    def __init__(self, thresholds: Mapping[str, float], scorer: SignalScorer, on_missing: Mapping[str, str]) -> None:
        self.thresholds = dict(thresholds)
        self._scorer = scorer
        self._on_missing = dict(on_missing)
        self.counts: Counter[str] = Counter()
        self.last: list[VetoDecision] = []

    def check(self, signal: SignalEvent) -> VetoDecision:
        threshold = self.thresholds.get(signal.strategy_id)
        if threshold is None:
            return VetoDecision(False, None, "")
        p = self._scorer.probability(signal)
        if p is None and self._on_missing.get(signal.strategy_id, "veto") == "veto":
            decision, key = VetoDecision(True, None, "features missing or stale"), "vetoed_missing"
        elif p is not None and p < threshold:
            decision, key = VetoDecision(True, p, f"p={p:.2f} < threshold {threshold:.2f}"), "vetoed"
        else:
            decision, key = VetoDecision(False, p, ""), "passed"
        self.counts[key] += 1
        self.last.append(decision)
        del self.last[:-LAST_DECISIONS]
        return decision
