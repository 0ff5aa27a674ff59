"""Crash cycles against real processes: SIGKILL the engine at chosen moments of the order path, restart, verify.

Shared by ``tests/e2e/test_engine_crash_cycles.py`` (20 cycles in CI) and ``bench/crash_cycles.py`` (100+), so
both run the very same procedure. One ibsim and one engine working directory for the whole run; each cycle starts
``python main.py``, waits for ``event=reconcile_positions_ok``, arms a seeded *trigger*, waits a seeded random
delay and ``os.killpg(SIGKILL)``s the engine's process group.

Why triggers instead of a plain random delay: the order path (signal -> journal intent + fsync -> placeOrder ->
ack -> fill) lasts about a millisecond once per simulated session of ~4 s, so kills at a uniform random time
almost never land inside it. A trigger watches something the engine or ibsim writes anyway (the engine's
``event=signal`` log line, an intent appended to the journal, ibsim's ``event=order_accepted`` or
``event=execution`` log line) and the kill follows it after a seeded delay of a fraction of a millisecond to two
milliseconds (``*_JITTER_S``); ``Trigger.RANDOM`` keeps plain uniform kills in the mix. No test-only
code path exists in the engine: the point each kill landed on is **derived afterwards** (``classify_kill``) from
the journal as it was at the kill, the order log and ibsim's log (accepted refs, executions with their times).

After the last cycle a verification run (``on_monitor_stale=refuse_start``, so the engine adopts and reconciles
but sends nothing new and the book comes to rest) checks the invariants; ``CrashReport.violations()`` lists
every breach in words a person can act on. Everything here runs in the caller's thread; processes are always
stopped (their process group) before a function returns or raises.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from core.clock import WallClock
from core.config_models import IbConnectionConfig
from core.event_queue import EventQueue
from core.ib_messages import IbConnected, IbOpenOrder, IbOpenOrderEnd, IbPosition, IbPositionEnd
from core.ib_wrapper import IbConnection
from core.ipc_commands import CommandClient
from testkit.waiting import free_port

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SYMBOLS = ["AAPL", "MSFT", "SPY", "QQQ", "IWM", "TLT", "GLD", "XLF"]  # all of ibsim's: more signals per session
SESSION_SIM_S = 6.5 * 3600
TRIGGER_JITTER_S = 0.002  # kill 0-2 ms after a signal or execution: the next step follows within ~1-2 ms
INTENT_JITTER_S = 0.0003  # kill 0-0.3 ms after an intent: the fsync-to-placeOrder window is only ~0.3 ms
ACK_JITTER_S = 0.0005  # kill 0-0.5 ms after ibsim accepted: the ack reaches the journal within ~0.5-1 ms
TORN_TAIL_SHARE = 0.25  # cycles whose kill also tears the record being written (see tear_last_record)
SIGNAL_WINDOW_NS = 20_000_000  # a signal this recent without its intent = the kill hit the decision
PROBE_CLIENT_IDS = range(20, 90)  # API client ids of the probes (the engine is 1, the risk monitor 2)
RECONCILE_TIMEOUT_S = 60.0
_probe_ids = itertools.cycle(PROBE_CLIENT_IDS)


class Trigger(StrEnum):
    RANDOM = "random"  # uniform delay over one session after reconciliation
    SIGNAL = "signal"  # the engine logged a strategy signal (decision made, intent not yet journaled)
    JOURNAL = "journal"  # an intent was appended to the journal (placeOrder imminent or just sent)
    ACCEPTED = "accepted"  # ibsim logged an accepted order (its ack is on its way to the engine)
    EXECUTION = "execution"  # ibsim logged an execution (the fill is on its way to the engine)


# One round of triggers. JOURNAL and EXECUTION twice: the journal-to-send window is the narrowest (~0.3 ms, hit by
# about two kills in three) and fills happen only when an order of the last decision fills.
TRIGGER_ROUND = (Trigger.RANDOM, Trigger.SIGNAL, Trigger.JOURNAL, Trigger.JOURNAL, Trigger.ACCEPTED,
                 Trigger.EXECUTION, Trigger.EXECUTION)  # fmt: skip


class KillPoint(StrEnum):
    """Where a kill landed, in order-path order; a kill may hit several (one per order in flight)."""

    SIGNAL_BEFORE_JOURNAL = "signal_before_journal"  # an order was due from a fresh signal; no intent journaled
    JOURNAL_BEFORE_SEND = "journal_before_send"  # intent journaled, the order never reached ibsim
    SEND_BEFORE_ACK = "send_before_ack"  # ibsim accepted it, no ack journaled
    FILL_BEFORE_JOURNAL = "fill_before_journal"  # mid-fill: ibsim executed before the kill, fill not journaled
    PARTIAL_FILL = "partial_fill"  # some executions journaled, the rest not (multi-execution orders only)
    WORKING = "working"  # an acked order was resting at ibsim (it fills while the engine is down)
    IDLE = "idle"  # nothing of the above


# ==================================================================================================== records
def ibsim_log_time_ns(text: str) -> int:
    """ibsim's ``logging`` asctime (local time, ms) as epoch ns."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp() * 1e9)


