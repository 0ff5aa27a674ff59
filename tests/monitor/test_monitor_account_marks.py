"""``monitor.account_marks``: the monitor's own peak and start-of-day NetLiquidation, persisted across restarts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.clock import NS_PER_SECOND
from monitor.account_marks import AccountMarks, loss_pct

S = NS_PER_SECOND
MORNING = int(datetime(2024, 3, 5, 14, 30, tzinfo=UTC).timestamp()) * S  # 09:30 in New York
NEXT_DAY = MORNING + 24 * 3600 * S


def test_drawdown_from_the_peak_and_loss_from_the_days_first_value(tmp_path: Path) -> None:
    marks = AccountMarks(tmp_path / "marks.json")
    marks.update("DU1", 100_000.0, MORNING)
    marks.update("DU1", 110_000.0, MORNING + S)
    view = marks.update("DU1", 99_000.0, MORNING + 2 * S)
    assert (view.peak, view.day_start) == (110_000.0, 100_000.0)
    assert view.drawdown_pct == pytest.approx(10.0)
    assert view.daily_loss_pct == pytest.approx(1.0)
    next_day = marks.update("DU1", 98_000.0, NEXT_DAY)
    assert next_day.day_start == 98_000.0 and next_day.daily_loss_pct == 0.0 and next_day.peak == 110_000.0


def test_marks_survive_a_restart_and_another_account_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "marks.json"
    first = AccountMarks(path, persist_every_s=0.0)
    first.update("DU1", 100_000.0, MORNING)
    first.update("DU1", 120_000.0, MORNING + S)
    restarted = AccountMarks(path)
    view = restarted.update("DU1", 108_000.0, MORNING + 2 * S)
    assert view.peak == 120_000.0 and view.drawdown_pct == pytest.approx(10.0)  # the peak was not forgotten
    other = restarted.update("DU2", 50_000.0, MORNING + 3 * S)
    assert (other.peak, other.drawdown_pct) == (50_000.0, 0.0)
    assert json.loads(path.read_text())["account"] == "DU2"


def test_a_corrupt_marks_file_is_replaced_by_fresh_marks(tmp_path: Path) -> None:
    path = tmp_path / "marks.json"
    path.write_text("{not json")
    view = AccountMarks(path).update("DU1", 100_000.0, MORNING)
    assert view.peak == 100_000.0 and json.loads(path.read_text())["peak"] == 100_000.0


def test_loss_pct_is_zero_at_or_above_the_reference() -> None:
    assert loss_pct(100.0, 100.0) == 0.0 and loss_pct(100.0, 120.0) == 0.0 and loss_pct(0.0, 10.0) == 0.0
    assert loss_pct(200.0, 150.0) == pytest.approx(25.0)
