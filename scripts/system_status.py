"""Operator view of the running system: ``python scripts/system_status.py [--config FILE] [--timeout-s S]
[--json | --watch SECONDS]``.

Sections: processes (pid files under ``<state_dir>/pids``, alive or not), the engine heartbeat (age, a mark:
ALIVE, STALE, GONE, STOPPED, CRASHED; "ENGINE STOPPED" when its process is not running; trading state, equity),
the risk monitor heartbeat (flagged as its last word when the monitor is not running, so a stopped monitor's
"engine ALIVE" is not read as the present), positions (quantity, average cost and mark from the engine's ledger
over STATUS, the broker's quantity from the monitor, realized P&L from the order log; engine equity beside the
broker's NetLiquidation), and, when the engine runs and the operator key exists, the engine's answer to STATUS.
Numbers are formatted (``12,345.67``, ``0.19%``); ``--json`` prints the same report as one JSON object with the
numbers unformatted; ``--watch S`` redraws the text view every S seconds until Ctrl-C. The readers are the
dashboard's (``dashboard.sources``, ``dashboard.book``): the page and this view show the same numbers.

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

ROLES: tuple[str, ...] = ("ibsim", "main", "risk_monitor", "dashboard")
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


# -- the report (one dict: printed as text, or as JSON with --json) ---------------------------------------------------
def _money(value: object) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) else "-"


def _pct(value: object) -> str:
    return f"{value:.2f}%" if isinstance(value, int | float) else "-"


def _number(text: object) -> float | None:
    try:
        return float(text) if text not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def processes_report(config: AppConfig) -> dict[str, dict[str, Any]]:
    pid_dir = Path(config.system.state_dir) / "pids"
    report: dict[str, dict[str, Any]] = {}
    for role in ROLES:
        pid = read_pid(pid_dir / f"{role}.pid")
        report[role] = {"pid": pid, "alive": pid is not None and pid_alive(pid, role),
                        "log": str(Path(config.system.log_dir) / f"{role}.log")}  # fmt: skip
    return report


def status_report(config: AppConfig, engine_alive: bool, timeout_s: float) -> dict[str, Any]:
    """The engine's STATUS over the command channel: ``{"code", "message", "data"}`` or ``{"skipped": why}``."""
    ops = config.operational_risk
    keys_dir = Path(ops.command_keys_dir)
    if not engine_alive:
        return {"skipped": "the engine is not running"}
    if not (keys_dir / "clients" / f"{OPERATOR_CLIENT}.key_secret").exists():
        return {"skipped": f"no operator key in {keys_dir} (the engine creates it on its first run)"}
    from core.clock import WallClock
    from core.ipc_commands import CommandClient

    try:
        with CommandClient(ops.command_endpoint, keys_dir, OPERATOR_CLIENT, WallClock()) as client:
            reply = client.send("STATUS", timeout_s, reason="system_status.py")
    except (TradingSystemError, OSError, ValueError) as exc:
        return {"skipped": f"unreachable: {exc}"}
    return {"code": reply.code.value, "message": reply.message, "data": dict(reply.data)}


def collect(config: AppConfig, timeout_s: float) -> dict[str, Any]:
    """Everything ``status`` shows, as plain JSON values (numbers unformatted)."""
    from dashboard.book import symbol_rows
    from dashboard.sources import OrderLogView, engine_heartbeat, monitor_heartbeat

    ops = config.operational_risk
    now_ns = time.time_ns()
    processes = processes_report(config)
    engine = engine_heartbeat(Path(ops.heartbeat_flag_path), ops.heartbeat_interval_s, now_ns)
    monitor = monitor_heartbeat(Path(ops.monitor_heartbeat_path), ops.heartbeat_interval_s, now_ns)
    risk_rows = last_csv_rows(Path(config.system.log_dir) / RISK_LOG_NAME)
    status = status_report(config, processes["main"]["alive"], timeout_s)
    orders = OrderLogView(Path(ops.order_rate_counter_path))
    orders.refresh()
    ledger = (status.get("data") or {}).get("book") or {}
    broker = monitor.get("broker") or {}
    equity, net_liq = engine.get("equity"), broker.get("net_liquidation")
    return {
        "processes": processes,
        "engine": {**engine, "running": processes["main"]["alive"]},
        "monitor": {**monitor, "running": processes["risk_monitor"]["alive"]},
        "risk_log": _risk_row(risk_rows[-1]) if risk_rows else None,
        "positions": symbol_rows(ledger.get("symbols"), orders.book.by_symbol, broker.get("positions") or {}),
        "equity": {"engine": equity, "broker_net_liquidation": net_liq,
                   "difference": None if equity is None or net_liq is None else equity - net_liq,
                   "realized_pnl": ledger.get("realized_pnl"), "commissions_paid": ledger.get("commissions_paid")},
        "working_orders": len(orders.book.working),
        "status": status,
    }


