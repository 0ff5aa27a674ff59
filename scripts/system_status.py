"""Operator view of the running system: ``python scripts/system_status.py [--config FILE] [--timeout-s S]``.

Sections: processes (pid files under ``<state_dir>/pids``, alive or not), the engine heartbeat (age, trading state,
equity from the heartbeat CSV), the risk monitor heartbeat (age), positions (the latest risk log row) and, when the
engine runs and the operator key exists, the engine's answer to STATUS over the command channel.

``--summary [--since-ns NS]`` prints the end-of-run summary instead (``run_system.sh --duration``): equity and
trading state, fills and orders of the run from the risk log, heartbeat and order log.

Relative paths in the config are relative to the working directory (``run_system.sh`` runs from the repository).
Never hangs: every read is a file read, STATUS has a timeout, and a watchdog alarm ends the whole run.
Exit status: 0 every process running (``--summary``: always 0), 1 something not running, 2 bad config.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.config_loader import load_config  # after the sys.path line: runs from anywhere
from core.config_models import AppConfig
from core.errors import ConfigError, TradingSystemError
from core.ipc_heartbeat import read_heartbeat_csv

ROLES: tuple[str, ...] = ("ibsim", "main", "risk_monitor")
ROLE_TAG = "IBKR_SYSTEM_ROLE"  # run_system.sh puts it in each process's environment
OPERATOR_CLIENT = "operator"
RISK_LOG_NAME = "risk_log.csv"


# -- readers (never raise) -------------------------------------------------------------------------------------------
def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def pid_alive(pid: int, role: str | None = None) -> bool:
    """Running and not a zombie; with ``role``, also started by run_system.sh as that role (where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        if proc.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if role is not None:
            return f"{ROLE_TAG}={role}".encode() in proc.joinpath("environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        pass
    return True


def last_csv_rows(path: Path, since_ns: int | None = None) -> list[dict[str, str]]:
    """Rows of a CSV log with a ``ts_ns`` column (only those at or after ``since_ns``); [] if unreadable."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [row for row in csv.DictReader(f) if None not in row.values()]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if since_ns is None:
        return rows
    return [row for row in rows if _int(row.get("ts_ns")) >= since_ns]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _age(ts_ns: object) -> str:
    if not isinstance(ts_ns, int):
        return "age unknown"
    return f"age {(time.time_ns() - ts_ns) / 1e9:.1f} s"


# -- sections --------------------------------------------------------------------------------------------------------
def processes_section(config: AppConfig) -> dict[str, bool]:
    pid_dir = Path(config.system.state_dir) / "pids"
    print(f"== processes (pid files in {pid_dir})")
    alive: dict[str, bool] = {}
    for role in ROLES:
        pid = read_pid(pid_dir / f"{role}.pid")
        log_file = Path(config.system.log_dir) / f"{role}.log"
        if pid is None:
            alive[role] = False
            print(f"  {role:<13} no pid file            log {log_file}")
            continue
        alive[role] = pid_alive(pid, role)
        print(f"  {role:<13} pid {pid:<8} {'alive' if alive[role] else 'NOT RUNNING':<11} log {log_file}")
    return alive


def engine_heartbeat_section(config: AppConfig) -> None:
    path = Path(config.operational_risk.heartbeat_flag_path)
    print(f"== engine heartbeat ({path})")
    beat = read_heartbeat_csv(path)
    if beat is None:
        print("  no heartbeat (file missing or unreadable)")
        return
    stale_after = config.operational_risk.heartbeat_interval_s * config.operational_risk.missed_heartbeats
    age = (time.time_ns() - beat.ts_ns) / 1e9
    print(
        f"  age {age:.1f} s{' (STALE)' if age > stale_after else ''}  seq {beat.seq}  pid {beat.pid}  "
        f"trading_state {beat.trading_state}  equity {beat.equity:,.2f}  drawdown {beat.drawdown_pct:.2f}%"
    )


def monitor_heartbeat_section(config: AppConfig) -> None:
    path = Path(config.operational_risk.monitor_heartbeat_path)
    print(f"== risk monitor heartbeat ({path})")
    body = read_json(path)
    if body is None:
        print("  no heartbeat (file missing or unreadable)")
        return
    note = "  PLACEHOLDER: cannot stop the engine" if body.get("placeholder") else ""
    print(f"  {_age(body.get('ts_ns'))}  seq {body.get('seq')}  pid {body.get('pid')}{note}")
    if "state" in body:
        print(f"  monitor_state {body.get('state')}  engine {body.get('engine_status')}  "
              f"can_stop_engine {body.get('can_stop_engine')}")  # fmt: skip
        for label in ("breaches", "alarms"):
            for item in body.get(label) or []:
                print(f"  {label[:-2] if label == 'breaches' else label[:-1]}: {item}")


def positions_section(config: AppConfig) -> None:
    path = Path(config.system.log_dir) / RISK_LOG_NAME
    print(f"== positions (latest risk log row, {path})")
    rows = last_csv_rows(path)
    if not rows:
        print("  no risk log rows yet")
        return
    row = rows[-1]
    print(
        f"  {row.get('ts_utc')}  positions {row.get('positions')}  open_orders {row.get('open_orders')}  "
        f"fills_today {row.get('fills_today')}  gross {row.get('gross_exposure')}  net {row.get('net_exposure')}  "
        f"equity {row.get('equity')}  drawdown {row.get('drawdown_pct')}%  state {row.get('trading_state')}"
    )


def command_section(config: AppConfig, engine_alive: bool, timeout_s: float) -> None:
    ops = config.operational_risk
    print(f"== engine STATUS (command channel {ops.command_endpoint}, client {OPERATOR_CLIENT})")
    keys_dir = Path(ops.command_keys_dir)
    if not engine_alive:
        print("  skipped: the engine is not running")
        return
    if not (keys_dir / "clients" / f"{OPERATOR_CLIENT}.key_secret").exists():
        print(f"  skipped: no operator key in {keys_dir} (the engine creates it on its first run)")
        return
    from core.clock import WallClock
    from core.ipc_commands import CommandClient

    try:
        with CommandClient(ops.command_endpoint, keys_dir, OPERATOR_CLIENT, WallClock()) as client:
            reply = client.send("STATUS", timeout_s, reason="system_status.py")
    except (TradingSystemError, OSError, ValueError) as exc:
        print(f"  unreachable: {exc}")
        return
    print(f"  {reply.code}{': ' + reply.message if reply.message else ''}")
    for key, value in sorted(reply.data.items()):
        print(f"  {key}: {json.dumps(value, default=str)}")


def summary(config: AppConfig, since_ns: int | None) -> None:
    """End-of-run summary from the risk log, the heartbeat and the order log (rows since ``since_ns``)."""
    print("== run summary")
    beat = read_heartbeat_csv(Path(config.operational_risk.heartbeat_flag_path))
    if beat is not None and (since_ns is None or beat.ts_ns >= since_ns):
        print(
            f"  last heartbeat: seq {beat.seq}  trading_state {beat.trading_state}  equity {beat.equity:,.2f}  "
            f"drawdown {beat.drawdown_pct:.2f}%"
        )
    else:
        print("  last heartbeat: none during this run")
    risk_rows = last_csv_rows(Path(config.system.log_dir) / RISK_LOG_NAME, since_ns)
    if risk_rows:
        row = risk_rows[-1]
        print(
            f"  risk log: {len(risk_rows)} rows; last: equity {row.get('equity')}  state {row.get('trading_state')}"
            f"  positions {row.get('positions')}  open_orders {row.get('open_orders')}  "
            f"fills_today {row.get('fills_today')}"
        )
        if any(row.get(k) not in (None, "", "0") for k in ("vetoed", "vetoed_missing", "veto_passed")):
            print(f"  signal veto: vetoed {row.get('vetoed')} (p below threshold) + {row.get('vetoed_missing')} "
                  f"(no fresh features), passed {row.get('veto_passed')}; last: {row.get('last_veto') or '-'}")
    else:
        print("  risk log: no rows during this run")
    order_log = Path(config.operational_risk.order_rate_counter_path)
    events = [row.get("event") for row in last_csv_rows(order_log, since_ns)]
    print(
        f"  orders: {events.count('submit')} submitted  fills: {events.count('fill') + events.count('partial')}  "
        f"rejects: {events.count('reject')}  cancels: {events.count('cancel')}"
    )


class _Watchdog(Exception):
    pass


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Watchdog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="wait for the engine's STATUS reply")
    parser.add_argument("--summary", action="store_true", help="print the end-of-run summary")
    parser.add_argument("--since-ns", type=int, default=None, help="summary: only rows from this UTC epoch ns")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(args.timeout_s) + 10)
    try:
        if args.summary:
            summary(config, args.since_ns)
            return 0
        alive = processes_section(config)
        engine_heartbeat_section(config)
        monitor_heartbeat_section(config)
        positions_section(config)
        command_section(config, alive["main"], args.timeout_s)
    except _Watchdog:
        print("system_status: gave up (watchdog timeout)", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
    expected = [role for role in ROLES if role != "ibsim" or config.ib_connection.mode == "sim"]
    return 0 if all(alive[role] for role in expected) else 1


if __name__ == "__main__":
    sys.exit(main())
