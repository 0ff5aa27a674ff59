"""The engine's portfolio manager: the backtester's ``PortfolioManager`` plus what only a live process needs.

``LiveManager`` wraps (does not copy) a ``PortfolioManager``, so ledger, sizing, risk, pre-trade checks and the
monthly cap are the very calls the backtester makes. On top it adds:

- ``on_timer(now_ns)``, called by the engine loop every few seconds: settles due T+N proceeds in the ledger,
  appends one row to the risk log and, if configured, rewrites the portfolio snapshot;
- a fills-today counter that restarts at each New York calendar date (the risk monitor's daily limits);
- ``set_reduce_only``: the live-only REDUCING reasons (an operator's FLATTEN, the risk monitor's heartbeat stale
  when ``reduce_only_on_monitor_stale`` is on), held by the one trading-state machine
  (``portfolio.trading_state``) next to the risk manager's drawdown reason;
- ``heartbeat_fields()`` for the heartbeat publisher and ``snapshot()``/``restore()`` for restarts;
- the signal veto's record (``veto_status()`` for STATUS, the risk log's veto columns): its counts and the last
  vetoed signals with strategy, symbol and reason (the veto itself is the ``PortfolioManager``'s, ``portfolio.veto``).

Risk log format (``logs/risk_log.csv``; the contract with ``risk_monitor.py``, change both together): UTF-8 CSV,
header written once when the file is created or empty, one row per ``on_timer`` call, flushed on write. Columns:
``ts_utc`` (ISO 8601 UTC, ``Z``), ``ts_ns`` (UTC epoch ns), ``equity``, ``peak_equity`` (high-water mark),
``gross_exposure``, ``net_exposure`` (USD, cents), ``drawdown_pct`` (from the high-water mark, percent),
``positions``, ``open_orders``, ``fills_today``, ``trading_state``, then the signal veto's counts since start
(``vetoed``: p below the threshold, ``vetoed_missing``: no fresh features, ``veto_passed``; 0 without a veto) and
``last_veto`` (``<session> <strategy> <symbol> <reason>``, empty if none). An unknown number (an unpriced position)
is an empty field. A reopened file gets no second header; a file with another header is refused
(StateCorruptError), except one in the layout before the veto columns (``RISK_LOG_COLUMNS_BEFORE_VETO``), which is
moved aside to ``risk_log.<its last write, UTC>.csv`` (logged) so an upgraded engine starts.

Threading: everything here belongs to the dispatcher thread (timers fire on it too); nothing is thread-safe.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.clock import NS_PER_SECOND
from core.config_models import RiskConfig
from core.errors import StateCorruptError
from core.events import (
    FillEvent,
    MarketEvent,
    OrderEvent,
    OrderFailedEvent,
    OrderType,
    Side,
    SignalDirection,
    SignalEvent,
    TradingState,
)
from execution.order_log import format_ts_utc
from portfolio.ledger import Ledger
from portfolio.monthly_counter import MonthlyTradeCounter
from portfolio.portfolio_manager import PortfolioManager
from portfolio.risk_manager import RiskManager
from portfolio.snapshot import canonical_json, write_snapshot
from portfolio.trading_state import Reason, TradingStateMachine
from portfolio.veto import SignalVeto
from utils.append_csv import AppendOnlyCsv

log = logging.getLogger(__name__)

DEFAULT_RISK_LOG_PATH = Path("logs/risk_log.csv")
RISK_LOG_COLUMNS_BEFORE_VETO: tuple[str, ...] = (
    "ts_utc", "ts_ns", "equity", "peak_equity", "drawdown_pct", "gross_exposure", "net_exposure", "positions",
    "open_orders", "fills_today", "trading_state",
)  # fmt: skip
RISK_LOG_COLUMNS: tuple[str, ...] = (*RISK_LOG_COLUMNS_BEFORE_VETO, "vetoed", "vetoed_missing", "veto_passed",
                                     "last_veto")  # fmt: skip
NEW_YORK = "America/New_York"
RECENT_VETOES = 20  # vetoed signals kept for STATUS


class RiskLog:
    """Append-only CSV of periodic portfolio metrics (format in the module doc). Owned by the dispatcher."""

    def __init__(self, path: Path | str = DEFAULT_RISK_LOG_PATH) -> None:
        _move_aside_if_before_veto(Path(path))
        self._csv = AppendOnlyCsv(path, RISK_LOG_COLUMNS, "risk log")
        self.path = self._csv.path

    def write(self, row: Mapping[str, object]) -> None:
        """Append one row (keys: ``RISK_LOG_COLUMNS``) and flush it to the OS before returning."""
        self._write([_field(row[column]) for column in RISK_LOG_COLUMNS])

    def _write(self, fields: list[str]) -> None:
        self._csv.append(fields)

    def close(self) -> None:
        self._csv.close()


def _move_aside_if_before_veto(path: Path) -> None:
    """A risk log written before the veto columns existed is renamed (never rewritten): rows of two layouts in one
    file would mislead its readers. The risk monitor's tail follows the rename to the new file."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("r", encoding="utf-8", newline="") as f:
        header = tuple(next(csv.reader([f.readline()]), []))
    if header != RISK_LOG_COLUMNS_BEFORE_VETO:
        return
    stamp = datetime.fromtimestamp(path.stat().st_mtime, tz=ZoneInfo("UTC")).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.stem}.{stamp}{path.suffix}")
    n = 1
    while target.exists():  # rename would replace it
        n += 1
        target = path.with_name(f"{path.stem}.{stamp}-{n}{path.suffix}")
    path.rename(target)
    log.warning("event=risk_log_moved_aside path=%s moved_to=%s reason=layout_before_veto_columns", path, target)


