"""The backtrader side of our peer-parity test and throughput benchmark: one strategy, one commission, one runner.

``run_backtrader(frames, cash)`` runs a strict-cross SMA strategy in backtrader on the very bar frames our engine
gets (``load_csv(path).clean`` or synthetic frames with columns ``open, high, low, close, volume``), fed through
``bt.feeds.PandasData``. Both sides therefore see identical float64 values. For the shared Yahoo files this is
equivalent to ``bt.feeds.YahooFinanceCSVData(dataname=path, adjclose=False, round=False)``: without ``adjclose``
that feed keeps the file's Open/High/Low/Close, ``float()``-parsed, and ``round(volume, 0)`` is the integer
volume unchanged; the parity test checks this claim on one file, array by array.

Rules, and what had to be aligned with our engine (configured as in the parity test):

- Signals: ``fast`` and ``slow`` are backtrader's ``SMA`` (``math.fsum`` of the window divided by the period).
  LONG when ``fast[0] > slow[0] and fast[-1] <= slow[-1]``, EXIT on the mirror cross ``fast[0] < slow[0] and
  fast[-1] >= slow[-1]``. A NaN (warm-up) compares False on both sides, so the first bar with a slow mean
  never signals. Our ``strategy/sma_crossover.py`` computes the same correctly rounded means, so the two
  sides compare bit-identical numbers and exact ties are decided identically (see its docstring).
- Orders: long only. LONG when flat buys ``size`` shares; LONG while long is ignored; EXIT sells the whole
  position; EXIT while flat is ignored; a signal for a data with an order still working is ignored (our
  portfolio manager's one-working-order-per-symbol rule; with next-open fills it never binds before the
  last bar).
- Fills: market orders fill at the next bar's open (backtrader's default; ``coc=False``, no slippage, no
  volume filler). An order placed on the last bar never fills, as in our engine. The recorded ``price`` is
  the price of the execution bit, which is the open itself and what backtrader's cash and position use;
  ``order.executed.price`` is recomputed as ``(0 * 0 + size * price) / size`` and can be an ulp off the open
  (42.959999 becomes 42.95999900000001), so it is kept apart as ``reported_price``.
- Cash never blocks: ``checksubmit=False`` and the caller passes enough cash; our engine is run with sizing
  ``fixed_shares`` and risk limits that never bind.
- Commission: ``IbFixedCommInfo`` computes IB Fixed exactly like ``execution.commissions.IbFixedCommission``,
  ``min(max(0.005 * q, 1.00), 0.01 * q * price)``, in the same operation order, so commissions are
  bit-identical.
- Final value: ``broker.getvalue()`` (cash plus positions at the last close). backtrader books cash as
  ``cost + pnl - commission`` where our ledger books ``quantity * price - commission`` with a compensated sum,
  so final equities agree to rounding (the test allows 1e-9 relative), not bit for bit.

Tie diagnostics: with ``record_ties=True`` the strategy records every bar where ``fast == slow`` or
``|fast - slow| <= 1e-12 * close``, the raw signal on that bar and on the next one (a tie can only matter on
the next bar, where it counts as "<=" and ">=" at once) and the order each bar produced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import pandas as pd

from core.config_models import AppConfig

log = logging.getLogger(__name__)

TIE_RELATIVE_TOLERANCE = 1e-12
FILL_COLUMNS = ["date", "symbol", "side", "quantity", "price", "commission", "reported_price"]
TIE_COLUMNS = ["date", "symbol", "fast", "slow", "exact", "signal", "action", "next_date", "next_signal", "next_action"]
NONE = "none"


class IbFixedCommInfo(bt.CommInfoBase):
    """IB Fixed for US stocks: ``min(max(per_share * q, min_per_order), max_pct_of_value / 100 * q * price)``."""

    params = (
        ("stocklike", True),
        ("commtype", bt.CommInfoBase.COMM_FIXED),
        ("per_share", 0.005),
        ("min_per_order", 1.0),
        ("max_pct_of_value", 1.0),
    )

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        quantity = abs(size)
        per_share = max(self.p.per_share * quantity, self.p.min_per_order)
        return min(per_share, self.p.max_pct_of_value / 100.0 * quantity * price)


class StrictCrossSma(bt.Strategy):
    """Long-only strict-cross SMA on every data; records executed orders and (optionally) tie bars."""

    params = (("fast", 10), ("slow", 30), ("size", 100), ("record_ties", False))

    def __init__(self) -> None:
        self._legs = [
            (data, bt.indicators.SMA(data.close, period=self.p.fast), bt.indicators.SMA(data.close, period=self.p.slow))
            for data in self.datas
        ]
        self._working: dict[str, bt.Order] = {}
        self.fills: list[dict[str, Any]] = []
        self.ties: list[dict[str, Any]] = []
        self._open_ties: dict[str, dict[str, Any]] = {}

    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        name = order.data._name
        self._working.pop(name, None)
        if order.status != order.Completed:
            log.warning("event=bt_order_not_filled symbol=%s status=%s", name, order.getstatusname())
            return
        executed = order.executed
        bits = executed.exbits
        self.fills.append(
            {
                "date": pd.Timestamp(bt.num2date(executed.dt).date()),
                "symbol": name,
                "side": "BUY" if order.isbuy() else "SELL",
                "quantity": abs(executed.size),
                "price": bits[0].price if len(bits) == 1 else executed.price,
                "commission": executed.comm,
                "reported_price": executed.price,
            }
        )

    def next(self) -> None:
        size = self.p.size
        for data, fast, slow in self._legs:
            f0, s0 = fast[0], slow[0]
            f1, s1 = fast[-1], slow[-1]
            if f0 > s0 and f1 <= s1:
                signal = "LONG"
            elif f0 < s0 and f1 >= s1:
                signal = "EXIT"
            else:
                signal = NONE
            action = NONE
            name = data._name
            if signal != NONE and name not in self._working:
                position = self.getposition(data).size
                if signal == "LONG" and position == 0:
                    self._working[name] = self.buy(data=data, size=size)
                    action = "BUY"
                elif signal == "EXIT" and position > 0:
                    self._working[name] = self.close(data=data)
                    action = "SELL"
            if self.p.record_ties:
                self._record_tie(data, f0, s0, signal, action)

    def _record_tie(self, data: bt.DataBase, fast: float, slow: float, signal: str, action: str) -> None:
        name = data._name
        date = pd.Timestamp(data.datetime.date(0))
        pending = self._open_ties.pop(name, None)
        if pending is not None:
            pending.update(next_date=date, next_signal=signal, next_action=action)
        if fast == slow or abs(fast - slow) <= TIE_RELATIVE_TOLERANCE * data.close[0]:
            record = {
                "date": date,
                "symbol": name,
                "fast": fast,
                "slow": slow,
                "exact": fast == slow,
                "signal": signal,
                "action": action,
                "next_date": pd.NaT,
                "next_signal": NONE,
                "next_action": NONE,
            }
            self.ties.append(record)
            self._open_ties[name] = record


@dataclass(frozen=True, slots=True)
class BacktraderRun:
    """What one backtrader run produced; ``wall_seconds`` times ``cerebro.run()`` only (feeds built before)."""

    fills: pd.DataFrame  # FILL_COLUMNS, in execution order
    final_value: float
    wall_seconds: float
    bars: int
    ties: pd.DataFrame  # TIE_COLUMNS; empty unless record_ties=True


def parity_config(initial_capital: float = 100_000.0, account_type: str = "cash") -> AppConfig:
    """Our engine configured like this reference: 100 shares, next-open MKT fills, IB Fixed, zero slippage.

    Every risk limit and pre-trade control that could refuse an order is set so it never binds: beyond the
    brief's risk limits, the per-order notional cap (synthetic prices drift past $2,500, and the cap refuses
    even a reduce-only exit) and the order-rate throttle (with hundreds of symbols many orders share one
    close timestamp). Pass enough capital that
    cash never binds (100,000 per symbol is plenty for 100-share lots) and ``account_type="margin"`` when
    settlement must not bind either.
    """
    return AppConfig.model_validate(
        {
            "portfolio": {
                "initial_capital": initial_capital,
                "account_type": account_type,
                "sizing": {"method": "fixed_shares", "fixed_shares": 100},
                "risk": {
                    "max_positions": 1000,
                    "max_gross_exposure_pct": 400,
                    "max_position_weight_pct": 100,
                    "drawdown_throttle_start_pct": 100,
                    "reducing_drawdown_pct": 100,
                    "halt_drawdown_pct": 100,
                },
            },
            "costs": {
                "commission_model": "ib_fixed",
                "slippage": {"half_spread_bps": 0, "impact_coefficient_bps": 0, "max_participation_pct": 100},
            },
            "pre_trade": {
                "max_adv_participation_pct": 100,
                "max_order_notional_usd": 1e12,
                "max_orders_per_second": 1_000_000,
                "max_orders_per_minute": 1_000_000,
            },
            "strategies": {"sma_crossover": {"order_type": "MKT", "params": {"fast_period": 10, "slow_period": 30}}},
        }
    )


def pandas_feed(frame: pd.DataFrame, symbol: str) -> bt.feeds.PandasData:
    """A daily ``PandasData`` feed over a bar frame (tz-naive session-date index, our five bar columns)."""
    return bt.feeds.PandasData(
        dataname=frame,
        name=symbol,
        datetime=None,
        open="open",
        high="high",
        low="low",
        close="close",
        volume="volume",
        openinterest=None,
        timeframe=bt.TimeFrame.Days,
    )


def build_cerebro(
    feeds: Mapping[str, bt.DataBase], cash: float, fast: int = 10, slow: int = 30, record_ties: bool = False
) -> bt.Cerebro:
    """Cerebro wired for parity: the feeds (symbols sorted, as ``BarPanel`` orders them), IB Fixed, next-open
    market fills, no submission cash check."""
    cerebro = bt.Cerebro(stdstats=False, runonce=True, preload=True)
    for symbol in sorted(feeds):
        cerebro.adddata(feeds[symbol], name=symbol)
    cerebro.addstrategy(StrictCrossSma, fast=fast, slow=slow, size=100, record_ties=record_ties)
    cerebro.broker.set_cash(cash)
    cerebro.broker.set_coc(False)
    cerebro.broker.set_checksubmit(False)
    cerebro.broker.addcommissioninfo(IbFixedCommInfo())
    return cerebro


def run_backtrader(
    frames: Mapping[str, pd.DataFrame], cash: float, fast: int = 10, slow: int = 30, record_ties: bool = False
) -> BacktraderRun:
    """Run ``StrictCrossSma`` over ``frames`` (symbol -> bar frame) and collect fills, final value and ties."""
    feeds = {symbol: pandas_feed(frame, symbol) for symbol, frame in frames.items()}
    return run_backtrader_feeds(feeds, cash, fast, slow, record_ties)


def run_backtrader_feeds(
    feeds: Mapping[str, bt.DataBase], cash: float, fast: int = 10, slow: int = 30, record_ties: bool = False
) -> BacktraderRun:
    """``run_backtrader`` on ready-made feeds (e.g. ``YahooFinanceCSVData``); ``bars`` counts what they loaded."""
    cerebro = build_cerebro(feeds, cash, fast, slow, record_ties)
    started = time.perf_counter()
    strategy = cerebro.run()[0]
    wall_seconds = time.perf_counter() - started
    fills = pd.DataFrame(strategy.fills, columns=FILL_COLUMNS)
    ties = pd.DataFrame(strategy.ties, columns=TIE_COLUMNS)
    return BacktraderRun(
        fills=fills,
        final_value=float(cerebro.broker.getvalue()),
        wall_seconds=wall_seconds,
        bars=sum(len(feed) for feed in feeds.values()),
        ties=ties,
    )
