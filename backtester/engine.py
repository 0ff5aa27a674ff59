"""The event-driven backtester: the live dispatcher, driven bar by bar with a simulated clock.

Per session t: the simulated venue matches working orders against bar t (fills are dispatched first, as the
exchange trades before the bar completes), then one ``MarketEvent`` carrying every symbol is dispatched to the
portfolio (mark, settle, risk) and the strategy (signals -> orders, which can only fill on later bars).
Runs of sessions in which nothing but marks can happen (``backtester.quiet_sessions``) are absorbed in bulk,
from a session's start or, once the venue's fills of it are booked, from its close; a run may end with a
session on which a strategy signals, whose close the strategies then see as in the event path.
``build_backtest`` is the one wiring function; the CLI and the tests both call it.
"""

from __future__ import annotations

import bisect
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backtester.quiet_sessions import MIN_RUN_SESSIONS, QuietSessions
from core.clock import SimClock
from core.config_models import AppConfig
from core.event_queue import EventQueue
from core.events import FillEvent, MarketEvent, OrderFailedEvent, OrderStatus, OrderType, SignalEvent
from core.frozen_heap import frozen_heap
from data.calendar import NS_PER_DAY, TradingCalendar, floor_to_day_ns
from data.panel import BarPanel
from execution.commissions import build_commission_model
from execution.order_state import ManagedOrder
from execution.sim_executor import SessionTimes, SimulatedExecutor
from execution.slippage import SlippageModel
from ml.algowheel_store import promoted_wheel_state
from portfolio.ledger import Ledger
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.optimizer import VolatilityTargeter
from portfolio.order_ids import OrderIdFactory
from portfolio.portfolio_manager import PortfolioManager
from portfolio.pre_trade import PreTradeGate
from portfolio.risk_manager import RiskManager
from portfolio.shared_sizing_logic import PositionSizer
from portfolio.veto import SignalVeto
from portfolio.wheel_orders import WheelExecution, build_wheel_execution
from strategy.base import BarArrays, Strategy

log = logging.getLogger(__name__)

STOPS_COLUMNS: tuple[str, ...] = ("symbol", "strategy_id", "side", "quantity", "stop_price", "placed_date",
                                  "closed_date", "outcome", "fill_price")  # fmt: skip


@dataclass(slots=True)
class BacktestResult:
    equity: pd.Series
    gross_exposure: pd.Series
    fills: pd.DataFrame
    bars_processed: int
    timestamps: int
    wall_seconds: float
    rejections: dict[str, int] = field(default_factory=dict)
    ignored_signals: dict[str, int] = field(default_factory=dict)
    clipped: dict[str, int] = field(default_factory=dict)  # entries cut to a size limit, by limit
    state_history: list[str] = field(default_factory=list)
    final_state: str = "ACTIVE"
    stops_of: Callable[[], pd.DataFrame] | None = field(default=None, repr=False)  # builds ``stops`` when asked
    _stops: pd.DataFrame | None = field(default=None, init=False, repr=False)

    @property
    def stops(self) -> pd.DataFrame:
        """Every protective stop of the run (``stops_frame``), built the first time it is read: a sweep trial
        never reads it, and building it cost ~0.8 ms of a ~40 ms walk-forward trial. The run is over when the
        result exists, so the stop orders it reads no longer change; it keeps those alone, not the backtest."""
        if self._stops is None:
            self._stops = self.stops_of() if self.stops_of is not None else pd.DataFrame(columns=list(STOPS_COLUMNS))
        return self._stops


