"""The live side of the strategies: their daily-bar window, and the parameters they trade with.

``LiveStrategy`` runs the very ``Strategy`` class the backtester runs; ``strategies_with_approved_params`` applies
what ``run_recalibration.py`` promoted (``state/approved_params/<name>.yaml``) over the config, and says which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from core.config_models import AppConfig, StrategiesConfig
from core.errors import StateCorruptError, StrategyError
from core.events import MarketEvent, SignalEvent
from strategy.base import BarArrays, Strategy
from strategy.registry import STRATEGY_NAMES, build_strategy

log = logging.getLogger(__name__)


class LiveStrategy:
    """Runs a vectorized ``Strategy`` on a growing window of daily bars (dispatcher thread).

    The strategy computes over the whole window at each session close (its indicators are causal, so the last row
    is what a backtest over the same history computes) and ``on_market`` reads that row. ``warm`` adds a past bar
    without a decision. The window keeps ``history_rows`` bars (``max(4 x warmup, 256)``) so each decision costs
    the same however long the engine runs; the engine asks the broker for that much history at start-up.
    """

    def __init__(self, strategy: Strategy, symbols: tuple[str, ...]) -> None:
        self.strategy = strategy
        self._symbols = symbols
        self.history_rows = max(4 * strategy.warmup_bars, 256)
        self._rows: list[np.ndarray] = []  # each (5, N): open, high, low, close, volume
        self.enabled = True  # the engine's error policy switches a strategy that raised off (StrategyError)

    def warm(self, event: MarketEvent) -> None:
        self._append(event)

    def on_market(self, event: MarketEvent) -> None:
        """Decide on the session just closed; whatever the strategy's own code raises is a ``StrategyError``."""
        self._append(event)
        stack = np.stack(self._rows)  # (T, 5, N)
        bars = BarArrays(self._symbols, *(np.ascontiguousarray(stack[:, k, :]) for k in range(5)))
        try:
            self.strategy.prepare(bars)
            self.strategy.on_market(replace(event, bar_index=len(self._rows) - 1))
        except Exception as exc:
            raise StrategyError(self.strategy.strategy_id, f"{type(exc).__name__}: {exc}") from exc

    def _append(self, event: MarketEvent) -> None:
        self._rows.append(np.vstack([event.open, event.high, event.low, event.close, event.volume]))
        if len(self._rows) > self.history_rows:
            del self._rows[0]


def strategies_with_approved_params(config: AppConfig, state_dir: Path) -> tuple[StrategiesConfig, dict[str, str]]:
    """The strategies config with ``<state_dir>/approved_params/<name>.yaml`` applied; also name -> source logged.

    The reader lives in ``backtester.promotion`` (research code, imported here only when the folder exists, so
    the engine does not load duckdb & co. for nothing). An unreadable file raises ``StateCorruptError``.
    """
    folder = state_dir / "approved_params"
    strategies = config.strategies
    sources: dict[str, str] = {}
    for name in STRATEGY_NAMES:
        section = getattr(strategies, name)
        if not section.enabled:
            continue
        path = folder / f"{name}.yaml"
        record = None
        if path.exists():
            from backtester.promotion import read_approved_params  # research code: only when a file exists

            record = read_approved_params(path)
        if record is None:
            sources[name] = "config"
            continue
        params_model = type(section.params)
        try:
            params = params_model.model_validate({**section.params.model_dump(), **record["params"]})
        except ValueError as exc:
            raise StateCorruptError(f"{path}: approved params invalid for {name}: {exc}") from exc
        strategies = strategies.model_copy(update={name: section.model_copy(update={"params": params})})
        sources[name] = str(path)
    return strategies, sources


def load_live_strategies(
    config: AppConfig, state_dir: Path, symbols: tuple[str, ...], now_ns: Callable[[], int]
) -> tuple[StrategiesConfig, list[LiveStrategy], list[SignalEvent]]:
    """The enabled strategies (approved parameters over the config; the source is logged), each bound to one
    signal list that the session step reads and clears after every session close."""
    strategies_cfg, sources = strategies_with_approved_params(config, state_dir)
    signals: list[SignalEvent] = []
    strategies: list[LiveStrategy] = []
    for name, source in sources.items():
        strategy = build_strategy(name, strategies_cfg)
        strategy.bind(signals.append, now_ns)
        strategies.append(LiveStrategy(strategy, symbols))
        log.info("event=strategy_loaded name=%s params_source=%s params=%s", name, source,
                 getattr(strategies_cfg, name).params.model_dump())  # fmt: skip
    return strategies_cfg, strategies, signals
