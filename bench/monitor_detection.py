"""Risk monitor detection latency per breach kind: from the injected fault to the monitor seeing it, and to the kill.

Everything real except that the monitor runs in this process (``monitor.build_monitor``, its own thread) so its
event hook can stamp the moment it first sees a breach: ibsim over loopback TCP (the monitor's own IB connection),
ZeroMQ heartbeats from a separate "engine" process, files written by the engine's own writers. A fresh monitor
(new folder, new state) is built for every run, since a kill is one-way.

Faults, one per run, injected at a seeded random phase of the monitor's check cycle (so the figures cover the whole
cycle and a rerun with the same ``--seed`` injects at the same phases):

- ``kill_now``: ``touch flags/KILL_NOW.flag`` (also timed: until ibsim has no working order left);
- ``engine_gone``: SIGKILL of the beating engine process (reaped at once, as init would);
- ``engine_crashed``: the engine process publishes its last beat ``stopping: crash`` (as main.py does on an
  exception nothing expected) and exits 4, on SIGUSR1;
- ``engine_frozen``: SIGSTOP of it (SIGCONT afterwards, so the next run finds it beating again);
- ``order_rate``: ``max_orders_per_window + 1`` submit rows appended at once (the last one crosses the limit);
- ``duplicate_orders``: ``duplicate_order_alarm_count`` identical submit rows;
- ``drawdown_engine``: a risk-log row with the drawdown at the kill threshold;
- ``drawdown_broker``: a -40 % ibsim price shock while the account holds a large position (undone afterwards);
- ``broker_order_flood``: another API client (client id 7, not the engine's) places resting limit orders straight
  to ibsim at 25 Hz, writing no order-log row; the fault time is the moment it sent the order that took the
  account past ``max_broker_open_orders`` / ``max_broker_submissions_per_window`` (whichever is lower), so detect
  and kill are measured from the crossing, not from the first order of the flood.

No engine answers the command channel and the monitors run with ``fallback_action: cancel_only`` (the kill itself
is not what is measured here; the account keeps its position for the next run). Reported per kind over ``--runs``
runs: **detect** = fault -> first check that sees the breach; **kill** = fault ->
``KILL.flag`` written (after ``confirm_checks`` consecutive checks; immediate for kill_now, engine_gone and
engine_crashed); for
kill_now also **ibsim cancel** = flag -> no working order at ibsim. Median and max, milliseconds. The timing
settings come from the config (``--config``, default ``config.yaml``); ``--quick`` uses fast test timings and
2 runs (a smoke run: figures not meaningful). Usage::

    .venv/bin/python bench/monitor_detection.py [--runs 20] [--seed 7] [--kinds order_rate,kill_now] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.clock import NS_PER_SECOND, WallClock  # noqa: E402
from core.config_loader import load_config, validate_config  # noqa: E402
from core.config_models import AppConfig, IbConnectionConfig  # noqa: E402
from core.errors import ConfigError  # noqa: E402
from core.events import OrderEvent, OrderStatus, OrderType, Side  # noqa: E402
from core.ib_messages import IbConnected  # noqa: E402
from core.ib_wrapper import IbConnection  # noqa: E402
from execution.ib_translate import to_ib_contract, to_ib_order  # noqa: E402
from execution.order_log import OrderLogEvent, OrderLogRow, OrderSubmissionLog  # noqa: E402
from ibsim import IbSim, SimConfig  # noqa: E402
from monitor import MonitorRunner, build_monitor  # noqa: E402
from portfolio.live_manager import RiskLog  # noqa: E402
from testkit.waiting import free_port  # noqa: E402

KINDS = (
    "kill_now",
    "engine_gone",
    "engine_crashed",
    "engine_frozen",
    "order_rate",
    "duplicate_orders",
    "drawdown_engine",
    "drawdown_broker",
    "broker_order_flood",
)
SHOCK_PCT = -40.0
ROGUE_CLIENT_ID = 7
FLOOD_RATE_HZ = 25.0
FLOOD_EXTRA_ORDERS = 200  # the flood stops this many orders past the crossing at the latest (else at the kill flag)
ENGINE_SCRIPT = """
import signal, sys, threading
from pathlib import Path
from core.clock import WallClock
from core.events import TradingState
from core.ipc_heartbeat import HeartbeatPublisher, curve_for
stop, crash = threading.Event(), threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGUSR1, lambda *_: (crash.set(), stop.set()))
curve = curve_for(sys.argv[2], Path(sys.argv[4]), ("risk_monitor", "operator"))  # on TCP the engine's beat is CURVE
with HeartbeatPublisher(csv_path=Path(sys.argv[1]), clock=WallClock(), endpoint=sys.argv[2], curve=curve) as pub:
    while not stop.is_set():
        pub.beat(trading_state=TradingState.ACTIVE, equity=100000.0, drawdown_pct=0.0)
        stop.wait(float(sys.argv[3]))
    if crash.is_set():
        pub.beat(trading_state=TradingState.ACTIVE, equity=100000.0, drawdown_pct=0.0,
                 extra={"stopping": "crash", "error": "RuntimeError: bench: injected crash"})
