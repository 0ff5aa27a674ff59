"""``StaticBook``: a ``BookView`` over plain dicts, for tests of the pre-trade checks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StaticBook:
    """Positions, last prices and average daily volumes fixed at construction; anything missing is unknown."""

    positions: Mapping[str, int] = field(default_factory=dict)
    last_prices: Mapping[str, float] = field(default_factory=dict)
    adv: Mapping[str, float] = field(default_factory=dict)

    def position(self, symbol: str) -> int:
        return self.positions.get(symbol, 0)

    def last_price(self, symbol: str) -> float:
        return self.last_prices.get(symbol, math.nan)

    def average_daily_volume(self, symbol: str) -> float:
        return self.adv.get(symbol, math.nan)
