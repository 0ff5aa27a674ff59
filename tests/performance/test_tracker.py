"""PerformanceTracker: metrics are the backtester's compute_metrics; the daily series survives a restart."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backtester.performance import compute_metrics, round_trips_from_fills
from core.errors import StateCorruptError
from performance.tracker import COLUMNS, PerformanceTracker

SESSIONS = pd.bdate_range("2024-01-02", periods=30)
EQUITY = 100_000.0 * np.cumprod(1.0 + np.random.default_rng(7).normal(0.0005, 0.01, len(SESSIONS)))
FILLS = pd.DataFrame(
    {
        "date": [SESSIONS[1], SESSIONS[5], SESSIONS[8], SESSIONS[20]],
        "symbol": ["AAA", "AAA", "BBB", "BBB"],
        "side": ["BUY", "SELL", "BUY", "SELL"],
        "quantity": [100, 100, 50, 50],
        "price": [10.0, 11.0, 20.0, 19.0],
        "commission": [1.0, 1.0, 1.0, 1.0],
        "slippage_cost": [0.1, 0.1, 0.1, 0.1],
    }
)


def same(a: dict[str, float | int], b: dict[str, float | int]) -> bool:
    return a.keys() == b.keys() and all(
        (math.isnan(a[k]) and math.isnan(b[k])) if isinstance(a[k], float) and math.isnan(a[k]) else a[k] == b[k]
        for k in a
    )


def filled(path: Path, exposure: bool = True) -> PerformanceTracker:
    tracker = PerformanceTracker(path, initial_capital=100_000.0)
    for i, (session, equity) in enumerate(zip(SESSIONS, EQUITY, strict=True)):
        tracker.record_session_close(session.date(), equity, gross_exposure=500.0 * i if exposure else None)
    return tracker


def expected_series() -> pd.Series:
    return pd.Series(EQUITY, index=SESSIONS)


def test_metrics_are_compute_metrics_on_the_same_series(tmp_path: Path) -> None:
    tracker = filled(tmp_path / "daily.csv", exposure=False)
    equity = expected_series()
    expected = compute_metrics(equity, round_trips_from_fills(FILLS, sessions=equity.index), FILLS, 100_000.0,
                               risk_free_rate_pct=2.0)  # fmt: skip
    assert same(tracker.metrics(FILLS, risk_free_rate_pct=2.0), expected)
    assert tracker.metrics(FILLS)["n_trades"] == 2


def test_metrics_pass_gross_exposure_like_the_backtester(tmp_path: Path) -> None:
    tracker = filled(tmp_path / "daily.csv")
    equity = expected_series()
    exposure = pd.Series([500.0 * i for i in range(len(SESSIONS))], index=SESSIONS)
    expected = compute_metrics(equity, round_trips_from_fills(FILLS, sessions=equity.index), FILLS, 100_000.0,
                               gross_exposure=exposure)  # fmt: skip
    assert same(tracker.metrics(FILLS), expected)


def test_daily_returns_are_simple_returns_between_closes(tmp_path: Path) -> None:
    returns = filled(tmp_path / "daily.csv").daily_returns()
    assert len(returns) == len(SESSIONS) - 1
    assert returns.iloc[0] == pytest.approx(EQUITY[1] / EQUITY[0] - 1.0)
    assert list(returns.index) == list(SESSIONS[1:])


def test_series_survives_a_restart_exactly(tmp_path: Path) -> None:
    path = tmp_path / "state" / "daily.csv"
    before = filled(path)
    after = PerformanceTracker(path, initial_capital=100_000.0)
    pd.testing.assert_series_equal(after.daily_equity(), before.daily_equity())
    pd.testing.assert_series_equal(after.gross_exposure(), before.gross_exposure())
    assert same(after.metrics(), before.metrics())


def test_recording_a_session_again_replaces_it_and_bad_equity_is_skipped(tmp_path: Path) -> None:
    tracker = PerformanceTracker(tmp_path / "daily.csv", initial_capital=100_000.0)
    assert tracker.record_session_close("2024-01-02", 100_000.0)
    assert tracker.record_session_close("2024-01-02", 101_000.0)
    assert not tracker.record_session_close("2024-01-03", float("nan"))
    assert tracker.daily_equity().to_dict() == {pd.Timestamp("2024-01-02"): 101_000.0}


def test_intraday_marks_are_bounded_and_kept_out_of_the_metrics(tmp_path: Path) -> None:
    tracker = PerformanceTracker(tmp_path / "daily.csv", initial_capital=100_000.0, max_intraday_marks=2)
    for i in range(3):
        tracker.mark_intraday(1_704_205_800_000_000_000 + i, 100_000.0 + i)
    assert list(tracker.intraday_marks()) == [100_001.0, 100_002.0]
    assert tracker.daily_equity().empty


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("date,value\n", "header"),
        (",".join(COLUMNS) + "\n2024-01-02,abc,\n", ":2: bad row"),
        (",".join(COLUMNS) + "\n2024-01-02,100.0\n", ":2: bad row"),
        (",".join(COLUMNS) + "\n2024-01-02,100.0,\n2024-01-02,101.0,\n", ":3: equity must be positive"),
        (",".join(COLUMNS) + "\n2024-01-02,-5.0,\n", ":2: equity must be positive"),
    ],
    ids=["header", "number", "short-row", "duplicate", "negative"],
)
def test_corrupt_series_file_raises_naming_the_file(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "daily.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(StateCorruptError, match=what) as raised:
        PerformanceTracker(path, initial_capital=100_000.0)
    assert str(path) in str(raised.value)
    assert path.read_text(encoding="utf-8") == text