if crash.is_set():
    sys.exit(4)
"""
ENGINE_KINDS = ("engine_gone", "engine_crashed", "engine_frozen")
# --quick skips these: the 100-order flood at 25 Hz is slow for a smoke run and its behaviour has its own e2e tests
# (tests/monitor/test_monitor_e2e_broker_orders.py)
FULL_RUN_ONLY = ("broker_order_flood",)  # kinds that need the beating engine process


@dataclass(frozen=True, slots=True)
class Timing:
    check_interval_s: float
    confirm_checks: int
    heartbeat_interval_s: float
    missed_heartbeats: int


@dataclass(slots=True)
class Result:
    detect_s: float
    kill_s: float
    cancel_s: float | None = None


class Probe:
    """The monitor's event hook: the first time of each (event, breach kind)."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def __call__(self, event: str, ts_ns: int, detail: str) -> None:
        kind = detail.split(":", 1)[0] if event in ("breach_seen", "kill_triggered") else ""
        with self._lock:
            self.first.setdefault((event, kind), ts_ns)

    def get(self, event: str, kind: str = "") -> int | None:
        with self._lock:
            return self.first.get((event, kind))


def wait_until(cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s} s: {what}")
        time.sleep(0.001)


def connect(port: int, client_id: int) -> IbConnection:
    ready = threading.Event()
    connection = IbConnection(
        IbConnectionConfig(port=port, connect_timeout_s=5.0),
        client_id,
        lambda m: ready.set() if isinstance(m, IbConnected) else None,
        WallClock(),
    )
    connection.start()
    if not ready.wait(15):
        connection.stop()
        raise RuntimeError(f"the bench's client {client_id} could not connect to ibsim")
    return connection


