"""The shared test builders produce valid bars on real sessions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data.bar_guard import BAR_COLUMNS, guard_frame
from data.calendar import TradingCalendar
from testkit.bars import make_bar_frame, synthetic_panel


def test_make_bar_frame_builds_valid_bars_on_consecutive_sessions(calendar: TradingCalendar) -> None:
    closes = [100.0, 98.0, 103.0, 103.0, 101.0]
    frame = make_bar_frame(closes, start="2024-11-26", spread_pct=2.0, volume=500)
    assert list(frame.columns) == list(BAR_COLUMNS)
    assert frame.index.name == "date"
    assert list(frame.index) == list(calendar.sessions("2024-11-26", "2024-12-03"))  # skips Thanksgiving
    assert frame["close"].tolist() == closes
    assert frame["open"].tolist() == [100.0, 100.0, 98.0, 103.0, 103.0]
    assert frame["high"].iloc[2] == pytest.approx(103.0 * 1.01)
    assert frame["low"].iloc[2] == pytest.approx(98.0 * 0.99)
    assert (frame["volume"] == 500).all()
    assert guard_frame(frame, "T", calendar).quarantined.empty


def test_make_bar_frame_refuses_bad_closes() -> None:
    with pytest.raises(ValueError):
        make_bar_frame([100.0, -1.0])
    with pytest.raises(ValueError):
        make_bar_frame([])


def test_synthetic_panel_defaults() -> None:
    panel = synthetic_panel()
    assert panel.symbols == ("SYM000", "SYM001", "SYM002", "SYM003", "SYM004")
    assert panel.dates[0] == pd.Timestamp("2020-01-02") and panel.dates[-1] == pd.Timestamp("2021-12-31")
    assert not np.isnan(panel.close).any()
    assert synthetic_panel().fingerprint() == panel.fingerprint()
    assert synthetic_panel(seed=8).fingerprint() != panel.fingerprint()
