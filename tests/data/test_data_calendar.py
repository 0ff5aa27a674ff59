"""Calendar facts that the engine's session handling relies on, checked against exchange_calendars' XNYS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data.calendar import TradingCalendar


def utc_ns(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value


def test_day_after_thanksgiving_2024_is_a_half_day_closing_at_18_utc(calendar: TradingCalendar) -> None:
    day = pd.Timestamp("2024-11-29")
    assert calendar.is_session(day)
    assert calendar.is_half_day(day)
    assert calendar.session_close_ns(pd.DatetimeIndex([day]))[0] == utc_ns("2024-11-29 18:00")
    assert calendar.session_open_ns(pd.DatetimeIndex([day]))[0] == utc_ns("2024-11-29 14:30")


def test_regular_sessions_close_at_16_new_york_in_winter_and_summer(calendar: TradingCalendar) -> None:
    closes = calendar.session_close_ns(pd.DatetimeIndex(["2024-11-27", "2024-07-01"]))
    assert closes.dtype == np.int64
    assert closes.tolist() == [utc_ns("2024-11-27 21:00"), utc_ns("2024-07-01 20:00")]
    assert not calendar.is_half_day("2024-11-27")


def test_thanksgiving_is_not_a_session_and_neighbours_skip_it(calendar: TradingCalendar) -> None:
    assert not calendar.is_session("2024-11-28")
    assert not calendar.is_half_day("2024-11-28")
    assert calendar.next_session("2024-11-27") == pd.Timestamp("2024-11-29")
    assert calendar.next_session("2024-11-28") == pd.Timestamp("2024-11-29")
    assert calendar.previous_session("2024-11-29") == pd.Timestamp("2024-11-27")


def test_market_closed_after_september_11_2001(calendar: TradingCalendar) -> None:
    for day in pd.date_range("2001-09-11", "2001-09-14"):
        assert not calendar.is_session(day), day
    sessions = calendar.sessions("2001-09-10", "2001-09-17")
    assert list(sessions) == [pd.Timestamp("2001-09-10"), pd.Timestamp("2001-09-17")]
    assert sessions.tz is None
    assert sessions.name == "date"


def test_moc_cutoff_is_relative_to_that_days_real_close(calendar: TradingCalendar) -> None:
    assert calendar.moc_cutoff_ns("2024-11-29", 15) == utc_ns("2024-11-29 17:45")
    assert calendar.moc_cutoff_ns("2024-11-27", 15) == utc_ns("2024-11-27 20:45")
    with pytest.raises(ValueError, match="not XNYS sessions"):
        calendar.moc_cutoff_ns("2024-11-28", 15)
    with pytest.raises(ValueError, match="before the open"):
        calendar.moc_cutoff_ns("2024-11-29", 400)


def test_session_times_are_vectorized_and_refuse_non_sessions(calendar: TradingCalendar) -> None:
    days = calendar.sessions("2024-01-01", "2024-12-31")
    closes = calendar.session_close_ns(days)
    opens = calendar.session_open_ns(days.to_numpy())
    assert closes.shape == opens.shape == (len(days),)
    assert closes[5] == calendar.session_close_ns(pd.DatetimeIndex([days[5]]))[0]
    assert np.all(closes - opens <= 390 * 60 * 10**9)
    assert np.all(closes > opens)
    assert len(days) == 252
    with pytest.raises(ValueError, match="2024-11-28"):
        calendar.session_close_ns(pd.DatetimeIndex(["2024-11-27", "2024-11-28"]))


def test_tz_aware_input_is_read_as_the_exchange_local_date(calendar: TradingCalendar) -> None:
    # 02:00 UTC on the 29th is still the 28th (Thanksgiving) in New York.
    assert not calendar.is_session(pd.Timestamp("2024-11-29 02:00", tz="UTC"))
    assert calendar.is_session(pd.Timestamp("2024-11-29 15:00", tz="UTC"))


def test_dates_outside_the_calendar_raise_but_session_mask_says_false(calendar: TradingCalendar) -> None:
    assert calendar.first_session == pd.Timestamp("1990-01-02")
    with pytest.raises(ValueError, match="outside"):
        calendar.is_session("1985-06-03")
    mask = calendar.session_mask(pd.DatetimeIndex(["1985-06-03", "2024-11-28", "2024-11-29"]))
    assert mask.tolist() == [False, False, True]


def test_half_days_come_from_the_calendar_across_years(calendar: TradingCalendar) -> None:
    sessions = calendar.sessions("2015-01-01", "2024-12-31")
    half_days = [d for d in sessions if calendar.is_half_day(d)]
    # Early closes each year (day after Thanksgiving, Christmas Eve, July 3rd in some years) but not many.
    assert 20 <= len(half_days) <= 35
    closes = calendar.session_close_ns(pd.DatetimeIndex(half_days))
    close_hour_ny = pd.DatetimeIndex(closes, tz="UTC").tz_convert("America/New_York").hour
    assert set(close_hour_ny) == {13}


@pytest.mark.shared_data
def test_every_date_in_the_shared_files_is_a_session(calendar: TradingCalendar, shared_data_dir: Path) -> None:
    files = sorted(shared_data_dir.glob("*.txt"))
    assert len(files) == 5
    for path in files:
        dates = pd.DatetimeIndex(pd.read_csv(path, usecols=["Date"])["Date"])
        assert calendar.session_mask(dates).all(), path.name
        # No session is missing between the first and the last date either.
        assert dates.equals(calendar.sessions(dates[0], dates[-1]).rename(None)), path.name


@pytest.mark.shared_data
def test_the_756_dates_of_2003_2005_match_the_calendar(calendar: TradingCalendar, shared_data_dir: Path) -> None:
    expected = calendar.sessions("2003-01-01", "2005-12-31")
    assert len(expected) == 756
    for name in ("yhoo-2003-2005.txt", "orcl-2003-2005.txt"):
        dates = pd.DatetimeIndex(pd.read_csv(shared_data_dir / name, usecols=["Date"])["Date"], name="date")
        assert dates.equals(expected), name


def test_calendar_objects_share_one_cached_exchange_calendar() -> None:
    first, second = TradingCalendar(), TradingCalendar()
    assert first.session_close_ns(pd.DatetimeIndex(["2024-11-29"])) is not None
    assert first._arrays is second._arrays
