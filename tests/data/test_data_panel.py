"""BarPanel alignment: the union of dates, NaN where a symbol has no bar, close-time stamps, slicing, speed."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_market
from testkit.bars import make_bar_frame


@pytest.fixture
def two_symbols() -> dict[str, pd.DataFrame]:
    # ZZZ trades 2024-01-02 .. 2024-01-10 (7 sessions); AAA 2024-01-08 .. 2024-01-19 (9 sessions, MLK day off).
    return {
        "ZZZ": make_bar_frame([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0], start="2024-01-02"),
        "AAA": make_bar_frame([50.0, 51.0, 52.0, 53.0, 54.0, 55.0, 56.0, 57.0, 58.0], start="2024-01-08"),
    }


def test_alignment_on_the_union_of_dates(two_symbols: dict[str, pd.DataFrame], calendar: TradingCalendar) -> None:
    panel = BarPanel.from_frames(two_symbols, calendar)
    assert panel.symbols == ("AAA", "ZZZ")
    expected_dates = calendar.sessions("2024-01-02", "2024-01-19")
    assert panel.dates.equals(expected_dates)
    assert pd.Timestamp("2024-01-15") not in panel.dates
    assert panel.close.shape == (len(expected_dates), 2) == (13, 2)
    aaa, zzz = panel.close[:, 0], panel.close[:, 1]
    assert np.isnan(aaa[:4]).all() and aaa[4:].tolist() == two_symbols["AAA"]["close"].tolist()
    assert zzz[:7].tolist() == two_symbols["ZZZ"]["close"].tolist() and np.isnan(zzz[7:]).all()
    for name in BAR_COLUMNS:
        column = getattr(panel, name)
        assert column.dtype == np.float64 and column.flags.c_contiguous
        np.testing.assert_array_equal(column[4:7, 0], two_symbols["AAA"][name].to_numpy()[:3])
    assert panel.ts_event_ns.dtype == np.int64
    np.testing.assert_array_equal(panel.ts_event_ns, calendar.session_close_ns(expected_dates))
    assert panel.n_bars == 7 + 9


def test_panel_arrays_are_read_only(two_symbols: dict[str, pd.DataFrame], calendar: TradingCalendar) -> None:
    panel = BarPanel.from_frames(two_symbols, calendar)
    with pytest.raises(ValueError, match="read-only"):
        panel.close[0, 0] = 1.0


def test_truncate_and_select(two_symbols: dict[str, pd.DataFrame], calendar: TradingCalendar) -> None:
    panel = BarPanel.from_frames(two_symbols, calendar)
    first = panel.truncate(3)
    assert list(first.dates) == list(panel.dates[:3])
    assert first.close.shape == (3, 2) and first.n_bars == 3
    np.testing.assert_array_equal(first.ts_event_ns, panel.ts_event_ns[:3])
    assert panel.truncate(100).dates.equals(panel.dates)
    window = panel.select("2024-01-06", "2024-01-15")  # both bounds are non-sessions
    assert list(window.dates.strftime("%m-%d")) == ["01-08", "01-09", "01-10", "01-11", "01-12"]
    np.testing.assert_array_equal(window.open, panel.open[4:9])
    assert window.open.flags.c_contiguous
    assert panel.select(end="2024-01-03").dates.equals(panel.dates[:2])
    assert len(panel.select("2025-01-01").dates) == 0
    with pytest.raises(ValueError):
        panel.truncate(-1)


def test_fingerprint(two_symbols: dict[str, pd.DataFrame], calendar: TradingCalendar) -> None:
    panel = BarPanel.from_frames(two_symbols, calendar)
    again = BarPanel.from_frames(dict(reversed(two_symbols.items())), calendar)
    assert panel.fingerprint() == again.fingerprint()
    assert len(panel.fingerprint()) == 64
    changed = {**two_symbols, "AAA": two_symbols["AAA"].assign(volume=2.0)}
    assert BarPanel.from_frames(changed, calendar).fingerprint() != panel.fingerprint()
    assert panel.truncate(12).fingerprint() != panel.fingerprint()
    renamed = {"BBB": two_symbols["AAA"], "ZZZ": two_symbols["ZZZ"]}
    assert BarPanel.from_frames(renamed, calendar).fingerprint() != panel.fingerprint()


def test_frames_that_are_not_guarded_bar_frames_raise(
    two_symbols: dict[str, pd.DataFrame], calendar: TradingCalendar
) -> None:
    saturday = two_symbols["AAA"].rename(index={two_symbols["AAA"].index[0]: pd.Timestamp("2024-01-06")})
    with pytest.raises(DataError, match="non-session"):
        BarPanel.from_frames({"AAA": saturday.sort_index()}, calendar)
    with pytest.raises(DataError, match="ascending"):
        BarPanel.from_frames({"AAA": two_symbols["AAA"].iloc[::-1]}, calendar)
    with pytest.raises(DataError, match="columns"):
        BarPanel.from_frames({"AAA": two_symbols["AAA"][["close", "open", "high", "low", "volume"]]}, calendar)


def test_from_frames_500_symbols_by_2520_sessions_is_fast(calendar: TradingCalendar) -> None:
    frames = generate_market(500, "2010-01-04", "2020-01-07", 3, calendar)
    assert len(next(iter(frames.values()))) == 2520
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        panel = BarPanel.from_frames(frames, calendar)
        timings.append(time.perf_counter() - started)
    assert panel.close.shape == (2520, 500)
    assert panel.n_bars == 2520 * 500
    assert min(timings) < 1.0, timings
