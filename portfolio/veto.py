"""The signal veto: an entry signal whose model probability is below its strategy's threshold is not traded.

Shared by the backtester and the live engine (``PortfolioManager(veto=...)``): both ask the same ``SignalVeto``,
and only the scorer differs (``backtester.veto_scorer.HistoricalVetoScorer`` reads point-in-time features of a
backtest's own bars, the live one reads the online store). Pure: no feast, no scikit-learn, no file I/O; the
scorer hides the model and the features behind ``SignalScorer.probability``.

Rules a caller must know:
- Only entries are checked. The portfolio manager asks after its working-order and position rules, for signals
  that would open a position; exits, covers and flattens never reach the veto, so a veto can never keep a
  position open. An ``EXIT`` signal handed to ``check`` anyway passes unscored.
- A strategy without a threshold (its veto not enabled) is not checked: its signals pass, uncounted.
- A signal the scorer cannot score (``None``: features missing or stale; a NaN is treated the same way) is vetoed
  when its strategy's ``on_missing`` is ``"veto"`` (the default: no trade on features we cannot trust) and passes
  with ``"allow"``.
- ``counts`` are disjoint, so together they are every signal checked: ``vetoed`` (probability below threshold),
  ``vetoed_missing`` (no usable features), ``allowed_missing`` (no usable features, passed by ``allow``) and
  ``passed``. ``last`` keeps the most recent vetoes (``LAST_VETOES_KEPT``) for STATUS.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from core.config_models import StrategiesConfig
from core.events import SignalDirection, SignalEvent

LAST_VETOES_KEPT = 100
MISSING_REASON = "features missing or stale"
ON_MISSING_CHOICES = ("veto", "allow")


class SignalScorer(Protocol):
    """Probability (0-1) that the signal's trade works, or None when there are no usable (fresh) features."""

    def probability(self, signal: SignalEvent) -> float | None: ...


@dataclass(frozen=True, slots=True)
class VetoDecision:
    """One check's outcome. ``reason`` is "" when not vetoed, else what a person reads in the log and STATUS.

    ``strategy_id``, ``symbol`` and ``ts_event_ns`` say which signal it was (defaults keep the three-field form
    of the interface valid).
    """

    vetoed: bool
    probability: float | None
    reason: str
    strategy_id: str = ""
    symbol: str = ""
    ts_event_ns: int = 0


class SignalVeto:
    """The veto rule for every strategy that has one; the one place its counters live."""

    def __init__(self, thresholds: Mapping[str, float], scorer: SignalScorer, on_missing: Mapping[str, str]) -> None:
        """``thresholds``: strategy_id -> probability threshold in (0, 1); ``on_missing``: strategy_id ->
        ``"veto"`` or ``"allow"`` (a strategy missing here vetoes). Raises ValueError naming a bad value."""
        bad = {k: v for k, v in thresholds.items() if not (isinstance(v, int | float) and 0.0 < v < 1.0)}
        if bad:
            raise ValueError(f"veto thresholds must be in (0, 1) (got {bad})")
        bad_missing = {k: v for k, v in on_missing.items() if v not in ON_MISSING_CHOICES}
        if bad_missing:
            raise ValueError(f"veto on_missing must be one of {ON_MISSING_CHOICES} (got {bad_missing})")
        self._thresholds = {k: float(v) for k, v in thresholds.items()}
        self._on_missing = dict(on_missing)
        self._scorer = scorer
        self.counts: Counter[str] = Counter()
        self.last: list[VetoDecision] = []

    def threshold(self, strategy_id: str) -> float | None:
        """The strategy's threshold, None when its signals are not checked."""
        return self._thresholds.get(strategy_id)

    def check(self, signal: SignalEvent) -> VetoDecision:
        """Score one entry signal and decide; counts it and remembers it when vetoed."""
        threshold = self._thresholds.get(signal.strategy_id)
        if threshold is None or signal.direction is SignalDirection.EXIT:
            return self._decision(signal, False, None, "")
        raw = self._scorer.probability(signal)
        probability = None if raw is None or not math.isfinite(raw) else float(raw)
        if probability is None:
            if self._on_missing.get(signal.strategy_id, "veto") == "allow":
                self.counts["allowed_missing"] += 1
                return self._decision(signal, False, None, "")
            self.counts["vetoed_missing"] += 1
            return self._remember(self._decision(signal, True, None, MISSING_REASON))
        if probability < threshold:
            self.counts["vetoed"] += 1
            reason = f"p={probability:.2f} < threshold {threshold:.2f}"
            return self._remember(self._decision(signal, True, probability, reason))
        self.counts["passed"] += 1
        return self._decision(signal, False, probability, "")

    @staticmethod
    def _decision(signal: SignalEvent, vetoed: bool, probability: float | None, reason: str) -> VetoDecision:
        return VetoDecision(vetoed, probability, reason, signal.strategy_id, signal.symbol, signal.ts_event_ns)

    def _remember(self, decision: VetoDecision) -> VetoDecision:
        self.last.append(decision)
        if len(self.last) > LAST_VETOES_KEPT:
            del self.last[: len(self.last) - LAST_VETOES_KEPT]
        return decision


class ScorerByStrategy:
    """One ``SignalScorer`` over several strategies' models: each signal goes to its strategy's scorer.

    A strategy without a scorer gets None (no usable features), so its ``on_missing`` rule decides.
    """

    def __init__(self, scorers: Mapping[str, SignalScorer]) -> None:
        self._scorers = dict(scorers)

    def probability(self, signal: SignalEvent) -> float | None:
        scorer = self._scorers.get(signal.strategy_id)
        return None if scorer is None else scorer.probability(signal)


def veto_rules(strategies: StrategiesConfig) -> tuple[dict[str, float], dict[str, str]]:
    """(thresholds, on_missing) of every strategy whose ``veto.enabled`` is true: what ``SignalVeto`` takes."""
    thresholds: dict[str, float] = {}
    on_missing: dict[str, str] = {}
    for name in type(strategies).model_fields:
        veto = getattr(strategies, name).veto
        if veto.enabled:
            thresholds[name] = veto.threshold
            on_missing[name] = veto.on_missing_features
    return thresholds, on_missing