def _risk_row(row: dict[str, str]) -> dict[str, Any]:
    """A risk-log row with its numbers parsed (an empty field, an unknown number, is None)."""
    text_columns = ("ts_utc", "trading_state", "last_veto")
    return {key: value if key in text_columns else _number(value) for key, value in row.items()}


def print_report(report: dict[str, Any], config: AppConfig) -> None:
    print(f"== processes (pid files in {Path(config.system.state_dir) / 'pids'})")
    for role, p in report["processes"].items():
        pid = "no pid file" if p["pid"] is None else f"pid {p['pid']:<8} {'alive' if p['alive'] else 'NOT RUNNING'}"
        print(f"  {role:<13} {pid:<22} log {p['log']}")
    print_engine(report["engine"], config)
    print_monitor(report["monitor"], config)
    print_positions(report)
    print_status(report["status"], config)


def print_engine(engine: dict[str, Any], config: AppConfig) -> None:
    print(f"== engine heartbeat ({config.operational_risk.heartbeat_flag_path})")
    if engine.get("age_s") is None:
        print(f"  no heartbeat (file missing or unreadable){'' if engine['running'] else '; the engine is stopped'}")
        return
    mark = engine["mark"]
    if not engine["running"]:
        mark = f"ENGINE STOPPED (last beat: {engine['mark']})"
    print(f"  {mark}  age {engine['age_s']:.1f} s  seq {engine.get('seq')}  pid {engine.get('pid')}  "
          f"trading_state {engine.get('trading_state')}  equity {_money(engine.get('equity'))}  "
          f"drawdown {_pct(engine.get('drawdown_pct'))}")  # fmt: skip
    if engine.get("detail"):
        print(f"  {engine['detail']}")


def print_monitor(monitor: dict[str, Any], config: AppConfig) -> None:
    print(f"== risk monitor heartbeat ({config.operational_risk.monitor_heartbeat_path})")
    if monitor.get("age_s") is None:
        print("  no heartbeat (file missing or unreadable)")
        return
    note = "  PLACEHOLDER: cannot stop the engine" if monitor.get("placeholder") else ""
    said = "" if monitor["running"] else "  MONITOR STOPPED: what follows is its last word, not the present"
    print(f"  {monitor['mark']}  age {monitor['age_s']:.1f} s  seq {monitor.get('seq')}  pid {monitor.get('pid')}"
          f"{note}{said}")  # fmt: skip
    if "state" in monitor:
        then = "" if monitor["running"] else " (then)"
        print(f"  monitor_state {monitor.get('state')}{then}  engine {monitor.get('engine_status')}{then}  "
              f"can_stop_engine {monitor.get('can_stop_engine')}")  # fmt: skip
        for label in ("breaches", "alarms"):
            for item in monitor.get(label) or []:
                name = label[:-2] if label == "breaches" else label[:-1]
                print(f"  {name}: {item.get('kind')}: {item.get('detail')}")