class RogueFlood:
    """Someone else on the account: resting limit buys at ``FLOOD_RATE_HZ`` from its own client id, no order log.

    ``start`` returns at once; ``crossing_ns`` waits for the moment the ``crossing``-th order was about to be sent.
    The flood stops at ``stop_when()`` (the kill flag) or ``FLOOD_EXTRA_ORDERS`` past the crossing.
    """

    def __init__(self, port: int) -> None:
        self.connection = connect(port, ROGUE_CLIENT_ID)
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self._crossed = threading.Event()
        self._crossing_ns = 0
        self._why_stopped = ""  # why the flood thread ended before its crossing order, for the error

    def start(self, crossing: int, stop_when: Callable[[], bool]) -> None:
        self._halt.clear()
        self._crossed.clear()
        self._thread = threading.Thread(target=self._run, args=(crossing, stop_when), name="rogue-flood", daemon=True)
        self._thread.start()

    def crossing_ns(self, timeout_s: float) -> int:
        if not self._crossed.wait(timeout_s):
            why = self._why_stopped or "still sending"
            raise TimeoutError(f"the flood did not reach its crossing order within {timeout_s} s ({why})")
        return self._crossing_ns

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self, crossing: int, stop_when: Callable[[], bool]) -> None:
        try:
            self._send_orders(crossing, stop_when)
        except Exception as exc:  # a daemon thread: say why in crossing_ns's error instead of dying silently
            self._why_stopped = f"the flood thread failed: {type(exc).__name__}: {exc}"

    def _send_orders(self, crossing: int, stop_when: Callable[[], bool]) -> None:
        interval_ns, next_ns = int(NS_PER_SECOND / FLOOD_RATE_HZ), time.time_ns()
        for n in range(1, crossing + FLOOD_EXTRA_ORDERS + 1):
            if self._halt.is_set() or stop_when():
                if n <= crossing:
                    self._why_stopped = f"stopped at order {n} of {crossing}: " + (
                        "halted" if self._halt.is_set() else "the monitor killed before the limit was crossed")
                return
            while (wait_ns := next_ns - time.time_ns()) > 0:
                time.sleep(min(0.002, wait_ns / NS_PER_SECOND))
            next_ns += interval_ns
            order = OrderEvent(
                ts_event_ns=0,
                ts_init_ns=0,
                client_order_id=f"rogue-{n}",
                strategy_id="rogue",
                symbol="SPY",
                side=Side.BUY,
                quantity=n,
                order_type=OrderType.LMT,
                limit_price=1.0,
                reference_price=1.0,
            )
            order_id = self.connection.next_order_id()
            contract, ib_order = to_ib_contract("SPY"), to_ib_order(order, order_id)
            sent_ns = time.time_ns()
            self.connection.send(lambda c, i=order_id, k=contract, o=ib_order: c.placeOrder(i, k, o), "placeOrder")
            if n == crossing:
                self._crossing_ns = sent_ns
                self._crossed.set()


