"""``build_engine(config, ports)``: every component of one live engine process, built in order and routed.

The ports (``live.ports``: the files, the clock and the broker connection) are handed in, so a test builds the
very engine ``main.py`` runs in one process against an in-process ibsim. The order of the steps matters:

1. state first (``_open_state``): the state dir locked, the portfolio snapshot (``StateCorruptError`` on a damaged
   file, which is never replaced), the journal cross-checked against it and replayed, the order log - all before
   any broker message;
2. the broker side: the connection from ``ports.connect`` (not started), ``IbOrderIds`` above every journaled id,
   ``IbExecutor`` (the owner of the order store; journaled orders recovered, never re-sent; the portfolio submits
   to it and reads working orders back) sending through ``live.order_client.ConnectionOrderClient``, the one
   ``BrokerSync``, ``BrokerFlatten`` (every flatten starts from the broker's positions), ``IbMarketDataHandler``;
3. the decision side: strategies (parameters from ``state/approved_params/<name>.yaml`` when present, else the
   config; the source is logged), the signal veto when a strategy enables it (``_build_veto``: the promoted
   models, ``ml.veto_scorer`` on the online store, ``live.session_features`` writing each close's features before
   its decision), ``PortfolioManager`` wrapped by ``LiveManager`` (risk log, snapshot), the session step,
   ``DailyBarFeed`` (the strategies' daily bars from the broker), the positions check after each sync,
   ``PerformanceTracker`` (daily equity); journal fills the snapshot predates are caught up;
4. operations: ``HeartbeatPublisher`` (ZeroMQ PUB + CSV), ``CommandServer`` (CURVE, keys in ``state/keys``),
   ``KillFlagWatcher`` and ``KillSwitch``, ``MonitorWatch`` (policy ``operational_risk.on_monitor_stale``), the
   timers;
5. the routing table: which handlers each message type reaches, in order.

What was opened before a failure is closed again, so a failed build leaves the state lock free.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from core.config_models import AppConfig, StrategiesConfig
from core.errors import ConfigError, DataError, StateCorruptError
from core.event_queue import EventQueue
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
from live.broker_sync import BrokerSync, Reconciled
from live.commands import CommandHandler
from live.controls import OperatorControls
from live.engine import Engine, EngineParts
from live.handler_errors import HandlerErrorRule
from live.journal_catchup import check_journal_covers_snapshot, journal_fills_missing_from
from live.kill_flags import KillFlagWatcher
from live.kill_switch import KillSwitch
from live.monitor_watch import MonitorWatch, stale_after_s
from live.order_client import ConnectionOrderClient
from live.ports import EnginePorts
from live.reconcile import PositionReconciler
from live.session_features import FEATURE_WINDOW_SESSIONS, SessionFeatures, SessionFeaturesWritten
from live.session_step import SessionStep
from live.state_lock import open_state_dir
from live.stop import StopState
from live.strategies import load_live_strategies
from live.timers import EngineTimers
from ml.algowheel_store import promoted_wheel_state
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
from portfolio.trading_state import TradingStateMachine
from portfolio.veto import SignalVeto
from portfolio.wheel_orders import build_wheel_execution
from utils.atomic_files import LOG_DIR_MODE, make_dir

log = logging.getLogger(__name__)


def build_engine(config: AppConfig, ports: EnginePorts | None = None, *, port: int | None = None) -> Engine:
    """The whole live process from the validated config; raises StateCorruptError / ConfigError before trading.

    ``ports`` (``live.ports``): the files, clock and broker connection to use; by default the config's, the wall
    clock and a connection to ``ib_connection`` (``port`` overrides its port, as ``main.py --port`` does).
    """
    if not config.symbols:
        raise ConfigError("config", ["symbols: the live engine needs a non-empty universe (got [])"])
    ports = ports if ports is not None else EnginePorts.from_config(config, port=port)
    stop = StopState()
    errors = HandlerErrorRule(stop)
    parts = EngineParts(config=config, symbols=tuple(config.symbols), files=ports.files, clock=ports.clock,
                        trading=TradingStateMachine(starting=True), stop=stop,
                        queue=EventQueue(on_error=errors))  # fmt: skip
    try:
        snapshot = _open_state(parts)
        calendar = TradingCalendar()
        _build_broker_side(parts, ports, calendar)
        _build_decision_side(parts, snapshot, calendar)
        errors.halt, errors.disable_strategy = parts.live.halt, parts.session.disable_strategy
        _build_operations(parts, errors)
        _route(parts)
    except BaseException:
        Engine(parts).close_resources()
        raise
    return Engine(parts)


# ------------------------------------------------------------------------------------------------------ state
def _open_state(parts: EngineParts) -> dict[str, Any] | None:
    """The state dir locked first (``live.state_lock``: a second engine on it raises StateInUseError, exit 2),
    then the snapshot, the journal cross-checked against it, and the logs.

    A corrupt, inconsistent or unusable file or folder raises StateCorruptError naming it, before anything is
    written; it is never replaced.
    """
    files = parts.files
    try:
        with ExitStack() as opened:
            state_lock = open_state_dir(files.state_dir)
            opened.callback(state_lock.close)
            make_dir(files.log_dir, LOG_DIR_MODE, tighten=True)
            snapshot = read_snapshot(files.snapshot)
            check_journal_covers_snapshot(files.journal, files.snapshot, snapshot)
            journal = OrderJournal(files.journal, now_ns=parts.clock.now_ns)
            opened.callback(journal.close)
            order_log = OrderSubmissionLog(files.order_log)
            opened.pop_all()
    except OSError as exc:  # a state or log path the engine cannot use: not a crash, and nothing was replaced
        where = exc.filename or files.state_dir
        raise StateCorruptError(f"{where}: cannot be used ({exc.strerror or exc}); nothing was changed: fix the "
                                "path or its permissions and restart") from exc  # fmt: skip
    parts.journal, parts.order_log = journal, order_log
    parts.closables.extend([state_lock, journal, order_log])
    return snapshot


# ------------------------------------------------------------------------------------------------------ broker
def _build_broker_side(parts: EngineParts, ports: EnginePorts, calendar: TradingCalendar) -> None:
    """Connection (not started), order ids above every journaled one, executor (journaled orders recovered:
    never re-sent), the one broker sync, the broker-truth flattener and the market data handler."""
    config, clock, queue = parts.config, parts.clock, parts.queue
    parts.connection = connection = ports.connect(queue.put, clock)
    client = ConnectionOrderClient(connection)
    parts.ids = IbOrderIds(parts.journal.state.max_ib_order_id + 1)
    parts.executor = executor = IbExecutor(
        client, parts.ids, parts.journal, parts.order_log, queue.put, clock, build_commission_model(config.costs),
        account=config.ib_connection.account, on_halt=lambda reason: parts.live.halt(f"executor: {reason}"),
        quote=lambda symbol: _last_mark(parts, symbol), run_id=f"engine-{clock.now_ns()}",
    )  # fmt: skip
    parts.recovered_working = executor.recover(parts.journal.state)
    parts.sync = sync = BrokerSync(client, queue.put, clock, execution_filter=execution_filter_for,
                                   finish_executor=executor.finish_reconciliation)  # fmt: skip
    parts.broker_flatten = BrokerFlatten(
        clock, request_positions=client.reqPositions, request_open_orders=client.reqOpenOrders,
        broker_positions=sync.broker_positions, flatten=lambda reason, held: parts.portfolio.flatten(reason, held),
        ready=lambda: sync.idle and parts.positions.reconciled,
    )  # fmt: skip
    parts.market_data = IbMarketDataHandler(parts.symbols, connection, queue.put, clock, BarGuard(calendar),
                                            source=config.ib_connection.intraday_marks)  # fmt: skip


def _last_mark(parts: EngineParts, symbol: str) -> tuple[float | None, float | None]:
    """TCA's arrival and end price: the book's last mark (the 5-s bars carry no bid/ask, so no spread)."""
    price = parts.portfolio.last_price(symbol) if hasattr(parts, "portfolio") else None
    return (price if price is not None and math.isfinite(price) else None), None


# ------------------------------------------------------------------------------------------------------ decision
def _books(parts: EngineParts, snapshot: dict[str, Any] | None) -> tuple[Ledger, RiskManager]:
    pcfg = parts.config.portfolio
    if snapshot is None:
        ledger = Ledger(pcfg.initial_capital, parts.symbols, account_type=pcfg.account_type,
                        allow_short=pcfg.allow_short)  # fmt: skip
        return ledger, RiskManager(pcfg.risk, trading=parts.trading)
    ledger, risk = restore_books(snapshot, pcfg.risk, parts.trading)
    if tuple(ledger.symbols) != parts.symbols:
        raise StateCorruptError(f"{parts.files.snapshot}: snapshot symbols {list(ledger.symbols)} differ from "
                                f"config symbols {list(parts.symbols)}; reconcile by hand")  # fmt: skip
    return ledger, risk


def _build_decision_side(parts: EngineParts, snapshot: dict[str, Any] | None, calendar: TradingCalendar) -> None:
    """The backtester's decision core (PortfolioManager) wrapped by LiveManager, the session step, the daily-bar
    feed, the positions check and the daily equity record; journal fills the snapshot predates are caught up."""
    config, pcfg, clock, executor = parts.config, parts.config.portfolio, parts.clock, parts.executor
    strategies_cfg, strategies, signals = load_live_strategies(config, parts.files.state_dir, parts.symbols,
                                                               clock.now_ns)  # fmt: skip
    ledger, risk = _books(parts, snapshot)
    veto = _build_veto(parts, strategies_cfg, [s.strategy.strategy_id for s in strategies])
    monthly = MonthlyTradeCounter(pcfg.max_trades_per_month)
    parts.portfolio = portfolio = PortfolioManager(
        config=pcfg, strategies=strategies_cfg, symbols=parts.symbols, ledger=ledger, risk=risk,
        sizer=PositionSizer(pcfg.sizing, pcfg.risk_per_trade_pct), targeter=VolatilityTargeter(pcfg.optimizer),
        monthly=monthly, gate=PreTradeGate(config.pre_trade, parts.symbols), order_ids=OrderIdFactory(),
        router=executor, working=executor.store, now_ns=clock.now_ns,
        settles_at_ns=calendar_settlement(calendar, pcfg.settlement_days),
        adv_lookback_days=config.pre_trade.adv_lookback_days, flatten_via=parts.broker_flatten.request,
        wheel=build_wheel_execution(config, calendar, promoted_wheel_state(config)), veto=veto,
    )  # fmt: skip
    parts.live = live = LiveManager(
        portfolio, monthly=monthly, open_orders=lambda: len(executor.store.working()), now_ns=clock.now_ns,
        risk_log_path=parts.files.risk_log, snapshot_path=parts.files.snapshot,
        reduce_only_on_monitor_stale=config.operational_risk.on_monitor_stale == "reducing", veto=veto,
    )  # fmt: skip
    if snapshot is not None:
        live.restore(snapshot)
    performance = PerformanceTracker(parts.files.daily_equity, initial_capital=pcfg.initial_capital)
    parts.session = session = SessionStep(live, strategies, signals, performance, parts.queue.call)
    history = max([s.history_rows for s in strategies] + [config.pre_trade.adv_lookback_days,
                  pcfg.optimizer.lookback_days + 1, FEATURE_WINDOW_SESSIONS if veto else 1])  # fmt: skip
    on_history, on_close = _daily_bar_targets(parts, session)
    parts.daily_bars = DailyBarFeed(parts.symbols, parts.connection, calendar, clock, history_sessions=history,
                                    on_history=on_history, on_close=on_close)  # fmt: skip
    parts.positions = PositionReconciler(
        clock, ledger.open_positions, parts.sync.broker_positions, lambda reason: _halt_no_orders(parts, reason),
        lambda: "blocked" if live.state is TradingState.HALTED else "enabled", executor.symbols_in_motion,
        on_ok=lambda: _on_reconciled(parts),
    )  # fmt: skip
    _catch_up_journal_fills(parts)  # also without a snapshot: a crash before the first one was written
    log.info("event=state_loaded snapshot=%s journal_orders=%d working=%d", "restored" if snapshot else "none",
             len(parts.journal.state.orders), parts.recovered_working)  # fmt: skip


def _build_veto(parts: EngineParts, strategies_cfg: StrategiesConfig, names: list[str]) -> SignalVeto | None:
    """The signal veto of the enabled strategies with ``veto.enabled`` (None when there is none): each one's
    promoted model scored on the online store's features (``ml.veto_scorer``, read through
    ``ml.feature_store.OnlineFeatures``), and the writer of each close's features (``live.session_features``).

    Applies the feature repository when needed (the first time: ``import feast`` and apply, a few seconds). A model
    that needs a feature the online store does not serve is a configuration error (exit 2).
    """
    vetoed = [name for name in names if getattr(strategies_cfg, name).veto.enabled]
    if not vetoed:
        return None
    from ml.veto_scorer import MultiStrategyScorer, OnlineVetoScorer, limit_model_threads, online_refs  # veto only

    models = _promoted_veto_models(strategies_cfg, vetoed)
    limit_model_threads()  # scoring a few rows on the loop: a thread pool only adds latency
    reader, writer = _feature_repo(parts.config), _feature_repo(parts.config)  # one SQLite connection per thread
    online = reader.online(online_refs(f for _, card in models.values() for f in card["features"]))
    parts.session_features = features = SessionFeatures(parts.symbols, writer, parts.clock, parts.queue.put,
                                                        lambda event: parts.session.on_close(event))  # fmt: skip
    parts.closables.append(features)
    scorers = {name: OnlineVetoScorer(estimator, card, online, lambda: features.last_close_ns, universe=parts.symbols)
               for name, (estimator, card) in models.items()}  # fmt: skip
    online.get(parts.symbols, 0)  # opens the store now rather than at the first decision
    cfgs = {name: getattr(strategies_cfg, name).veto for name in vetoed}
    for name, scorer in scorers.items():
        log.info("event=veto_loaded strategy=%s model_id=%s threshold=%s on_missing_features=%s repo=%s", name,
                 scorer.model_id, cfgs[name].threshold, cfgs[name].on_missing_features, reader.repo_path)  # fmt: skip
    return SignalVeto({n: c.threshold for n, c in cfgs.items()}, MultiStrategyScorer(scorers),
                      {n: c.on_missing_features for n, c in cfgs.items()})  # fmt: skip


def _promoted_veto_models(strategies_cfg: StrategiesConfig, vetoed: list[str]) -> dict[str, tuple[Any, dict]]:
    """strategy -> (estimator, card) of its promoted veto model. A strategy without one, or whose model needs a
    feature the store does not serve, is a configuration error naming the trainer command; a broken model file
    raises StateCorruptError naming it (``read_current``)."""
    from ml.veto_model_store import read_current

    models, problems = {}, []
    for name in vetoed:
        models_dir = getattr(strategies_cfg, name).veto.models_dir
        found = read_current(models_dir, name)
        if found is None:
            problems.append(f"strategies.{name}.veto.enabled is true but no veto model is promoted for {name} (no "
                            f"{models_dir}/veto/{name}/CURRENT): train and promote one with python -m "
                            f"ml.ml_model_trainer --strategy {name}, or set strategies.{name}.veto.enabled: "
                            "false")  # fmt: skip
            continue
        models[name], card = found, found[1]
        why = "its card lists no features" if not card.get("features") else _unserved(card["features"])
        if why:
            problems.append(f"strategies.{name}.veto: model {card.get('model_id')!r}: {why}; retrain it: "
                            f"python -m ml.ml_model_trainer --strategy {name}")  # fmt: skip
    if problems:
        raise ConfigError("signal veto", problems)
    return models


def _unserved(features: list[str]) -> str:
    """Why the feature store cannot serve ``features`` ("" when it can)."""
    from ml.veto_scorer import online_refs

    try:
        online_refs(features)
    except ValueError as exc:
        return str(exc)
    return ""


def _feature_repo(config: AppConfig) -> Any:
    from ml.feature_store import FeatureRepo

    try:
        return FeatureRepo.from_config(config.features)
    except DataError as exc:
        raise ConfigError("features", [f"features.repo_path: {exc}"]) from exc


def _daily_bar_targets(parts: EngineParts, session: SessionStep) -> tuple[Callable[[MarketEvent], None],
                                                                          Callable[[MarketEvent], None]]:  # fmt: skip
    """Where ``DailyBarFeed`` hands its bars: the session step, through the session features when a veto needs
    them (each close's decision then waits for its features: ``live.session_features``)."""
    features = parts.session_features
    if features is None:
        return session.on_history, session.on_close

    def on_history(event: MarketEvent) -> None:
        features.on_history(event)
        session.on_history(event)

    return on_history, features.on_close


def _halt_no_orders(parts: EngineParts, reason: str) -> None:
    """HALTED without cancel or flatten: our books are not trusted, so we send nothing at all."""
    parts.trading.halt(reason, parts.clock.now_ns())
    parts.executor.refuse_new_orders(f"halted without orders: {reason}")


def _on_reconciled(parts: EngineParts) -> None:
    """A sync's positions check passed: STARTING ends (the first time); a kill seen earlier cancels and
    flattens now; a flatten that waited for the sync goes out."""
    parts.trading.reconciled(parts.clock.now_ns())
    parts.kill.on_reconciled()
    parts.broker_flatten.try_start()


def _catch_up_journal_fills(parts: EngineParts) -> None:
    """Apply journaled fills the snapshot predates (a crash between a fill and the next snapshot).

    Why: the executor journals a fill (fsync) before the ledger sees it, and the snapshot is written only every
    ``risk_log_interval_s``; after a SIGKILL the journal can hold fills the restored ledger lacks. The executor
    treats those exec ids as already processed (it must: the broker repeats them), so without this catch-up the
    books would differ from the broker's positions and the start-up reconciliation would halt.
    """
    journal = parts.journal
    missing = journal_fills_missing_from(journal.path, journal.state,
                                         set(parts.portfolio.ledger.applied_exec_ids()))  # fmt: skip
    for fill in missing:
        log.warning("event=journal_fill_caught_up client_order_id=%s exec_id=%s symbol=%s side=%s qty=%d price=%s "
                    "(fill after the last snapshot)", fill.client_order_id, fill.exec_id, fill.symbol,
                    fill.side.name, fill.quantity, fill.price)  # fmt: skip
        parts.live.on_fill(fill)


# ------------------------------------------------------------------------------------------------------ operations
def _build_operations(parts: EngineParts, errors: HandlerErrorRule) -> None:
    """Heartbeat (ZeroMQ + CSV), the CURVE command channel, kill flags and switch, the monitor watch, the timers."""
    config, files, clock, ops = parts.config, parts.files, parts.clock, parts.config.operational_risk
    curve = curve_for(ops.heartbeat_endpoint, files.command_keys_dir, ops.command_authorized_clients)
    parts.heartbeat = HeartbeatPublisher(csv_path=files.heartbeat_csv, clock=clock, endpoint=ops.heartbeat_endpoint,
                                         curve=curve)  # fmt: skip
    parts.closables.append(parts.heartbeat)
    parts.kill_flags = KillFlagWatcher(files.kill_flag, files.kill_now_flag)
    parts.kill = kill = KillSwitch(
        clock, parts.trading, parts.live, parts.executor, parts.broker_flatten, parts.stop,
        flatten_on_halt=config.portfolio.risk.flatten_on_halt, connected=lambda: parts.sync.connected,
        reconciled=lambda: parts.positions.reconciled,
    )  # fmt: skip
    parts.monitor = MonitorWatch(files.monitor_heartbeat, ops.on_monitor_stale,
                                 stale_after_s(ops.heartbeat_interval_s, ops.missed_heartbeats))  # fmt: skip
    parts.controls = OperatorControls(
        clock, parts.trading, parts.live, parts.executor, parts.broker_flatten, parts.sync, parts.daily_bars,
        parts.monitor, kill_level=lambda: kill.level.name, reconciled=lambda: parts.positions.reconciled,
        features_status=None if parts.session_features is None else parts.session_features.status,
    )  # fmt: skip
    handler = CommandHandler(parts.controls)
    parts.commands = CommandServer(
        ops.command_endpoint, files.command_keys_dir, handler, clock, authorized_clients=ops.command_authorized_clients,
        max_age_s=ops.command_max_age_s, on_error=lambda error, command: errors(error, command, handler.handle),
    )  # a command meets the same error policy as an event  # fmt: skip
    parts.closables.append(parts.commands)
    parts.timers = EngineTimers(clock, ops, parts.heartbeat, parts.live, parts.monitor, parts.daily_bars, parts.stop,
                                connected=lambda: parts.sync.connected,
                                kill_level=lambda: kill.level.name)  # fmt: skip


# ------------------------------------------------------------------------------------------------------ routing
def _route(parts: EngineParts) -> None:
    """Which handlers each message reaches, in order (the books before the store's working view: it follows them)."""
    ex, md, daily, flat, sync = parts.executor.routes(), parts.market_data, parts.daily_bars, parts.broker_flatten, \
        parts.sync  # fmt: skip
    store, live = parts.executor.store, parts.live
    table: dict[type, list[Any]] = {kind: [] for kind in IB_MESSAGE_TYPES}
    table[IbConnected] = [parts.ids.on_connected, ex[IbConnected], md.on_connected, flat.on_connected,
                          sync.on_connected, daily.on_connected]  # fmt: skip
    table[IbDisconnected] = [md.on_disconnected, daily.on_disconnected, sync.on_disconnected, flat.on_disconnected]
    table[IbError] = [ex[IbError], md.on_error, daily.on_error]
    for kind in (IbOpenOrder, IbOrderStatus, IbExecDetails, IbCommissionReport):
        table[kind] = [ex[kind]]
    table[IbOpenOrderEnd] = [sync.on_open_order_end, flat.on_open_order_end]
    table[IbExecDetailsEnd] = [sync.on_exec_details_end]
    table[IbPosition] = [sync.on_position]
    table[IbPositionEnd] = [sync.on_position_end, flat.on_position_end]
    table[Reconciled] = [parts.positions.on_reconciled]
    table[IbBar] = [md.on_bar, daily.on_bar]
    table[IbHistoricalEnd] = [daily.on_end]
    table[IbTick] = [md.on_tick]
    table[IbDataStale] = [md.on_data_stale]
    table[MarketEvent] = [live.on_mark, daily.on_intraday]  # intraday bars; daily ones come from `daily`
    table[SignalEvent] = [live.on_signal]
    table[FillEvent] = [live.on_fill, store.on_fill_booked, flat.on_fill, live.on_order_booked]
    table[OrderFailedEvent] = [live.on_order_failed, store.on_failure_booked, live.on_order_booked]
    if parts.session_features is not None:
        table[SessionFeaturesWritten] = [parts.session_features.on_written]  # then the close's decision runs
    for kind, handlers in table.items():
        parts.queue.route(kind, handlers)
