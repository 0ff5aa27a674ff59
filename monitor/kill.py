"""From a breach to a stopped, flat account: the confirmation counter and the kill flow.

Confirmation: a breach kills only after ``risk_monitor.confirm_checks`` consecutive checks found it (one noisy
reading must not flatten the book); ``kill_now`` and ``engine_gone`` are acted on at once (the operator said so;
nothing is left to answer).

The kill flow (one per monitor process, on its own thread so the check loop and the heartbeat never wait for it)::

    IDLE ──trigger(reason)──► RUNNING
      1. KILL_NOW only: reqGlobalCancel through our own connection at once, before anything else
      2. write flags/KILL.flag with the reason (never removed by the monitor: un-killing takes an operator)
      3. engine not gone: HALT, then FLATTEN over the authenticated command channel, each waiting for the
         engine's acknowledgement up to command_timeout_s
         both acknowledged ─► verify through our own connection: flat within verify_timeout_s? ─► DONE
         (stop waiting early if the engine dies, or leaves positions with nothing working for settle_s)
      4. fallback (no answer, a refusal, engine gone, or not flat in time): reqGlobalCancel, wait until no order
         works; fallback_action "cancel_only" ─► DONE; "flatten": a market order per remaining position, verify
         flat; up to max_attempts rounds ─► DONE, else NOT_FLAT (logged as an error: check the broker by hand)
      5. DONE or NOT_FLAT: the guard keeps the account flat (cancel_only: without working orders) until the
         monitor stops; what reappears and stays settle_s gets another fallback round

Every step is logged (``event=kill_step step=... ts_ns=...``) and kept in ``record()`` for the heartbeat file.
The flow never un-kills and never runs twice: a later breach is only logged.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from core.clock import NS_PER_SECOND, WallClock
from core.ipc_commands import CommandReply
from monitor.broker import BrokerSnapshot
from monitor.checks import IMMEDIATE, Finding, Kind
from monitor.flags import write_kill_flag

log = logging.getLogger(__name__)

_POLL_S = 0.02
_GUARD_POLL_S = 0.2
_SNAPSHOT_TIMEOUT_S = 1.0
_RECANCEL_EVERY_S = 1.0
_WAIT_LOG_EVERY_S = 10.0


class ConfirmationCounter:
    """Consecutive checks in which each breach kind was seen; see the module docstring (monitor loop only)."""

    def __init__(self, confirm_checks: int) -> None:
        if confirm_checks < 1:
            raise ValueError(f"confirm_checks must be >= 1 (got {confirm_checks})")
        self.confirm_checks = confirm_checks
        self.counts: dict[Kind, int] = {}
        self.since_ns: dict[Kind, int] = {}

    def update(self, breaches: Sequence[Finding], now_ns: int) -> Finding | None:
        """Count this check's breaches; the confirmed one (immediate kinds first, then by kind order) or None."""
        by_kind: dict[Kind, Finding] = {}
        for finding in breaches:
            by_kind.setdefault(finding.kind, finding)
        for kind in list(self.counts):
            if kind not in by_kind:
                del self.counts[kind], self.since_ns[kind]
        for kind in by_kind:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.since_ns.setdefault(kind, now_ns)
        confirmed = [f for k, f in by_kind.items() if k in IMMEDIATE or self.counts[k] >= self.confirm_checks]
        order = list(Kind)
        confirmed.sort(key=lambda f: (f.kind not in IMMEDIATE, order.index(f.kind)))
        return confirmed[0] if confirmed else None


class KillState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    DONE = "DONE"
    NOT_FLAT = "NOT_FLAT"


@dataclass(frozen=True, slots=True)
class KillReason:
    kind: Kind
    detail: str
    first_seen_ns: int
    confirmed_ns: int


@dataclass(frozen=True, slots=True)
class KillSettings:
    kill_flag_path: Path
    command_timeout_s: float
    fallback_action: Literal["flatten", "cancel_only"]
    verify_timeout_s: float
    cancel_wait_s: float
    settle_s: float = 1.0  # an acknowledged engine that leaves positions this long with nothing working is done
    max_attempts: int = 3


class EngineCommander(Protocol):
    """The command channel as the kill flow uses it (``core.ipc_commands.CommandClient`` fits)."""

    def send(self, verb: str, timeout_s: float, *, retries: int = 0, reason: str = "") -> CommandReply: ...


class KillBroker(Protocol):
    """The monitor's broker connection as the kill flow uses it (``monitor.broker.BrokerLink`` fits)."""

    def snapshot(self) -> BrokerSnapshot: ...

    def request_snapshot(self) -> tuple[int, int]: ...

    def global_cancel(self) -> bool: ...

    def place_market(self, symbol: str, position: float, reason: str) -> int | None: ...


