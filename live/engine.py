"""The live engine's loop: one thread dispatching events, firing timers, serving commands and watching kill flags.

``live.wiring.build_engine(config, ports)`` builds every part (``EngineParts``) and routes the messages; ``Engine``
only runs them: ``run`` connects, ``_loop`` turns until a stop is requested (``live.stop``), ``close`` shuts down
in a fixed order (no new orders, disconnect, last snapshot, last heartbeat saying why, files and sockets, the TCA
load). Who owns what:

- the trading state: ``portfolio.trading_state.TradingStateMachine`` (STARTING until the first reconcile, ACTIVE,
  REDUCING with its reasons, HALTED with its cause), checked once in the pre-trade chain;
- each order: the executor's order store (``execution.order_store``);
- what the broker holds: ``live.broker_sync`` (one start-up/reconnect sync, one ``Reconciled`` event), checked
  against the ledger by ``live.reconcile``; every flatten starts from it (``live.broker_flatten``);
- a kill: ``live.kill_switch``; the session's decisions: ``live.session_step``; periodic work: ``live.timers``;
  the operator's commands: ``live.controls``; a handler's error: ``live.handler_errors`` (the policy table in
  ``core.error_policy``; anything it does not name is a crash: exit 4 and a last heartbeat ``stopping: crash``,
  which the risk monitor kills); the stop and the exit code: ``live.stop``.

Two bar streams, as in the backtest: strategies decide on **daily** bars only (``data.ib_daily_bars``: the broker's
history warms them up, each session's official bar runs the backtester's per-session step), so a signal comes from
the same bar and the same code as in the backtest. The 5-s real-time bars only mark the book between closes.

After a crash the snapshot may predate the last journaled fills: those are applied to the ledger at start-up
(``journal_fills_missing_from``, by exec id) before reconciliation compares positions with the broker. Start-up:
trading stays STARTING until the broker sync has let the executor adopt its journaled orders and book missed fills
(never re-sending) and the broker's positions equal the ledger's; a difference it cannot explain halts (no order
sent, no flatten). A kill flag present at start-up halts at once; its cancel and flatten wait for the reconcile.

Threads: everything here runs on the thread that calls ``run`` (the dispatcher thread). IB callbacks arrive on
``IbConnection``'s threads and only ``put`` messages on the ``EventQueue``; the ZAP authenticator has its own
thread inside ``CommandServer``. Signal handlers only set a flag. Nothing in the loop blocks on I/O for longer
than ``LOOP_MAX_WAIT_S``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import AppConfig
from core.event_queue import EventQueue
from core.frozen_heap import frozen_heap
from core.ib_wrapper import IbConnection
from core.ipc_commands import CommandServer
from core.ipc_heartbeat import HeartbeatPublisher
from data.ib_daily_bars import DailyBarFeed
from data.ib_handler import IbMarketDataHandler
from execution.ib_executor import IbExecutor, IbOrderIds
from execution.order_journal import OrderJournal
from execution.order_log import OrderSubmissionLog
from live.broker_flatten import BrokerFlatten
from live.broker_sync import BrokerSync
from live.controls import OperatorControls
from live.kill_flags import KillFlagWatcher
from live.kill_switch import KillSwitch
from live.monitor_watch import MonitorWatch
from live.ports import EngineFiles
from live.reconcile import PositionReconciler
from live.session_features import SessionFeatures
from live.session_step import SessionStep
from live.stop import EngineCrashed, StopKind, StopState
from live.timers import EngineTimers
from portfolio.live_manager import LiveManager
from portfolio.portfolio_manager import PortfolioManager
from portfolio.trading_state import TradingStateMachine

log = logging.getLogger(__name__)

LOOP_MAX_WAIT_S = 0.05  # longest the loop sleeps: bounds command latency and kill-flag reaction time
KILL_POLL_S = 0.1


@dataclass(eq=False, repr=False)
class EngineParts:
    """Every component of one engine process; ``live.wiring`` fills it in build order (see there)."""

    config: AppConfig
    symbols: tuple[str, ...]
    files: EngineFiles
    clock: WallClock
    trading: TradingStateMachine
    stop: StopState
    queue: EventQueue
    closables: list[Any] = field(default_factory=list)  # closed in reverse order at the end
    journal: OrderJournal = field(init=False)
    order_log: OrderSubmissionLog = field(init=False)
    connection: IbConnection = field(init=False)
    ids: IbOrderIds = field(init=False)
    executor: IbExecutor = field(init=False)
    recovered_working: int = field(init=False)
    sync: BrokerSync = field(init=False)
    broker_flatten: BrokerFlatten = field(init=False)
    market_data: IbMarketDataHandler = field(init=False)
    portfolio: PortfolioManager = field(init=False)
    live: LiveManager = field(init=False)
    session: SessionStep = field(init=False)
    session_features: SessionFeatures | None = None  # only with a signal veto (``live.session_features``)
    daily_bars: DailyBarFeed = field(init=False)
    positions: PositionReconciler = field(init=False)
    heartbeat: HeartbeatPublisher = field(init=False)
    kill_flags: KillFlagWatcher = field(init=False)
    kill: KillSwitch = field(init=False)
    monitor: MonitorWatch = field(init=False)
    controls: OperatorControls = field(init=False)
    commands: CommandServer = field(init=False)
    timers: EngineTimers = field(init=False)


class Engine:
    """One live trading process; built by ``live.wiring.build_engine``, driven by ``run``."""

    def __init__(self, parts: EngineParts) -> None:
        self.parts = parts
        self.config, self.files, self.clock, self.queue = parts.config, parts.files, parts.clock, parts.queue
        self.trading = parts.trading
        self._stop = parts.stop
        self._closed = False
        self._next_kill_poll_ns = 0

    @property
    def reconciled(self) -> bool:
        """The broker's positions matched the books after start-up: trading may start."""
        return self.parts.positions.reconciled

    @property
    def exit_code(self) -> int:
        return int(self._stop.exit_code)

    def status(self) -> dict[str, Any]:
        return self.parts.controls.status()

    def request_stop(self, reason: str, kind: StopKind = "operator") -> None:
        """Stop the loop after this pass (``live.stop``: an exit nobody ordered goes through ``unordered``)."""
        self._stop.request(reason, kind)

    def run(self, duration_s: float | None = None, *, install_signals: bool = True) -> int:
        """Connect and run until stopped (signal, duration, kill completed); returns the process exit code."""
        parts = self.parts
        if install_signals:
            self._install_signals()
        start_ns = self.clock.now_ns()
        end_ns = None if duration_s is None else start_ns + int(duration_s * NS_PER_SECOND)
        level = parts.kill_flags.poll()
        if level is not None:
            parts.kill.on_kill(level, at_startup=True)
        parts.timers.watch_monitor_now()  # before connecting: refuse_start must hold from the very first bar
        with frozen_heap(collect_first=True):  # the start-up heap out of the collector's scans (core.frozen_heap)
            parts.connection.start()
            parts.timers.start()
            log.info("event=engine_started symbols=%s strategies=%s duration_s=%s heartbeat=%s commands=%s",
                     ",".join(parts.symbols), ",".join(s.strategy.strategy_id for s in parts.session.strategies),
                     duration_s, parts.heartbeat.endpoint, parts.commands.endpoint)  # fmt: skip
            try:
                self._loop(end_ns)
            except (Exception, EngineCrashed) as error:  # raised outside a handler, or a handler's crash
                self._stop.crash(error)
            finally:
                self.close()
        return self.exit_code

    def _install_signals(self) -> None:
        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)  # only sets a flag: the loop does the work

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def _loop(self, end_ns: int | None) -> None:
        parts, queue = self.parts, self.queue
        while self._stop.requested is None:
            queue.wait(self.clock.seconds_until_next_timer(LOOP_MAX_WAIT_S))
            queue.run_until_empty()
            self.clock.fire_due(queue.call)
            queue.run_until_empty()
            parts.commands.serve_once(0)
            queue.run_until_empty()
            now = self.clock.now_ns()
            if now >= self._next_kill_poll_ns:
                self._next_kill_poll_ns = now + int(KILL_POLL_S * NS_PER_SECOND)
                level = parts.kill_flags.poll()
                if level is not None:
                    parts.kill.on_kill(level)
            if end_ns is not None and now >= end_ns:
                self.request_stop("duration elapsed")
            parts.kill.check(now)

    def close(self) -> None:
        """Graceful stop: no new orders, disconnect, last snapshot and risk-log row, last heartbeat, files and
        sockets, then the TCA load (not after a crash: a crash exits at once, a later load catches up)."""
        if self._closed:
            return
        self._closed = True
        parts = self.parts
        parts.executor.refuse_new_orders("stopping")
        _attempt("connection", parts.connection.stop)
        _attempt("live_manager", self._last_snapshot)
        _attempt("last_heartbeat", lambda: parts.timers.publish_beat(stopping=True))  # the monitor may see pid gone
        self.close_resources()
        if self._stop.kind != "crash":
            _load_tca(parts)
        log.info("event=engine_stopped reason=%s exit_code=%d status=%s", self._stop.requested, self.exit_code,
                 _short_status(self.status()))  # fmt: skip

    def _last_snapshot(self) -> None:
        self.parts.live.on_timer(self.clock.now_ns())
        self.parts.live.close()  # writes the last snapshot atomically

    def close_resources(self) -> None:
        """Files and sockets in reverse opening order (also after a build that failed part way)."""
        for item in reversed(self.parts.closables):
            _attempt(type(item).__name__, item.close)
        self.parts.closables.clear()


def _attempt(part: str, action: Callable[[], object]) -> None:
    """One shutdown step; a failure is logged and the next step still runs."""
    try:
        action()
    except Exception:
        log.exception("event=close_failed part=%s", part)


def _load_tca(parts: EngineParts) -> None:
    """The journal's TCA rows into ``results/tca_log.duckdb`` (idempotent on exec id); a busy or broken TCA log is
    logged and left for the nightly load, it never changes how the engine stops."""
    ib = parts.config.ib_connection
    source = "sim" if ib.mode == "sim" else ("paper" if ib.account.startswith("DU") else "live")
    try:
        from tca.from_journal import load_journal  # at stop only: the running engine never opens DuckDB

        report = load_journal(parts.files.journal, parts.files.tca_db, source)
        log.info("event=tca_loaded db=%s inserted=%d already=%d conflicts=%d", parts.files.tca_db, report.inserted,
                 report.duplicates, len(report.conflicts))  # fmt: skip
    except Exception as exc:
        log.warning("event=tca_load_failed db=%s error=%s (python -m tca.from_journal loads it later)",
                    parts.files.tca_db, exc)  # fmt: skip


def _short_status(status: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={status[k]}" for k in ("state", "positions", "open_orders", "kill"))
