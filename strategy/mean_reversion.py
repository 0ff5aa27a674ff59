"""Short-horizon mean reversion inside an up-trend.

Buy an oversold dip (RSI below ``oversold`` and the close under the lower Bollinger band) while the close is above
its ``trend_sma_period`` mean; EXIT when RSI recovers above ``exit_rsi`` or the close reaches the middle band.
Signals fire on the bar the condition changes. Indicators: TA-Lib RSI, BBANDS, SMA, ATR.
"""

from __future__ import annotations

import numpy as np
import talib

from core.config_models import MeanReversionParams
from strategy.base import EXIT, LONG, BarArrays, SignalArrays, Strategy, became_true, per_symbol


class MeanReversion(Strategy):
    def __init__(self, params: MeanReversionParams, strategy_id: str = "mean_reversion") -> None:
        super().__init__(strategy_id)
        self.params = params

    @property
    def warmup_bars(self) -> int:
        p = self.params
        return max(p.rsi_period, p.bb_period, p.trend_sma_period, p.atr_period) + 1

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        p = self.params
        close = bars.close
        rsi = per_symbol(lambda c: talib.RSI(c, timeperiod=p.rsi_period), close)
        lower = per_symbol(
            lambda c: talib.BBANDS(c, timeperiod=p.bb_period, nbdevup=p.bb_stdev, nbdevdn=p.bb_stdev)[2], close
        )
        middle = per_symbol(lambda c: talib.SMA(c, timeperiod=p.bb_period), close)
        trend = per_symbol(lambda c: talib.SMA(c, timeperiod=p.trend_sma_period), close)
        atr = per_symbol(lambda h, lo, c: talib.ATR(h, lo, c, timeperiod=p.atr_period), bars.high, bars.low, close)
        with np.errstate(invalid="ignore"):
            entry = (rsi < p.oversold) & (close < lower) & (close > trend)
            exit_ = (rsi > p.exit_rsi) | (close >= middle)
        codes = np.zeros(close.shape, dtype=np.int8)
        codes[became_true(entry)] = LONG
        codes[became_true(exit_)] = EXIT
        return SignalArrays(codes=codes, stop_distance=atr * p.atr_stop_multiple)
