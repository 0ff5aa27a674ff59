"""PLACEHOLDER risk monitor: ``python risk_monitor.py [--config config.yaml] [--interval-s 1.0]``.

This is **not** the independent risk monitor of ``architecture.md``. Until that issue lands it only:

- reads the engine's heartbeat CSV (``operational_risk.heartbeat_flag_path``) every ``--interval-s`` seconds and
  logs its age (``event=engine_heartbeat ...`` or ``event=engine_heartbeat_missing``);
- rewrites ``operational_risk.monitor_heartbeat_path`` atomically (temp file + ``os.replace``) with its own beat,
  which says ``"placeholder": true`` and ``"can_stop_engine": false``;
- exits 0 on SIGTERM or SIGINT.

It never sends a command, writes no kill flag and has no broker connection: it cannot stop the engine. It says so
on stdout at start and in its log at start and every minute.

Like the real monitor it imports no engine runtime module, only config types and the IPC helpers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from core.clock import NS_PER_SECOND, WallClock
from core.config_loader import load_config
from core.errors import ConfigError
from core.ipc_heartbeat import read_heartbeat_csv
from utils.logger import setup_logging, shutdown_logging

log = logging.getLogger("risk_monitor")

PLACEHOLDER_BANNER = "risk monitor placeholder: logs heartbeats only, cannot stop the engine"
BANNER_REPEAT_S = 60.0
MONITOR_HEARTBEAT_VERSION = 1


def write_monitor_heartbeat(path: Path, body: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``body`` as JSON (a reader sees the old beat or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(body, separators=(",", ":")) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def stderr_is_file(path: Path) -> bool:
    """True when stderr already goes to ``path`` (run_system.sh redirects it there): no second console copy."""
    try:
        err, target = os.fstat(sys.stderr.fileno()), path.stat()
    except (OSError, ValueError):
        return False
    return (err.st_dev, err.st_ino) == (target.st_dev, target.st_ino)


def check_once(heartbeat_csv: Path, monitor_path: Path, seq: int, clock: WallClock) -> None:
    """Read the engine's beat, log its age, write our own beat (failures are logged, never raised)."""
    now_ns = clock.now_ns()
    beat = read_heartbeat_csv(heartbeat_csv)
    age_s: float | None = None
    if beat is None:
        log.warning("event=engine_heartbeat_missing path=%s", heartbeat_csv)
    else:
        age_s = round(beat.age_s(now_ns), 3)
        log.info("event=engine_heartbeat age_s=%.3f seq=%d pid=%d state=%s equity=%.2f drawdown_pct=%.4f",
                 age_s, beat.seq, beat.pid, beat.trading_state, beat.equity, beat.drawdown_pct)  # fmt: skip
    body = {
        "v": MONITOR_HEARTBEAT_VERSION, "seq": seq, "ts_ns": now_ns, "pid": os.getpid(), "placeholder": True,
        "can_stop_engine": False, "engine_heartbeat_age_s": age_s, "engine_seq": beat.seq if beat else None,
    }  # fmt: skip
    try:
        write_monitor_heartbeat(monitor_path, body)
    except OSError as exc:
        log.error("event=monitor_heartbeat_write_failed path=%s error=%s", monitor_path, exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--interval-s", type=float, default=1.0, help="seconds between checks")
    args = parser.parse_args(argv)
    if args.interval_s <= 0:
        print(f"risk_monitor: --interval-s must be > 0 (got {args.interval_s})", file=sys.stderr)
        return 2
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    log_file = Path(config.system.log_dir) / "risk_monitor.log"
    setup_logging(config.system.log_dir, "risk_monitor", config.system.log_level,
                  console=not stderr_is_file(log_file))  # fmt: skip
    print(f"WARNING: {PLACEHOLDER_BANNER}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stop.set())
    heartbeat_csv = Path(config.operational_risk.heartbeat_flag_path)
    monitor_path = Path(config.operational_risk.monitor_heartbeat_path)
    clock = WallClock()
    log.warning("event=placeholder_started message=%r pid=%d engine_heartbeat=%s monitor_heartbeat=%s",
                PLACEHOLDER_BANNER, os.getpid(), heartbeat_csv, monitor_path)  # fmt: skip
    seq = 0
    last_banner_ns = clock.now_ns()
    while not stop.is_set():
        seq += 1
        check_once(heartbeat_csv, monitor_path, seq, clock)
        if clock.now_ns() - last_banner_ns >= BANNER_REPEAT_S * NS_PER_SECOND:
            log.warning("event=placeholder_reminder message=%r", PLACEHOLDER_BANNER)
            last_banner_ns = clock.now_ns()
        stop.wait(args.interval_s)
    log.info("event=stopped reason=signal beats=%d", seq)
    shutdown_logging()
    return 0


if __name__ == "__main__":
    sys.exit(main())
