"""The live engine's veto scorer: a signal's probability from the promoted model and the online store's features.

``OnlineVetoScorer`` implements ``portfolio.veto.SignalScorer`` for one strategy. It reads features only through
``ml.feature_store.OnlineFeatures`` (the adapter that checks each value's event timestamp): a symbol whose features
are older than ``last_close_ns()`` (the close being decided on), absent, or have a NaN the model needs gets
``None``, which the veto treats as "no usable features" (by default: no trade; logged ``event=feature_stale`` by
the reader). A read or model error is logged and also gives ``None``: the decision path never raises for it.

The first signal of a close fetches and scores the whole ``universe`` at once (one online read, one
``predict_proba``); the other signals of that close are dictionary lookups. The cache is keyed by
``last_close_ns()``, so the next close reads again. ``bench/feature_veto_latency.py`` times this path.

``MultiStrategyScorer`` routes each signal to its strategy's scorer (one ``SignalVeto`` serves every strategy).
Dispatcher thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from core.events import SignalEvent
from data.bar_features import BAR_FEATURE_NAMES
from ml.feature_store import BAR_VIEW, TCA_FEATURE_NAMES, TCA_VIEW
from ml.veto_model_store import probabilities

log = logging.getLogger(__name__)


SERVED_FEATURES: tuple[str, ...] = (*BAR_FEATURE_NAMES, *TCA_FEATURE_NAMES)  # the ``daily_signals`` service


def online_refs(names: Iterable[str]) -> list[str]:
    """The ``view:feature`` refs a scorer reads: every bar feature (their event timestamps are what the freshness
    check compares, so they are always read) and the execution-cost features the models need. Reading one view
    instead of the whole service saves a query per decision (``bench/feature_veto_latency.py``). ValueError names
    a feature no view serves."""
    wanted = set(names)
    unknown = sorted(wanted - set(SERVED_FEATURES))
    if unknown:
        raise ValueError(f"features {unknown} are not served by the feature store (it serves {list(SERVED_FEATURES)})")
    return [f"{BAR_VIEW}:{n}" for n in BAR_FEATURE_NAMES] + [f"{TCA_VIEW}:{n}" for n in TCA_FEATURE_NAMES
                                                             if n in wanted]  # fmt: skip


def limit_model_threads() -> None:
    """One thread for the native pools models run on (OpenMP, BLAS), for the rest of the process.

    The veto scores ~8 rows per close on the dispatcher thread; a pool's threads only add wake-up latency, and on
    a busy machine much more: measured on 2 loaded cores, a HistGradientBoosting model's ``predict_proba`` had
    p99 ~1.2 s with OpenMP's default threads and ~5 ms with one (``bench/feature_veto_latency.py --model hgb``).
    The engine's other numeric work (indicators, sizing) is vectorized on small arrays and does not use the pools.
    ``threadpoolctl`` comes with scikit-learn.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


class OnlineReader(Protocol):
    """``ml.feature_store.OnlineFeatures``."""

    @property
    def feature_names(self) -> tuple[str, ...]: ...

    def get(self, symbols: Sequence[str], last_completed_close_ns: int) -> dict[str, dict[str, float] | None]: ...


class OnlineVetoScorer:
    """P(the signal's trade works) from the promoted ``estimator`` and its ``card`` (layout B of issue 14)."""

    def __init__(
        self,
        estimator: Any,
        card: Mapping[str, Any],
        online: OnlineReader,
        last_close_ns: Callable[[], int],
        *,
        universe: Sequence[str] = (),
    ) -> None:
        names = list(card.get("features") or [])
        unknown = sorted(set(names) - set(online.feature_names))
        model = f"veto model {card.get('model_id')!r} of {card.get('strategy')!r}"
        if not names:
            raise ValueError(f"{model}: its card lists no features")
        if unknown:
            raise ValueError(f"{model} needs features {unknown} that the online store does not serve (it serves "
                             f"{list(online.feature_names)})")  # fmt: skip
        self._estimator = estimator
        self._card = card
        self._online = online
        self._last_close_ns = last_close_ns
        self._universe = tuple(universe)
        self._scored_close_ns: int | None = None
        self._cache: dict[str, float | None] = {}

    @property
    def model_id(self) -> str:
        return str(self._card.get("model_id"))

    def probability(self, signal: SignalEvent) -> float | None:
        close_ns = self._last_close_ns()
        if close_ns != self._scored_close_ns:
            self._scored_close_ns, self._cache = close_ns, {}
        if signal.symbol not in self._cache:
            symbols = self._universe if signal.symbol in self._universe else (signal.symbol,)
            self._cache.update(self.score(symbols, close_ns))
        return self._cache.get(signal.symbol)

    def score(self, symbols: Sequence[str], close_ns: int) -> dict[str, float | None]:
        """symbol -> probability (None: stale, missing or NaN features, or a read/model error) for one close."""
        try:
            rows = self._online.get(list(symbols), close_ns)
        except Exception as exc:
            log.error("event=feature_read_failed model_id=%s symbols=%d error=%r action=no_trade", self.model_id,
                      len(symbols), f"{type(exc).__name__}: {exc}")  # fmt: skip
            return dict.fromkeys(symbols)
        fresh = {symbol: values for symbol, values in rows.items() if values is not None}
        try:
            scored = probabilities(self._estimator, self._card, fresh) if fresh else {}
        except Exception as exc:
            log.error("event=veto_model_failed model_id=%s symbols=%d error=%r action=no_trade", self.model_id,
                      len(fresh), f"{type(exc).__name__}: {exc}")  # fmt: skip
            return dict.fromkeys(symbols)
        return {symbol: scored.get(symbol) for symbol in symbols}


class MultiStrategyScorer:
    """Each signal to its strategy's scorer; a strategy without one gets None."""

    def __init__(self, scorers: Mapping[str, OnlineVetoScorer]) -> None:
        self.scorers = dict(scorers)

    def probability(self, signal: SignalEvent) -> float | None:
        scorer = self.scorers.get(signal.strategy_id)
        return None if scorer is None else scorer.probability(signal)