@dataclass(slots=True)
class Backtest:
    panel: BarPanel
    sessions: SessionTimes
    clock: SimClock
    queue: EventQueue
    executor: SimulatedExecutor
    portfolio: PortfolioManager
    strategies: list[Strategy]
    skip_quiet_sessions: bool = True  # False: every session through the queue (the reference the tests compare)
    quiet_min_run: int = MIN_RUN_SESSIONS  # shorter quiet runs through the queue too (1: absorb every run)

    def run(self) -> BacktestResult:
        started = time.perf_counter()
        with frozen_heap():
            self._run_sessions()
            wall = time.perf_counter() - started
            return self._result(wall)

    def _run_sessions(self) -> None:
        panel, queue, clock, executor = self.panel, self.queue, self.clock, self.executor
        for strategy in self.strategies:
            strategy.prepare(_bar_arrays(panel))
        opens, highs, lows, closes, volumes = panel.open, panel.high, panel.low, panel.close, panel.volume
        open_ns, close_ns = self.sessions.open_ns, self.sessions.close_ns
        quiet = QuietSessions(self, closes, volumes, close_ns, self.quiet_min_run) if self.skip_quiet_sessions else None
        t = 0
        while t < len(close_ns):
            if quiet is not None and (absorbed := self._absorb(quiet, t)):
                t += absorbed
                continue
            if executor.has_working_orders():
                clock.advance_to(int(open_ns[t]))
                executor.process_bar(t, opens[t], highs[t], lows[t], closes[t], volumes[t])
                queue.run_until_empty()
                executor.process_new_stops(t, opens[t], highs[t], lows[t], closes[t], volumes[t])
                queue.run_until_empty()
                # the venue is done with session t: its close may start a quiet run
                if quiet is not None and (absorbed := self._absorb(quiet, t)):
                    t += absorbed
                    continue
            clock.advance_to(int(close_ns[t]))
            queue.put(self._close_event(t))
            queue.run_until_empty()
            t += 1

    def _close_event(self, t: int) -> MarketEvent:
        """The ``MarketEvent`` of session ``t``'s close: every symbol's bar."""
        panel, ts_close = self.panel, int(self.sessions.close_ns[t])
        return MarketEvent(ts_event_ns=ts_close, ts_init_ns=ts_close, bar_index=t, symbols=panel.symbols,
                           open=panel.open[t], high=panel.high[t], low=panel.low[t], close=panel.close[t],
                           volume=panel.volume[t])  # fmt: skip

    def _absorb(self, quiet: QuietSessions, t: int) -> int:
        """Absorb the quiet run from ``t`` (``QuietSessions.absorb_from``); returns how many sessions it took.

        A run may end with a session on which a strategy signals: the portfolio's part of that close is absorbed
        with the rest (its book too is constant up to the close), then the strategies see the close event, as they
        would after ``PortfolioManager.on_market`` in the event path, and their signals are decided at once.
        """
        absorbed = quiet.absorb_from(t)
        last = t + absorbed - 1
        if absorbed and quiet.signals_on(last):
            event = self._close_event(last)
            for strategy in self.strategies:
                self.queue.call(strategy.on_market, event)
            self.queue.run_until_empty()
        return absorbed

    def _result(self, wall_seconds: float) -> BacktestResult:
        pm = self.portfolio
        session_dates = new_york_dates(np.asarray(pm.equity_ts, dtype="int64"))
        equity = _float_series(pm.equity_values, session_dates, "equity")
        gross = _float_series(pm.gross_exposure_values, session_dates, "gross_exposure")
        return BacktestResult(
            equity=equity,
            gross_exposure=gross,
            fills=fills_frame(pm.fills),
            bars_processed=self.panel.n_bars,
            timestamps=len(self.panel.dates),
            wall_seconds=wall_seconds,
            rejections=dict(pm.rejections),
            ignored_signals=dict(pm.ignored_signals),
            clipped=dict(pm.clipped),
            state_history=list(pm.state_history),
            final_state=str(pm.risk.state),
            stops_of=functools.partial(stops_frame, *stop_orders(self.executor)),
        )


def build_backtest(
    config: AppConfig,
    panel: BarPanel,
    strategies: list[Strategy],
    calendar: TradingCalendar,
    *,
    trade_from_index: int = 0,
    outage_bars: frozenset[int] = frozenset(),
    veto: SignalVeto | None = None,
) -> Backtest:
    """Wire one backtest from the validated config: the same components the live engine wires.

    ``trade_from_index``: bars before it only warm up indicators (walk-forward test windows); signals there are
    ignored. ``outage_bars``: bar indices on which the simulated broker fills nothing (scenario analysis).
    ``veto``: the signal veto the portfolio asks about entries (``backtester.veto_scorer`` scores it); None: none.
    """
    sessions = session_times(panel, calendar, config.backtest.moc_cutoff_minutes_before_close)
    start_ns = int(sessions.open_ns[0]) - NS_PER_DAY if len(sessions.open_ns) else 0
    clock = SimClock(start_ns)
    queue = EventQueue()
    pcfg = config.portfolio
    ledger = Ledger(pcfg.initial_capital, panel.symbols, account_type=pcfg.account_type, allow_short=pcfg.allow_short)
    executor = _build_executor(config, panel, sessions, clock, queue, ledger, outage_bars)
    wheel = build_wheel_execution(config, calendar, promoted_wheel_state(config))
    portfolio = _build_portfolio(config, panel, sessions, clock, ledger, executor, trade_from_index, wheel, veto)
    for strategy in strategies:
        strategy.bind(queue.put, clock.now_ns)
    _route_events(queue, portfolio, executor, strategies)
    return Backtest(panel, sessions, clock, queue, executor, portfolio, strategies)


