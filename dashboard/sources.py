"""What the dashboard reads, each read on its own and never raising: the files the risk monitor reads.

- the engine's heartbeat CSV (``operational_risk.heartbeat_flag_path``): trading state, equity, drawdown, its pid;
- the monitor's heartbeat JSON (``operational_risk.monitor_heartbeat_path``): its state, findings, its broker view;
- ``<log_dir>/risk_log.csv`` (intraday marks) and the order log (fills, working orders), tailed incrementally with
  the monitor's ``LineTail`` (complete lines only, across rotation and truncation);
- ``<state_dir>/daily_equity.csv`` (one row per session close).

Liveness marks (``process_mark``): a beat older than ``STALE_AFTER_INTERVALS`` heartbeat intervals is STALE, sooner
than the monitor's FROZEN verdict (``missed_heartbeats`` intervals), because a person should see a silent engine at
once; GONE when the beat's process no longer exists; STOPPED/CRASHED from the engine's last beat.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from pathlib import Path
from typing import Any

from core.clock import NS_PER_SECOND
from core.ipc_heartbeat import read_heartbeat_csv
from dashboard.book import OrderBook
from monitor.liveness import ProcessState, probe_process
from monitor.tail import LineTail

STALE_AFTER_INTERVALS = 1.5
MAX_RISK_MARKS = 5000


def engine_heartbeat(path: Path, interval_s: float, now_ns: int) -> dict[str, Any]:
    """The newest engine beat with its age and a mark: ALIVE, STALE, GONE, STOPPED, CRASHED or NO_HEARTBEAT."""
    beat = read_heartbeat_csv(path)
    if beat is None:
        return {"mark": "NO_HEARTBEAT", "detail": f"no readable heartbeat in {path}", "age_s": None}
    age_s = (now_ns - beat.ts_ns) / NS_PER_SECOND
    process = probe_process(beat.pid).state
    stopping = beat.extra.get("stopping")
    if stopping == "crash":
        why = beat.extra.get("error") or beat.extra.get("stop_reason")
        mark, detail = "CRASHED", f"engine {beat.pid} crashed ({why})"
    elif stopping in ("operator", "kill"):
        mark, detail = "STOPPED", f"engine {beat.pid} stopped on purpose ({beat.extra.get('stop_reason')})"
    elif process is ProcessState.GONE:
        mark, detail = "GONE", f"engine process {beat.pid} is gone"
    elif age_s > STALE_AFTER_INTERVALS * interval_s:
        how = " (process stopped: SIGSTOP or a debugger)" if process is ProcessState.STOPPED else ""
        mark, detail = "STALE", f"no heartbeat for {age_s:.1f} s{how}"
    else:
        mark, detail = "ALIVE", ""
    return {"mark": mark, "detail": detail, "age_s": round(age_s, 3), "seq": beat.seq, "pid": beat.pid,
            "trading_state": beat.trading_state.value, "equity": beat.equity, "drawdown_pct": beat.drawdown_pct,
            "ts_ns": beat.ts_ns, "process": process.value}  # fmt: skip


def monitor_heartbeat(path: Path, interval_s: float, now_ns: int) -> dict[str, Any]:
    """The monitor's heartbeat body with its age and a mark (ALIVE, STALE, GONE or NO_HEARTBEAT)."""
    try:
        body = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"mark": "NO_HEARTBEAT", "detail": f"no readable heartbeat in {path}", "age_s": None}
    if not isinstance(body, dict) or not isinstance(body.get("ts_ns"), int):
        return {"mark": "NO_HEARTBEAT", "detail": f"{path} is not a monitor heartbeat", "age_s": None}
    age_s = (now_ns - body["ts_ns"]) / NS_PER_SECOND
    pid = body.get("pid")
    gone = isinstance(pid, int) and probe_process(pid).state is ProcessState.GONE
    mark = "GONE" if gone else "STALE" if age_s > max(STALE_AFTER_INTERVALS * interval_s, 2.0) else "ALIVE"
    return {**body, "mark": mark, "age_s": round(age_s, 3),
            "detail": f"monitor process {pid} is gone" if gone else ""}  # fmt: skip


class CsvTail:
    """New rows of an append-only CSV with a header (one row per physical line), as dicts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._tail = LineTail(self.path, start_at_end=False)
        self._header: list[str] | None = None

    def new_rows(self) -> list[dict[str, str]]:
        rows = []
        for line in self._tail.read_lines():
            fields = next(csv.reader([line]), [])
            if self._header is None or fields == self._header:
                self._header = fields  # the first line, or the header of a replaced file
                continue
            if len(fields) == len(self._header):
                rows.append(dict(zip(self._header, fields, strict=True)))
        return rows

    def close(self) -> None:
        self._tail.close()


class RiskMarks:
    """The intraday risk-log marks for the chart (bounded) and the newest row."""

    def __init__(self, path: Path) -> None:
        self._tail = CsvTail(path)
        self.marks: deque[dict[str, Any]] = deque(maxlen=MAX_RISK_MARKS)
        self.latest: dict[str, str] | None = None

    def refresh(self) -> bool:
        rows = self._tail.new_rows()
        for row in rows:
            self.latest = row
            self.marks.append({"ts_utc": row.get("ts_utc"), "equity": _float(row.get("equity")),
                               "drawdown_pct": _float(row.get("drawdown_pct"))})  # fmt: skip
        return bool(rows)


class OrderLogView:
    """The order log folded into an ``OrderBook`` as it grows."""

    def __init__(self, path: Path) -> None:
        self._tail = CsvTail(path)
        self.book = OrderBook()

    def refresh(self) -> bool:
        rows = self._tail.new_rows()
        for row in rows:
            self.book.apply_row(row)
        return bool(rows)


def daily_equity(path: Path) -> list[dict[str, Any]]:
    """``session_date, equity`` rows of the performance record; [] when missing or unreadable."""
    try:
        with Path(path).open(encoding="utf-8", newline="") as f:
            return [{"session_date": r.get("session_date"), "equity": _float(r.get("equity"))}
                    for r in csv.DictReader(f)]  # fmt: skip
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None
