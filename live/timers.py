"""The engine's periodic work on the clock's timers: heartbeat, the risk monitor's heartbeat watch, the risk log
and snapshot, and the wall-clock check for a session close.

Each task re-arms itself on the clock (``Clock.call_at``); the loop fires what is due through the queue, so a task
that raises meets the same error policy as a handler. The heartbeat's last beat (``publish_beat(stopping=True)``)
says why the engine stops (``operator``, ``kill`` or ``crash`` with the error), so the risk monitor is told, not
left to guess, whether to kill.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from core.clock import NS_PER_SECOND, Clock
from core.config_models import OperationalRiskConfig
from core.ipc_heartbeat import HeartbeatPublisher
from data.ib_daily_bars import DailyBarFeed
from live.monitor_watch import MonitorWatch
from live.stop import StopState
from portfolio.live_manager import LiveManager
from portfolio.trading_state import Reason

log = logging.getLogger(__name__)

MONITOR_BLOCKED_REMINDER_S = 30.0  # refuse_start: repeat the "trading blocked" log this often while blocked
DAILY_BARS_POLL_S = 30.0  # wall-clock check for a session close (a real gateway; ibsim's closes come via bars)


class EngineTimers:
    """``start(now)`` arms every task; all run on the dispatcher thread."""

    def __init__(
        self,
        clock: Clock,
        ops: OperationalRiskConfig,
        heartbeat: HeartbeatPublisher,
        live: LiveManager,
        monitor: MonitorWatch,
        daily_bars: DailyBarFeed,
        stop: StopState,
        *,
        connected: Callable[[], bool],
        kill_level: Callable[[], str],
    ) -> None:
        self._clock = clock
        self._heartbeat_ns = int(ops.heartbeat_interval_s * NS_PER_SECOND)
        self._risk_ns = int(ops.risk_log_interval_s * NS_PER_SECOND)
        self._heartbeat = heartbeat
        self._live = live
        self._monitor = monitor
        self._daily_bars = daily_bars
        self._stop = stop
        self._connected = connected
        self._kill_level = kill_level
        self._next_blocked_log_ns = 0

    def watch_monitor_now(self) -> None:
        """Before connecting: ``refuse_start`` must hold from the very first bar (the watch re-arms itself)."""
        self._monitor_tick(self._clock.now_ns())

    def start(self) -> None:
        """Heartbeat and risk log at once, then on their intervals; the session-close check after its interval."""
        now = self._clock.now_ns()
        self._beat(now)
        self._risk_tick(now)
        self._clock.call_at(now + int(DAILY_BARS_POLL_S * NS_PER_SECOND), self._daily_bars_tick)

    def publish_beat(self, *, stopping: bool = False) -> None:
        """One heartbeat; ``stopping`` marks the last one, saying why (see the module docstring)."""
        fields = self._live.heartbeat_fields()
        equity, dd = fields["equity"], fields["drawdown_pct"]
        stop = self._stop
        self._heartbeat.beat(
            trading_state=self._live.state,
            equity=math.nan if equity is None else float(equity),  # type: ignore[arg-type]
            drawdown_pct=math.nan if dd is None else float(dd),  # type: ignore[arg-type]
            extra={
                "positions": fields["positions"],
                "open_orders": fields["open_orders"],
                "connected": self._connected(),
                "kill": self._kill_level(),
                "stopping": stop.kind if stopping else False,
                "stop_reason": stop.requested if stopping else None,
                "error": stop.error_text if stopping else None,
            },
        )

    def _beat(self, _due_ns: int) -> None:
        self.publish_beat()
        self._clock.call_at(self._clock.now_ns() + self._heartbeat_ns, self._beat)

    def _risk_tick(self, _due_ns: int) -> None:
        self._live.on_timer(self._clock.now_ns())
        self._clock.call_at(self._clock.now_ns() + self._risk_ns, self._risk_tick)

    def _daily_bars_tick(self, _due_ns: int) -> None:
        self._daily_bars.on_clock(self._clock.now_ns())
        self._clock.call_at(self._clock.now_ns() + int(DAILY_BARS_POLL_S * NS_PER_SECOND), self._daily_bars_tick)

    def _monitor_tick(self, _due_ns: int) -> None:
        """Read the risk monitor's heartbeat file and apply ``on_monitor_stale`` (see ``live.monitor_watch``).

        Polled at the engine's own heartbeat interval: staleness is measured in multiples of it, so a faster poll
        would add nothing and a slower one would delay reduce-only.
        """
        now = self._clock.now_ns()
        monitor = self._monitor
        changed = monitor.poll(now)
        beat = monitor.last
        assert beat is not None
        if changed or monitor.policy == "reducing":  # idempotent; keeps LiveManager in step with the file
            self._live.on_monitor_status(stale=beat.stale, heartbeat_age_s=beat.age_s)
        if monitor.policy == "refuse_start":  # no new exposure until the monitor has been seen once
            never_seen = f"no fresh risk monitor heartbeat yet ({beat.reason})"
            self._live.set_reduce_only(not monitor.trading_allowed, never_seen, source=Reason.MONITOR_NEVER_SEEN)
            if changed and monitor.trading_allowed:
                log.warning("event=trading_unblocked reason=monitor_heartbeat_fresh policy=refuse_start age_s=%.3f "
                            "pid=%s", beat.age_s or 0.0, beat.pid)  # fmt: skip
        if not monitor.trading_allowed and now >= self._next_blocked_log_ns:
            self._next_blocked_log_ns = now + int(MONITOR_BLOCKED_REMINDER_S * NS_PER_SECOND)
            log.error("event=trading_blocked reason=monitor_heartbeat_stale policy=refuse_start path=%s detail=%s "
                      "message=\"no orders until the risk monitor writes a fresh heartbeat\"", monitor.path,
                      beat.reason)  # fmt: skip
        self._clock.call_at(now + self._heartbeat_ns, self._monitor_tick)
