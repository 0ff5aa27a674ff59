"""What counts as a breach (leads to a kill once confirmed) and what only as an alarm (logged, shown, no kill).

Every check is a pure function of what the watchers read at one instant plus the limits from the config, so the
rules can be read (and tested) in one place:

=====================  ==========================================================  ===========================
kind                   rule                                                          config
=====================  ==========================================================  ===========================
kill_now               ``flags/KILL_NOW.flag`` exists (immediate, no confirmation)    system.kill_now_flag_path
engine_gone            the engine's process vanished (immediate)                     -
engine_crashed         the engine's last beat says ``stopping: crash`` (immediate)    -
engine_frozen          process there, no beat for missed x interval                  operational_risk.*heartbeat*
order_rate             more than N submits in the sliding window                     max_orders_per_window, window
duplicate_orders       the same order submitted >= N times in the window             duplicate_order_alarm_count
drawdown_broker        NetLiquidation below the monitor's own peak by >= X %         risk_monitor.kill_drawdown_pct
drawdown_engine        the engine's risk log drawdown >= X %                         risk_monitor.kill_drawdown_pct
daily_loss_broker      NetLiquidation below the day's first value by >= X %          risk_monitor.max_daily_loss_pct
daily_loss_engine      the risk log's equity below the day's first row by >= X %     risk_monitor.max_daily_loss_pct
daily_fills            more executions today than allowed                            risk_monitor.max_daily_fills
daily_fill_notional    more USD executed today than allowed                          max_daily_fill_notional_usd
broker_order_flood     working orders at the broker (every client) > N, or new       risk_monitor.max_broker_*,
                       orders of every client seen there within the window > M       broker_submission_window_s
=====================  ==========================================================  ===========================

Alarms: ``ipc_broken`` (CSV beats fresh, ZeroMQ silent), ``engine_not_seen``, ``risk_log_stale`` /
``risk_log_missing`` / ``risk_log_unreadable``, ``order_log_malformed``, ``broker_disconnected``,
``broker_data_stale``, ``command_keys_unavailable``. An alarm never kills: each names something the operator should
fix while the remaining checks still protect the account.

Engine-side numbers count only from a fresh risk log row (a stale row describes an engine that may be gone and is
its own alarm); broker-side numbers count only from a fresh NetLiquidation, the order counts only from a fresh
open-order list (``broker_orders.py``). ``order_rate`` and ``broker_order_flood`` overlap on purpose: the first sees
the engine's intent as soon as it is logged, the second whatever reached the account, whoever sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.account_marks import AccountView, loss_pct
from monitor.broker_orders import BrokerOrdersStatus
from monitor.liveness import EngineStatus, LivenessReport
from monitor.order_tail import OrderLogStatus
from monitor.risk_log_reader import RiskLogStatus


class Kind(StrEnum):
    # breaches
    KILL_NOW = "kill_now"
    ENGINE_GONE = "engine_gone"
    ENGINE_CRASHED = "engine_crashed"
    ENGINE_FROZEN = "engine_frozen"
    ORDER_RATE = "order_rate"
    DUPLICATE_ORDERS = "duplicate_orders"
    DRAWDOWN_BROKER = "drawdown_broker"
    DRAWDOWN_ENGINE = "drawdown_engine"
    DAILY_LOSS_BROKER = "daily_loss_broker"
    DAILY_LOSS_ENGINE = "daily_loss_engine"
    DAILY_FILLS = "daily_fills"
    DAILY_FILL_NOTIONAL = "daily_fill_notional"
    BROKER_ORDER_FLOOD = "broker_order_flood"
    # alarms
    IPC_BROKEN = "ipc_broken"
    ENGINE_NOT_SEEN = "engine_not_seen"
    ENGINE_STOPPED = "engine_stopped"
    RISK_LOG_STALE = "risk_log_stale"
    RISK_LOG_MISSING = "risk_log_missing"
    RISK_LOG_UNREADABLE = "risk_log_unreadable"
    ORDER_LOG_MALFORMED = "order_log_malformed"
    BROKER_DISCONNECTED = "broker_disconnected"
    BROKER_DATA_STALE = "broker_data_stale"
    COMMAND_KEYS_UNAVAILABLE = "command_keys_unavailable"


IMMEDIATE = frozenset({Kind.KILL_NOW, Kind.ENGINE_GONE, Kind.ENGINE_CRASHED})  # no confirmation: nothing to wait for


@dataclass(frozen=True, slots=True)
class Finding:
    """One breach or alarm at one check; ``detail`` says the value, the limit and where it came from."""

    kind: Kind
    breach: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Limits:
    """The thresholds, in the config's units (percent, counts, USD)."""

    kill_drawdown_pct: float
    max_daily_loss_pct: float
    max_daily_fills: int
    max_daily_fill_notional_usd: float
    max_orders_per_window: int
    order_rate_window_s: float
    duplicate_order_alarm_count: int


