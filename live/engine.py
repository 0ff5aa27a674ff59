"""The live engine: wiring of every component, and the single-threaded event loop that runs them.

``build_engine(config, ports)`` builds the whole process from the validated config and its ports (``live.ports``:
the files, the clock and the broker connection, handed in so a test can build it in process against an in-process
ibsim); the order of the steps matters:

1. state first: portfolio snapshot (``StateCorruptError`` on a damaged file, which is never replaced), order
   journal replay (same), the executor's ``recover`` of every journaled order - all before any broker message;
2. the broker side: the connection from ``ports.connect`` (not started), ``IbOrderIds`` above every journaled id,
   ``IbExecutor`` (the owner of the order store; the portfolio submits to it and reads working orders back) sending
   through ``live.order_client.ConnectionOrderClient``, the one ``BrokerSync``, ``BrokerFlatten`` (every
   flatten starts from the broker's positions), ``IbMarketDataHandler``;
3. the decision side: strategies (parameters from ``state/approved_params/<name>.yaml`` when present, else the
   config; the source is logged), ``PortfolioManager`` wrapped by ``LiveManager`` (risk log, snapshot),
   ``DailyBarFeed`` (the strategies' daily bars from the broker) and ``PerformanceTracker`` (daily equity);
4. operations: ``HeartbeatPublisher`` (ZeroMQ PUB + CSV), ``CommandServer`` (CURVE, keys in ``state/keys``),
   ``KillFlagWatcher``, ``MonitorWatch`` (the risk monitor's heartbeat file, policy
   ``operational_risk.on_monitor_stale``: ``refuse_start`` is reduce-only until a first fresh beat, ``reducing``
   is reduce-only while stale, ``ignore`` logs); SIGTERM/SIGINT handlers are installed by ``Engine.run``.

The trading state has one owner, ``portfolio.trading_state.TradingStateMachine`` (STARTING until the first
reconcile, ACTIVE, REDUCING with its reasons, HALTED with its cause), checked once in the pre-trade chain. What
happens when a handler or timer raises is one table (``core.error_policy``), applied by the queue; anything it
does not name is a crash: exit 4 and a last heartbeat ``stopping: crash``, which the risk monitor kills.

Two bar streams, as in the backtest: strategies decide on **daily** bars only. At start-up the broker's daily
history warms them up (no decision on a past bar); each time a session closes, its official daily bar is fetched and
runs the backtester's per-session step (``PortfolioManager.on_market``, then the strategies), so a signal comes
from the same bar and the same code as in the backtest, and orders (MKT at the next open, MOC at the next close)
meet the same fill rules. The 5-s real-time bars only mark the book between closes (drawdown rules, heartbeat).

After a crash the snapshot may predate the last journaled fills: those are applied to the ledger at start-up
(``journal_fills_missing_from``, by exec id) before reconciliation compares positions with the broker.

Start-up reconciliation: trading stays STARTING until (a) the broker sync (positions, open orders, executions, in
that order, each after the previous end marker) has let the executor adopt its journaled orders and book missed
fills (never re-sending), and (b) on its ``Reconciled`` event the broker's positions equal the ledger's. A
difference it cannot explain halts the engine (HALTED, no order sent, no flatten: the books are not trusted) with
a report naming every symbol. A kill flag present at start-up halts at once; its cancel and flatten wait for the
reconcile, so nothing is journaled or sent before the broker has been heard.

Threads: everything in ``Engine`` runs on the thread that calls ``run`` (the dispatcher thread). IB callbacks
arrive on ``IbConnection``'s threads and only ``put`` messages on the ``EventQueue``; the ZAP authenticator has its
own thread inside ``CommandServer``. Signal handlers only set a flag. Nothing in the loop blocks on I/O for
longer than ``LOOP_MAX_WAIT_S``.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Mapping
from contextlib import ExitStack
from types import FrameType
from typing import Any

import pandas as pd

from core.clock import NS_PER_SECOND
from core.config_models import AppConfig, StrategiesConfig
from core.error_policy import LIVE_ERROR_POLICY, ErrorAction, action_for
from core.errors import ConfigError, StateCorruptError, StrategyError
from core.event_queue import EventQueue, Handler
from core.events import FillEvent, MarketEvent, OrderFailedEvent, SignalEvent, TradingState
from core.ib_messages import (
    IB_MESSAGE_TYPES,
    IbBar,
    IbCommissionReport,
    IbConnected,
    IbDataStale,
    IbDisconnected,
    IbError,
    IbExecDetails,
    IbExecDetailsEnd,
    IbHistoricalEnd,
    IbOpenOrder,
    IbOpenOrderEnd,
    IbOrderStatus,
    IbPosition,
    IbPositionEnd,
    IbTick,
)
from core.ipc_commands import CommandServer
from core.ipc_heartbeat import HeartbeatPublisher, curve_for
from data.bar_guard import BarGuard
from data.calendar import TradingCalendar
from data.ib_daily_bars import DailyBarFeed
from data.ib_handler import IbMarketDataHandler
from execution.commissions import build_commission_model
from execution.ib_executor import IbExecutor, IbOrderIds
from execution.ib_translate import execution_filter_for
from execution.order_journal import OrderJournal
from execution.order_log import OrderSubmissionLog
from live.broker_flatten import BrokerFlatten
from live.broker_sync import BrokerSync, Reconciled, SyncStep
from live.commands import CommandHandler
from live.exit_codes import ExitCode
from live.journal_catchup import check_journal_covers_snapshot, journal_fills_missing_from
from live.kill_flags import KillFlagWatcher, KillLevel
from live.monitor_watch import MonitorWatch, stale_after_s
from live.order_client import ConnectionOrderClient
from live.ports import ConnectionFactory, EnginePorts
from live.reconcile import PositionReconciler
from live.state_lock import open_state_dir
from live.strategies import LiveStrategy, strategies_with_approved_params
from performance.tracker import PerformanceTracker
from portfolio.ledger import Ledger
from portfolio.live_manager import LiveManager, calendar_settlement, restore_books
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.optimizer import VolatilityTargeter
from portfolio.order_ids import OrderIdFactory
from portfolio.portfolio_manager import PortfolioManager
from portfolio.pre_trade import PreTradeGate
from portfolio.risk_manager import RiskManager
from portfolio.shared_sizing_logic import PositionSizer
from portfolio.snapshot import read_snapshot
from portfolio.trading_state import Reason, TradingStateMachine
from strategy.registry import build_strategy
from utils.atomic_files import LOG_DIR_MODE, make_dir

log = logging.getLogger(__name__)

LOOP_MAX_WAIT_S = 0.05  # longest the loop sleeps: bounds command latency and kill-flag reaction time
KILL_POLL_S = 0.1
MONITOR_BLOCKED_REMINDER_S = 30.0  # refuse_start: repeat the "trading blocked" log this often while blocked
KILL_EXIT_TIMEOUT_S = 30.0  # after KILL/KILL_NOW, exit at the latest this long after the halt, flat or not
DAILY_BARS_POLL_S = 30.0  # wall-clock check for a session close (a real gateway; ibsim's closes come via bars)
NEW_YORK = "America/New_York"
CRASH_TEXT_MAX = 300  # characters of the error kept in the last heartbeat


class EngineCrashed(BaseException):
    """An exception nothing expected (the error policy said CRASH): unwinds the loop past every ``except
    Exception`` so nothing can swallow it; ``Engine.run`` turns it into the crash exit."""

    def __init__(self, error: BaseException, where: str) -> None:
        super().__init__(f"{where}: {type(error).__name__}: {error}")
        self.error = error


# ==================================================================================================== engine
class Engine:
    """One live trading process; built by ``build_engine``, driven by ``run`` (see the module docstring)."""

    def __init__(self, config: AppConfig, ports: EnginePorts) -> None:
        self.config = config
        if not config.symbols:
            raise ConfigError("config", ["symbols: the live engine needs a non-empty universe (got [])"])
        self.symbols = tuple(config.symbols)
        self.files = files = ports.files
        self.state_dir, self.log_dir = files.state_dir, files.log_dir  # created, checked and locked by _open_state
        self.clock = ports.clock
        self.trading = TradingStateMachine(starting=True)  # the one owner of the trading state: STARTING until synced
        self.queue = EventQueue(on_error=self._on_handler_error)
        self._stop_requested: str | None = None
        self._stop_kind = "operator"  # the last heartbeat's ``stopping``: operator | kill | crash
        self._crash_text: str | None = None
        self._closed = False
        self.exit_code = ExitCode.OK
        self.kill_level = KillLevel.NONE
        self._kill_deadline_ns: int | None = None
        self._flattened_by_kill = False
        self._kill_actions_pending = False  # a kill seen before connect + reconcile: its cancel/flatten wait
        self.connected = False
        self._next_kill_poll_ns = 0
        self._next_reflatten_ns = 0
        self._closables: list[Any] = []

        snapshot = self._open_state()
        calendar = TradingCalendar()
        self._build_broker_side(ports.connect, calendar)
        self._build_decision_side(snapshot, calendar)
        self._build_operations()
        self._route()

    # -------------------------------------------------------------------------------------------- building
    def _open_state(self) -> dict[str, Any] | None:
        """The state dir locked first (``live.state_lock``: a second engine on it raises StateInUseError, exit 2),
        then the snapshot, the journal cross-checked against it, and the logs.

        A corrupt, inconsistent or unusable file or folder raises StateCorruptError naming it, before anything is
        written; it is never replaced. What was opened here is closed again on a failure, so the lock is free.
        """
        files = self.files
        try:
            with ExitStack() as opened:
                self.state_lock = open_state_dir(files.state_dir)
                opened.callback(self.state_lock.close)
                make_dir(files.log_dir, LOG_DIR_MODE, tighten=True)
                self.snapshot_path = files.snapshot
                snapshot = read_snapshot(self.snapshot_path)
                check_journal_covers_snapshot(files.journal, self.snapshot_path, snapshot)
                self.journal = OrderJournal(files.journal, now_ns=self.clock.now_ns)
                opened.callback(self.journal.close)
                self.order_log = OrderSubmissionLog(files.order_log)
                opened.pop_all()
        except OSError as exc:  # a state or log path the engine cannot use: not a crash, and nothing was replaced
            where = exc.filename or files.state_dir
            raise StateCorruptError(f"{where}: cannot be used ({exc.strerror or exc}); nothing was changed: fix the "
                                    "path or its permissions and restart") from exc  # fmt: skip
        self._closables.extend([self.state_lock, self.journal, self.order_log])
        return snapshot

    def _build_broker_side(self, connect: ConnectionFactory, calendar: TradingCalendar) -> None:
        """Connection (not started), order ids above every journaled one, executor (journaled orders recovered:
        never re-sent), the one broker sync, the broker-truth flattener and the market data handler."""
        config = self.config
        self.connection = connect(self.queue.put, self.clock)
        self.order_client = ConnectionOrderClient(self.connection)
        self.ids = IbOrderIds(self.journal.state.max_ib_order_id + 1)
        self.executor = IbExecutor(
            self.order_client, self.ids, self.journal, self.order_log, self.queue.put, self.clock,
            build_commission_model(config.costs), account=config.ib_connection.account,
            on_halt=self._on_executor_halt, quote=self._quote, run_id=f"engine-{self.clock.now_ns()}",
        )  # fmt: skip
        self._recovered_working = self.executor.recover(self.journal.state)
        self.sync = BrokerSync(self.order_client, self.queue.put, self.clock, execution_filter=execution_filter_for,
                               finish_executor=self.executor.finish_reconciliation)  # fmt: skip
        self.broker_flatten = BrokerFlatten(
            self.clock, request_positions=self.order_client.reqPositions,
            request_open_orders=self.order_client.reqOpenOrders, broker_positions=self.sync.broker_positions,
            flatten=lambda reason, positions: self.portfolio.flatten(reason, positions),
            ready=lambda: self.connected and self.reconciled and self.sync.step is SyncStep.IDLE,
        )  # fmt: skip
        self.market_data = IbMarketDataHandler(self.symbols, self.connection, self.queue.put, self.clock,
                                               BarGuard(calendar),
                                               source=config.ib_connection.intraday_marks)  # fmt: skip

    def _load_strategies(self) -> StrategiesConfig:
        """The strategies (approved parameters over the config), bound to this session's signal list."""
        strategies_cfg, sources = strategies_with_approved_params(self.config, self.state_dir)
        self.strategies: list[LiveStrategy] = []
        self._session_signals: list[SignalEvent] = []  # filled by the strategies during one session close
        for name, source in sources.items():
            strategy = build_strategy(name, strategies_cfg)
            strategy.bind(self._session_signals.append, self.clock.now_ns)
            self.strategies.append(LiveStrategy(strategy, self.symbols))
            log.info("event=strategy_loaded name=%s params_source=%s params=%s", name, source,
                     getattr(strategies_cfg, name).params.model_dump())  # fmt: skip
        return strategies_cfg

    def _books(self, snapshot: dict[str, Any] | None) -> tuple[Ledger, RiskManager]:
        pcfg = self.config.portfolio
        if snapshot is None:
            ledger = Ledger(pcfg.initial_capital, self.symbols, account_type=pcfg.account_type,
                            allow_short=pcfg.allow_short)  # fmt: skip
            return ledger, RiskManager(pcfg.risk, trading=self.trading)
        ledger, risk = restore_books(snapshot, pcfg.risk, self.trading)
        if tuple(ledger.symbols) != self.symbols:
            raise StateCorruptError(f"{self.snapshot_path}: snapshot symbols {list(ledger.symbols)} differ from "
                                    f"config symbols {list(self.symbols)}; reconcile by hand")  # fmt: skip
        return ledger, risk

    def _build_decision_side(self, snapshot: dict[str, Any] | None, calendar: TradingCalendar) -> None:
        """The backtester's decision core (PortfolioManager) wrapped by LiveManager, the daily-bar feed, the
        positions check and the daily equity record; journal fills the snapshot predates are caught up."""
        config, pcfg = self.config, self.config.portfolio
        strategies_cfg = self._load_strategies()
        ledger, risk = self._books(snapshot)
        monthly = MonthlyTradeCounter(pcfg.max_trades_per_month)
        self.portfolio = PortfolioManager(
            config=pcfg, strategies=strategies_cfg, symbols=self.symbols, ledger=ledger, risk=risk,
            sizer=PositionSizer(pcfg.sizing, pcfg.risk_per_trade_pct), targeter=VolatilityTargeter(pcfg.optimizer),
            monthly=monthly, gate=PreTradeGate(config.pre_trade, self.symbols), order_ids=OrderIdFactory(),
            router=self.executor, working=self.executor.store, now_ns=self.clock.now_ns,
            settles_at_ns=calendar_settlement(calendar, pcfg.settlement_days),
            adv_lookback_days=config.pre_trade.adv_lookback_days, flatten_via=self.broker_flatten.request,
        )  # fmt: skip
        self.live = LiveManager(
            self.portfolio, monthly=monthly, open_orders=lambda: len(self.executor.store.working()),
            now_ns=self.clock.now_ns, risk_log_path=self.files.risk_log, snapshot_path=self.snapshot_path,
            reduce_only_on_monitor_stale=config.operational_risk.on_monitor_stale == "reducing",
        )  # fmt: skip
        if snapshot is not None:
            self.live.restore(snapshot)
        history = max([s.history_rows for s in self.strategies]
                      + [config.pre_trade.adv_lookback_days, pcfg.optimizer.lookback_days + 1])  # fmt: skip
        self.daily_bars = DailyBarFeed(self.symbols, self.connection, calendar, self.clock, history_sessions=history,
                                       on_history=self._on_daily_history, on_close=self._on_session_close)  # fmt: skip
        self.positions = PositionReconciler(
            self.clock, self.portfolio.ledger.open_positions, self.sync.broker_positions, self._halt_no_orders,
            lambda: "blocked" if self.live.state is TradingState.HALTED else "enabled",
            self.executor.symbols_in_motion, on_ok=self._on_reconciled,
        )  # fmt: skip
        self.performance = PerformanceTracker(self.files.daily_equity, initial_capital=pcfg.initial_capital)
        self._catch_up_journal_fills()  # also without a snapshot: a crash before the first one was written
        log.info("event=state_loaded snapshot=%s journal_orders=%d working=%d", "restored" if snapshot else "none",
                 len(self.journal.state.orders), self._recovered_working)  # fmt: skip

    def _build_operations(self) -> None:
        """Heartbeat (ZeroMQ + CSV), the CURVE command channel, kill flags and the monitor's heartbeat watch."""
        ops = self.config.operational_risk
        curve = curve_for(ops.heartbeat_endpoint, self.files.command_keys_dir, ops.command_authorized_clients)
        self.heartbeat = HeartbeatPublisher(csv_path=self.files.heartbeat_csv, clock=self.clock,
                                            endpoint=ops.heartbeat_endpoint, curve=curve)  # fmt: skip
        self._closables.append(self.heartbeat)
        handler = CommandHandler(self)

        def on_command_error(error: Exception, command: object) -> None:
            self._on_handler_error(error, command, handler.handle)  # a command meets the same policy as an event

        self.commands = CommandServer(ops.command_endpoint, self.files.command_keys_dir, handler, self.clock,
                                      authorized_clients=ops.command_authorized_clients,
                                      max_age_s=ops.command_max_age_s, on_error=on_command_error)  # fmt: skip
        self._closables.append(self.commands)
        self.kill_flags = KillFlagWatcher(self.files.kill_flag, self.files.kill_now_flag)
        self.monitor = MonitorWatch(self.files.monitor_heartbeat, ops.on_monitor_stale,
                                    stale_after_s(ops.heartbeat_interval_s, ops.missed_heartbeats))  # fmt: skip
        self._next_blocked_log_ns = 0

    def _catch_up_journal_fills(self) -> None:
        """Apply journaled fills the snapshot predates (a crash between a fill and the next snapshot).

        Why: the executor journals a fill (fsync) before the ledger sees it, and the snapshot is written only every
        ``risk_log_interval_s``; after a SIGKILL the journal can hold fills the restored ledger lacks. The executor
        treats those exec ids as already processed (it must: the broker repeats them), so without this catch-up
        the books would differ from the broker's positions and the start-up reconciliation would halt.
        """
        missing = journal_fills_missing_from(self.journal.path, self.journal.state,
                                             set(self.portfolio.ledger.applied_exec_ids()))  # fmt: skip
        for fill in missing:
            log.warning("event=journal_fill_caught_up client_order_id=%s exec_id=%s symbol=%s side=%s qty=%d "
                        "price=%s (fill after the last snapshot)", fill.client_order_id, fill.exec_id, fill.symbol,
                        fill.side.name, fill.quantity, fill.price)  # fmt: skip
            self.live.on_fill(fill)

    # -------------------------------------------------------------------------------------------- wiring
    def _route(self) -> None:
        ex = self.executor.routes()
        md = self.market_data
        table: dict[type, list[Any]] = {kind: [] for kind in IB_MESSAGE_TYPES}
        daily = self.daily_bars
        flat = self.broker_flatten
        sync = self.sync
        table[IbConnected] = [self.ids.on_connected, ex[IbConnected], md.on_connected, self._on_connected,
                              flat.on_connected, sync.on_connected, daily.on_connected]  # fmt: skip
        table[IbDisconnected] = [md.on_disconnected, daily.on_disconnected, self._on_disconnected, flat.on_disconnected,
                                 sync.on_disconnected]  # fmt: skip
        table[IbError] = [ex[IbError], md.on_error, daily.on_error]
        for kind in (IbOpenOrder, IbOrderStatus, IbExecDetails, IbCommissionReport):
            table[kind] = [ex[kind]]
        table[IbOpenOrderEnd] = [sync.on_open_order_end, flat.on_open_order_end]
        table[IbExecDetailsEnd] = [sync.on_exec_details_end]
        table[IbPosition] = [sync.on_position]
        table[IbPositionEnd] = [sync.on_position_end, flat.on_position_end]
        table[Reconciled] = [self.positions.on_reconciled]
        table[IbBar] = [md.on_bar, daily.on_bar]
        table[IbHistoricalEnd] = [daily.on_end]
        table[IbTick] = [md.on_tick]
        table[IbDataStale] = [md.on_data_stale]
        table[MarketEvent] = [self.live.on_mark, daily.on_intraday]  # intraday bars; daily ones come from `daily`
        table[SignalEvent] = [self._on_signal]
        store = self.executor.store  # the books first, then the store's working view (it follows the books)
        table[FillEvent] = [self.live.on_fill, store.on_fill_booked, flat.on_fill]
        table[OrderFailedEvent] = [self.live.on_order_failed, store.on_failure_booked]
        for kind, handlers in table.items():
            self.queue.route(kind, handlers)

    # -------------------------------------------------------------------------------------------- handlers
    def _on_daily_history(self, event: MarketEvent) -> None:
        """A past session's bar: indicators and ADV only (no mark, no decision)."""
        self.live.on_history(event)
        for strategy in self.strategies:
            if strategy.enabled:
                self.queue.call(strategy.warm, event)

    def _on_session_close(self, event: MarketEvent) -> None:
        """A session just closed: the backtester's per-session step (portfolio, then strategies, then their
        signals), and the daily equity record.

        The signals are handled here, not queued, so no intraday mark that is already waiting in the queue can move
        the book between the decision and the sizing: the order is sized on the close, as in the backtest. The
        daily equity record (an fsynced file) is written after the orders have left, not in their way.
        """
        self.live.on_market(event)
        equity, gross = self.portfolio.ledger.valuation()  # the close's valuation, recorded once the orders are out
        session = pd.Timestamp(event.ts_event_ns, unit="ns", tz="UTC").tz_convert(NEW_YORK).tz_localize(None)
        self._session_signals.clear()
        for strategy in self.strategies:
            if strategy.enabled:
                self.queue.call(strategy.on_market, event)  # a StrategyError disables that strategy only
        signals = list(self._session_signals)  # the strategies hold this list's append: clear it, never replace it
        self._session_signals.clear()
        for signal_event in signals:
            log.info("event=signal session=%s strategy_id=%s symbol=%s direction=%s reference_price=%r",
                     session.date(), signal_event.strategy_id, signal_event.symbol, signal_event.direction.name,
                     signal_event.reference_price)  # fmt: skip
            self._on_signal(signal_event)
        self.performance.record_session_close(session.normalize(), equity, gross)  # fsyncs: after the orders

    def _on_connected(self, message: IbConnected) -> None:
        self.connected = True
        log.info("event=engine_connected reconnect=%s next_valid_id=%d", message.reconnect, message.next_valid_id)

    def _on_disconnected(self, message: IbDisconnected) -> None:
        self.connected = False
        log.warning("event=engine_disconnected reason=%s", message.reason)

    @property
    def reconciled(self) -> bool:
        """The broker's positions matched the books after start-up: trading may start."""
        return self.positions.reconciled

    def _on_signal(self, signal_event: SignalEvent) -> None:
        """Every gate (STARTING, REDUCING and its reasons, HALTED) is the trading-state machine's one check."""
        self.live.on_signal(signal_event)

    def _quote(self, symbol: str) -> tuple[float | None, float | None]:
        """TCA's arrival and end price: the book's last mark (the 5-s bars carry no bid/ask, so no spread)."""
        portfolio = getattr(self, "portfolio", None)
        price = portfolio.last_price(symbol) if portfolio is not None else None
        return (price if price is not None and math.isfinite(price) else None), None

    def _load_tca(self) -> None:
        """The journal's TCA rows into ``results/tca_log.duckdb`` (idempotent on exec id); a busy or broken TCA log
        is logged and left for the nightly load, it never changes how the engine stops."""
        ib = self.config.ib_connection
        source = "sim" if ib.mode == "sim" else ("paper" if ib.account.startswith("DU") else "live")
        try:
            from tca.from_journal import load_journal  # at stop only: the running engine never opens DuckDB

            report = load_journal(self.files.journal, self.files.tca_db, source)
            log.info("event=tca_loaded db=%s inserted=%d already=%d conflicts=%d", self.files.tca_db, report.inserted,
                     report.duplicates, len(report.conflicts))  # fmt: skip
        except Exception as exc:
            log.warning("event=tca_load_failed db=%s error=%s (python -m tca.from_journal loads it later)",
                        self.files.tca_db, exc)  # fmt: skip

    def _on_executor_halt(self, reason: str) -> None:
        self.live.halt(f"executor: {reason}")

    def _halt_no_orders(self, reason: str) -> None:
        """HALTED without cancel or flatten: our books are not trusted, so we send nothing at all."""
        self.trading.halt(reason, self.clock.now_ns())
        self.executor.refuse_new_orders(f"halted without orders: {reason}")

    # -------------------------------------------------------------------------------------------- controls
    def status(self) -> dict[str, Any]:
        """Plain-JSON state for STATUS replies and logs."""
        fields = self.live.heartbeat_fields()
        trading = self.trading.describe()
        return {
            **fields,
            "halt_reason": trading["halt_cause"],
            "reasons": trading["reasons"],
            "kill": self.kill_level.name,
            "connected": self.connected,
            "reconciled": self.reconciled,
            "accepting_orders": self.executor.accepting_orders,
            "reserved_cash": round(self.portfolio.reserved_cash, 2),
            "working_symbols": sorted(self.portfolio.working_symbols()),
            "ignored_signals": dict(self.portfolio.ignored_signals),
            "position_by_symbol": self.portfolio.ledger.open_positions(),
            "fills_today": self.live.fills_today(self.clock.now_ns()),
            "last_daily_bar": None if self.daily_bars.last_date is None else str(self.daily_bars.last_date.date()),
            "session_decisions": self.daily_bars.decisions,
            "monitor_policy": self.monitor.policy,
            "monitor_stale": None if self.monitor.last is None else self.monitor.last.stale,
            "monitor_age_s": None if self.monitor.last is None else self.monitor.last.age_s,
            "trading_blocked_by_monitor": not self.monitor.trading_allowed,
        }

    def halt(self, reason: str) -> None:
        self.live.halt(reason)

    def cancel_all(self, reason: str) -> None:
        self.executor.cancel_all(reason)

    def flatten(self, reason: str) -> None:
        """Cancel all and close what the broker holds (asked first: ``live.broker_flatten``); reduce-only after."""
        self.live.set_reduce_only(True, reason, source=Reason.OPERATOR)
        self.executor.cancel_all(reason)
        self.broker_flatten.request(reason)

    def _on_reconciled(self) -> None:
        """A sync's positions check passed: STARTING ends (the first time); a kill seen earlier cancels and
        flattens now; a flatten that waited for the sync goes out."""
        self.trading.reconciled(self.clock.now_ns())
        if self._kill_actions_pending:
            self._kill_actions_pending = False
            self._kill_actions(self.kill_level, f"{self.kill_level.name} flag present at start-up")
        self.broker_flatten.try_start()

    def request_stop(self, reason: str, kind: str = "operator") -> None:
        """Stop the loop after this pass; ``kind`` (operator | kill) goes into the last heartbeat (an exit nobody
        ordered goes through ``_stop_unordered``)."""
        if self._stop_requested is None:
            self._stop_requested = reason
            self._stop_kind = kind
            log.warning("event=stop_requested reason=%s kind=%s", reason, kind)

    # -------------------------------------------------------------------------------------------- error policy
    def _on_handler_error(self, error: Exception, event: object, handler: Handler) -> None:
        """The dispatcher's error rule for every handler and timer (``core.error_policy.LIVE_ERROR_POLICY``)."""
        if isinstance(error, EngineCrashed):
            raise error  # a nested step (a strategy inside a session close) crashed: keep unwinding
        where = getattr(handler, "__qualname__", type(handler).__name__)
        action = action_for(error, LIVE_ERROR_POLICY)
        log.error("event=handler_error action=%s handler=%s event_type=%s error_type=%s error=%s", action, where,
                  type(event).__name__, type(error).__name__, error, exc_info=error)  # fmt: skip
        if action is ErrorAction.SKIP:
            return
        if action is ErrorAction.DISABLE_STRATEGY and isinstance(error, StrategyError):
            self._disable_strategy(error.strategy_id, str(error))
            return
        if action in (ErrorAction.HALT, ErrorAction.STOP_CORRUPT):
            self.live.halt(f"{type(error).__name__} in {where}: {error}")
            if action is ErrorAction.STOP_CORRUPT:
                self._stop_unordered(ExitCode.STATE_CORRUPT, f"state not trusted: {error}",
                                     f"{type(error).__name__}: {error}")  # fmt: skip
            return
        raise EngineCrashed(error, where) from error

    def _disable_strategy(self, strategy_id: str, why: str) -> None:
        for live_strategy in self.strategies:
            if live_strategy.strategy.strategy_id == strategy_id and live_strategy.enabled:
                live_strategy.enabled = False
                log.error("event=strategy_disabled strategy_id=%s reason=%r (the other strategies go on)",
                          strategy_id, why)  # fmt: skip

    def _crash(self, error: BaseException) -> None:
        """An exception nothing expected: the crash exit code and a last heartbeat that says so (the monitor kills)."""
        crashed = isinstance(error, EngineCrashed)
        text = str(error) if crashed else f"{type(error).__name__}: {error}"  # EngineCrashed already names the cause
        log.critical("event=engine_crashed error=%r action=exit_crash (the risk monitor kills and flattens)", text,
                     exc_info=error.error if crashed else error)  # fmt: skip
        self._stop_unordered(ExitCode.CRASH, "crash", text)

    def _stop_unordered(self, code: ExitCode, reason: str, error_text: str) -> None:
        """Stop with ``code`` and a last heartbeat ``stopping: crash`` carrying ``error_text``: an exit nobody
        ordered, so the risk monitor takes over (kills and flattens). Overrides a stop already requested."""
        self.exit_code = code
        self._crash_text = error_text[:CRASH_TEXT_MAX]
        self._stop_requested = self._stop_requested or reason
        self._stop_kind = "crash"
        log.warning("event=stop_requested reason=%s kind=crash exit_code=%d", self._stop_requested, code)

    def _on_kill(self, level: KillLevel, *, at_startup: bool = False) -> None:
        self.kill_level = level
        where = "at start-up (trading prevented)" if at_startup else "while running"
        reason = f"{level.name} flag present {where}"
        log.error("event=kill level=%s at_startup=%s action=halt_cancel_flatten", level.name, at_startup)
        if self._kill_deadline_ns is None:
            self._kill_deadline_ns = self.clock.now_ns() + int(KILL_EXIT_TIMEOUT_S * NS_PER_SECOND)
        self._next_reflatten_ns = self.clock.now_ns() + NS_PER_SECOND  # let the first flatten's orders go out
        if not (self.connected and self.reconciled):
            # nothing is journaled or sent before connect and reconcile: HALTED now, cancel and flatten then
            self.trading.halt(reason, self.clock.now_ns())
            self._kill_actions_pending = True
            log.warning("event=kill_actions_deferred level=%s reason=not_reconciled (cancel and flatten once the "
                        "broker's positions are known)", level.name)  # fmt: skip
            return
        self._kill_actions(level, reason)

    def _kill_actions(self, level: KillLevel, reason: str) -> None:
        flatten_by_policy = self.config.portfolio.risk.flatten_on_halt
        already_halted = self.portfolio.risk.state is TradingState.HALTED
        self.live.halt(reason)  # cancels and, by policy, flattens (from the broker's positions)
        if already_halted or level is KillLevel.KILL_NOW:
            self.executor.cancel_all(reason)
        must_flatten = level is KillLevel.KILL_NOW or flatten_by_policy
        if must_flatten and not self._flattened_by_kill and (already_halted or not flatten_by_policy):
            self.broker_flatten.request(reason)  # live.halt flattened already when the policy says so and was first
        self._flattened_by_kill = self._flattened_by_kill or must_flatten

    def _is_flat(self) -> bool:
        """Flat at the broker (its positions, as the last flatten round trip learned them) with nothing working."""
        return not self.executor.store.working() and self.broker_flatten.broker_flat()

    # -------------------------------------------------------------------------------------------- loop
    def _beat(self, _due_ns: int) -> None:
        self._publish_beat()
        interval = self.config.operational_risk.heartbeat_interval_s
        self.clock.call_at(self.clock.now_ns() + int(interval * NS_PER_SECOND), self._beat)

    def _publish_beat(self, *, stopping: bool = False) -> None:
        """One heartbeat; ``stopping`` marks the last one, saying why (``operator``: a signal or ``--duration``;
        ``kill``: a kill that ended flat; ``crash``: nobody ordered it, with the error), so the risk monitor is told,
        not left to guess, whether to kill."""
        fields = self.live.heartbeat_fields()
        equity, dd = fields["equity"], fields["drawdown_pct"]
        self.heartbeat.beat(
            trading_state=self.live.state,
            equity=math.nan if equity is None else float(equity),  # type: ignore[arg-type]
            drawdown_pct=math.nan if dd is None else float(dd),  # type: ignore[arg-type]
            extra={
                "positions": fields["positions"],
                "open_orders": fields["open_orders"],
                "connected": self.connected,
                "kill": self.kill_level.name,
                "stopping": self._stop_kind if stopping else False,
                "stop_reason": self._stop_requested if stopping else None,
                "error": self._crash_text if stopping else None,
            },
        )

    def _monitor_tick(self, _due_ns: int) -> None:
        """Read the risk monitor's heartbeat file and apply ``on_monitor_stale`` (see ``live.monitor_watch``).

        Polled at the engine's own heartbeat interval: staleness is measured in multiples of it, so a faster poll
        would add nothing and a slower one would delay reduce-only.
        """
        now = self.clock.now_ns()
        changed = self.monitor.poll(now)
        beat = self.monitor.last
        assert beat is not None
        if changed or self.monitor.policy == "reducing":  # idempotent; keeps LiveManager in step with the file
            self.live.on_monitor_status(stale=beat.stale, heartbeat_age_s=beat.age_s)
        if self.monitor.policy == "refuse_start":  # no new exposure until the monitor has been seen once
            never_seen = f"no fresh risk monitor heartbeat yet ({beat.reason})"
            self.live.set_reduce_only(not self.monitor.trading_allowed, never_seen, source=Reason.MONITOR_NEVER_SEEN)
        if changed and self.monitor.trading_allowed and self.monitor.policy == "refuse_start":
            log.warning("event=trading_unblocked reason=monitor_heartbeat_fresh policy=refuse_start age_s=%.3f pid=%s",
                        beat.age_s or 0.0, beat.pid)  # fmt: skip
        if not self.monitor.trading_allowed and now >= self._next_blocked_log_ns:
            self._next_blocked_log_ns = now + int(MONITOR_BLOCKED_REMINDER_S * NS_PER_SECOND)
            log.error("event=trading_blocked reason=monitor_heartbeat_stale policy=refuse_start path=%s detail=%s "
                      "message=\"no orders until the risk monitor writes a fresh heartbeat\"", self.monitor.path,
                      beat.reason)  # fmt: skip
        interval = self.config.operational_risk.heartbeat_interval_s
        self.clock.call_at(now + int(interval * NS_PER_SECOND), self._monitor_tick)

    def _daily_bars_tick(self, _due_ns: int) -> None:
        self.daily_bars.on_clock(self.clock.now_ns())
        self.clock.call_at(self.clock.now_ns() + int(DAILY_BARS_POLL_S * NS_PER_SECOND), self._daily_bars_tick)

    def _risk_tick(self, _due_ns: int) -> None:
        self.live.on_timer(self.clock.now_ns())
        interval = self.config.operational_risk.risk_log_interval_s
        self.clock.call_at(self.clock.now_ns() + int(interval * NS_PER_SECOND), self._risk_tick)

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)  # only sets a flag: the loop does the work

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def run(self, duration_s: float | None = None, *, install_signals: bool = True) -> int:
        """Connect and run until stopped (signal, duration, kill completed); returns the process exit code."""
        if install_signals:
            self._install_signals()
        start_ns = self.clock.now_ns()
        end_ns = None if duration_s is None else start_ns + int(duration_s * NS_PER_SECOND)
        level = self.kill_flags.poll()
        if level is not None:
            self._on_kill(level, at_startup=True)
        self._monitor_tick(start_ns)  # before connecting: refuse_start must hold from the very first bar
        self.connection.start()
        self._beat(start_ns)
        self._risk_tick(start_ns)
        self.clock.call_at(start_ns + int(DAILY_BARS_POLL_S * NS_PER_SECOND), self._daily_bars_tick)
        log.info("event=engine_started symbols=%s strategies=%s duration_s=%s heartbeat=%s commands=%s",
                 ",".join(self.symbols), ",".join(s.strategy.strategy_id for s in self.strategies), duration_s,
                 self.heartbeat.endpoint, self.commands.endpoint)  # fmt: skip
        try:
            self._loop(end_ns)
        except (Exception, EngineCrashed) as error:  # raised outside a handler, or a handler's crash
            self._crash(error)
        finally:
            self.close()
        return int(self.exit_code)

    def _loop(self, end_ns: int | None) -> None:
        while self._stop_requested is None:
            self.queue.wait(self.clock.seconds_until_next_timer(LOOP_MAX_WAIT_S))
            self.queue.run_until_empty()
            self.clock.fire_due(self.queue.call)
            self.queue.run_until_empty()
            self.commands.serve_once(0)
            self.queue.run_until_empty()
            now = self.clock.now_ns()
            if now >= self._next_kill_poll_ns:
                self._next_kill_poll_ns = now + int(KILL_POLL_S * NS_PER_SECOND)
                level = self.kill_flags.poll()
                if level is not None:
                    self._on_kill(level)
            self._check_exit(now, end_ns)

    def _check_exit(self, now_ns: int, end_ns: int | None) -> None:
        if end_ns is not None and now_ns >= end_ns:
            self.request_stop("duration elapsed")
        if self.kill_level is KillLevel.NONE or self._kill_deadline_ns is None:
            return
        settled = self.reconciled and not self.executor.store.working() and not self.broker_flatten.busy
        if settled and self._flattened_by_kill and not self._is_flat() and now_ns >= self._next_reflatten_ns:
            # an order in flight at the kill filled after the flatten went out: ask the broker again, close the rest
            self._next_reflatten_ns = now_ns + NS_PER_SECOND
            log.warning("event=kill_reflatten last_broker_positions=%s", self.broker_flatten.last_broker_positions)
            self.broker_flatten.request(f"{self.kill_level.name}: position left after the first flatten")
        if self.reconciled and self._is_flat():
            log.warning("event=kill_complete level=%s state=%s message=\"flat, no working orders: exiting\"",
                        self.kill_level.name, self.live.state)  # fmt: skip
            self.request_stop(f"{self.kill_level.name} complete", kind="kill")
        elif now_ns >= self._kill_deadline_ns:
            log.error("event=kill_timeout level=%s timeout_s=%s positions=%s working=%d message=\"NOT FLAT after "
                      "the kill timeout: check the broker by hand\"", self.kill_level.name, KILL_EXIT_TIMEOUT_S,
                      self.portfolio.ledger.open_positions(), len(self.executor.store.working()))  # fmt: skip
            self._stop_unordered(ExitCode.KILL_NOT_FLAT, f"{self.kill_level.name} timeout",
                                 "kill did not end flat within its timeout")  # fmt: skip

    def close(self) -> None:
        """Graceful stop: no new orders, disconnect, last snapshot and risk-log row, close files and sockets."""
        if self._closed:
            return
        self._closed = True
        if hasattr(self, "executor"):  # close() also runs after a construction that failed part way
            self.executor.refuse_new_orders("stopping")
        try:
            self.connection.stop()
        except Exception:
            log.exception("event=close_failed part=connection")
        try:
            self.live.on_timer(self.clock.now_ns())
            self.live.close()  # writes the last snapshot atomically
        except Exception:
            log.exception("event=close_failed part=live_manager")
        try:
            self._publish_beat(stopping=True)  # after the last snapshot: the monitor may now see the pid gone
        except Exception:
            log.exception("event=close_failed part=last_heartbeat")
        for item in reversed(self._closables):
            try:
                item.close()
            except Exception:
                log.exception("event=close_failed part=%s", type(item).__name__)
        if hasattr(self, "journal") and self._stop_kind != "crash":  # a crash exits at once; a later load catches up
            self._load_tca()
        log.info("event=engine_stopped reason=%s exit_code=%d status=%s", self._stop_requested, self.exit_code,
                 _short_status(self.status()))  # fmt: skip


def _short_status(status: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={status[k]}" for k in ("state", "positions", "open_orders", "kill"))


def build_engine(config: AppConfig, ports: EnginePorts | None = None, *, port: int | None = None) -> Engine:
    """The whole live process from the validated config; raises StateCorruptError / ConfigError before trading.

    ``ports`` (``live.ports``): the files, clock and broker connection to use; by default the config's, the wall
    clock and a connection to ``ib_connection`` (``port`` overrides its port, as ``main.py --port`` does).
    Resources opened before a failure are closed.
    """
    return Engine(config, ports if ports is not None else EnginePorts.from_config(config, port=port))