_ACCEPTED = re.compile(
    r"^(\S+ \S+) \S+ \S+ event=order_accepted client_id=(\d+) order_id=(\d+) .* ref=(\S+)", re.MULTILINE
)
_EXECUTION = re.compile(r"^(\S+ \S+) \S+ \S+ event=execution exec_id=(\S+) order_id=(\d+) client_id=(\d+) "
                        r"symbol=(\S+) side=(\S+) shares=(\S+)", re.MULTILINE)  # fmt: skip
_TORN_SET_ASIDE = re.compile(r"event=journal_torn_tail .*moved_to=|event=csv_torn_tail ")
_SIGNAL = re.compile(r"^(\S+)Z INFO \S+ event=signal session=(\S+) strategy_id=\S+ symbol=(\S+) direction=(\S+)",
                     re.MULTILINE)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Execution:
    ts_ns: int
    exec_id: str
    order_id: int
    client_id: int
    symbol: str
    signed_shares: float


@dataclass(slots=True)
class IbsimLog:
    """What ibsim's own log says happened: accepted orders (by ref) and executions, with wall times (ms)."""

    accepted: list[tuple[int, int, int, str]]  # (ts_ns, client_id, order_id, ref)
    executions: list[Execution]

    @classmethod
    def read(cls, path: Path) -> IbsimLog:
        text = path.read_text()
        accepted = [(ibsim_log_time_ns(m[1]), int(m[2]), int(m[3]), m[4]) for m in _ACCEPTED.finditer(text)]
        executions = [
            Execution(
                ibsim_log_time_ns(m[1]), m[2], int(m[3]), int(m[4]), m[5], float(m[7]) * (1 if m[6] == "BOT" else -1)
            )
            for m in _EXECUTION.finditer(text)
        ]
        return cls(accepted, executions)

    def ref_counts(self) -> Counter[str]:
        return Counter(ref for *_, ref in self.accepted)

    def executions_by_ref(self) -> dict[str, list[Execution]]:
        refs = {(client_id, order_id): ref for _, client_id, order_id, ref in self.accepted}
        by_ref: dict[str, list[Execution]] = defaultdict(list)
        for e in self.executions:
            by_ref[refs.get((e.client_id, e.order_id), f"?{e.client_id}/{e.order_id}")].append(e)
        return by_ref

    def positions(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for e in self.executions:
            totals[e.symbol] += e.signed_shares
        return {s: q for s, q in totals.items() if q != 0}


@dataclass(slots=True)
class JournalView:
    """The order journal's complete records folded per client order id (a torn last line is left out, as the
    engine's replay does)."""

    intents: dict[str, dict[str, Any]] = field(default_factory=dict)  # coid -> the intent's ``order``
    acked: set[str] = field(default_factory=set)
    terminal: set[str] = field(default_factory=set)
    fills: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: defaultdict(list))  # coid -> (exec, qty)
    fill_records: Counter[str] = field(default_factory=Counter)  # exec id -> records (must be 1)

    @classmethod
    def parse(cls, data: bytes) -> JournalView:
        view = cls()
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is torn (or empty)
            with contextlib.suppress(ValueError):
                view._add(json.loads(line))
        return view

    def _add(self, record: dict[str, Any]) -> None:
        coid, kind = record["client_order_id"], record["kind"]
        if kind == "intent":
            self.intents[coid] = record["order"]
        elif kind == "ack":
            self.acked.add(coid)
        elif kind == "fill":
            self.fills[coid].append((record["exec_id"], int(record["quantity"])))
            self.fill_records[record["exec_id"]] += 1
        elif kind in ("cancelled", "rejected", "expired"):
            self.terminal.add(coid)

    def filled(self, coid: str) -> int:
        return sum(q for _, q in self.fills.get(coid, []))

    def is_open(self, coid: str) -> bool:
        return coid not in self.terminal and self.filled(coid) < int(self.intents[coid]["quantity"])

    def positions(self) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for coid, order in self.intents.items():
            totals[order["symbol"]] += self.filled(coid) * (1 if order["side"] == "BUY" else -1)
        return {s: q for s, q in totals.items() if q != 0}


