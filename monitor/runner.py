"""The monitor's loop: watch the engine and the account, confirm breaches, start the kill, publish a heartbeat.

One thread runs the loop; it never blocks for long. Each turn it waits at most ``FAST_TICK_S`` on the engine's
ZeroMQ heartbeat socket (so a beat is taken as soon as it arrives), then:

- every turn: ``flags/KILL_NOW.flag`` (``fast_tick``: one ``stat``; an operator's kill starts within tens of
  milliseconds, no confirmation), the broker connection's requests, and every watcher (``evaluate``): liveness
  (``liveness.py``), the order log (``order_tail.py``), the risk log (``risk_log_reader.py``), the account
  (``broker.py`` + ``account_marks.py``) and every client's orders at the broker (``broker_orders.py``), judged by
  ``checks.py``. The reads are small, and a breach is seen within a turn of appearing (the account and the
  broker's orders within one refresh: every ``check_interval_s``);
- every ``risk_monitor.check_interval_s``, and at once when a breach is new (``check``): one step of the
  ``ConfirmationCounter``; a breach confirmed ``confirm_checks`` checks in a row triggers the ``KillFlow``
  (``kill.py``), which runs on its own thread. So a breach kills ``(confirm_checks - 1) x check_interval_s`` after
  it was first seen (a freeze: after the last beat became ``missed_heartbeats x heartbeat_interval_s`` old);
- every ``min(check_interval_s, heartbeat_interval_s)``: the heartbeat file (``heartbeat.py``).

An exception inside a turn is logged with its context and the loop goes on: the kill switch must outlive its own
bugs. A monitor that stops (SIGTERM, crash) never stops the engine by itself; the engine's ``on_monitor_stale``
policy decides what a silent monitor means.

``build_monitor`` is the wiring used by ``risk_monitor.py``, the tests and the benchmark.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import AppConfig, OperationalRiskConfig, RiskMonitorConfig, SystemConfig
from core.errors import ConfigError, StateCorruptError
from core.ipc_commands import CommandClient
from core.ipc_endpoints import is_tcp
from core.ipc_heartbeat import HeartbeatSubscriber, read_heartbeat_csv
from core.ipc_keys import ensure_keys
from monitor.account_marks import MARKS_FILE_NAME, AccountMarks, AccountView
from monitor.broker import BrokerLink, BrokerSnapshot
from monitor.broker_orders import BrokerOrderCounter
from monitor.checks import (
    BrokerOrderLimits,
    Finding,
    Kind,
    Limits,
    alarm,
    breach,
    broker_findings,
    broker_order_findings,
    liveness_findings,
    order_log_findings,
    risk_log_findings,
)
from monitor.findings_log import FindingsLog
from monitor.flags import flag_present
from monitor.heartbeat import MONITOR_HEARTBEAT_VERSION, write_monitor_heartbeat
from monitor.kill import ConfirmationCounter, KillFlow, KillReason, KillSettings, KillState
from monitor.liveness import EngineStatus, LivenessReport, LivenessTracker
from monitor.order_tail import OrderLogWatcher
from monitor.risk_log_reader import RiskLogReader

log = logging.getLogger(__name__)

CLIENT_NAME = "risk_monitor"


def _heartbeat_curve_client(ops: OperationalRiskConfig) -> tuple[Path, str] | None:
    """On TCP the engine's heartbeat is CURVE: subscribe as ``risk_monitor``, pinned to the engine's key, so a
    process squatting the port cannot fake beats. Keys are created if this runs first (the engine reuses them).
    On ``ipc://`` (a Unix socket in a 0700 folder) nobody else can publish there: no keys needed."""
    if not is_tcp(ops.heartbeat_endpoint):
        return None
    ensure_keys(Path(ops.command_keys_dir), ops.command_authorized_clients)
    return Path(ops.command_keys_dir), CLIENT_NAME
RISK_LOG_NAME = "risk_log.csv"
FAST_TICK_S = 0.02
STATUS_LOG_EVERY_S = 60.0
KILL_JOIN_ON_STOP_S = 5.0
MIN_BROKER_STALE_S = 3.0

EventHook = Callable[[str, int, str], None]  # (event name, ts_ns, detail): breach_seen, kill_triggered, kill steps


def _limits(rm: RiskMonitorConfig, ops: OperationalRiskConfig) -> Limits:
    """The thresholds ``checks.py`` judges the engine's logs and the account by, gathered from two config sections."""
    return Limits(
        kill_drawdown_pct=rm.kill_drawdown_pct,
        max_daily_loss_pct=rm.max_daily_loss_pct,
        max_daily_fills=rm.max_daily_fills,
        max_daily_fill_notional_usd=rm.max_daily_fill_notional_usd,
        max_orders_per_window=ops.max_orders_per_window,
        order_rate_window_s=ops.order_rate_window_s,
        duplicate_order_alarm_count=ops.duplicate_order_alarm_count,
    )


