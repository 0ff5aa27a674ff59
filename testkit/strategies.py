"""A scripted strategy for tests: emits exactly the signals it is told, at the bars it is told."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from strategy.base import BarArrays, SignalArrays, Strategy


class ScriptedStrategy(Strategy):
    """``script`` maps (bar index, symbol) to a signal code (1 LONG, -1 SHORT, 2 EXIT)."""

    def __init__(self, script: Mapping[tuple[int, str], int], stop_distance: float = 1.0,
                 strategy_id: str = "momentum") -> None:
        super().__init__(strategy_id)
        self._script = dict(script)
        self._stop = stop_distance

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        codes = np.zeros(bars.close.shape, dtype=np.int8)
        index = {s: j for j, s in enumerate(bars.symbols)}
        for (t, symbol), code in self._script.items():
            if t < codes.shape[0]:
                codes[t, index[symbol]] = code
        return SignalArrays(codes, np.full(bars.close.shape, self._stop))