class Bench:
    """ibsim, a trading client (the engine's orders and positions), the engine's beats, one monitor per run."""

    def __init__(self, base: AppConfig, timing: Timing, workdir: Path) -> None:
        self.base, self.timing, self.workdir = base, timing, workdir
        self.sim = IbSim(SimConfig(speed=60.0, tick_interval_s=0.01, cash_usd=100_000.0))
        self.sim.start()
        self.trader = connect(self.sim.port, 1)
        self.flood: RogueFlood | None = None
        self.probe: Probe | None = None
        self.hb_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.hb_csv = workdir / "heartbeat.csv"
        self.keys_dir = workdir / "keys"  # one set for the whole bench: the engine process outlives a run
        self.engine: subprocess.Popen | None = None

    def close(self) -> None:
        self.stop_engine()
        if self.flood is not None:
            self.flood.stop()
            self.flood.connection.stop()
        self.trader.stop()
        self.sim.stop()

    # ------------------------------------------------------------------ the world around the monitor
    def start_engine(self) -> subprocess.Popen:
        if self.engine is None or self.engine.poll() is not None:
            self.engine = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    ENGINE_SCRIPT,
                    str(self.hb_csv),
                    self.hb_endpoint,
                    str(self.timing.heartbeat_interval_s),
                    str(self.keys_dir),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        return self.engine

    def stop_engine(self) -> None:
        if self.engine is not None and self.engine.poll() is None:
            os.kill(self.engine.pid, signal.SIGCONT)
            self.engine.terminate()
            self.engine.wait(10)

    def trade(self, symbol: str, side: Side, qty: int, limit: float | None = None) -> None:
        order = OrderEvent(
            ts_event_ns=0,
            ts_init_ns=0,
            client_order_id=f"bench-{time.time_ns()}",
            strategy_id="b",
            symbol=symbol,
            side=side,
            quantity=qty,
            order_type=OrderType.LMT if limit else OrderType.MKT,
            limit_price=limit,
            reference_price=1.0,
        )
        order_id = self.trader.next_order_id()
        contract, ib_order = to_ib_contract(symbol), to_ib_order(order, order_id)
        self.trader.send(lambda c: c.placeOrder(order_id, contract, ib_order), "placeOrder")

    def book(self) -> tuple[int, dict[str, float]]:
        with self.sim.lock:
            working = len(self.sim.book.working_orders())
            return working, {s: p.quantity for s, p in self.sim.book.positions.items() if p.quantity}

    def config(self, root: Path) -> AppConfig:
        raw = self.base.model_dump(mode="json")
        raw["ib_connection"].update(port=self.sim.port, connect_timeout_s=5)
        raw["system"].update(
            log_dir=str(root / "logs"),
            state_dir=str(root / "state"),
            kill_flag_path=str(root / "flags" / "KILL.flag"),
            kill_now_flag_path=str(root / "flags" / "KILL_NOW.flag"),
        )
        raw["operational_risk"].update(
            heartbeat_interval_s=self.timing.heartbeat_interval_s,
            missed_heartbeats=self.timing.missed_heartbeats,
            heartbeat_flag_path=str(self.hb_csv),
            heartbeat_endpoint=self.hb_endpoint,
            order_rate_counter_path=str(root / "logs" / "order_submissions.csv"),
            command_endpoint=f"tcp://127.0.0.1:{free_port()}",
            command_keys_dir=str(self.keys_dir),
            monitor_heartbeat_path=str(root / "logs" / "risk_monitor_heartbeat.json"),
        )
        raw["risk_monitor"].update(
            check_interval_s=self.timing.check_interval_s,
            confirm_checks=self.timing.confirm_checks,
            command_timeout_s=0.2,
            fallback_action="cancel_only",
        )
        return validate_config(raw, "bench")

    # ------------------------------------------------------------------ one run
    def run(self, kind: str, index: int, phase_s: float) -> Result:
        root = self.workdir / f"{kind}-{index:03d}"
        config = self.config(root)
        self.prepare(kind, root, config)
        self.probe = probe = Probe()
        monitor = build_monitor(config, on_event=probe)
        stop = threading.Event()
        thread = threading.Thread(target=monitor.run, args=(stop,), name=f"monitor-{kind}-{index}", daemon=True)
        thread.start()
        try:
            self.wait_ready(kind, monitor)
            time.sleep(phase_s)
            fault_ns = self.inject(kind, config)
            cancel_s = self.time_cancel(fault_ns) if kind == "kill_now" else None  # polled from the fault on
            seen_ns = wait_until(lambda: probe.get("breach_seen", kind), 30, f"{kind} seen")
            flag_ns = wait_until(lambda: probe.get("kill_flag_written"), 30, f"{kind} kill flag")
            return Result((seen_ns - fault_ns) / NS_PER_SECOND, (flag_ns - fault_ns) / NS_PER_SECOND, cancel_s)
        finally:
            stop.set()
            thread.join(15)
            self.cleanup(kind)
            client_id = config.risk_monitor.risk_monitor_client_id
            wait_until(lambda: client_id not in self.sim.gateway.sessions, 10, "ibsim freed the monitor's client id")

    def prepare(self, kind: str, root: Path, config: AppConfig) -> None:
        (root / "logs").mkdir(parents=True)
        if kind in ENGINE_KINDS:
            self.start_engine()
        if kind == "kill_now":
            self.trade("QQQ", Side.BUY, 1, limit=1.0)  # rests until cancelled
            wait_until(lambda: self.book()[0] >= 1, 10, "a working order at ibsim")
        if kind == "broker_order_flood" and self.flood is None:
            self.flood = RogueFlood(self.sim.port)
        if kind == "drawdown_broker" and not self.book()[1]:
            with self.sim.lock:
                price = self.sim.market.quote("SPY").ask
            self.trade("SPY", Side.BUY, int(90_000 / price))
            wait_until(lambda: self.book()[1], 10, "a position at ibsim")

    def wait_ready(self, kind: str, monitor: MonitorRunner) -> None:
        def ready() -> bool:
            snapshot = monitor.broker.snapshot()
            if not (snapshot.ready and snapshot.net_liquidation is not None and monitor.account_view is not None):
                return False
            if kind == "broker_order_flood" and snapshot.open_orders_generation < 1:
                return False  # the first open-order list is the baseline: the flood must come after it
            alive = monitor.report is not None and monitor.report.status == "ALIVE"
            return alive or kind not in ENGINE_KINDS

        wait_until(ready, 30, "monitor ready")

    def inject(self, kind: str, config: AppConfig) -> int:
        """Cause the fault; returns its time (UTC epoch ns)."""
        if kind == "kill_now":
            return self._inject_kill_now(config)
        if kind in ENGINE_KINDS and self.engine is not None:
            return self._inject_engine_fault(kind, self.engine)
        if kind in ("order_rate", "duplicate_orders"):
            return self._inject_order_rows(kind, config)
        if kind == "drawdown_engine":
            return self._inject_drawdown_row(config)
        if kind == "drawdown_broker":
            fault_ns = time.time_ns()
            self.sim.price_shock(SHOCK_PCT)
            return fault_ns
        if kind == "broker_order_flood" and self.flood is not None and self.probe is not None:
            return self._inject_broker_flood(config, self.flood, self.probe)
        raise ValueError(f"unknown kind {kind!r}")

    def _inject_kill_now(self, config: AppConfig) -> int:
        """The operator's flag; the fault time is taken just before the file appears."""
        flag = Path(config.system.kill_now_flag_path)
        flag.parent.mkdir(parents=True, exist_ok=True)
        fault_ns = time.time_ns()
        flag.touch()
        return fault_ns

    def _inject_engine_fault(self, kind: str, engine: subprocess.Popen) -> int:
        """Freeze, crash or kill the beating engine process; a dead one is reaped at once, as init would."""
        fault_ns = time.time_ns()
        if kind == "engine_frozen":
            os.kill(engine.pid, signal.SIGSTOP)
        elif kind == "engine_crashed":
            os.kill(engine.pid, signal.SIGUSR1)
            engine.wait(10)
        else:
            engine.kill()
            engine.wait(10)
        return fault_ns

    def _inject_order_rows(self, kind: str, config: AppConfig) -> int:
        """Append submit rows to the order log in one burst: one past the rate limit, or identical duplicates."""
        ops = config.operational_risk
        count = ops.max_orders_per_window + 1 if kind == "order_rate" else ops.duplicate_order_alarm_count
        with OrderSubmissionLog(ops.order_rate_counter_path) as log:
            for i in range(count):
                qty = 1 if kind == "duplicate_orders" else i + 1
                order = OrderEvent(
                    ts_event_ns=0,
                    ts_init_ns=0,
                    client_order_id=f"f{i}",
                    strategy_id="flood",
                    symbol="SPY",
                    side=Side.BUY,
                    quantity=qty,
                    order_type=OrderType.MKT,
                    reference_price=1.0,
                )
                log.write(
                    OrderLogRow(
                        ts_ns=time.time_ns(),
                        event=OrderLogEvent.SUBMIT,
                        order=order,
                        ib_order_id=None,
                        filled_quantity=0,
                        status=OrderStatus.PENDING_SUBMIT,
                    )
                )
        return time.time_ns()  # the crossing row is the last one written

    def _inject_drawdown_row(self, config: AppConfig) -> int:
        """One risk-log row, as the engine writes them, with the drawdown exactly at the kill threshold."""
        log = RiskLog(Path(config.system.log_dir) / "risk_log.csv")
        fault_ns = time.time_ns()
        log.write(
            {
                "ts_utc": "bench",
                "ts_ns": fault_ns,
                "equity": 80_000.0,
                "peak_equity": 100_000.0,
                "drawdown_pct": config.risk_monitor.kill_drawdown_pct,
                "gross_exposure": 0.0,
                "net_exposure": 0.0,
                "positions": 0,
                "open_orders": 0,
                "fills_today": 0,
                "trading_state": "ACTIVE",
                "vetoed": 0,
                "vetoed_missing": 0,
                "veto_passed": 0,
                "last_veto": "",
            }
        )
        log.close()
        return fault_ns

    def _inject_broker_flood(self, config: AppConfig, flood: RogueFlood, probe: Probe) -> int:
        """Start the rogue client's flood; the fault time is when it sent the order that crossed the lower limit."""
        rm = config.risk_monitor
        crossing = min(rm.max_broker_open_orders, rm.max_broker_submissions_per_window) + 1
        flood.start(crossing, lambda: probe.get("kill_flag_written") is not None)
        return flood.crossing_ns(crossing / FLOOD_RATE_HZ + 30)

    def time_cancel(self, flag_ns: int) -> float:
        cancelled_ns = wait_until(lambda: time.time_ns() if self.book()[0] == 0 else None, 10, "cancel at ibsim")
        return (cancelled_ns - flag_ns) / NS_PER_SECOND

    def cleanup(self, kind: str) -> None:
        if kind == "engine_frozen" and self.engine is not None and self.engine.poll() is None:
            os.kill(self.engine.pid, signal.SIGCONT)
        if kind == "drawdown_broker":
            self.sim.price_shock(100.0 / (100.0 + SHOCK_PCT) * 100.0 - 100.0)  # back to the unshocked prices
        if kind == "broker_order_flood" and self.flood is not None:
            self.flood.stop()
            self.trader.send(lambda c: c.reqGlobalCancel(), "reqGlobalCancel")  # what the monitor had no time for
            wait_until(lambda: self.book()[0] == 0, 10, "the flood's orders cancelled")