class DailyFillCounter:
    """Fills per calendar date in ``tz`` (New York: the trading day, not the UTC day).

    A fill dated before the current day (a replayed execution after a reconnect) does not count towards today.
    """

    def __init__(self, tz: str = NEW_YORK) -> None:
        self._zone = ZoneInfo(tz)
        self.session_date: date | None = None
        self._count = 0

    def local_date(self, ts_ns: int) -> date:
        return datetime.fromtimestamp(ts_ns // NS_PER_SECOND, tz=self._zone).date()

    def roll(self, now_ns: int) -> None:
        """Start a new day (count 0) once ``now_ns`` is past the current one."""
        today = self.local_date(now_ns)
        if self.session_date is None or today > self.session_date:
            self.session_date, self._count = today, 0

    def add(self, ts_ns: int) -> None:
        day = self.local_date(ts_ns)
        self.roll(ts_ns)
        if day == self.session_date:
            self._count += 1

    def count(self, now_ns: int) -> int:
        return self._count if self.local_date(now_ns) == self.session_date else 0

    def to_json(self) -> dict[str, Any]:
        return {"session_date": None if self.session_date is None else self.session_date.isoformat(),
                "count": self._count}  # fmt: skip

    def load_json(self, data: Mapping[str, Any]) -> None:
        stored = data.get("session_date")
        self.session_date = None if stored is None else date.fromisoformat(stored)
        self._count = int(data.get("count", 0))


class SessionCalendar(Protocol):
    """The part of ``data.calendar.TradingCalendar`` settlement needs."""

    @property
    def tz(self) -> tzinfo: ...

    def is_session(self, date: Any) -> bool: ...

    def next_session(self, date: Any) -> pd.Timestamp: ...

    def session_open_ns(self, dates: pd.DatetimeIndex | np.ndarray) -> np.ndarray: ...


def calendar_settlement(calendar: SessionCalendar, settlement_days: int) -> Callable[[int], int]:
    """``settles_at_ns`` for the live ledger: a trade settles at the open of the ``settlement_days``-th session
    after its trade date (the New York date of the fill if that is a session, else the next session).

    Same rule as the backtester's (T+1 by default), but from the exchange calendar instead of the bar panel,
    because a live process has no panel of future sessions. ``settlement_days=0`` settles at once.
    """

    def settles_at_ns(ts_event_ns: int) -> int:
        if settlement_days == 0:
            return ts_event_ns
        trade_date = pd.Timestamp(pd.Timestamp(ts_event_ns, tz="UTC").tz_convert(calendar.tz).date())
        session = trade_date if calendar.is_session(trade_date) else calendar.next_session(trade_date)
        for _ in range(settlement_days):
            session = calendar.next_session(session)
        return int(calendar.session_open_ns(pd.DatetimeIndex([session]))[0])

    return settles_at_ns


def restore_books(
    snapshot: Mapping[str, Any], risk_config: RiskConfig, trading: TradingStateMachine | None = None
) -> tuple[Ledger, RiskManager]:
    """The ledger and risk manager a restarted engine builds its ``PortfolioManager`` from.

    They must exist before the PortfolioManager (it binds to its ledger at construction); ``LiveManager.restore``
    then applies the rest of the snapshot and checks the ledger really came from it.
    """
    return Ledger.from_snapshot(dict(snapshot["ledger"])), RiskManager(
        risk_config, initial_peak_equity=snapshot["peak_equity"], trading=trading
    )


class LiveManager:
    """The engine's portfolio: a ``PortfolioManager`` plus risk log, fills today, reduce-only, snapshot.

    ``monthly`` must be the counter given to ``portfolio`` (it is snapshotted); ``open_orders`` returns the
    executor's count of working orders (the broker-side truth); ``now_ns`` is the engine clock.
    """

    def __init__(
        self,
        portfolio: PortfolioManager,
        *,
        monthly: MonthlyTradeCounter,
        open_orders: Callable[[], int],
        now_ns: Callable[[], int],
        risk_log_path: Path | str = DEFAULT_RISK_LOG_PATH,
        snapshot_path: Path | str | None = None,
        reduce_only_on_monitor_stale: bool = True,
        session_tz: str = NEW_YORK,
        veto: SignalVeto | None = None,
    ) -> None:
        self.portfolio = portfolio
        self._monthly = monthly
        self._open_orders = open_orders
        self._now_ns = now_ns
        self._risk_log = RiskLog(risk_log_path)
        self._snapshot_path = None if snapshot_path is None else Path(snapshot_path)
        self._reduce_only_on_monitor_stale = reduce_only_on_monitor_stale
        self._fills = DailyFillCounter(session_tz)
        self.trading: TradingStateMachine = portfolio.risk.trading  # the one owner of the trading state
        self._veto = veto  # the portfolio's veto (it decides); read here for STATUS and the risk log
        self._session_zone = ZoneInfo(session_tz)
        self._recent_vetoes: deque[dict[str, Any]] = deque(maxlen=RECENT_VETOES)

    # -- state ---------------------------------------------------------------------------------------------------
    @property
    def state(self) -> TradingState:
        return self.trading.state

    @property
    def reduce_only(self) -> bool:
        """Only exposure-reducing orders: REDUCING for any reason (or worse)."""
        return self.trading.state is not TradingState.ACTIVE

    def fills_today(self, now_ns: int) -> int:
        return self._fills.count(now_ns)

    def set_reduce_only(self, enabled: bool, detail: str, *, source: Reason = Reason.OPERATOR) -> None:
        """Hold or clear one REDUCING reason; each reason is cleared by its own owner only."""
        if enabled:
            self.trading.reduce(source, detail, self._now_ns())
        else:
            self.trading.clear(source, self._now_ns(), detail)

    def on_monitor_status(self, *, stale: bool, heartbeat_age_s: float | None = None) -> None:
        """Called by the heartbeat reader: a silent risk monitor means no independent kill switch, so by config
        (``reduce_only_on_monitor_stale``) the engine stops adding exposure until the monitor is back."""
        if not self._reduce_only_on_monitor_stale:
            return
        reason = f"risk monitor heartbeat stale (age_s={heartbeat_age_s})" if stale else "risk monitor heartbeat ok"
        self.set_reduce_only(stale, reason, source=Reason.MONITOR_STALE)

    def halt(self, reason: str) -> None:
        """Move to HALTED for the life of the process (cancel and, by policy, flatten); never raises.

        The state moves first (the machine cannot fail), so even a cancel or flatten that raises leaves HALTED.
        """
        self.trading.halt(reason, self._now_ns())
        try:
            self.portfolio.on_halt(reason)
        except Exception:
            log.exception('event=halt_path_failed reason="%s" (cancel/flatten raised; the state is HALTED)', reason)

    # -- event handlers (dispatcher thread) -------------------------------------------------------------------------
    # They raise what the decision core raises; the dispatcher's error policy (``core.error_policy``) decides what
    # follows (an InvariantViolation halts, anything unexpected is a crash), the same for every handler.
    def on_market(self, event: MarketEvent) -> None:
        """A completed session's daily bar, exactly as the backtester sees it (mark, settle, ADV, risk, optimizer)."""
        self.portfolio.on_market(event)

    def on_history(self, event: MarketEvent) -> None:
        """A past daily bar (the engine's warm-up): volume history only (``PortfolioManager.record_history``)."""
        self.portfolio.record_history(event)

    def on_mark(self, event: MarketEvent) -> None:
        """An intraday bar: marks and drawdown between session closes (``PortfolioManager.mark_intraday``)."""
        self.portfolio.mark_intraday(event)

    def on_signal(self, signal: SignalEvent) -> None:
        if (
            self.trading.state is TradingState.REDUCING
            and signal.direction is not SignalDirection.EXIT
            and self.portfolio.ledger.position(signal.symbol) == 0
        ):
            self.portfolio.ignored_signals["reduce_only"] += 1
            log.info(
                "event=signal_ignored reason=reduce_only strategy_id=%s symbol=%s direction=%s sources=%s",
                signal.strategy_id, signal.symbol, signal.direction.name, ",".join(self.trading.reasons),
            )  # fmt: skip
            return
        vetoes_before = self.portfolio.ignored_signals["veto"]
        self.portfolio.on_signal(signal)
        if self._veto is not None and self.portfolio.ignored_signals["veto"] > vetoes_before:
            self._record_veto(signal)

    def _record_veto(self, signal: SignalEvent) -> None:
        """Remember who was vetoed and why (the veto's own ``last`` holds the decision, not the signal)."""
        decision = self._veto.last[-1] if self._veto is not None and self._veto.last else None
        p = None if decision is None or decision.probability is None else round(decision.probability, 4)
        session = datetime.fromtimestamp(signal.ts_event_ns // NS_PER_SECOND, tz=self._session_zone).date()
        self._recent_vetoes.append({
            "session": session.isoformat(), "strategy_id": signal.strategy_id, "symbol": signal.symbol,
            "direction": signal.direction.name, "p": p, "reason": "" if decision is None else decision.reason,
        })  # fmt: skip

    def on_fill(self, fill: FillEvent) -> None:
        is_new = not self.portfolio.ledger.has_exec_id(fill.exec_id)
        self.portfolio.on_fill(fill)
        if is_new:
            self._fills.add(fill.ts_event_ns)

    def on_order_failed(self, event: OrderFailedEvent) -> None:
        self.portfolio.on_order_failed(event)

    def on_order_booked(self, event: FillEvent | OrderFailedEvent) -> None:
        """After the order store booked a fill or an end: an exit held for its protective stops may go now."""
        self.portfolio.on_order_booked(event)

    def on_timer(self, now_ns: int) -> None:
        """Settle due proceeds, roll the fills-today day, append a risk-log row, rewrite the snapshot."""
        self.portfolio.ledger.settle(now_ns)
        self._fills.roll(now_ns)
        self._risk_log.write(self.risk_row(now_ns))
        if self._snapshot_path is not None:
            write_snapshot(self._snapshot_path, self.snapshot(now_ns))

    # -- reporting ---------------------------------------------------------------------------------------------------
    def _marks(self) -> tuple[float, float, float]:
        """(equity, peak, drawdown_pct) now: peak is the risk manager's high-water mark, raised to equity."""
        equity = self.portfolio.ledger.equity()
        peak = self.portfolio.risk.high_water_mark
        if not math.isfinite(equity):
            return equity, math.nan if peak is None else peak, math.nan
        peak = equity if peak is None else max(peak, equity)
        return equity, peak, (peak - equity) / peak * 100.0 if peak > 0 else math.nan

    def risk_row(self, now_ns: int) -> dict[str, object]:
        """The risk-log row for ``now_ns`` (numbers as floats/ints; the writer formats them)."""
        ledger = self.portfolio.ledger
        equity, peak, drawdown_pct = self._marks()
        return {
            "ts_utc": format_ts_utc(now_ns), "ts_ns": now_ns, "equity": round(equity, 2),
            "peak_equity": round(peak, 2), "drawdown_pct": round(drawdown_pct, 4),
            "gross_exposure": round(ledger.gross_exposure(), 2), "net_exposure": round(ledger.market_value(), 2),
            "positions": len(ledger.open_positions()), "open_orders": int(self._open_orders()),
            "fills_today": self._fills.count(now_ns), "trading_state": self.state.value, **self._veto_columns(),
        }  # fmt: skip

    def _veto_columns(self) -> dict[str, object]:
        counts = self._veto.counts if self._veto is not None else {}
        last = self._recent_vetoes[-1] if self._recent_vetoes else None
        text = "" if last is None else f"{last['session']} {last['strategy_id']} {last['symbol']} {last['reason']}"
        return {"vetoed": int(counts.get("vetoed", 0)), "vetoed_missing": int(counts.get("vetoed_missing", 0)),
                "veto_passed": int(counts.get("passed", 0)), "last_veto": text}  # fmt: skip

    def veto_status(self) -> dict[str, object]:
        """For STATUS: the veto's counts since start (empty without a veto) and the last vetoed signals, newest last."""
        return {"vetoes": {} if self._veto is None else {k: int(v) for k, v in sorted(self._veto.counts.items())},
                "last_vetoes": list(self._recent_vetoes)}  # fmt: skip

    def heartbeat_fields(self) -> dict[str, object]:
        """What the heartbeat publisher sends; plain JSON values (an unknown number is None)."""
        equity, _, drawdown_pct = self._marks()
        return {
            "state": self.state.value,
            "equity": _finite_or_none(equity),
            "drawdown_pct": _finite_or_none(drawdown_pct),
            "positions": len(self.portfolio.ledger.open_positions()),
            "open_orders": int(self._open_orders()),
        }

    # -- persistence -------------------------------------------------------------------------------------------------
    def snapshot(self, now_ns: int | None = None) -> dict[str, Any]:
        """The body ``portfolio.snapshot.write_snapshot`` stores (reduce-only is runtime and not stored)."""
        ts_ns = self._now_ns() if now_ns is None else now_ns
        risk = self.portfolio.risk
        return {
            "ts_ns": int(ts_ns),
            "ledger": self.portfolio.ledger.snapshot(),
            "peak_equity": risk.peak_equity,
            "high_water_mark": risk.high_water_mark,
            "trading_state": risk.persisted_state().value,
            "halt_reason": risk.halt_reason,
            "monthly_trades": self._monthly.count(ts_ns),
            "fills_today": self._fills.to_json(),
        }

    def restore(self, snapshot: Mapping[str, Any], *, resume_after_halt: bool = False) -> None:
        """Apply ``snapshot`` to a freshly built manager whose books came from ``restore_books(snapshot, ...)``.

        Restores peak and high-water mark, the trading state (HALTED stays HALTED unless the operator passes
        ``resume_after_halt``; no order is sent here), the month's trade count and fills today. Raises
        StateCorruptError if the ledger does not match the snapshot (the wiring built it from something else).
        """
        if canonical_json(self.portfolio.ledger.snapshot()) != canonical_json(snapshot["ledger"]):
            raise StateCorruptError(
                "the portfolio's ledger does not match the snapshot being restored; build it with "
                "restore_books(snapshot, risk_config) before constructing the PortfolioManager"
            )
        ts_ns = int(snapshot["ts_ns"])
        risk = self.portfolio.risk
        risk.peak_equity, risk.high_water_mark = snapshot["peak_equity"], snapshot["high_water_mark"]
        state = TradingState(snapshot["trading_state"])
        if state is TradingState.HALTED and resume_after_halt:
            log.warning('event=halt_cleared_on_restore halt_reason="%s" (operator: resume_after_halt)',
                        snapshot["halt_reason"])  # fmt: skip
        elif state is TradingState.HALTED:
            risk.halt(f"restored HALTED from snapshot: {snapshot['halt_reason']}", self._now_ns())
        elif state is TradingState.REDUCING:
            risk.restore_drawdown_reducing(self._now_ns())  # the drawdown rules decide when it may leave it
        for _ in range(int(snapshot["monthly_trades"]) - self._monthly.count(ts_ns)):
            self._monthly.record(_RESTORED_ORDER, ts_ns)
        self._fills.load_json(snapshot["fills_today"])
        log.info(
            "event=portfolio_restored ts_ns=%d state=%s equity=%.2f peak_equity=%s positions=%d monthly_trades=%s",
            ts_ns, self.state, self.portfolio.ledger.equity(), risk.peak_equity,
            len(self.portfolio.ledger.open_positions()), snapshot["monthly_trades"],
        )  # fmt: skip

    def close(self) -> None:
        """Write a last snapshot (if configured) and close the risk log; call once at shutdown."""
        try:
            if self._snapshot_path is not None:
                write_snapshot(self._snapshot_path, self.snapshot())
        finally:
            self._risk_log.close()

    def __enter__(self) -> LiveManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_RESTORED_ORDER = OrderEvent(
    ts_event_ns=0, ts_init_ns=0, client_order_id="restored-from-snapshot", strategy_id="snapshot", symbol="",
    side=Side.BUY, quantity=0, order_type=OrderType.MKT, reference_price=0.0, reason="monthly count restored",
)  # fmt: skip  # MonthlyTradeCounter has no restore API: replaying record() keeps to its public surface


def _field(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return str(value)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