def _build_executor(
    config: AppConfig,
    panel: BarPanel,
    sessions: SessionTimes,
    clock: SimClock,
    queue: EventQueue,
    ledger: Ledger,
    outage_bars: frozenset[int],
) -> SimulatedExecutor:
    """The simulated venue; in a cash account it sizes buys from the ledger's settled cash, as IB would."""
    pcfg = config.portfolio
    return SimulatedExecutor(
        panel.symbols,
        sessions,
        build_commission_model(config.costs),
        SlippageModel(config.costs.slippage),
        queue.put,
        clock.now_ns,
        cash_available=ledger.available_for_buying if pcfg.account_type == "cash" else None,
        outage_bars=outage_bars,
    )


def _build_portfolio(
    config: AppConfig,
    panel: BarPanel,
    sessions: SessionTimes,
    clock: SimClock,
    ledger: Ledger,
    executor: SimulatedExecutor,
    trade_from_index: int,
    wheel: WheelExecution | None,
    veto: SignalVeto | None = None,
) -> PortfolioManager:
    """The portfolio manager with the same risk, sizing, gate and AlgoWheel components the live engine wires."""
    pcfg = config.portfolio
    return PortfolioManager(
        config=pcfg,
        strategies=config.strategies,
        symbols=panel.symbols,
        ledger=ledger,
        risk=RiskManager(pcfg.risk),
        sizer=PositionSizer(pcfg.sizing, pcfg.risk_per_trade_pct),
        targeter=VolatilityTargeter(pcfg.optimizer),
        monthly=MonthlyTradeCounter(pcfg.max_trades_per_month),
        gate=PreTradeGate(config.pre_trade, panel.symbols),
        order_ids=OrderIdFactory(),
        router=executor,
        working=executor.store,
        now_ns=clock.now_ns,
        settles_at_ns=_settlement(sessions, pcfg.settlement_days),
        adv_lookback_days=config.pre_trade.adv_lookback_days,
        accept_signals_from_ns=int(sessions.close_ns[trade_from_index])
        if 0 < trade_from_index < len(panel.dates)
        else None,  # (timestamps before 1970 are negative: no numeric sentinel is safe)
        wheel=wheel,
        veto=veto,
    )


def _route_events(
    queue: EventQueue, portfolio: PortfolioManager, executor: SimulatedExecutor, strategies: list[Strategy]
) -> None:
    """Register the event handlers, in dispatch order: the portfolio sees each event before the strategies do."""
    routes = {
        MarketEvent: [portfolio.on_market, *(s.on_market for s in strategies)],
        SignalEvent: [portfolio.on_signal],
        FillEvent: [portfolio.on_fill, executor.store.on_fill_booked, portfolio.on_order_booked],
        OrderFailedEvent: [portfolio.on_order_failed, executor.store.on_failure_booked, portfolio.on_order_booked],
    }
    for event_type, handlers in routes.items():
        queue.route(event_type, handlers)


def session_times(panel: BarPanel, calendar: TradingCalendar, moc_minutes: int) -> SessionTimes:
    close_ns = np.asarray(panel.ts_event_ns, dtype=np.int64)
    open_ns = np.asarray(calendar.session_open_ns(panel.dates), dtype=np.int64)
    return SessionTimes(open_ns=open_ns, close_ns=close_ns, moc_cutoff_ns=close_ns - moc_minutes * 60 * 1_000_000_000)


def _settlement(sessions: SessionTimes, settlement_days: int):
    """Trade at session t settles at the open of session t + settlement_days (T+1 by default)."""
    close_ns, open_ns = sessions.close_ns.tolist(), sessions.open_ns.tolist()  # bisect: no numpy call per fill

    def settles_at_ns(ts_event_ns: int) -> int:
        target = bisect.bisect_left(close_ns, ts_event_ns) + settlement_days
        if target < len(open_ns):
            return int(open_ns[target])
        return int(close_ns[-1]) + (target - len(open_ns) + 1) * NS_PER_DAY

    return settles_at_ns


def _float_series(values: list[float], index: pd.DatetimeIndex, name: str) -> pd.Series:
    """A series of the run's floats, converted to float64 by numpy: pandas, given the list, builds an object array
    first and infers the dtype from it (~6 ms for 100,000 sessions). A run with no session keeps the empty series
    pandas builds from an empty list, as before."""
    if not values:
        return pd.Series(values, index=index, name=name)
    return pd.Series(np.asarray(values, dtype=np.float64), index=index, name=name)


def _bar_arrays(panel: BarPanel) -> BarArrays:
    return BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)


FILLS_FRAME_COLUMNS: tuple[str, ...] = (  # fills.csv; backtester.performance.FILL_COLUMNS is the part metrics read
    "date", "ts_event_ns", "client_order_id", "exec_id", "strategy_id", "symbol", "side", "quantity", "price",
    "commission", "slippage_cost", "order_type",
)


