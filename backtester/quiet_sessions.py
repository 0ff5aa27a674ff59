"""Quiet sessions: the runs of a backtest in which nothing can happen but marks, absorbed a block at a time.

Why: most sessions of a daily backtest have no signal, no working order and no cash settling; per session the
event path still builds a ``MarketEvent``, routes it through the queue, marks the ledger, values the book and runs
the drawdown rules, ~20 us of Python for nothing but an equity point. For such a run the book is constant, so
its equity is the same cash plus the same positions at successive closes: ``PortfolioManager.absorb_quiet``
computes the run's equity, exposure, drawdowns and history rings in numpy, to the same bits as the event path
(``tests/backtester/test_quiet_sessions.py`` runs both on random markets and compares every output).

A session is quiet when, at its start, no order is working at the simulated venue (so nothing can fill or be
stopped), no strategy has a signal on it (``Strategy.signal_rows``, known after ``prepare``), no clock timer is
due by its close and no protective stop waits to be placed. Three kinds of session used to end a run and no
longer do, for one reason: nothing between them and their close can change the book.
- A session on which a strategy signals ends the run it closes: its close is absorbed with the run's, then the
  strategies see its close event and their signals are decided (``Backtest._absorb``), in the event path's
  order (the portfolio's close first, then the strategies).
- A session whose bar filled orders starts a run from its close, once the venue is done with it, its fills are
  booked and nothing works any more (``Backtest.run`` asks again then).
- A sale's cash settling: settling moves cash from unsettled to settled and changes neither equity nor anything
  a quiet session reads, so the run settles what is due by its last close at its end.
On one symbol x 100,000 bars the event path took 10,230 sessions before, 511 now. A run stops at the first
session that is not quiet, and ``absorb_quiet`` stops early before a session whose equity would move the trading
state: those go through the event path, which makes and logs every transition itself. So do runs shorter than
``MIN_RUN_SESSIONS``, where the bulk path costs more than it saves.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from backtester.engine import Backtest

MAX_RUN_SESSIONS = 512  # a run is valued before the risk rules look at it: bounds the work a transition discards
MIN_RUN_SESSIONS = 4
"""Shorter runs go through the event path. Absorbing a run costs ~80 us of numpy calls however short it is, a quiet
session through the queue ~20 us (8 symbols), and most runs of a many-symbol backtest are one to three sessions
long. On 40 walk-forward trials (sum of per-trial minima, two alternating runs): 1,280 and 1,370 ms absorbing every
run, 1,166 and 1,276 ms from 4 sessions on, 1,233 ms with no absorption at all."""


class QuietSessions:
    """Owned by one ``Backtest.run``; reads the portfolio's, the venue's and the clock's state at each call."""

    def __init__(self, backtest: Backtest, closes: np.ndarray, volumes: np.ndarray, close_ns: np.ndarray,
                 min_run: int = MIN_RUN_SESSIONS) -> None:  # fmt: skip
        self._executor, self._portfolio, self._clock = backtest.executor, backtest.portfolio, backtest.clock
        self._min_run = max(1, min_run)
        signal_rows = np.zeros(len(close_ns), dtype=bool)
        for strategy in backtest.strategies:
            signal_rows |= strategy.signal_rows
        self._signal_sessions: list[int] = np.flatnonzero(signal_rows).tolist()  # lists: bisect beats numpy here
        self._signal_rows = signal_rows
        self._closes = np.asarray(closes, dtype=np.float64)
        self._volumes = volumes
        self._close_ns = np.asarray(close_ns, dtype=np.int64)
        self._close_ns_list: list[int] = self._close_ns.tolist()

    def absorb_from(self, t: int) -> int:
        """Absorb the quiet sessions from ``t`` on (at most ``MAX_RUN_SESSIONS``); returns how many (0: none, also
        for a run shorter than ``min_run``, whose sessions the event path takes one by one)."""
        portfolio = self._portfolio
        if self._executor.has_working_orders() or not portfolio.quiet_ready():
            return 0
        end = min(self._run_end(t), t + MAX_RUN_SESSIONS)
        if end - t < self._min_run:
            return 0
        last_prices = portfolio.ledger.last_prices
        if last_prices.shape[0] != self._closes.shape[1]:  # the ledger grew a symbol the panel lacks
            return 0
        block = self._closes[t:end]
        absorbed = portfolio.absorb_quiet(carried_forward(block, last_prices), block, self._volumes[t:end],
                                          self._close_ns[t:end])  # fmt: skip
        if absorbed:
            self._clock.advance_to(int(self._close_ns[t + absorbed - 1]))
        return absorbed

    def signals_on(self, t: int) -> bool:
        """A strategy signals on session ``t`` (the last session of a run may: ``Backtest._absorb``)."""
        return bool(self._signal_rows[t])

    def _run_end(self, t: int) -> int:
        """Where the run from ``t`` ends by the schedule: just after the first session with a signal (its close
        is absorbed, then its signals are decided), or at the first with a timer due."""
        close_ns, signals = self._close_ns_list, self._signal_sessions
        i = bisect_left(signals, t)
        end = signals[i] + 1 if i < len(signals) else len(close_ns)
        due_ns = self._clock.next_timer_ns()
        if due_ns is not None:  # the first session whose close reaches it fires it
            end = min(end, bisect_left(close_ns, due_ns))
        return end


def carried_forward(block: np.ndarray, last_prices: np.ndarray) -> np.ndarray:
    """The last price of each symbol after each row of ``block`` (C-contiguous): a row's NaN keeps the price
    before it, starting from ``last_prices``, as ``Ledger.mark`` row after row would."""
    total = float(block.sum())
    if total == total:  # no NaN (a NaN sum is one, or infinities cancelling: the exact path below is right for both)
        return np.ascontiguousarray(block)
    stacked = np.vstack([last_prices[np.newaxis, :], block])
    source = np.where(np.isnan(stacked), 0, np.arange(len(stacked))[:, np.newaxis])
    np.maximum.accumulate(source, axis=0, out=source)
    return np.ascontiguousarray(stacked[source, np.arange(stacked.shape[1])][1:])
