"""The backtester's per-session step on the live daily bars: portfolio first, then the strategies, then their signals.

``DailyBarFeed`` hands over each past session's bar (``on_history``: indicators and ADV only, no decision) and each
session that just closed (``on_close``). The signals of a close are handled at once, not queued, so no intraday
mark already waiting in the queue can move the book between the decision and the sizing: the order is sized on the
close, as in the backtest. The daily equity record (an fsynced file) is written after the orders have left, not in
their way. A strategy whose code raised (``StrategyError``) is switched off here; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pandas as pd

from core.events import MarketEvent, SignalEvent
from live.strategies import LiveStrategy
from performance.tracker import PerformanceTracker
from portfolio.live_manager import LiveManager

log = logging.getLogger(__name__)

NEW_YORK = "America/New_York"


class SessionStep:
    """Runs on the dispatcher thread; ``signals`` is the list the strategies were bound to (they append to it)."""

    def __init__(
        self,
        live: LiveManager,
        strategies: list[LiveStrategy],
        signals: list[SignalEvent],
        performance: PerformanceTracker,
        call: Callable[[Callable[[Any], None], Any], None],
    ) -> None:
        self._live = live
        self.strategies = strategies
        self._signals = signals
        self._performance = performance
        self._call = call  # the queue's error-policed call: a StrategyError disables that strategy only

    def on_history(self, event: MarketEvent) -> None:
        """A past session's bar: indicators and ADV only (no mark, no decision)."""
        self._live.on_history(event)
        for strategy in self.strategies:
            if strategy.enabled:
                self._call(strategy.warm, event)

    def on_close(self, event: MarketEvent) -> None:
        """A session just closed: mark and decide on its bar, send what the signals ask, record the day's equity."""
        self._live.on_market(event)
        equity, gross = self._live.portfolio.ledger.valuation()  # the close's valuation, recorded after the orders
        session = pd.Timestamp(event.ts_event_ns, unit="ns", tz="UTC").tz_convert(NEW_YORK).tz_localize(None)
        for signal_event in self._decide(event):
            log.info("event=signal session=%s strategy_id=%s symbol=%s direction=%s reference_price=%r",
                     session.date(), signal_event.strategy_id, signal_event.symbol, signal_event.direction.name,
                     signal_event.reference_price)  # fmt: skip
            self._live.on_signal(signal_event)  # every gate is the trading-state machine's one check
        self._performance.record_session_close(session.normalize(), equity, gross)  # fsyncs: after the orders

    def _decide(self, event: MarketEvent) -> list[SignalEvent]:
        """The enabled strategies' signals on ``event``, in strategy order."""
        self._signals.clear()
        for strategy in self.strategies:
            if strategy.enabled:
                self._call(strategy.on_market, event)
        signals = list(self._signals)  # the strategies hold this list's append: clear it, never replace it
        self._signals.clear()
        return signals

    def disable_strategy(self, strategy_id: str, why: str) -> None:
        """The error policy's DISABLE_STRATEGY: that strategy stops deciding for the life of the process."""
        for live_strategy in self.strategies:
            if live_strategy.strategy.strategy_id == strategy_id and live_strategy.enabled:
                live_strategy.enabled = False
                log.error("event=strategy_disabled strategy_id=%s reason=%r (the other strategies go on)",
                          strategy_id, why)  # fmt: skip