def fills_frame(fills: list[FillEvent]) -> pd.DataFrame:
    """Every fill of the run, one row each (``FILLS_FRAME_COLUMNS``; ``fills.csv``).

    The columns are typed arrays (text as objects, shares as int64, money as float64), the dtypes pandas infers
    from the fills' values, handed over without inference or copy: building the frame from lists cost ~0.6 ms
    for a sweep trial's ~100 fills, three times what the arrays cost.
    """
    if not fills:
        return pd.DataFrame(columns=list(FILLS_FRAME_COLUMNS))
    ts = np.array([f.ts_event_ns for f in fills], dtype="int64")

    def text(values: list[str]) -> np.ndarray:
        return np.array(values, dtype=object)

    def money(values: list[float]) -> np.ndarray:
        return np.array(values, dtype=np.float64)

    columns = {
        "date": new_york_dates(ts),
        "ts_event_ns": ts,
        "client_order_id": text([f.client_order_id for f in fills]),
        "exec_id": text([f.exec_id for f in fills]),
        "strategy_id": text([f.strategy_id for f in fills]),
        "symbol": text([f.symbol for f in fills]),
        "side": text([f.side.value for f in fills]),
        "quantity": np.array([f.quantity for f in fills], dtype=np.int64),
        "price": money([f.price for f in fills]),
        "commission": money([f.commission for f in fills]),
        "slippage_cost": money([f.slippage_cost for f in fills]),
        "order_type": text([f.order_type.value for f in fills]),
    }
    return pd.DataFrame(columns, copy=False)


def _session_dates(ts_ns: list[int | None]) -> pd.DatetimeIndex:
    """New York session dates of UTC epoch ns (NaT for None), as the fills' ``date``."""
    known = np.array([ts is not None for ts in ts_ns], dtype=bool)
    dates = np.full(len(ts_ns), np.datetime64("NaT"), dtype="datetime64[ns]")
    dates[known] = new_york_dates(np.array([ts for ts in ts_ns if ts is not None], dtype="int64")).to_numpy()
    return pd.DatetimeIndex(dates)


def new_york_dates(ts_ns: np.ndarray) -> pd.DatetimeIndex:
    """The New York calendar date (naive midnight) of each UTC epoch ns.

    Why not ``pd.to_datetime(ts, utc=True).tz_convert(...).normalize()``: ``to_datetime`` of integers goes through
    pandas' object path and normalize infers the index's frequency, together ~0.5 ms for two years of sessions,
    paid up to four times per sweep trial; the nanoseconds viewed as datetimes, localized, converted and floored
    to the day give the same dates (~0.15 ms), with no frequency.
    """
    utc = pd.DatetimeIndex(np.asarray(ts_ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")
    wall_ns = utc.tz_convert("America/New_York").tz_localize(None).asi8
    return pd.DatetimeIndex(floor_to_day_ns(wall_ns).view("datetime64[ns]"))


def stop_orders(executor: SimulatedExecutor) -> tuple[list[ManagedOrder], list[int | None]]:
    """The run's stop orders and when each ended (None while working): all ``stops_frame`` reads, and nothing
    that holds on to the rest of the backtest (a result that builds its stops later keeps only these)."""
    stops = [m for m in executor.store.all() if m.order.order_type is OrderType.STP]
    ended = [executor.ended_ns.get(m.order.client_order_id) if m.is_terminal else None for m in stops]
    return stops, ended


def stops_frame(stops: list[ManagedOrder], ended: list[int | None]) -> pd.DataFrame:
    """Every protective stop of the run, one row each (``STOPS_COLUMNS``; ``stops.csv``), from ``stop_orders``.

    ``placed_date``: the session of the entry execution that placed it; ``closed_date``: the session it filled
    (its last execution) or was cancelled in, NaT while open; ``outcome``: ``filled`` (every share), ``cancelled``
    (cancelled, expired or refused; a stop cut short after a partial fill also says ``cancelled``) or ``open``
    (still working at the end of the data); ``fill_price``: its average execution price, NaN without one.
    """
    if not stops:
        return pd.DataFrame(columns=list(STOPS_COLUMNS))
    outcome = ["filled" if m.status is OrderStatus.FILLED else "open" if not m.is_terminal else "cancelled"
               for m in stops]  # fmt: skip
    return pd.DataFrame({
        "symbol": [m.order.symbol for m in stops],
        "strategy_id": [m.order.strategy_id for m in stops],
        "side": [m.order.side.value for m in stops],
        "quantity": [m.order.quantity for m in stops],
        "stop_price": [m.order.stop_price for m in stops],
        "placed_date": _session_dates([m.order.ts_event_ns for m in stops]),
        "closed_date": _session_dates(ended),
        "outcome": outcome,
        "fill_price": [m.avg_fill_price if m.filled_quantity > 0 else np.nan for m in stops],
    })  # fmt: skip
