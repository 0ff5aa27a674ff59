"""Plain SMA crossover: the reference strategy used to validate the engine against other backtesters.

LONG when the fast mean crosses strictly above the slow mean (fast[t] > slow[t] and fast[t-1] <= slow[t-1]);
EXIT on the strict cross below. Means are rolling arithmetic means over valid bars (TA-Lib ``SMA``).
"""

from __future__ import annotations

import numpy as np
import talib

from core.config_models import SmaCrossoverParams
from strategy.base import EXIT, LONG, BarArrays, SignalArrays, Strategy, crossed_above, crossed_below, per_symbol


class SmaCrossover(Strategy):
    def __init__(self, params: SmaCrossoverParams, strategy_id: str = "sma_crossover") -> None:
        super().__init__(strategy_id)
        self.params = params

    @property
    def warmup_bars(self) -> int:
        return max(self.params.slow_period, self.params.atr_period) + 1

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        p = self.params
        fast = per_symbol(lambda c: talib.SMA(c, timeperiod=p.fast_period), bars.close)
        slow = per_symbol(lambda c: talib.SMA(c, timeperiod=p.slow_period), bars.close)
        atr = per_symbol(lambda h, lo, c: talib.ATR(h, lo, c, timeperiod=p.atr_period), bars.high, bars.low, bars.close)
        codes = np.zeros(bars.close.shape, dtype=np.int8)
        codes[crossed_above(fast, slow)] = LONG
        codes[crossed_below(fast, slow)] = EXIT
        return SignalArrays(codes=codes, stop_distance=atr * p.atr_stop_multiple)
