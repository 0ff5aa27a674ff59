"""What an operator can ask of the running engine (``live.commands``: STATUS, HALT, CANCEL_ALL, FLATTEN), and the
status they read back (also in the engine's stop log).

Cancels go the way orders go: ``IbExecutor.cancel_all`` (the order store's owner), never around it. FLATTEN asks
the broker first (``live.broker_flatten``) and closes only what it holds net of working flatten orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from core.clock import Clock
from data.ib_daily_bars import DailyBarFeed
from execution.ib_executor import IbExecutor
from live.broker_flatten import BrokerFlatten
from live.broker_sync import BrokerSync
from live.monitor_watch import MonitorWatch
from portfolio.ledger import Ledger
from portfolio.live_manager import LiveManager
from portfolio.trading_state import Reason, TradingStateMachine


def ledger_book(ledger: Ledger) -> dict[str, Any]:
    """The ledger's marks for the dashboard: per symbol held or priced, shares, average cost and last price (None
    when unknown), and the realized P&L and commissions of the process's life (USD)."""
    symbols = {}
    for symbol, quantity, avg_cost, mark in zip(ledger.symbols, ledger.quantities, ledger.avg_cost,
                                                ledger.last_prices, strict=True):  # fmt: skip
        if quantity or math.isfinite(mark):
            symbols[symbol] = {"quantity": float(quantity), "avg_cost": float(avg_cost) if quantity else None,
                               "mark": float(mark) if math.isfinite(mark) else None}  # fmt: skip
    return {"symbols": symbols, "realized_pnl": round(ledger.realized_pnl, 2),
            "commissions_paid": round(ledger.commissions_paid, 2), "cash": round(ledger.cash, 2)}  # fmt: skip


class OperatorControls:
    """Implements ``live.commands.EngineControls``; dispatcher thread only."""

    def __init__(
        self,
        clock: Clock,
        trading: TradingStateMachine,
        live: LiveManager,
        executor: IbExecutor,
        broker_flatten: BrokerFlatten,
        sync: BrokerSync,
        daily_bars: DailyBarFeed,
        monitor: MonitorWatch,
        *,
        kill_level: Callable[[], str],
        reconciled: Callable[[], bool],
        features_status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._clock = clock
        self._trading = trading
        self._live = live
        self._executor = executor
        self._flatten = broker_flatten
        self._sync = sync
        self._daily_bars = daily_bars
        self._monitor = monitor
        self._kill_level = kill_level
        self._reconciled = reconciled
        self._features_status = features_status  # the session features' writes (only with a signal veto)

    def halt(self, reason: str) -> None:
        self._live.halt(reason)

    def cancel_all(self, reason: str) -> None:
        self._executor.cancel_all(reason)

    def flatten(self, reason: str) -> None:
        """Cancel all and close what the broker holds (asked first: ``live.broker_flatten``); reduce-only after."""
        self._live.set_reduce_only(True, reason, source=Reason.OPERATOR)
        self._executor.cancel_all(reason)
        self._flatten.request(reason)

    def status(self) -> dict[str, Any]:
        """Plain-JSON state for STATUS replies and logs."""
        portfolio, monitor, beat = self._live.portfolio, self._monitor, self._monitor.last
        trading = self._trading.describe()
        last_bar = self._daily_bars.last_date
        market_time_ns, next_close_ns = self._daily_bars.market_clock()
        return {
            **self._live.heartbeat_fields(),
            "halt_reason": trading["halt_cause"],
            "reasons": trading["reasons"],
            "kill": self._kill_level(),
            "connected": self._sync.connected,
            "reconciled": self._reconciled(),
            "accepting_orders": self._executor.accepting_orders,
            "reserved_cash": round(portfolio.reserved_cash, 2),
            "working_symbols": sorted(portfolio.working_symbols()),
            "ignored_signals": dict(portfolio.ignored_signals),
            "position_by_symbol": portfolio.ledger.open_positions(),
            "book": ledger_book(portfolio.ledger),
            "fills_today": self._live.fills_today(self._clock.now_ns()),
            "last_daily_bar": None if last_bar is None else str(last_bar.date()),
            "session_decisions": self._daily_bars.decisions,
            "market_time_ns": market_time_ns,
            "next_close_ns": next_close_ns,
            "monitor_policy": monitor.policy,
            "monitor_stale": None if beat is None else beat.stale,
            "monitor_age_s": None if beat is None else beat.age_s,
            "trading_blocked_by_monitor": not monitor.trading_allowed,
            **self._live.veto_status(),  # vetoes (counts), last_vetoes (strategy, symbol, p, reason)
            "session_features": None if self._features_status is None else self._features_status(),
        }
