"""``monitor.checks``: every rule at its limit, and what is only an alarm."""

from __future__ import annotations

from monitor.account_marks import AccountView
from monitor.checks import (
    Kind,
    Limits,
    broker_findings,
    liveness_findings,
    order_log_findings,
    risk_log_findings,
)
from monitor.liveness import EngineStatus, LivenessReport
from monitor.order_tail import OrderLogStatus
from monitor.risk_log_reader import RiskLogStatus, RiskRow

LIMITS = Limits(
    kill_drawdown_pct=15.0,
    max_daily_loss_pct=5.0,
    max_daily_fills=10,
    max_daily_fill_notional_usd=1e6,
    max_orders_per_window=50,
    order_rate_window_s=60.0,
    duplicate_order_alarm_count=3,
)


def kinds(findings: list) -> dict[str, bool]:
    return {f.kind.value: f.breach for f in findings}


def orders(submits: int = 0, dup: int = 0, fills: int = 0, notional: float = 0.0, bad: int = 0) -> OrderLogStatus:
    return OrderLogStatus(
        submits_in_window=submits,
        worst_duplicate_count=dup,
        worst_duplicate="s:BUY:5:SPY:MKT:",
        fills_today=fills,
        fill_notional_today_usd=notional,
        malformed_rows=bad,
        following=True,
        last_row_ts_ns=None,
    )


def test_order_log_rules_at_their_limits() -> None:
    assert order_log_findings(orders(submits=50, dup=2, fills=10, notional=1e6), LIMITS) == []
    found = kinds(order_log_findings(orders(submits=51, dup=3, fills=11, notional=1e6 + 1, bad=2), LIMITS))
    assert found == {
        "order_rate": True,
        "duplicate_orders": True,
        "daily_fills": True,
        "daily_fill_notional": True,
        "order_log_malformed": False,
    }


def risk(
    state: str = "ok",
    drawdown: float | None = 0.0,
    equity: float | None = 100.0,
    day_start: float | None = 100.0,
    fills: int | None = 0,
) -> RiskLogStatus:
    row = RiskRow(
        ts_ns=1, equity=equity, peak_equity=100.0, drawdown_pct=drawdown, fills_today=fills, trading_state="ACTIVE"
    )
    return RiskLogStatus(state=state, latest=row, age_s=1.0, day_start_equity=day_start, detail="why")


def test_risk_log_rules_count_only_from_a_fresh_row() -> None:
    assert risk_log_findings(risk(drawdown=14.99, equity=95.01), LIMITS) == []
    found = kinds(risk_log_findings(risk(drawdown=15.0, equity=95.0, fills=11), LIMITS))
    assert found == {"drawdown_engine": True, "daily_loss_engine": True, "daily_fills": True}
    assert kinds(risk_log_findings(risk(state="stale", drawdown=50.0), LIMITS)) == {"risk_log_stale": False}
    assert kinds(risk_log_findings(risk(state="unreadable"), LIMITS)) == {"risk_log_unreadable": False}
    assert kinds(risk_log_findings(risk(state="missing"), LIMITS)) == {"risk_log_missing": False}
    assert risk_log_findings(risk(state="starting", drawdown=50.0), LIMITS) == []
    assert risk_log_findings(risk(drawdown=None, equity=None), LIMITS) == []  # unknown numbers judge nothing


def view(drawdown: float, daily: float) -> AccountView:
    return AccountView(
        account="DU1", net_liquidation=85.0, peak=100.0, drawdown_pct=drawdown, day_start=90.0, daily_loss_pct=daily
    )


def test_broker_rules_and_their_alarms() -> None:
    assert broker_findings(True, view(14.9, 4.9), 0.5, 3.0, LIMITS) == []
    assert kinds(broker_findings(True, view(15.0, 5.0), 0.5, 3.0, LIMITS)) == {
        "drawdown_broker": True,
        "daily_loss_broker": True,
    }
    assert kinds(broker_findings(True, view(50.0, 50.0), 3.5, 3.0, LIMITS)) == {"broker_data_stale": False}
    assert kinds(broker_findings(True, None, None, 3.0, LIMITS)) == {"broker_data_stale": False}
    assert kinds(broker_findings(False, view(50.0, 50.0), 0.1, 3.0, LIMITS)) == {"broker_disconnected": False}


def test_liveness_verdicts_map_to_breaches_and_alarms() -> None:
    def report(status: EngineStatus) -> LivenessReport:
        return LivenessReport(
            status=status, pid=1, process=None, zmq_age_s=None, csv_age_s=None, newest_seq=None, detail="d"
        )

    assert kinds(liveness_findings(report(EngineStatus.GONE))) == {Kind.ENGINE_GONE.value: True}
    assert kinds(liveness_findings(report(EngineStatus.FROZEN))) == {Kind.ENGINE_FROZEN.value: True}
    assert kinds(liveness_findings(report(EngineStatus.IPC_BROKEN))) == {Kind.IPC_BROKEN.value: False}
    assert kinds(liveness_findings(report(EngineStatus.NOT_SEEN))) == {Kind.ENGINE_NOT_SEEN.value: False}
    assert liveness_findings(report(EngineStatus.ALIVE)) == liveness_findings(report(EngineStatus.STARTING)) == []