class KillFlow:
    """Runs the kill once, on its own thread; ``record()`` is safe to call from any thread."""

    def __init__(
        self,
        settings: KillSettings,
        broker: KillBroker,
        commander: Callable[[], EngineCommander | None],
        engine_gone: Callable[[], bool],
        clock: WallClock,
        *,
        on_step: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._broker = broker
        self._commander = commander
        self._engine_gone = engine_gone
        self._clock = clock
        self._on_step = on_step
        self._stop = threading.Event()
        self._finished = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.state = KillState.IDLE
        self.reason: KillReason | None = None
        self._steps: list[dict[str, Any]] = []
        self._started_ns: int | None = None
        self._finished_ns: int | None = None
        self._global_cancel_ns: int | None = None

    # ------------------------------------------------------------------ control (monitor loop)
    def trigger(self, reason: KillReason) -> bool:
        """Start the kill for ``reason``; False (and logged) if a kill already started."""
        with self._lock:
            if self.state is not KillState.IDLE:
                log.warning(
                    "event=kill_already_running state=%s new_kind=%s new_detail=%r",
                    self.state,
                    reason.kind,
                    reason.detail,
                )
                return False
            self.state, self.reason, self._started_ns = KillState.RUNNING, reason, self._clock.now_ns()
        log.error(
            "event=kill_triggered kind=%s detail=%r first_seen_ns=%d confirmed_ns=%d",
            reason.kind,
            reason.detail,
            reason.first_seen_ns,
            reason.confirmed_ns,
        )
        self._thread = threading.Thread(target=self._run, name="risk-monitor-kill", daemon=True)
        self._thread.start()
        return True

    def wait_finished(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the kill to end (DONE or NOT_FLAT; the guard goes on); True if it has."""
        return self._finished.wait(timeout_s) or self.state is KillState.IDLE

    def stop(self, timeout_s: float) -> None:
        """End the flow's waits and its guard (process shutdown); wait up to ``timeout_s`` for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    def record(self) -> dict[str, Any] | None:
        """The flow's record for the heartbeat file (None before a kill)."""
        with self._lock:
            if self.reason is None:
                return None
            r = self.reason
            return {
                "state": self.state.value,
                "reason": {
                    "kind": r.kind.value,
                    "detail": r.detail,
                    "first_seen_ns": r.first_seen_ns,
                    "confirmed_ns": r.confirmed_ns,
                },
                "started_ns": self._started_ns,
                "finished_ns": self._finished_ns,
                "global_cancel_ns": self._global_cancel_ns,
                "fallback_action": self.settings.fallback_action,
                "steps": [dict(step) for step in self._steps],
            }

    # ------------------------------------------------------------------ the flow (kill thread)
    def _run(self) -> None:
        try:
            self._kill()
        except Exception as exc:
            log.exception("event=kill_flow_failed")
            if self.state is KillState.RUNNING:
                self._finish(KillState.NOT_FLAT, f"kill flow failed: {exc!r}")

    def _kill(self) -> None:
        reason = self.reason
        if reason is None:
            return
        self._step("kill_started", f"kind={reason.kind} detail={reason.detail}")
        if reason.kind is Kind.KILL_NOW:  # first of all: the operator asked for it, every millisecond counts
            self._global_cancel("KILL_NOW: cancel everything before asking anyone")
        try:
            write_kill_flag(
                self.settings.kill_flag_path,
                {
                    "ts_ns": self._clock.now_ns(),
                    "source": "risk_monitor",
                    "pid": os.getpid(),
                    "kind": reason.kind,
                    "first_seen_ns": reason.first_seen_ns,
                    "reason": reason.detail,
                },
            )
            self._step("kill_flag_written", str(self.settings.kill_flag_path))
        except OSError as exc:
            self._step("kill_flag_failed", f"{self.settings.kill_flag_path}: {exc}")
        if self._engine_acknowledges(reason):
            if self._wait_flat(self.settings.verify_timeout_s, engine_acting=True):
                self._finish(KillState.DONE, "flat after the engine's HALT and FLATTEN")
                self._guard()
                return
            self._step("engine_not_flat_in_time", "the engine acknowledged but the account is not flat: taking over")
        if self._fallback("the engine did not stop trading itself"):
            what = "no working order (cancel_only: positions left as they are)"
            self._finish(KillState.DONE, what if self.settings.fallback_action == "cancel_only" else "flat")
        else:
            self._finish(KillState.NOT_FLAT, "NOT FLAT after every attempt: check the broker by hand")
        self._guard()

    def _engine_acknowledges(self, reason: KillReason) -> bool:
        if self._engine_gone():
            self._step("engine_commands_skipped", "the engine process is gone")
            return False
        commander = self._commander()
        if commander is None:
            self._step("engine_commands_skipped", "no command channel (keys unavailable)")
            return False
        text = f"risk monitor kill: {reason.kind}: {reason.detail}"[:400]
        for verb in ("HALT", "FLATTEN"):
            self._step(f"engine_{verb.lower()}_sent", f"timeout_s={self.settings.command_timeout_s:g}")
            try:
                reply = commander.send(verb, self.settings.command_timeout_s, reason=text)
            except Exception as exc:
                self._step(f"engine_{verb.lower()}_failed", repr(exc))
                return False
            self._step(f"engine_{verb.lower()}_reply", f"code={reply.code} message={reply.message!r}")
            if not reply.ok:
                return False
        return True

    def _fallback(self, why: str) -> bool:
        """Up to ``max_attempts`` rounds of cancel (and flatten); True once the account is as the action wants."""
        self._step("fallback_started", f"action={self.settings.fallback_action} why={why}")
        for attempt in range(1, self.settings.max_attempts + 1):
            if not self._await_ready():
                return False
            if self._fallback_round(attempt):
                return True
        return False

    def _fallback_round(self, attempt: int) -> bool:
        self._global_cancel(f"fallback attempt {attempt}")
        no_orders = self._wait_no_orders(self.settings.cancel_wait_s)
        if self.settings.fallback_action == "cancel_only":
            return no_orders
        snapshot = self._fresh_snapshot(_SNAPSHOT_TIMEOUT_S)
        if snapshot is not None and snapshot.flat:
            self._step("flatten_orders_sent", "no position")
            self._verified_flat(snapshot)
            return True
        positions = dict(snapshot.positions) if snapshot is not None else {}
        sent = {
            symbol: self._broker.place_market(symbol, position, f"risk monitor kill, attempt {attempt}")
            for symbol, position in sorted(positions.items())
        }
        self._step(
            "flatten_orders_sent",
            " ".join(f"{s}:{-p:+g}:id={sent[s]}" for s, p in sorted(positions.items())) or "no position",
        )
        return self._wait_flat(self.settings.verify_timeout_s)

    def _guard(self) -> None:
        """After the kill, keep the account as the kill left it until the process stops: flat (or, for
        cancel_only, without working orders). A position or an order that appears and stays ``settle_s`` (a frozen
        engine that woke up, an order in flight at the kill, an engine that closed too much and went short) gets
        another fallback round; once the engine is gone, nothing else can act, so two readings in a row suffice.
        The monitor never un-kills: the operator restarts it after removing the flag.
        """
        self._step("guard_started", f"keeping the account {self._wanted()} until the monitor stops")
        settle_ns = int(self.settings.settle_s * NS_PER_SECOND)
        wrong_since: int | None = None
        rounds = 0
        while not self._stop.wait(_GUARD_POLL_S):
            snapshot = self._fresh_snapshot(_SNAPSHOT_TIMEOUT_S)
            if snapshot is None:
                continue
            wrong = snapshot.open_orders > 0 if self.settings.fallback_action == "cancel_only" else not snapshot.flat
            now_ns = self._clock.now_ns()
            if not wrong:
                wrong_since = None
            elif wrong_since is None:
                wrong_since = now_ns
            elif now_ns - wrong_since >= (0 if self._engine_gone() else settle_ns):  # nobody else acts any more
                rounds += 1
                detail = f"positions {dict(snapshot.positions)} open orders {snapshot.open_orders}"
                self._step("guard_not_" + self._wanted().replace(" ", "_"), f"{detail} (round {rounds})")
                ok = self._await_ready() and self._fallback_round(rounds)
                self._step("guard_round_done", f"ok={ok}")
                wrong_since = None

    def _wanted(self) -> str:
        return "without working orders" if self.settings.fallback_action == "cancel_only" else "flat"

    # ------------------------------------------------------------------ broker waits
    def _global_cancel(self, why: str) -> None:
        sent = self._broker.global_cancel()
        if sent and self._global_cancel_ns is None:
            with self._lock:
                self._global_cancel_ns = self._clock.now_ns()
        self._step("global_cancel_sent" if sent else "global_cancel_not_sent", why)

    def _await_ready(self) -> bool:
        next_log_ns = 0
        while not self._broker.snapshot().ready:
            now_ns = self._clock.now_ns()
            if now_ns >= next_log_ns:
                self._step("waiting_for_broker", "the monitor's IB connection is down; retrying")
                next_log_ns = now_ns + int(_WAIT_LOG_EVERY_S * NS_PER_SECOND)
            if self._stop.wait(_POLL_S * 5):
                return False
        return True

    def _fresh_snapshot(self, timeout_s: float) -> BrokerSnapshot | None:
        """A snapshot answered after this call (positions and open orders), or None after ``timeout_s``."""
        positions_gen, orders_gen = self._broker.request_snapshot()
        deadline_ns = self._clock.now_ns() + int(timeout_s * NS_PER_SECOND)
        while self._clock.now_ns() < deadline_ns:
            snapshot = self._broker.snapshot()
            if snapshot.positions_generation >= positions_gen and snapshot.open_orders_generation >= orders_gen:
                return snapshot
            if self._stop.wait(_POLL_S):
                return None
        return None

    def _wait_flat(self, timeout_s: float, *, engine_acting: bool = False) -> bool:
        """True once a fresh snapshot is flat; False after ``timeout_s``.

        ``engine_acting``: the engine was asked to flatten, so stop waiting early when it can no longer get there:
        its process is gone, or nothing works at the broker and the positions left have not moved for
        ``settle_s`` (an engine that acknowledged and then left a position, or closed too much and went short).
        """
        deadline_ns = self._clock.now_ns() + int(timeout_s * NS_PER_SECOND)
        settle_ns = int(self.settings.settle_s * NS_PER_SECOND)
        idle: tuple[dict[str, float], int] | None = None  # (positions, since) while nothing works at the broker
        while True:
            now_ns = self._clock.now_ns()
            left_s = (deadline_ns - now_ns) / NS_PER_SECOND
            if left_s <= 0 or self._stop.is_set():
                return False
            snapshot = self._fresh_snapshot(min(_SNAPSHOT_TIMEOUT_S, left_s))
            if snapshot is not None and snapshot.flat:
                self._verified_flat(snapshot)
                return True
            if engine_acting and self._engine_gone():
                self._step("engine_gone_before_flat", "the engine exited or died with positions left")
                return False
            if engine_acting and snapshot is not None and snapshot.open_orders == 0:
                positions = dict(snapshot.positions)
                if idle is None or idle[0] != positions:
                    idle = (positions, now_ns)
                elif now_ns - idle[1] >= settle_ns:
                    self._step(
                        "engine_left_positions",
                        f"nothing working, positions {positions} unchanged for {self.settings.settle_s:g} s",
                    )
                    return False
            else:
                idle = None
            self._stop.wait(_POLL_S * 5)

    def _wait_no_orders(self, timeout_s: float) -> bool:
        deadline_ns = self._clock.now_ns() + int(timeout_s * NS_PER_SECOND)
        next_cancel_ns = self._clock.now_ns() + int(_RECANCEL_EVERY_S * NS_PER_SECOND)
        while self._clock.now_ns() < deadline_ns and not self._stop.is_set():
            snapshot = self._fresh_snapshot(_SNAPSHOT_TIMEOUT_S)
            if snapshot is not None and snapshot.open_orders == 0:
                self._step("no_working_orders", "")
                return True
            if self._clock.now_ns() >= next_cancel_ns:
                self._global_cancel("orders still working")
                next_cancel_ns = self._clock.now_ns() + int(_RECANCEL_EVERY_S * NS_PER_SECOND)
            self._stop.wait(_POLL_S * 5)
        self._step("orders_still_working", f"after {timeout_s:g} s")
        return False

    def _verified_flat(self, snapshot: BrokerSnapshot) -> None:
        self._step(
            "verified_flat",
            f"no position, no working order in account {snapshot.account or '?'} (the monitor's own connection)",
        )

    # ------------------------------------------------------------------ bookkeeping
    def _step(self, name: str, detail: str) -> None:
        ts_ns = self._clock.now_ns()
        with self._lock:
            self._steps.append({"step": name, "ts_ns": ts_ns, "detail": detail})
        level = logging.ERROR if name in ("kill_flag_failed", "global_cancel_not_sent") else logging.WARNING
        log.log(level, "event=kill_step step=%s ts_ns=%d detail=%r", name, ts_ns, detail)
        if self._on_step is not None:
            self._on_step(name, ts_ns, detail)

    def _finish(self, state: KillState, detail: str) -> None:
        with self._lock:
            self.state, self._finished_ns = state, self._clock.now_ns()
        self._step("kill_done" if state is KillState.DONE else "kill_not_flat", detail)
        if state is KillState.NOT_FLAT:
            log.error("event=kill_not_flat message=%r", detail)
        self._finished.set()
