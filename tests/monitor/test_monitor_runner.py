"""``monitor.runner`` in this process: a restart over old history is quiet, and its heartbeat is what the engine
reads. Real parts: ibsim over TCP, a ZeroMQ heartbeat publisher, files written by the engine's own writers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from monitor_harness import in_process_config

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import AppConfig
from core.events import OrderEvent, OrderStatus, OrderType, Side, TradingState
from core.ipc_heartbeat import Heartbeat, HeartbeatCurve, HeartbeatPublisher, curve_for, write_heartbeat_csv
from execution.order_log import OrderLogEvent, OrderLogRow, OrderSubmissionLog
from ibsim import IbSim
from live.monitor_watch import read_beat
from monitor import build_monitor
from portfolio.live_manager import RiskLog
from testkit.waiting import eventually


def write_history(root: Path) -> None:
    """A busy, alarming past: 200 identical orders, a 50 % drawdown row, a beat of a long-dead engine."""
    now = time.time_ns()
    logs = root / "logs"
    with OrderSubmissionLog(logs / "order_submissions.csv") as orders:
        for i in range(200):
            order = OrderEvent(
                ts_event_ns=0,
                ts_init_ns=0,
                client_order_id=f"old{i}",
                strategy_id="s",
                symbol="SPY",
                side=Side.BUY,
                quantity=5,
                order_type=OrderType.MKT,
                reference_price=1.0,
            )
            orders.write(
                OrderLogRow(
                    ts_ns=now - 10 * NS_PER_SECOND + i,
                    event=OrderLogEvent.SUBMIT,
                    order=order,
                    ib_order_id=i + 1,
                    filled_quantity=0,
                    status=OrderStatus.SUBMITTED,
                )
            )
    risk = RiskLog(logs / "risk_log.csv")
    risk.write(
        {
            "ts_utc": "x",
            "ts_ns": now - 3600 * NS_PER_SECOND,
            "equity": 50_000.0,
            "peak_equity": 100_000.0,
            "drawdown_pct": 50.0,
            "gross_exposure": 0.0,
            "net_exposure": 0.0,
            "positions": 0,
            "open_orders": 0,
            "fills_today": 0,
            "trading_state": "HALTED",
            "vetoed": 0,
            "vetoed_missing": 0,
            "veto_passed": 0,
            "last_veto": "",
        }
    )
    risk.close()
    write_heartbeat_csv(
        logs / "heartbeat.csv",
        Heartbeat(
            seq=9,
            ts_ns=now - 3600 * NS_PER_SECOND,
            pid=999_999_999,
            trading_state=TradingState.ACTIVE,
            equity=1.0,
            drawdown_pct=0.0,
        ),
    )


def engine_curve(config: AppConfig) -> HeartbeatCurve | None:
    """What the engine's publisher uses: CURVE on TCP, with the engine's keys (the monitor only trusts those)."""
    ops = config.operational_risk
    return curve_for(ops.heartbeat_endpoint, Path(ops.command_keys_dir), ops.command_authorized_clients)


def test_a_restarted_monitor_over_old_history_stays_quiet_and_beats_for_the_engine(tmp_path: Path, sim: IbSim) -> None:
    config = in_process_config(tmp_path, sim.port)
    write_history(tmp_path)
    clock = WallClock()
    events: list[tuple[str, str]] = []
    runner = build_monitor(config, clock=clock, on_event=lambda name, _ts, detail: events.append((name, detail)))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    with HeartbeatPublisher(
        csv_path=Path(config.operational_risk.heartbeat_flag_path),
        clock=clock,
        endpoint=config.operational_risk.heartbeat_endpoint,
        curve=engine_curve(config),
    ) as engine:
        thread.start()
        deadline = time.monotonic() + 2.0  # grace 0.3 s + many checks and confirmation windows
        while time.monotonic() < deadline:
            engine.beat(trading_state=TradingState.ACTIVE, equity=100_000.0, drawdown_pct=0.0)
            time.sleep(0.05)
        body = runner.heartbeat_body(clock.now_ns())
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert events == [] and body["kill"] is None and body["state"] == "WATCHING", (events, body)
    assert body["engine_status"] == "ALIVE" and body["engine_pid"] == os.getpid() and body["engine_detail"] == ""
    assert {a["kind"] for a in body["alarms"]} == {"risk_log_stale"}  # the old 50 % row: an alarm, not a kill
    assert not Path(config.system.kill_flag_path).exists()
    beat_path = Path(config.operational_risk.monitor_heartbeat_path)
    seen_by_engine = read_beat(beat_path, time.time_ns(), max_age_s=5.0)  # the engine's own reader
    assert not seen_by_engine.stale and seen_by_engine.pid == os.getpid()


def test_a_fresh_monitor_kills_an_engine_it_saw_go_silent(tmp_path: Path, sim: IbSim) -> None:
    config = in_process_config(tmp_path, sim.port)
    clock = WallClock()
    runner = build_monitor(config, clock=clock)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    with HeartbeatPublisher(
        csv_path=Path(config.operational_risk.heartbeat_flag_path),
        clock=clock,
        endpoint=config.operational_risk.heartbeat_endpoint,
        curve=engine_curve(config),
    ) as engine:
        thread.start()
        try:
            eventually(
                lambda: (
                    engine.beat(trading_state=TradingState.ACTIVE, equity=1.0, drawdown_pct=0.0)
                    and runner.report is not None
                    and runner.report.status == "ALIVE"
                ),
                10,
            )
            silent_ns = clock.now_ns()  # the "engine" (this process: alive) stops beating
            eventually(lambda: Path(config.system.kill_flag_path).exists(), 5)
            flagged_s = (clock.now_ns() - silent_ns) / NS_PER_SECOND
            record = eventually(lambda: (r := runner.kill.record()) and r["state"] == "DONE" and r, 15)
        finally:
            stop.set()
            thread.join(10)
    assert record["reason"]["kind"] == "engine_frozen"
    assert flagged_s < 0.3 + 3 * 0.05 + 0.5  # missed x interval + confirmations + slack
    assert runner.state == "KILLED"