def _broker_order_limits(rm: RiskMonitorConfig) -> BrokerOrderLimits:
    """The thresholds on every client's orders at the broker (what an engine bypassing its order log would trip)."""
    return BrokerOrderLimits(
        max_open_orders=rm.max_broker_open_orders,
        max_submissions_per_window=rm.max_broker_submissions_per_window,
        submission_window_s=rm.broker_submission_window_s,
    )


def _kill_settings(rm: RiskMonitorConfig, system: SystemConfig) -> KillSettings:
    """The kill flow's flag path and timeouts; the verify and cancel waits are derived from the command timeout."""
    return KillSettings(
        kill_flag_path=Path(system.kill_flag_path),
        command_timeout_s=rm.command_timeout_s,
        fallback_action=rm.fallback_action,
        verify_timeout_s=max(5.0, 3 * rm.command_timeout_s),
        cancel_wait_s=max(1.0, rm.command_timeout_s),
    )


class MonitorRunner:
    """Owns every watcher, the broker link and the kill flow; ``run(stop)`` until ``stop`` is set."""

    def __init__(
        self, config: AppConfig, *, clock: WallClock, port: int | None = None, on_event: EventHook | None = None
    ) -> None:
        self.config = config
        self.clock = clock
        self.on_event = on_event
        rm, ops, system = config.risk_monitor, config.operational_risk, config.system
        self.started_ns = clock.now_ns()
        self.check_interval_ns = int(rm.check_interval_s * NS_PER_SECOND)
        self.beat_interval_ns = int(min(rm.check_interval_s, ops.heartbeat_interval_s) * NS_PER_SECOND)
        self.limits = _limits(rm, ops)
        self.broker_order_limits = _broker_order_limits(rm)
        self.kill_now_path = Path(system.kill_now_flag_path)
        self.heartbeat_csv_path = Path(ops.heartbeat_flag_path)
        self.monitor_heartbeat_path = Path(ops.monitor_heartbeat_path)
        self.broker_stale_after_s = max(MIN_BROKER_STALE_S, 6 * rm.check_interval_s)
        self._init_watchers(port)
        self.counter = ConfirmationCounter(rm.confirm_checks)
        settings = _kill_settings(rm, system)
        self.kill = KillFlow(settings, self.broker, self._commander, self._engine_gone, clock, on_step=self._emit)
        self._keys_problem: str | None = None
        self._command_client: CommandClient | None = None
        self._prepare_keys()
        self._init_loop_state()

    def _init_watchers(self, port: int | None) -> None:
        """Open every source the checks read: the engine's heartbeats, its order and risk logs, the account marks,
        and the monitor's own broker connection (``port`` overrides ``ib_connection.port``)."""
        rm, ops, system = self.config.risk_monitor, self.config.operational_risk, self.config.system
        self.liveness = LivenessTracker(
            dead_after_s=ops.missed_heartbeats * ops.heartbeat_interval_s, started_ns=self.started_ns
        )
        self.subscriber = HeartbeatSubscriber(ops.heartbeat_endpoint, self.clock,
                                              curve_client=_heartbeat_curve_client(ops))  # fmt: skip
        self.orders = OrderLogWatcher(
            ops.order_rate_counter_path, started_ns=self.started_ns, window_s=ops.order_rate_window_s
        )
        self.risk_log = RiskLogReader(
            Path(system.log_dir) / RISK_LOG_NAME,
            started_ns=self.started_ns,
            stale_after_s=ops.missed_heartbeats * ops.risk_log_interval_s,
        )
        self.marks = AccountMarks(Path(system.state_dir) / MARKS_FILE_NAME)
        self.broker = BrokerLink(
            self.config.ib_connection, rm.risk_monitor_client_id, self.clock, port=port, refresh_s=rm.check_interval_s
        )
        self.broker_orders = BrokerOrderCounter(rm.broker_submission_window_s)

    def _init_loop_state(self) -> None:
        """What the loop learns and schedules as it runs: nothing seen yet, and every timer due at the start."""
        self.report: LivenessReport | None = None
        self.account_view: AccountView | None = None
        self.findings: list[Finding] = []
        self.findings_log = FindingsLog(
            self.config.risk_monitor.confirm_checks,
            lambda kind, ts_ns, detail: self._emit("breach_seen", ts_ns, f"{kind}: {detail}"),
        )
        self.seq = 0
        self.checks = 0
        self._next_check_ns = self.started_ns
        self._next_beat_ns = self.started_ns
        self._next_status_log_ns = self.started_ns + int(STATUS_LOG_EVERY_S * NS_PER_SECOND)
        self._closed = False
        self._new_breach = False
        self._failures: dict[str, int] = {}
        self._failure_logged_ns: dict[str, int] = {}

    # ================================================================== lifecycle
    def run(self, stop: threading.Event) -> int:
        """The loop (see the module docstring); returns the exit code (0) once ``stop`` is set."""
        self.broker.start()
        ops = self.config.operational_risk
        if flag_present(self.kill.settings.kill_flag_path):
            log.warning(
                'event=kill_flag_present_at_start path=%s message="the engine will not trade until an '
                'operator removes it; the monitor keeps watching"',
                self.kill.settings.kill_flag_path,
            )
        log.warning(
            "event=monitor_started pid=%d can_stop_engine=true heartbeat_endpoint=%s heartbeat_csv=%s "
            "order_log=%s risk_log=%s kill_flag=%s kill_now_flag=%s client_id=%d check_interval_s=%s "
            "confirm_checks=%d dead_after_s=%s",
            os.getpid(),
            ops.heartbeat_endpoint,
            self.heartbeat_csv_path,
            self.orders.path,
            self.risk_log.path,
            self.kill.settings.kill_flag_path,
            self.kill_now_path,
            self.config.risk_monitor.risk_monitor_client_id,
            self.config.risk_monitor.check_interval_s,
            self.counter.confirm_checks,
            self.liveness.dead_after_s,
        )
        try:
            while not stop.is_set():
                self.turn()
        finally:
            self.close()
        log.info(
            "event=monitor_stopped reason=signal checks=%d beats=%d kill=%s", self.checks, self.seq, self.kill.state
        )
        return 0

    def turn(self) -> None:
        """One pass of the loop: the operator's flag, every watcher, a confirmation check when due (or at once when
        a breach is new), the heartbeat when due, then a short wait on the engine's heartbeat socket."""
        now_ns = self.clock.now_ns()
        self._guarded("fast_tick", self.fast_tick, now_ns)
        self._guarded("evaluate", self.evaluate, now_ns)
        if now_ns >= self._next_check_ns or self._new_breach:
            self._next_check_ns = now_ns + self.check_interval_ns
            self._guarded("check", self.check, now_ns)
        if now_ns >= self._next_beat_ns:
            self._next_beat_ns = now_ns + self.beat_interval_ns
            self._guarded("heartbeat", self.write_heartbeat, self.clock.now_ns())
        wait_s = min(FAST_TICK_S, max(0.0, (self._wake_at_ns() - self.clock.now_ns()) / NS_PER_SECOND))
        try:
            self.liveness.observe_zmq(self.subscriber.poll(wait_s))
        except Exception:
            log.exception("event=monitor_turn_failed part=heartbeat_poll")
            self.clock.sleep(wait_s)

    def close(self) -> None:
        """Let a running kill finish (bounded), then release sockets, files and the broker connection."""
        if self._closed:
            return
        self._closed = True
        if self.kill.state is KillState.RUNNING and not self.kill.wait_finished(KILL_JOIN_ON_STOP_S):
            log.error("event=kill_interrupted_by_stop state=%s", self.kill.state)
        self.kill.stop(1.0)
        self.write_heartbeat(self.clock.now_ns())
        self.marks.flush(self.clock.now_ns())
        for name, close in (
            ("subscriber", self.subscriber.close),
            ("orders", self.orders.close),
            ("risk_log", self.risk_log.close),
            ("broker", self.broker.stop),
        ):
            try:
                close()
            except Exception:
                log.exception("event=close_failed part=%s", name)
        if self._command_client is not None:
            self._command_client.close()

    # ================================================================== the checks
    def fast_tick(self, now_ns: int) -> None:
        """The operator's flag (acted on at once, no confirmation) and the broker link's requests."""
        if self.kill.state is KillState.IDLE and flag_present(self.kill_now_path):
            detail = f"{self.kill_now_path} present (operator kill, no confirmation)"
            self.findings_log.note_first_seen(Kind.KILL_NOW, now_ns, detail)
            self.kill.trigger(KillReason(Kind.KILL_NOW, detail, now_ns, now_ns))
        self.broker.tick(now_ns)

    def evaluate(self, now_ns: int) -> None:
        """Every watcher once, judged by ``checks.py``; ``findings`` holds the result for the next check.

        Runs every turn (the reads are small: a heartbeat file, a ``/proc`` entry, what two logs grew by), so a
        breach is seen within a turn of appearing; ``_new_breach`` then brings the confirmation check forward.
        """
        self.report = report = self.liveness_report(now_ns)
        self.orders.poll()
        self.risk_log.poll()
        order_status = self.orders.status(now_ns)
        risk_status = self.risk_log.status(now_ns)
        snapshot = self.broker.snapshot()
        nlv_age_s = None
        if snapshot.ready and snapshot.net_liquidation is not None and snapshot.net_liquidation_ts_ns is not None:
            self.account_view = self.marks.update(snapshot.account, snapshot.net_liquidation, now_ns)
            nlv_age_s = (now_ns - snapshot.net_liquidation_ts_ns) / NS_PER_SECOND
        in_grace = (now_ns - self.started_ns) / NS_PER_SECOND < self.broker_stale_after_s
        broker_starting = in_grace and (not snapshot.ready or snapshot.net_liquidation is None)
        findings = [
            *liveness_findings(report),
            *order_log_findings(order_status, self.limits),
            *risk_log_findings(risk_status, self.limits),
        ]
        if not broker_starting:
            findings += broker_findings(
                snapshot.ready, self.account_view, nlv_age_s, self.broker_stale_after_s, self.limits
            )
            findings += self._broker_order_findings(snapshot, now_ns)
        if flag_present(self.kill_now_path):
            findings.append(breach(Kind.KILL_NOW, f"{self.kill_now_path} present"))
        if self._keys_problem is not None:
            findings.append(alarm(Kind.COMMAND_KEYS_UNAVAILABLE, self._keys_problem))
        self.findings = findings
        self.findings_log.update(findings, now_ns)
        self._new_breach = any(f.breach and f.kind not in self.counter.counts for f in findings)

    def _broker_order_findings(self, snapshot: BrokerSnapshot, now_ns: int) -> list[Finding]:
        """Every client's orders at the broker; judged only while connected (a lost connection is its own alarm)."""
        self.broker_orders.observe(snapshot)
        if not snapshot.ready:
            return []
        status = self.broker_orders.status(now_ns)
        return broker_order_findings(status, now_ns, self.broker_stale_after_s, self.broker_order_limits)

    def check(self, now_ns: int) -> None:
        """One confirmation step over the latest findings; a confirmed breach starts the kill."""
        self.checks += 1
        self._new_breach = False
        findings = self.findings
        confirmed = self.counter.update([f for f in findings if f.breach], now_ns)
        if confirmed is not None and self.kill.state is KillState.IDLE:
            first = self.findings_log.first_seen_ns.get(confirmed.kind, now_ns)
            self._emit("kill_triggered", now_ns, f"{confirmed.kind}: {confirmed.detail}")
            self.kill.trigger(KillReason(confirmed.kind, confirmed.detail, first, now_ns))
        if now_ns >= self._next_status_log_ns and self.report is not None:
            self._next_status_log_ns = now_ns + int(STATUS_LOG_EVERY_S * NS_PER_SECOND)
            log.info(
                "event=monitor_status state=%s engine=%s engine_age_s=%s breaches=%s alarms=%s",
                self.state,
                self.report.status,
                self.report.age_s,
                [f.kind.value for f in findings if f.breach],
                [f.kind.value for f in findings if not f.breach],
            )

    @property
    def state(self) -> str:
        """WATCHING, CONFIRMING (a breach not yet confirmed), KILLING, KILLED."""
        if self.kill.state is KillState.RUNNING:
            return "KILLING"
        if self.kill.state is not KillState.IDLE:
            return "KILLED"
        return "CONFIRMING" if any(f.breach for f in self.findings) else "WATCHING"

    # ================================================================== heartbeat
    def heartbeat_body(self, now_ns: int) -> dict[str, Any]:
        report = self.report
        snapshot = self.broker.snapshot()
        view = self.account_view

        def entry(f: Finding) -> dict[str, Any]:
            return {
                "kind": f.kind.value,
                "detail": f.detail,
                "since_ns": self.findings_log.since_ns.get(f.kind),
                "count": self.counter.counts.get(f.kind),
            }

        return {
            "v": MONITOR_HEARTBEAT_VERSION,
            "seq": self.seq,
            "ts_ns": now_ns,
            "pid": os.getpid(),
            "placeholder": False,
            "can_stop_engine": True,
            "started_ns": self.started_ns,
            "checks": self.checks,
            "engine_heartbeat_age_s": None if report is None or report.age_s is None else round(report.age_s, 3),
            "engine_seq": None if report is None else report.newest_seq,
            "engine_pid": None if report is None else report.pid,
            "engine_status": None if report is None else report.status.value,
            "engine_detail": None if report is None else report.detail,
            "state": self.state,
            "confirm_checks": self.counter.confirm_checks,
            "breaches": [entry(f) for f in self.findings if f.breach],
            "alarms": [entry(f) for f in self.findings if not f.breach],
            "first_seen_ns": {k.value: v for k, v in self.findings_log.first_seen_ns.items()},
            "kill": self.kill.record(),
            "broker": {
                "connected": snapshot.ready,
                "client_id": self.broker.client_id,
                "account": snapshot.account,
                "net_liquidation": snapshot.net_liquidation,
                "peak": None if view is None else view.peak,
                "drawdown_pct": None if view is None else round(view.drawdown_pct, 4),
                "daily_loss_pct": None if view is None else round(view.daily_loss_pct, 4),
                "positions": dict(snapshot.positions),
                "open_orders": snapshot.open_orders,
                "open_orders_ts_ns": snapshot.open_orders_ts_ns,
                "submissions_in_window": self.broker_orders.status(now_ns).submissions_in_window,
            },
        }

    def write_heartbeat(self, now_ns: int) -> None:
        self.seq += 1
        write_monitor_heartbeat(self.monitor_heartbeat_path, self.heartbeat_body(now_ns))

    # ================================================================== helpers
    def _wake_at_ns(self) -> int:
        """The next moment something is due: a check, or the newest beat turning stale (a freeze is seen then)."""
        stale_at = self.liveness.stale_at_ns()
        now_ns = self.clock.now_ns()
        return min(self._next_check_ns, stale_at if stale_at is not None and stale_at > now_ns else self._next_check_ns)

    def liveness_report(self, now_ns: int) -> LivenessReport:
        self.liveness.observe_csv(read_heartbeat_csv(self.heartbeat_csv_path))
        return self.liveness.assess(now_ns)

    def _engine_gone(self) -> bool:
        report = self.report
        return report is not None and report.status in (EngineStatus.GONE, EngineStatus.CRASHED)

    def _prepare_keys(self) -> None:
        """Create the command keys if this is the first run (the engine does the same; both are race-safe)."""
        ops = self.config.operational_risk
        if CLIENT_NAME not in ops.command_authorized_clients:
            self._keys_problem = (
                f"{CLIENT_NAME!r} is not in operational_risk.command_authorized_clients "
                f"{list(ops.command_authorized_clients)}: the monitor cannot command the engine"
            )
            log.error("event=command_keys_unavailable reason=%r", self._keys_problem)
            return
        try:
            ensure_keys(Path(ops.command_keys_dir), ops.command_authorized_clients)
        except (ConfigError, StateCorruptError, OSError) as exc:
            self._keys_problem = f"cannot prepare command keys in {ops.command_keys_dir}: {exc}"
            log.error("event=command_keys_unavailable reason=%r", self._keys_problem)

    def _commander(self) -> CommandClient | None:
        """The command client (kill thread), created on first use so keys written meanwhile are picked up."""
        if self._command_client is None:
            ops = self.config.operational_risk
            try:
                self._command_client = CommandClient(
                    ops.command_endpoint, Path(ops.command_keys_dir), CLIENT_NAME, self.clock
                )
            except (ConfigError, StateCorruptError, OSError) as exc:
                log.error("event=command_client_unavailable keys_dir=%s error=%s", ops.command_keys_dir, exc)
                return None
        return self._command_client

    def _emit(self, event: str, ts_ns: int, detail: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(event, ts_ns, detail)
            except Exception:
                log.exception("event=event_hook_failed event_name=%s", event)

    def _guarded(self, part: str, action: Callable[[int], None], now_ns: int) -> None:
        """Run one part of a turn; a failure is logged (with its traceback, at most once a minute per part)."""
        try:
            action(now_ns)
        except Exception:
            failures = self._failures.get(part, 0) + 1
            self._failures[part] = failures
            if now_ns >= self._failure_logged_ns.get(part, 0):
                self._failure_logged_ns[part] = now_ns + int(STATUS_LOG_EVERY_S * NS_PER_SECOND)
                log.exception("event=monitor_turn_failed part=%s failures=%d", part, failures)


def build_monitor(
    config: AppConfig, *, port: int | None = None, clock: WallClock | None = None, on_event: EventHook | None = None
) -> MonitorRunner:
    """The whole monitor from the validated config (``port`` overrides ``ib_connection.port``)."""
    return MonitorRunner(config, clock=clock or WallClock(), port=port, on_event=on_event)