# ==================================================================================================== processes
def stop_group(proc: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """SIGTERM the process group, SIGKILL it after ``timeout_s``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)
    return int(proc.returncode)


def poll_until(cond: Callable[[], Any], timeout_s: float, interval_s: float = 0.05) -> Any:
    """``cond()``'s first truthy value, or None after ``timeout_s`` (callers decide whether that is a failure)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(interval_s)


def start_ibsim(log_path: Path, speed: float, seed: int) -> tuple[subprocess.Popen, int]:
    """``python -m ibsim`` on a free port in its own process group, logging to ``log_path``; (process, port)."""
    with log_path.open("w") as out:
        proc = subprocess.Popen([PYTHON, "-m", "ibsim", "--port", "0", "--speed", str(speed), "--seed", str(seed)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    found = poll_until(lambda: proc.poll() is not None
                       or re.search(r"event=listening host=\S+ port=(\d+)", log_path.read_text()), 30)  # fmt: skip
    if not isinstance(found, re.Match):
        stop_group(proc)
        raise RuntimeError(f"ibsim did not start listening; log:\n{log_path.read_text()[-2000:]}")
    return proc, int(found.group(1))


def fast_trading_config(ib_port: int, heartbeat_endpoint: str, command_endpoint: str,
                        monitor_policy: str = "ignore") -> dict[str, Any]:  # fmt: skip
    """config.yaml made to trade every session in a test: sma_crossover with very short periods on all of ibsim's
    symbols, 5 shares per order, fast heartbeats and risk-log rows, the given ports; no risk monitor runs unless a
    test starts one, so ``on_monitor_stale`` is "ignore" unless asked."""
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    raw["ib_connection"].update(port=ib_port, connect_timeout_s=3)
    raw["symbols"] = list(SYMBOLS)
    raw["strategies"]["momentum"]["enabled"] = False
    raw["strategies"]["mean_reversion"]["enabled"] = False
    raw["strategies"]["sma_crossover"].update(
        enabled=True, params={"fast_period": 2, "slow_period": 5, "atr_period": 2, "atr_stop_multiple": 2.0}
    )
    raw["portfolio"]["sizing"].update(method="fixed_shares", fixed_shares=5)
    raw["operational_risk"].update(
        heartbeat_interval_s=0.2, risk_log_interval_s=0.5, on_monitor_stale=monitor_policy,
        heartbeat_endpoint=heartbeat_endpoint, command_endpoint=command_endpoint,
    )  # fmt: skip
    return raw


class EngineWorkDir:
    """The engine's working directory (config, state, logs, flags) and the engine processes started in it.

    The config is the e2e one (``tests/e2e/engine_harness.py``): sma_crossover with very short periods on all of
    ibsim's symbols and 5 shares per order, so the engine trades every session. Each run's output goes to
    ``runs/<name>.out`` so every run stays readable after the next one started.
    """

    def __init__(self, root: Path, ib_port: int) -> None:
        self.root = root
        (root / "runs").mkdir(parents=True, exist_ok=True)
        self.cmd_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self._raw = fast_trading_config(ib_port, f"tcp://127.0.0.1:{free_port()}", self.cmd_endpoint)
        self._write()
        self.proc: subprocess.Popen | None = None

    @property
    def journal_path(self) -> Path:
        return self.root / "state" / "order_journal.jsonl"

    @property
    def order_log_path(self) -> Path:
        return self.root / "logs" / "order_submissions.csv"

    @property
    def kill_now_flag(self) -> Path:
        return self.root / "flags" / "KILL_NOW.flag"

    def _write(self) -> None:
        (self.root / "config.yaml").write_text(yaml.safe_dump(self._raw))

    def configure(self, *, order_type: str | None = None, monitor_policy: str | None = None) -> None:
        """Change the strategy's order type (MKT, MOC) or ``on_monitor_stale`` for the next start."""
        if order_type is not None:
            self._raw["strategies"]["sma_crossover"]["order_type"] = order_type
        if monitor_policy is not None:
            self._raw["operational_risk"]["on_monitor_stale"] = monitor_policy
        self._write()

    def update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Edit the raw config (``change`` mutates the dict) for the next start."""
        change(self._raw)
        self._write()

    def output_path(self, name: str) -> Path:
        return self.root / "runs" / f"{name}.out"

    def start(self, name: str, script: Path | None = None) -> subprocess.Popen:
        """``main.py`` (or ``script``, a test's wrapper of it) in its own process group, output in ``runs/``."""
        entry = script if script is not None else REPO / "main.py"
        with self.output_path(name).open("w") as out:
            self.proc = subprocess.Popen([PYTHON, str(entry), "--config", "config.yaml"], cwd=self.root,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        return self.proc

    def wait_reconciled(self, name: str, timeout_s: float = RECONCILE_TIMEOUT_S) -> str:
        """``ok``, ``mismatch`` (the engine halted on a position difference), ``exited`` or ``timeout``."""
        assert self.proc is not None
        path, proc = self.output_path(name), self.proc

        def outcome() -> str | None:
            text = path.read_text()
            if "event=reconcile_positions_mismatch" in text:
                return "mismatch"
            if "event=reconcile_positions_ok" in text:
                return "ok"
            return "exited" if proc.poll() is not None else None

        return poll_until(outcome, timeout_s, 0.01) or "timeout"

    def status(self) -> dict[str, Any] | None:
        """The engine's STATUS reply over the authenticated command channel, or None."""
        with CommandClient(self.cmd_endpoint, self.root / "state" / "keys", "operator", WallClock()) as client:
            reply = client.send("STATUS", 2.0)
        return dict(reply.data) if reply.ok else None


def broker_book(port: int, client_id: int | None = None) -> tuple[dict[str, float], list[int]]:
    """(non-zero positions, working order ids of every client) as ibsim reports them to a separate API client.

    Each call connects anew with the next of ``PROBE_CLIENT_IDS`` (unless ``client_id`` is given): ibsim frees a
    client id only once it has seen the previous socket close, so reusing one id back to back meets error 326.
    Raises TimeoutError if ibsim does not answer within 15 s.
    """
    client_id = next(_probe_ids) if client_id is None else client_id
    queue, clock = EventQueue(), WallClock()
    got: dict[str, list[Any]] = {"pos": [], "orders": []}
    done = {"pos": False, "orders": False}
    conn = IbConnection(IbConnectionConfig(port=port, connect_timeout_s=3.0), client_id, queue.put, clock,
                        backoff_initial_s=0.1, backoff_max_s=0.5)  # fmt: skip

    def on_connected(_: IbConnected) -> None:
        conn.send(lambda c: c.reqPositions(), "reqPositions")
        conn.send(lambda c: c.reqAllOpenOrders(), "reqAllOpenOrders")

    routes = {IbConnected: [on_connected], IbPosition: [got["pos"].append], IbOpenOrder: [got["orders"].append],
              IbPositionEnd: [lambda _: done.__setitem__("pos", True)],
              IbOpenOrderEnd: [lambda _: done.__setitem__("orders", True)]}  # fmt: skip
    for kind, handlers in routes.items():
        queue.route(kind, handlers)
    conn.start()
    try:
        deadline = time.monotonic() + 15
        while not (done["pos"] and done["orders"]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"ibsim on port {port} sent no positions/open orders to client {client_id}")
            queue.wait(0.05)
            while len(queue):
                with contextlib.suppress(TypeError):  # a message type this probe does not route
                    queue.dispatch_one()
    finally:
        conn.stop()
    latest = {m.symbol: m.position for m in got["pos"]}  # a pushed update after a fill replaces the earlier total
    positions = {s: q for s, q in latest.items() if q != 0}
    working = [m.order_id for m in got["orders"]
               if getattr(m.order_state, "status", "") in ("Submitted", "PreSubmitted")]  # fmt: skip
    return positions, working


# ==================================================================================================== cycles
@dataclass(frozen=True, slots=True)
class CyclePlan:
    index: int
    order_type: str  # MOC: orders rest through a session; MKT: accepted and filled at once
    trigger: Trigger
    delay_s: float  # after the trigger (RANDOM: after reconciliation)
    torn_tail: bool  # after the kill, leave half a record at the end of the journal and the order log


@dataclass(slots=True)
class CycleResult:
    plan: CyclePlan
    name: str
    reconciled: str  # see EngineWorkDir.wait_reconciled
    halted: bool = False  # the engine came up HALTED (mismatch now or restored from the snapshot): killed at once
    trigger_fired: bool = False
    kill_ns: int | None = None  # None: the engine was gone before the kill
    exit_code: int | None = None  # the engine's own exit code when it was gone before the kill
    journal_at_kill: bytes = b""
    submits_at_kill: frozenset[str] = frozenset()  # client order ids with an order-log ``submit`` row (sent)
    torn_files: int = 0  # files given a torn last line after the kill (plan.torn_tail)
    points: frozenset[KillPoint] = frozenset()


def plan_cycles(cycles: int, seed: int, session_wall_s: float) -> list[CyclePlan]:
    """Seeded plans; the triggers take turns (``TRIGGER_ROUND``, shuffled), so every moment is aimed at in a run."""
    rng = random.Random(seed)
    triggers = [t for _ in range(math.ceil(cycles / len(TRIGGER_ROUND))) for t in TRIGGER_ROUND][:cycles]
    rng.shuffle(triggers)
    longest = {Trigger.RANDOM: session_wall_s, Trigger.JOURNAL: INTENT_JITTER_S, Trigger.ACCEPTED: ACK_JITTER_S}
    return [CyclePlan(i, rng.choice(("MOC", "MKT")), t, rng.uniform(0, longest.get(t, TRIGGER_JITTER_S)),
                      rng.random() < TORN_TAIL_SHARE)
            for i, t in enumerate(triggers)]  # fmt: skip


class Appended:
    """Text appended to a file since the previous look (a missing file has none), for the trigger watchers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0
        self.carry = ""

    def contains(self, needle: str) -> bool:
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False
        if size <= self.offset:
            return False
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read(size - self.offset).decode("utf-8", "replace")
        self.offset = size
        text = self.carry + data
        self.carry = text[-len(needle) :]
        return needle in text


def _wait_trigger(trigger: Trigger, work: EngineWorkDir, name: str, ibsim_log: Path, timeout_s: float) -> bool:
    """Block until the trigger's moment (fast polling, ~0.1 ms); False if it did not come within ``timeout_s``."""
    if trigger is Trigger.RANDOM:
        return True
    watched = {Trigger.SIGNAL: (work.output_path(name), "event=signal "),
               Trigger.JOURNAL: (work.journal_path, '"kind":"intent"'),
               Trigger.ACCEPTED: (ibsim_log, "event=order_accepted "),
               Trigger.EXECUTION: (ibsim_log, "event=execution ")}[trigger]  # fmt: skip
    appended = Appended(watched[0])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if appended.contains(watched[1]):
            return True
        time.sleep(0.0001)
    return False


def run_cycle(work: EngineWorkDir, ibsim_log: Path, plan: CyclePlan, session_wall_s: float) -> CycleResult:
    """Start the engine, wait until it trades, SIGKILL it at the planned moment; the files as the kill left them."""
    name = f"cycle_{plan.index:03d}"
    work.configure(order_type=plan.order_type)
    proc = work.start(name)
    try:
        result = CycleResult(plan, name, work.wait_reconciled(name))
        output = work.output_path(name).read_text()
        result.halted = result.reconciled == "mismatch" or "trading=blocked" in output
        if proc.poll() is None and not result.halted:  # a halted engine sends nothing: no trigger would come
            result.trigger_fired = _wait_trigger(plan.trigger, work, name, ibsim_log, 3 * session_wall_s + 2)
            time.sleep(plan.delay_s)  # the seeded kill moment itself, not a synchronisation
        if proc.poll() is None:
            result.kill_ns = time.time_ns()
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if result.kill_ns is None:
            result.exit_code = proc.returncode
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    result.journal_at_kill = work.journal_path.read_bytes() if work.journal_path.exists() else b""
    if work.order_log_path.exists():
        rows = csv.reader(work.order_log_path.read_text().splitlines())
        result.submits_at_kill = frozenset(r[3] for r in rows if len(r) == 15 and r[2] == "submit" and r[4])
    if plan.torn_tail:
        result.torn_files = sum(tear_last_record(p) for p in (work.journal_path, work.order_log_path))
    return result


def tear_last_record(path: Path) -> bool:
    """Append the first half of the file's last line without a newline: a record the kill cut mid-write.

    Why simulated: SIGKILL cannot interrupt one small ``write()`` to a local file, so real kills never leave a torn
    line here, yet a power cut or a full disk can. Appending (instead of cutting the last real record) keeps the
    story true: the torn record is the *next* one, whose effect the engine must re-learn from the broker.
    False when the file has no complete line to copy.
    """
    if not path.exists():
        return False
    lines = path.read_bytes().split(b"\n")
    if len(lines) < 2 or not lines[-2]:
        return False
    with path.open("ab") as f:
        f.write(lines[-2][: len(lines[-2]) // 2])
    return True


# ==================================================================================================== classification
def classify_kill(result: CycleResult, ibsim: IbsimLog, output: str) -> frozenset[KillPoint]:
    """The points of the order path the kill landed on, from the journal at the kill and ibsim's log.

    An execution counts as "before the kill" when ibsim logged it at or before the kill's ``time.time_ns()``
    (ibsim's log has millisecond resolution, so an execution within the same millisecond may be misfiled).
    """
    if result.kill_ns is None:
        return frozenset()
    at_kill = JournalView.parse(result.journal_at_kill)
    accepted = ibsim.ref_counts()
    executions = ibsim.executions_by_ref()
    points: set[KillPoint] = set()
    for coid in at_kill.intents:
        if not at_kill.is_open(coid):
            continue
        if coid not in accepted:
            points.add(KillPoint.JOURNAL_BEFORE_SEND)
            continue
        journaled = {exec_id for exec_id, _ in at_kill.fills.get(coid, [])}
        in_flight = [e for e in executions.get(coid, []) if e.ts_ns <= result.kill_ns and e.exec_id not in journaled]
        if coid not in at_kill.acked:
            points.add(KillPoint.SEND_BEFORE_ACK)
        if in_flight:
            points.add(KillPoint.FILL_BEFORE_JOURNAL)
        if journaled:
            points.add(KillPoint.PARTIAL_FILL)
        if coid in at_kill.acked and not in_flight:
            points.add(KillPoint.WORKING)
    if _signal_without_intent(output, result.kill_ns, at_kill):
        points.add(KillPoint.SIGNAL_BEFORE_JOURNAL)
    return frozenset(points or {KillPoint.IDLE})


def _signal_without_intent(output: str, kill_ns: int, at_kill: JournalView) -> bool:
    """A signal logged (after reconciliation) within ``SIGNAL_WINDOW_NS`` before the kill that must become an
    order - LONG on a flat symbol, EXIT on a held one, none working - and has no intent in the journal yet."""
    _, _, trading = output.partition("event=reconcile_positions_ok")
    positions = at_kill.positions()
    working = {at_kill.intents[c]["symbol"] for c in at_kill.intents if at_kill.is_open(c)}
    sessions = {(o["symbol"], _session_date(o["ts_event_ns"])) for o in at_kill.intents.values()}
    for m in _SIGNAL.finditer(trading):
        ts_ns = int(pd.Timestamp(m[1], tz="UTC").value)
        symbol, direction = m[3], m[4]
        if kill_ns - ts_ns > SIGNAL_WINDOW_NS or (symbol, m[2]) in sessions or symbol in working:
            continue
        if (direction == "LONG" and positions.get(symbol, 0) == 0) or (direction == "EXIT" and positions.get(symbol)):
            return True
    return False


def _session_date(ts_event_ns: int) -> str:
    return str(pd.Timestamp(ts_event_ns, unit="ns", tz="UTC").tz_convert("America/New_York").date())


# ==================================================================================================== the whole run
@dataclass(slots=True)
class FinalCheck:
    """The verification run after the last cycle."""

    reconciled: str
    exit_code: int | None = None
    engine_positions: dict[str, float] | None = None  # STATUS position_by_symbol once the book was at rest
    broker_positions: dict[str, float] = field(default_factory=dict)
    broker_working: list[int] = field(default_factory=list)
    at_rest: bool = False


@dataclass(slots=True)
class CrashReport:
    cycles: list[CycleResult]
    final: FinalCheck
    ibsim: IbsimLog
    journal: JournalView
    outputs: dict[str, str]  # run name -> engine output
    elapsed_s: float

    def torn_tails(self) -> tuple[int, int]:
        """(torn last lines left after kills, torn tails the restarted engines reported setting aside)."""
        seen = sum(len(_TORN_SET_ASIDE.findall(t)) for t in self.outputs.values())
        return sum(c.torn_files for c in self.cycles), seen

    def histogram(self) -> Counter[KillPoint]:
        """Kills per point (a kill with two orders in flight at different points counts for both)."""
        return Counter(p for c in self.cycles for p in c.points)

    def violations_by_kind(self) -> dict[str, list[str]]:
        """Every breach of the crash-safety invariants by kind, each naming what, where and the evidence."""
        refs = self.ibsim.ref_counts()
        broker_execs = {e.exec_id: e for e in self.ibsim.executions}
        fills = self.journal.fill_records
        found: dict[str, list[str]] = {
            "duplicate_orders": [f"ref {r} accepted {n} times by ibsim" for r, n in sorted(refs.items()) if n > 1],
            "unjournaled_orders": [
                f"ref {r} at ibsim has no journal intent" for r in sorted(set(refs) - set(self.journal.intents))
            ],
            "lost_fills": [
                f"ibsim execution {x} ({broker_execs[x]}) has no journal fill{self._kill_before(x)}"
                for x in sorted(set(broker_execs) - set(fills))
            ],
            "repeated_fills": [f"exec {x} journaled {n} times" for x, n in sorted(fills.items()) if n > 1],
            "phantom_fills": [f"journal exec {x} unknown to ibsim" for x in sorted(set(fills) - set(broker_execs))],
            "reconcile_mismatches": [],
            "position_mismatches": self._position_mismatches(),
            "corrupt_state": [],
            "other": [],
        }
        for name, text in self.outputs.items():
            for line in text.splitlines():
                if "event=reconcile_positions_mismatch" in line:
                    found["reconcile_mismatches"].append(f"{name}: {line[:400]}")
                elif "event=state_corrupt" in line:
                    found["corrupt_state"].append(f"{name}: {line[:400]}")
                elif "event=order_error" in line and " code=103 " in line:
                    found["duplicate_orders"].append(f"{name}: IB error 103 (duplicate order id): {line[:300]}")
        for c in self.cycles:
            at_kill = JournalView.parse(c.journal_at_kill)
            found["unjournaled_orders"] += [f"{c.name}: order-log submit row for {x} without a journal intent at the "
                                            "kill (the journal must come first)"
                                            for x in sorted(c.submits_at_kill - set(at_kill.intents))]  # fmt: skip
            if c.exit_code == 1:
                found["corrupt_state"].append(f"{c.name}: the engine exited with code 1 (corrupt state)")
            elif c.reconciled not in ("ok", "mismatch"):
                found["other"].append(f"{c.name}: never reconciled ({c.reconciled}, exit code {c.exit_code})")
        halted = [c.name for c in self.cycles if c.halted]
        if halted:
            found["other"].append(f"{len(halted)} cycles came up HALTED (no trading): {', '.join(halted)}")
        final = self.final
        if final.reconciled not in ("ok", "mismatch"):
            found["other"].append(f"final run: reconciliation {final.reconciled}")
        if final.exit_code != 0:
            kind = "corrupt_state" if final.exit_code == 1 else "other"
            found[kind].append(f"final run: exit code {final.exit_code} (expected 0 after SIGTERM)")
        torn, seen = self.torn_tails()
        if seen != torn:
            found["other"].append(f"torn tails: {torn} left after kills, the engine reported {seen} set aside")
        if not final.at_rest:
            found["other"].append(f"final run: the book never came to rest (ibsim working: {final.broker_working})")
        return found

    def violations(self) -> list[str]:
        return [f"{kind}: {text}" for kind, texts in self.violations_by_kind().items() for text in texts]

    def _position_mismatches(self) -> list[str]:
        final, found = self.final, []
        journal_positions = {s: float(q) for s, q in self.journal.positions().items()}
        if final.engine_positions != final.broker_positions:
            found.append(f"engine STATUS {final.engine_positions} != ibsim {final.broker_positions}")
        if journal_positions != final.broker_positions:
            found.append(f"journal fills sum to {journal_positions} != ibsim {final.broker_positions}")
        if self.ibsim.positions() != final.broker_positions:
            found.append(f"ibsim log {self.ibsim.positions()} != ibsim API {final.broker_positions}")
        return found

    def _kill_before(self, exec_id: str) -> str:
        ts_ns = next(e.ts_ns for e in self.ibsim.executions if e.exec_id == exec_id)
        killed = [c for c in self.cycles if c.kill_ns is not None and c.kill_ns <= ts_ns + 1_000_000]
        if not killed:
            return ""
        c = killed[-1]
        return f"; last kill before it: {c.name} seed-plan={c.plan} points={sorted(c.points)}"

    def summary_lines(self) -> list[str]:
        hist = self.histogram()
        kills = sum(1 for c in self.cycles if c.kill_ns is not None)
        halted = sum(c.halted for c in self.cycles)
        lines = [f"cycles={len(self.cycles)} kills={kills} came_up_halted={halted} elapsed_s={self.elapsed_s:.1f}",
                 "kill points (kills that hit each point):"]  # fmt: skip
        lines += [f"  {p.value:<22} {hist.get(p, 0)}" for p in KillPoint]
        by_trigger: dict[str, Counter[str]] = defaultdict(Counter)
        for c in self.cycles:
            by_trigger[c.plan.trigger.value].update(p.value for p in c.points)
            by_trigger[c.plan.trigger.value]["(not fired)"] += not c.trigger_fired
        lines += [f"  trigger {t:<9} {dict(sorted(n.items()))}" for t, n in sorted(by_trigger.items())]
        refs = self.ibsim.ref_counts()
        lines.append(f"orders at ibsim={len(refs)} duplicates={sum(1 for n in refs.values() if n > 1)} "
                     f"executions={len(self.ibsim.executions)} journal_fills={len(self.journal.fill_records)} "
                     f"positions={self.final.broker_positions}")  # fmt: skip
        torn, seen = self.torn_tails()
        caught = sum(t.count("event=journal_fill_caught_up") for t in self.outputs.values())
        lines.append(f"torn tails left after kills={torn} set aside by the engine={seen} "
                     f"journal fills caught up at start-up={caught}")  # fmt: skip
        return lines


def run_crash_cycles(root: Path, ib_port: int, ibsim_log: Path, *, cycles: int, seed: int, speed: float,
                     on_cycle: Callable[[CycleResult], None] | None = None) -> CrashReport:  # fmt: skip
    """The whole procedure: ``cycles`` kill/restart cycles, then the verification run; see the module docstring.

    ``on_cycle`` is told after each cycle (progress output). Engine processes never outlive this call.
    """
    started = time.monotonic()
    session_wall_s = SESSION_SIM_S / speed
    work = EngineWorkDir(root, ib_port)
    results: list[CycleResult] = []
    try:
        for plan in plan_cycles(cycles, seed, session_wall_s):
            results.append(run_cycle(work, ibsim_log, plan, session_wall_s))
            if on_cycle is not None:
                on_cycle(results[-1])
        final = _final_check(work, ib_port, session_wall_s)
    finally:
        if work.proc is not None and work.proc.poll() is None:
            stop_group(work.proc)
    outputs = {name: work.output_path(name).read_text() for name in [c.name for c in results] + ["final"]}
    ibsim = IbsimLog.read(ibsim_log)
    with (root / "cycles.jsonl").open("w") as record:  # what each cycle did, to reproduce or investigate one
        for c in results:
            c.points = classify_kill(c, ibsim, outputs[c.name])
            fields = {"name": c.name, "order_type": c.plan.order_type, "trigger": c.plan.trigger.value,
                      "delay_s": c.plan.delay_s, "torn_files": c.torn_files, "trigger_fired": c.trigger_fired,
                      "reconciled": c.reconciled, "halted": c.halted,
                      "kill_ns": c.kill_ns, "exit_code": c.exit_code, "points": sorted(c.points)}  # fmt: skip
            record.write(json.dumps(fields) + "\n")
    journal = JournalView.parse(work.journal_path.read_bytes() if work.journal_path.exists() else b"")
    return CrashReport(results, final, ibsim, journal, outputs, time.monotonic() - started)


def _final_check(work: EngineWorkDir, ib_port: int, session_wall_s: float) -> FinalCheck:
    """Restart with no new orders allowed (``refuse_start``); once ibsim holds no working order and the engine's
    positions stop moving, read both sides, then stop the engine with SIGTERM."""
    work.configure(monitor_policy="refuse_start")
    proc = work.start("final")
    check = FinalCheck(work.wait_reconciled("final"))
    if check.reconciled == "ok":
        rest = poll_until(lambda: not broker_book(ib_port)[1], 3 * session_wall_s + 10, 0.2)
        check.at_rest = bool(rest) and _engine_matches_broker(work, ib_port, check)
    check.exit_code = stop_group(proc, 15)
    check.broker_positions, check.broker_working = broker_book(ib_port)
    return check


def _engine_matches_broker(work: EngineWorkDir, ib_port: int, check: FinalCheck) -> bool:
    """Wait (bounded) until the engine's STATUS shows no working order and the same positions twice in a row."""

    def settled() -> bool:
        first = work.status()
        broker, _ = broker_book(ib_port)
        again = work.status()
        if not first or not again or first["position_by_symbol"] != again["position_by_symbol"]:
            return False
        check.engine_positions = {s: float(q) for s, q in again["position_by_symbol"].items()}
        return again["open_orders"] == 0 and check.engine_positions == broker

    return bool(poll_until(settled, 20, 0.2))


def format_cycle(c: CycleResult) -> str:
    """One line per cycle; the points appear once classified (at the end, when ibsim's log is complete)."""
    if c.kill_ns is None:
        state = f"exited {c.exit_code}"
    else:
        state = "halted, killed at once" if c.halted else f"killed {c.plan.delay_s * 1e3:.1f} ms after the trigger"
    points = f" points={','.join(sorted(c.points))}" if c.points else ""
    return (f"cycle {c.plan.index:3d} {c.plan.order_type} trigger={c.plan.trigger.value:<9} "
            f"fired={c.trigger_fired!s:<5} reconciled={c.reconciled} {state}{points}")  # fmt: skip
