"""Stand-in engine for the run_system.sh tests (``ENGINE_CMD``), used only while ``main.py`` cannot run.

``python standin_engine.py --config FILE --port PORT [--duration S]``: a real process with main.py's command line
that connects once to the gateway port, then every 0.2 s rewrites the heartbeat CSV and answers the command
channel (STATUS), appends a risk log row every second, writes one submit and one fill to the order log, and exits
0 on SIGTERM. ``STANDIN_IGNORE_SIGTERM=1`` makes it ignore SIGTERM (to test the SIGKILL path of ``stop``).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from core.clock import WallClock
from core.config_loader import load_config
from core.events import TradingState
from core.ipc_commands import Command, CommandReply, CommandServer
from core.ipc_heartbeat import Heartbeat, write_heartbeat_csv
from execution.order_log import COLUMNS as ORDER_COLUMNS
from execution.order_log import format_ts_utc
from portfolio.live_manager import RISK_LOG_COLUMNS

EQUITY = 100_000.0


def append_row(path: Path, columns: tuple[str, ...], row: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        if new:
            writer.writerow(columns)
        writer.writerow([row.get(column, "") for column in columns])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--duration", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log = logging.getLogger("standin_engine")
    config = load_config(args.config)
    with socket.create_connection(("127.0.0.1", args.port), timeout=5):
        log.info("event=gateway_reachable port=%d", args.port)
    stop = threading.Event()
    if os.environ.get("STANDIN_IGNORE_SIGTERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    clock = WallClock()
    ops = config.operational_risk
    log_dir = Path(config.system.log_dir)

    def handler(command: Command) -> CommandReply:
        return CommandReply.accepted("stand-in engine", {"trading_state": "ACTIVE", "equity": EQUITY})

    server = CommandServer(ops.command_endpoint, Path(ops.command_keys_dir), handler, clock,
                           authorized_clients=ops.command_authorized_clients)  # fmt: skip
    now = clock.now_ns()
    order = {"ts_utc": format_ts_utc(now), "ts_ns": now, "client_order_id": "standin-1", "symbol": "SYM0",
             "side": "BUY", "quantity": 10, "order_type": "MKT"}  # fmt: skip
    append_row(Path(ops.order_rate_counter_path), ORDER_COLUMNS, {**order, "event": "submit", "status": "SUBMITTED"})
    append_row(
        Path(ops.order_rate_counter_path),
        ORDER_COLUMNS,
        {**order, "event": "fill", "filled_quantity": 10, "fill_price": 100.0, "status": "FILLED"},
    )
    seq = 0
    next_risk_ns = 0
    log.info("event=standin_started pid=%d", os.getpid())
    while not stop.is_set():
        seq += 1
        now = clock.now_ns()
        write_heartbeat_csv(Path(ops.heartbeat_flag_path),
                            Heartbeat(seq=seq, ts_ns=now, pid=os.getpid(), trading_state=TradingState.ACTIVE,
                                      equity=EQUITY, drawdown_pct=0.0))  # fmt: skip
        if now >= next_risk_ns:
            append_row(log_dir / "risk_log.csv", RISK_LOG_COLUMNS,
                       {"ts_utc": format_ts_utc(now), "ts_ns": now, "equity": EQUITY, "peak_equity": EQUITY,
                        "drawdown_pct": 0.0, "gross_exposure": 1000.0, "net_exposure": 1000.0, "positions": 1,
                        "open_orders": 0, "fills_today": 1, "trading_state": "ACTIVE"})  # fmt: skip
            next_risk_ns = now + 1_000_000_000
        server.serve_once(0.2)
    server.close()
    log.info("event=standin_stopped beats=%d", seq)
    return 0


if __name__ == "__main__":
    sys.exit(main())