def print_positions(report: dict[str, Any]) -> None:
    print("== positions (engine ledger over STATUS; broker qty from the monitor; realized from the order log)")
    row, eq = report["risk_log"], report["equity"]
    if row:
        print(f"  risk log {row.get('ts_utc')}: equity {_money(row.get('equity'))}  drawdown "
              f"{_pct(row.get('drawdown_pct'))}  gross {_money(row.get('gross_exposure'))}  net "
              f"{_money(row.get('net_exposure'))}  positions {int(row.get('positions') or 0)}  open_orders "
              f"{int(row.get('open_orders') or 0)}  fills_today {int(row.get('fills_today') or 0)}  "
              f"state {row.get('trading_state')}")  # fmt: skip
    else:
        print("  no risk log rows yet")
    print(f"  engine equity {_money(eq['engine'])}  broker NetLiquidation {_money(eq['broker_net_liquidation'])}  "
          f"difference {_money(eq['difference'])}  realized P&L {_money(eq['realized_pnl'])}  "
          f"commissions {_money(eq['commissions_paid'])}")  # fmt: skip
    if not report["positions"]:
        print("  flat")
        return
    print(f"  {'symbol':<8}{'qty':>10}{'broker':>10}{'avg cost':>12}{'mark':>12}{'unrealized':>14}{'realized':>14}")
    for p in report["positions"]:
        print(f"  {p['symbol']:<8}{p['quantity']:>10,.0f}{p['broker_quantity']:>10,.0f}{_money(p['avg_cost']):>12}"
              f"{_money(p['mark']):>12}{_money(p['unrealized_pnl']):>14}{_money(p['realized_pnl']):>14}")


def print_status(status: dict[str, Any], config: AppConfig) -> None:
    ops = config.operational_risk
    print(f"== engine STATUS (command channel {ops.command_endpoint}, client {OPERATOR_CLIENT})")
    if "skipped" in status:
        print(f"  skipped: {status['skipped']}")
        return
    print(f"  {status['code']}{': ' + status['message'] if status['message'] else ''}")
    for key, value in sorted(status["data"].items()):
        if key == "book":
            continue  # shown as the positions table
        shown = f"{value:,.2f}" if isinstance(value, float) else json.dumps(value, default=str)
        print(f"  {key}: {shown}")


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="wait for the engine's STATUS reply")
    parser.add_argument("--summary", action="store_true", help="print the end-of-run summary")
    parser.add_argument("--since-ns", type=int, default=None, help="summary: only rows from this UTC epoch ns")
    parser.add_argument("--json", action="store_true", help="print one JSON object (numbers unformatted)")
    parser.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                        help="refresh the text view every SECONDS until Ctrl-C")  # fmt: skip
    args = parser.parse_args(argv)
    if args.watch is not None and not args.watch > 0:
        parser.error(f"--watch must be a number of seconds > 0 (got {args.watch})")
    return args


def exit_code(report: dict[str, Any], config: AppConfig) -> int:
    expected = [role for role in ROLES if (role != "ibsim" or config.ib_connection.mode == "sim")
                and (role != "dashboard" or config.dashboard.enabled)]  # fmt: skip
    return 0 if all(report["processes"][role]["alive"] for role in expected) else 1


def watch(config: AppConfig, args: argparse.Namespace) -> int:
    """The text view, redrawn every ``--watch`` seconds (each round under its own watchdog) until Ctrl-C."""
    code = 0
    try:
        while True:
            signal.alarm(int(args.timeout_s) + 10)
            report = collect(config, args.timeout_s)
            signal.alarm(0)
            print("\033[2J\033[H", end="")
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}  (every {args.watch:g} s; Ctrl-C ends)")
            print_report(report, config)
            code = exit_code(report, config)
            sys.stdout.flush()
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        if args.watch is not None:
            return watch(config, args)
        signal.alarm(int(args.timeout_s) + 10)
        if args.summary:
            summary(config, args.since_ns)
            return 0
        report = collect(config, args.timeout_s)
        if args.json:
            print(json.dumps(report, indent=2, sort_keys=True, default=str))
        else:
            print_report(report, config)
    except _Watchdog:
        print("system_status: gave up (watchdog timeout)", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
    return exit_code(report, config)


if __name__ == "__main__":
    sys.exit(main())
