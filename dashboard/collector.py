"""One thread keeps the page's picture: it re-reads the files every ``dashboard.refresh_s`` and publishes an
immutable JSON-ready snapshot with a version number.

Readers (the web handlers, on uvicorn's event loop) only take ``latest()``: a dict replaced whole under a lock,
never mutated after publication, so no reader sees half an update. A second thread asks STATUS every
``dashboard.status_interval_s`` (only while the engine's heartbeat is alive: a frozen engine would make every ask
wait out its timeout) for the reasons, the ledger's marks and the market clock. A command's reply carries the
engine's status after the command (``live.commands``): ``note_status`` folds it in at once, so the page shows the
new state without waiting for the next STATUS.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any

from core.clock import NS_PER_SECOND, WallClock
from core.config_models import AppConfig
from dashboard.book import position_rows, symbol_rows
from dashboard.costs import COSTS_REFRESH_S, read_costs
from dashboard.engine_link import EngineLink
from dashboard.market_clock import MarketClock
from dashboard.sources import OrderLogView, RiskMarks, daily_equity, engine_heartbeat, monitor_heartbeat

log = logging.getLogger(__name__)

STATUS_TIMEOUT_S = 1.0
LATEST_FILLS = 20


class Collector:
    """Owns the readers and the published snapshot; ``run(stop)`` is the thread's body."""

    def __init__(self, config: AppConfig, link: EngineLink) -> None:
        self._config = config
        self._link = link
        self._clock = WallClock()
        ops, system = config.operational_risk, config.system
        self._risk = RiskMarks(Path(system.log_dir) / "risk_log.csv")
        self._orders = OrderLogView(Path(ops.order_rate_counter_path))
        self._daily_path = Path(system.state_dir) / "daily_equity.csv"
        self._lock = threading.Lock()
        self._status: dict[str, Any] | None = None
        self._status_ns: int | None = None
        self._market = MarketClock()
        self._tca_path = Path(system.results_dir) / "tca_log.duckdb"
        self._costs: dict[str, Any] = {"available": False, "detail": "not read yet"}
        self._charts_version = 0
        self._version = 0
        self._snapshot: dict[str, Any] = {"version": 0}
        self._charts: dict[str, Any] = {"version": 0, "risk_marks": [], "daily_equity": []}
        self._work = threading.Lock()  # one refresh at a time: the collector thread's, or a command reply's

    def latest(self) -> dict[str, Any]:
        with self._lock:
            return self._snapshot

    def charts(self) -> dict[str, Any]:
        with self._lock:
            return self._charts

    def note_status(self, status: dict[str, Any]) -> None:
        """A STATUS body from a command reply (any thread): used by the next snapshot, published now."""
        with self._lock:
            self._status, self._status_ns = dict(status), self._clock.now_ns()
        self.refresh()

    def run(self, stop: threading.Event) -> None:
        """Re-read the files every ``refresh_s`` until ``stop``; STATUS is asked on a thread of its own, so an engine
        that does not answer (frozen, before its heartbeat is stale) never delays the files' picture."""
        poller = threading.Thread(target=self._poll_status, args=(stop,), name="dashboard-status", daemon=True)
        poller.start()
        while not stop.is_set():
            try:
                self.refresh()
            except Exception:  # a reader bug must not freeze the page: logged, and the next turn tries again
                log.exception("event=dashboard_refresh_failed")
            stop.wait(self._config.dashboard.refresh_s)
        poller.join(timeout=STATUS_TIMEOUT_S + 1)

    def _poll_status(self, stop: threading.Event) -> None:
        next_costs_ns = 0
        while not stop.wait(self._config.dashboard.status_interval_s):
            if self._clock.now_ns() >= next_costs_ns:  # the TCA log: rare, and on this thread, off the files' loop
                next_costs_ns = self._clock.now_ns() + int(COSTS_REFRESH_S * NS_PER_SECOND)
                self._read_costs()
            if self.latest().get("engine", {}).get("mark") != "ALIVE":
                continue  # a silent engine would only make every ask wait out its timeout
            reply = self._link.send("STATUS", STATUS_TIMEOUT_S, reason="dashboard")
            if reply["ok"]:
                now_ns = self._clock.now_ns()
                data = reply["data"]
                with self._lock:
                    self._market.observe(data.get("market_time_ns"), data.get("next_close_ns"), now_ns)
                    self._status, self._status_ns = data, now_ns

    def _read_costs(self) -> None:
        costs = read_costs(self._tca_path)
        with self._lock:
            if costs["available"] or not self._costs.get("available"):
                self._costs = {**costs, "read_ns": self._clock.now_ns()}
            else:  # busy or unreadable now: keep the last good panel, say why it is old
                self._costs = {**self._costs, "detail": f"{costs['detail']} (showing the previous read)"}

    def refresh(self) -> None:
        with self._work:
            self._refresh()

    def _refresh(self) -> None:
        now_ns = self._clock.now_ns()
        ops = self._config.operational_risk
        engine = engine_heartbeat(Path(ops.heartbeat_flag_path), ops.heartbeat_interval_s, now_ns)
        monitor = monitor_heartbeat(Path(ops.monitor_heartbeat_path), ops.heartbeat_interval_s, now_ns)
        self._refresh_charts()
        self._orders.refresh()
        with self._lock:
            self._version += 1
            self._snapshot = json_ready(self._build(now_ns, engine, monitor))

    def _refresh_charts(self) -> None:
        if not self._risk.refresh() and self._charts_version:
            return
        charts = {"risk_marks": list(self._risk.marks), "daily_equity": daily_equity(self._daily_path)}
        with self._lock:
            self._charts_version += 1
            self._charts = json_ready({"version": self._charts_version, **charts})

    def _current_ledger(self, status: dict[str, Any]) -> dict[str, Any] | None:
        """STATUS's ledger lines while they are current: answered within two intervals and after the order log's
        newest fill; else None (the order log's book stands in: the engine is gone, frozen or just filled)."""
        if self._status_ns is None:
            return None
        age_ns = self._clock.now_ns() - self._status_ns
        newest_fill = self._orders.book.fills[-1]["ts_ns"] if self._orders.book.fills else None
        if age_ns > 2 * self._config.dashboard.status_interval_s * NS_PER_SECOND:
            return None
        if isinstance(newest_fill, int) and newest_fill > self._status_ns:
            return None
        return (status.get("book") or {}).get("symbols")

    def _build(self, now_ns: int, engine: dict[str, Any], monitor: dict[str, Any]) -> dict[str, Any]:
        status = self._status or {}
        book = self._orders.book
        marks = {s: v["mark"] for s, v in (status.get("book") or {}).get("symbols", {}).items() if v.get("mark")}
        broker = monitor.get("broker") or {}
        engine_equity = engine.get("equity")
        net_liq = broker.get("net_liquidation")
        system = self._config.system
        return {
            "version": self._version,
            "now_ns": now_ns,
            "charts_version": self._charts_version,
            "engine": engine,
            "monitor": {k: monitor.get(k) for k in ("mark", "detail", "age_s", "state", "engine_status",
                                                     "engine_detail", "breaches", "alarms", "kill", "pid", "seq")},
            "trading": _trading(engine, status, self._status_ns, now_ns),
            "market_clock": self._market.view(now_ns),
            "positions": symbol_rows(self._current_ledger(status), book.by_symbol, broker.get("positions") or {},
                                     marks),
            "positions_by_strategy": position_rows(book.by_strategy, marks),
            "broker_positions": broker.get("positions") or {},
            "working_orders": list(book.working.values()),
            "fills": list(reversed(book.fills[-LATEST_FILLS:])),
            "equity": {"engine": engine_equity, "broker_net_liquidation": net_liq,
                       "difference": None if engine_equity is None or net_liq is None else engine_equity - net_liq,
                       "broker_account": broker.get("account"), "broker_connected": broker.get("connected")},
            "risk": self._risk.latest,
            "flags": {"kill": Path(system.kill_flag_path).exists(),
                      "kill_now": Path(system.kill_now_flag_path).exists()},
            "costs": self._costs,
            "ledger": {k: (status.get("book") or {}).get(k) for k in ("realized_pnl", "commissions_paid", "cash")},
        }  # fmt: skip


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float as None and numpy scalars as Python ones: the page's ``JSON.parse``
    refuses NaN (one NaN in a snapshot would freeze the page on the one before), and ``/api/state``'s encoder too."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _trading(engine: dict[str, Any], status: dict[str, Any], status_ns: int | None, now_ns: int) -> dict[str, Any]:
    """The trading state: the heartbeat's (fresh every beat) with STATUS's reasons and cause when known."""
    status_newer = status_ns is not None and status_ns > (engine.get("ts_ns") or 0)
    state = status.get("state") if status_newer and status.get("state") else engine.get("trading_state")
    return {
        "state": state or status.get("state"),
        "reasons": status.get("reasons") or [],
        "halt_reason": status.get("halt_reason"),
        "kill": status.get("kill"),
        "status_age_s": None if status_ns is None else round((now_ns - status_ns) / NS_PER_SECOND, 1),
        "last_daily_bar": status.get("last_daily_bar"),
        "session_decisions": status.get("session_decisions"),
    }
