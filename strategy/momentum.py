"""Time-series momentum with a trend filter.

Enter LONG when the rate of change over ``roc_period`` bars rises above ``entry_roc_pct`` while the close is above
its ``trend_sma_period`` mean; EXIT when momentum fades below ``exit_roc_pct`` or the close falls under the trend
mean. Signals fire on the bar the condition *changes*, so a held position is not re-signalled every bar.
Indicators: TA-Lib ROC, SMA, ATR (stop distance = ATR x ``atr_stop_multiple``).
"""

from __future__ import annotations

import numpy as np
import talib

from core.config_models import MomentumParams
from strategy.base import EXIT, LONG, BarArrays, SignalArrays, Strategy, became_true, per_symbol


class Momentum(Strategy):
    def __init__(self, params: MomentumParams, strategy_id: str = "momentum") -> None:
        super().__init__(strategy_id)
        self.params = params

    @property
    def warmup_bars(self) -> int:
        return max(self.params.roc_period, self.params.trend_sma_period, self.params.atr_period) + 1

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        p = self.params
        close = bars.close
        roc = per_symbol(lambda c: talib.ROC(c, timeperiod=p.roc_period), close)
        trend = per_symbol(lambda c: talib.SMA(c, timeperiod=p.trend_sma_period), close)
        atr = per_symbol(lambda h, lo, c: talib.ATR(h, lo, c, timeperiod=p.atr_period), bars.high, bars.low, close)
        with np.errstate(invalid="ignore"):
            entry = (roc > p.entry_roc_pct) & (close > trend)
            exit_ = (roc < p.exit_roc_pct) | (close < trend)
        codes = np.zeros(close.shape, dtype=np.int8)
        codes[became_true(entry)] = LONG
        codes[became_true(exit_)] = EXIT
        return SignalArrays(codes=codes, stop_distance=atr * p.atr_stop_multiple)
