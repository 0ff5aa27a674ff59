"""Strategy name -> class, so entry points can build a strategy from its config section."""

from __future__ import annotations

from core.config_models import StrategiesConfig
from strategy.base import Strategy
from strategy.mean_reversion import MeanReversion
from strategy.momentum import Momentum
from strategy.sma_crossover import SmaCrossover

STRATEGY_NAMES: tuple[str, ...] = ("momentum", "mean_reversion", "sma_crossover")


def build_strategy(name: str, strategies: StrategiesConfig) -> Strategy:
    if name == "momentum":
        return Momentum(strategies.momentum.params)
    if name == "mean_reversion":
        return MeanReversion(strategies.mean_reversion.params)
    if name == "sma_crossover":
        return SmaCrossover(strategies.sma_crossover.params)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGY_NAMES)}")
