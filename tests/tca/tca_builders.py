"""Builders of TCA records with test defaults; every field can be overridden by keyword."""

from __future__ import annotations

from typing import Any

from tca.records import ExecutionRecord, SessionClose, UnfilledRecord

DECISION_TS = 1_714_570_200_000_000_000  # 2024-05-01 13:30 UTC (09:30 New York)
MINUTE_NS = 60_000_000_000


def make_execution(**changes: Any) -> ExecutionRecord:
    """A BUY execution of 100 of 100 shares of AAA at 10.0, decided at 10.0, MKT, from ibsim."""
    values: dict[str, Any] = {
        "exec_id": "E1", "client_order_id": "O1", "ib_order_id": 7, "perm_id": 9001, "strategy_id": "momentum",
        "symbol": "AAA", "side": "BUY", "order_quantity": 100, "quantity": 100, "price": 10.0, "commission": 1.0,
        "algo": "MKT", "algo_params": {}, "decision_ts": DECISION_TS, "decision_price": 10.0,
        "arrival_ts": DECISION_TS + MINUTE_NS, "arrival_price": 10.0, "fill_ts": DECISION_TS + 2 * MINUTE_NS,
        "close_price": None, "spread_bps_at_arrival": 2.0, "adv_participation": 0.002, "vol_20d": 0.25,
        "minutes_to_close": 389.0, "policy_id": None, "propensity": None, "source": "sim", "run_id": "run-1",
    }  # fmt: skip
    values.update(changes)
    return ExecutionRecord(**values)


def make_unfilled(**changes: Any) -> UnfilledRecord:
    """The end of order O1: 100 BUY shares of AAA never filled, ended at 10.0, decided at 10.0."""
    values: dict[str, Any] = {
        "client_order_id": "O1", "unfilled_quantity": 100, "end_ts": DECISION_TS + 30 * MINUTE_NS, "end_price": 10.0,
        "symbol": "AAA", "side": "BUY", "strategy_id": "momentum", "order_quantity": 100, "decision_ts": DECISION_TS,
        "decision_price": 10.0, "algo": "MKT", "source": "sim", "run_id": "run-1", "reason": "cancelled",
    }  # fmt: skip
    values.update(changes)
    return UnfilledRecord(**values)


def make_close(**changes: Any) -> SessionClose:
    """The 2024-05-01 close of AAA (10.5) for ibsim runs."""
    values: dict[str, Any] = {"symbol": "AAA", "session_date": "2024-05-01", "close_price": 10.5, "source": "sim"}
    values.update(changes)
    return SessionClose(**values)