@dataclass(frozen=True, slots=True)
class BrokerOrderLimits:
    """The broker-side order limits (``risk_monitor.max_broker_*``): counts, and the window in seconds."""

    max_open_orders: int
    max_submissions_per_window: int
    submission_window_s: float


def breach(kind: Kind, detail: str) -> Finding:
    return Finding(kind, True, detail)


def alarm(kind: Kind, detail: str) -> Finding:
    return Finding(kind, False, detail)


def liveness_findings(report: LivenessReport) -> list[Finding]:
    status = report.status
    if status is EngineStatus.GONE:
        return [breach(Kind.ENGINE_GONE, report.detail)]
    if status is EngineStatus.CRASHED:
        return [breach(Kind.ENGINE_CRASHED, report.detail)]
    if status is EngineStatus.FROZEN:
        return [breach(Kind.ENGINE_FROZEN, report.detail)]
    if status is EngineStatus.IPC_BROKEN:
        return [alarm(Kind.IPC_BROKEN, report.detail)]
    if status is EngineStatus.NOT_SEEN:
        return [alarm(Kind.ENGINE_NOT_SEEN, report.detail)]
    if status is EngineStatus.STOPPED:
        return [alarm(Kind.ENGINE_STOPPED, report.detail)]
    return []


def order_log_findings(status: OrderLogStatus, limits: Limits) -> list[Finding]:
    found: list[Finding] = []
    if status.submits_in_window > limits.max_orders_per_window:
        found.append(
            breach(
                Kind.ORDER_RATE,
                f"{status.submits_in_window} orders in {limits.order_rate_window_s:g} s "
                f"(allowed {limits.max_orders_per_window})",
            )
        )
    if status.worst_duplicate_count >= limits.duplicate_order_alarm_count:
        found.append(
            breach(
                Kind.DUPLICATE_ORDERS,
                f"{status.worst_duplicate} submitted {status.worst_duplicate_count}"
                f" times in {limits.order_rate_window_s:g} s (alarm at "
                f"{limits.duplicate_order_alarm_count})",
            )
        )
    if status.fills_today > limits.max_daily_fills:
        found.append(
            breach(
                Kind.DAILY_FILLS,
                f"{status.fills_today} executions today in the order log (allowed {limits.max_daily_fills})",
            )
        )
    if status.fill_notional_today_usd > limits.max_daily_fill_notional_usd:
        found.append(
            breach(
                Kind.DAILY_FILL_NOTIONAL,
                f"{status.fill_notional_today_usd:,.2f} USD executed today "
                f"(allowed {limits.max_daily_fill_notional_usd:,.2f})",
            )
        )
    if status.malformed_rows:
        found.append(alarm(Kind.ORDER_LOG_MALFORMED, f"{status.malformed_rows} unreadable order log rows skipped"))
    return found


