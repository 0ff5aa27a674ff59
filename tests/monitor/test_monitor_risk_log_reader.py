"""``monitor.risk_log_reader``: the engine's risk log (rows written by the engine's own ``RiskLog``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import NS_PER_SECOND
from monitor.risk_log_reader import RISK_LOG_COLUMNS, RISK_LOG_COLUMNS_BEFORE_VETO, RiskLogReader, parse_risk_row
from portfolio.live_manager import RISK_LOG_COLUMNS as ENGINE_COLUMNS
from portfolio.live_manager import RiskLog

S = NS_PER_SECOND
START = int(datetime(2024, 3, 5, 15, 0, tzinfo=UTC).timestamp()) * S  # 10:00 in New York
YESTERDAY = int(datetime(2024, 3, 4, 20, 0, tzinfo=UTC).timestamp()) * S


def row(ts_ns: int, equity: float, drawdown_pct: float = 0.0, fills: int = 0) -> dict[str, object]:
    return {
        "ts_utc": "x",
        "ts_ns": ts_ns,
        "equity": equity,
        "peak_equity": max(equity, 100_000.0),
        "drawdown_pct": drawdown_pct,
        "gross_exposure": 0.0,
        "net_exposure": 0.0,
        "positions": 0,
        "open_orders": 0,
        "fills_today": fills,
        "trading_state": "ACTIVE",
        "vetoed": 0,
        "vetoed_missing": 0,
        "veto_passed": 0,
        "last_veto": "",
    }


def test_the_monitor_reads_the_columns_the_engine_writes(tmp_path: Path) -> None:
    assert RISK_LOG_COLUMNS == ENGINE_COLUMNS  # the contract in portfolio/live_manager.py
    log = RiskLog(tmp_path / "risk_log.csv")
    log.write(row(START, 99_500.5, 0.4995, 7))
    log.write({**row(START + S, math.nan), "drawdown_pct": math.nan})  # an unpriced position: empty fields
    log.close()
    header, first, second = (tmp_path / "risk_log.csv").read_text().splitlines()
    assert parse_risk_row(header) is None
    parsed = parse_risk_row(first)
    assert parsed is not None and (parsed.equity, parsed.drawdown_pct, parsed.fills_today) == (99_500.5, 0.4995, 7)
    unknown = parse_risk_row(second)
    assert unknown is not None and unknown.equity is None and unknown.drawdown_pct is None


def test_latest_row_and_first_equity_of_the_day_survive_a_monitor_restart(tmp_path: Path) -> None:
    path = tmp_path / "risk_log.csv"
    log = RiskLog(path)
    log.write(row(YESTERDAY, 90_000.0))
    log.write(row(START - 3600 * S, 100_000.0))  # the first row of today, before the monitor started
    log.write(row(START - S, 98_000.0))
    reader = RiskLogReader(path, started_ns=START, stale_after_s=15.0)
    status = reader.status(START)
    assert status.state == "ok" and status.day_start_equity == 100_000.0
    assert status.latest is not None and status.latest.equity == 98_000.0
    log.write(row(START + 5 * S, 97_000.0, drawdown_pct=3.0))
    reader.poll()
    status = reader.status(START + 6 * S)
    assert status.latest is not None and (status.latest.equity, status.age_s) == (97_000.0, 1.0)
    tomorrow = START + 24 * 3600 * S
    log.write(row(tomorrow, 96_000.0))
    reader.poll()
    assert reader.status(tomorrow).day_start_equity == 96_000.0  # a new day starts from its first row
    log.close()


def test_stale_and_missing_are_reported_only_after_the_start_grace(tmp_path: Path) -> None:
    path = tmp_path / "risk_log.csv"
    missing = RiskLogReader(path, started_ns=START, stale_after_s=15.0)
    assert missing.status(START + 10 * S).state == "starting"
    assert missing.status(START + 16 * S).state == "missing"
    log = RiskLog(path)
    log.write(row(START - 60 * S, 100_000.0))
    reader = RiskLogReader(path, started_ns=START, stale_after_s=15.0)
    assert reader.status(START + 10 * S).state == "starting"
    stale = reader.status(START + 20 * S)
    assert stale.state == "stale" and "80.0 s old" in stale.detail
    log.write(row(START + 20 * S, 100_000.0))
    reader.poll()
    assert reader.status(START + 21 * S).state == "ok"
    log.close()


def test_a_foreign_header_or_garbage_rows_make_it_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "risk_log.csv"
    path.write_text("ts_utc,equity\n")
    reader = RiskLogReader(path, started_ns=START, stale_after_s=15.0)
    with path.open("a") as f:
        f.write("ts_utc,ts_ns,something,else\n" + "garbage\n" * 3)
    reader.poll()
    status = reader.status(START + S)
    assert status.state == "unreadable" and reader.bad_rows == 5  # the first header is read by the start-up scan
    with pytest.raises(ValueError, match="header"):
        parse_risk_row("ts_utc,ts_ns,something,else")


def test_issue_14_rows_of_the_layout_before_the_veto_columns_are_still_read(tmp_path: Path) -> None:
    """A monitor may still be tailing a file an engine wrote before the veto columns: its rows count the same."""
    header = ",".join(RISK_LOG_COLUMNS_BEFORE_VETO)
    assert parse_risk_row(header) is None
    old = parse_risk_row(f"x,{START},99000.0,100000.0,1.0,0.0,0.0,0,0,3,ACTIVE")
    assert old is not None and (old.equity, old.fills_today, old.trading_state) == (99_000.0, 3, "ACTIVE")
    new = parse_risk_row(f"x,{START},99000.0,100000.0,1.0,0.0,0.0,0,0,3,ACTIVE,4,1,2,2024-01-03 momentum AAPL p")
    assert new is not None and new.equity == 99_000.0


def test_issue_14_an_engine_moves_a_risk_log_of_the_old_layout_aside(tmp_path: Path) -> None:
    path = tmp_path / "risk_log.csv"
    path.write_text(",".join(RISK_LOG_COLUMNS_BEFORE_VETO) + f"\nx,{START},1.0,1.0,0.0,0.0,0.0,0,0,0,ACTIVE\n")
    log = RiskLog(path)
    log.write(row(START, 100_000.0))
    log.close()
    [moved] = [p for p in tmp_path.iterdir() if p.name != "risk_log.csv"]
    assert moved.name.startswith("risk_log.") and moved.read_text().startswith("ts_utc,ts_ns,equity")
    assert path.read_text().splitlines()[0] == ",".join(RISK_LOG_COLUMNS)