def summarize(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"{name} median {statistics.median(ms):7.1f} ms  max {max(ms):7.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "config.yaml"), help="thresholds and timings to use")
    parser.add_argument("--runs", type=int, default=20, help="runs per breach kind")
    parser.add_argument("--seed", type=int, default=7, help="seed of the injection phases")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--quick", action="store_true", help="fast test timings, 2 runs: a smoke run")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or args.runs < 1:
        print(f"monitor_detection: unknown kinds {unknown} or --runs < 1; kinds: {', '.join(KINDS)}", file=sys.stderr)
        return 2
    try:
        base = load_config(args.config)
    except ConfigError as exc:
        print(f"monitor_detection: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.CRITICAL + 1)  # the monitor logs every breach and kill step: quiet here
    if args.quick:
        timing, runs = Timing(0.05, 2, 0.1, 3), min(args.runs, 2)
        kinds = [k for k in kinds if k not in FULL_RUN_ONLY]
    else:
        rm, ops = base.risk_monitor, base.operational_risk
        timing = Timing(rm.check_interval_s, rm.confirm_checks, ops.heartbeat_interval_s, ops.missed_heartbeats)
        runs = args.runs
    rng = np.random.default_rng(args.seed)
    phases = {kind: rng.uniform(0.0, timing.check_interval_s, size=runs) for kind in KINDS}
    print(
        f"risk monitor detection latency: {runs} runs per kind, seed {args.seed}; check_interval_s "
        f"{timing.check_interval_s}, confirm_checks {timing.confirm_checks}, heartbeat_interval_s "
        f"{timing.heartbeat_interval_s} x missed_heartbeats {timing.missed_heartbeats}",
        flush=True,
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="monitor_bench_") as tmp:
        bench = Bench(base, timing, Path(tmp))
        try:
            for kind in kinds:
                results = [bench.run(kind, i, float(phases[kind][i])) for i in range(runs)]
                line = f"{kind:<17} n={runs:<3} {summarize('detect', [r.detect_s for r in results])}   " + summarize(
                    "kill", [r.kill_s for r in results]
                )
                cancels = [r.cancel_s for r in results if r.cancel_s is not None]
                if cancels:
                    line += "   " + summarize("ibsim cancel", cancels)
                print(line, flush=True)
        finally:
            bench.close()
    print(f"total {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