def risk_log_findings(status: RiskLogStatus, limits: Limits) -> list[Finding]:
    if status.state == "starting":
        return []
    if status.state == "missing":
        return [alarm(Kind.RISK_LOG_MISSING, status.detail)]
    if status.state == "unreadable":
        return [alarm(Kind.RISK_LOG_UNREADABLE, status.detail)]
    if status.state == "stale":
        return [alarm(Kind.RISK_LOG_STALE, status.detail)]
    row = status.latest
    if row is None:
        return []
    found: list[Finding] = []
    if row.drawdown_pct is not None and row.drawdown_pct >= limits.kill_drawdown_pct:
        found.append(
            breach(
                Kind.DRAWDOWN_ENGINE,
                f"engine drawdown {row.drawdown_pct:.2f} % (risk log, equity "
                f"{row.equity}, peak {row.peak_equity}; kill at {limits.kill_drawdown_pct:g} %)",
            )
        )
    if row.equity is not None and status.day_start_equity is not None:
        lost = loss_pct(status.day_start_equity, row.equity)
        if lost >= limits.max_daily_loss_pct:
            found.append(
                breach(
                    Kind.DAILY_LOSS_ENGINE,
                    f"engine equity {row.equity:,.2f} is {lost:.2f} % below the "
                    f"day's first {status.day_start_equity:,.2f} (allowed {limits.max_daily_loss_pct:g} %)",
                )
            )
    if row.fills_today is not None and row.fills_today > limits.max_daily_fills:
        found.append(
            breach(
                Kind.DAILY_FILLS, f"{row.fills_today} fills today in the risk log (allowed {limits.max_daily_fills})"
            )
        )
    return found


def broker_findings(
    connected: bool, view: AccountView | None, nlv_age_s: float | None, stale_after_s: float, limits: Limits
) -> list[Finding]:
    if not connected:
        return [alarm(Kind.BROKER_DISCONNECTED, "the monitor's own IB connection is down")]
    if view is None or nlv_age_s is None:
        return [alarm(Kind.BROKER_DATA_STALE, "no NetLiquidation from the account summary yet")]
    if nlv_age_s > stale_after_s:
        return [alarm(Kind.BROKER_DATA_STALE, f"NetLiquidation {nlv_age_s:.1f} s old (allowed {stale_after_s:g} s)")]
    found: list[Finding] = []
    if view.drawdown_pct >= limits.kill_drawdown_pct:
        found.append(
            breach(
                Kind.DRAWDOWN_BROKER,
                f"NetLiquidation {view.net_liquidation:,.2f} is "
                f"{view.drawdown_pct:.2f} % below the peak {view.peak:,.2f} (kill at "
                f"{limits.kill_drawdown_pct:g} %)",
            )
        )
    if view.daily_loss_pct >= limits.max_daily_loss_pct:
        found.append(
            breach(
                Kind.DAILY_LOSS_BROKER,
                f"NetLiquidation {view.net_liquidation:,.2f} is "
                f"{view.daily_loss_pct:.2f} % below the day's first {view.day_start:,.2f} (allowed "
                f"{limits.max_daily_loss_pct:g} %)",
            )
        )
    return found


def broker_order_findings(
    status: BrokerOrdersStatus, now_ns: int, stale_after_s: float, limits: BrokerOrderLimits
) -> list[Finding]:
    """Working and new orders of every client at the broker; one finding naming every limit passed."""
    age_s = status.age_s(now_ns)
    if age_s is None:
        return []
    if age_s > stale_after_s:
        return [alarm(Kind.BROKER_DATA_STALE, f"open-order list {age_s:.1f} s old (allowed {stale_after_s:g} s)")]
    passed: list[str] = []
    if status.open_orders > limits.max_open_orders:
        passed.append(
            f"{status.open_orders} working orders at the broker, every client (allowed {limits.max_open_orders})"
        )
    if status.submissions_in_window > limits.max_submissions_per_window:
        passed.append(
            f"{status.submissions_in_window} new orders at the broker in {limits.submission_window_s:g} s (allowed "
            f"{limits.max_submissions_per_window}; {status.busiest_client_submissions} of them from client "
            f"{status.busiest_client_id})"
        )
    return [breach(Kind.BROKER_ORDER_FLOOD, "; ".join(passed))] if passed else []
