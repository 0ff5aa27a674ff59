"""The bad-bar guard: each fault kind is quarantined with its reason, never reaches the clean frame, and the
frame and streaming forms agree."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError
from data.bar_guard import BAR_COLUMNS, BadBarReason, BarGuard, guard_frame, value_reason
from data.calendar import TradingCalendar
from testkit.bars import make_bar_frame

CLOSES = [100.0, 101.0, 102.5, 101.5, 103.0, 104.0, 103.5, 105.0]


def damaged(column: str, row: int, value: float) -> pd.DataFrame:
    frame = make_bar_frame(CLOSES)
    frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("close", np.nan, BadBarReason.NAN_VALUE),
        ("volume", np.nan, BadBarReason.NAN_VALUE),
        ("high", np.inf, BadBarReason.NAN_VALUE),
        ("open", 0.0, BadBarReason.NON_POSITIVE_PRICE),
        ("low", -1.0, BadBarReason.NON_POSITIVE_PRICE),
        ("high", 50.0, BadBarReason.HIGH_BELOW_LOW),
        ("open", 150.0, BadBarReason.OPEN_OUTSIDE_RANGE),
        ("open", 90.0, BadBarReason.OPEN_OUTSIDE_RANGE),
        ("close", 150.0, BadBarReason.CLOSE_OUTSIDE_RANGE),
        ("close", 90.0, BadBarReason.CLOSE_OUTSIDE_RANGE),
        ("volume", -5.0, BadBarReason.NEGATIVE_VOLUME),
    ],
)
def test_each_bad_value_is_quarantined_with_its_reason(column: str, value: float, reason: BadBarReason) -> None:
    frame = damaged(column, 3, value)
    result = guard_frame(frame, "TEST")
    assert list(result.quarantined["reason"]) == [reason.value]
    assert list(result.quarantined.index) == [frame.index[3]]
    assert frame.index[3] not in result.clean.index
    pd.testing.assert_frame_equal(result.clean, frame.drop(index=frame.index[3]))
    # The same bar is refused by the streaming guard with the same reason.
    row = frame.iloc[3]
    assert value_reason(*(float(row[c]) for c in BAR_COLUMNS)) is reason
    ts_ns = pd.Timestamp(frame.index[3], tz="UTC").value
    assert BarGuard().check("TEST", ts_ns, *(float(row[c]) for c in BAR_COLUMNS)) is reason


def test_clean_frame_is_a_bar_frame() -> None:
    frame = make_bar_frame(CLOSES)
    frame["extra"] = 1.0
    result = guard_frame(frame, "TEST")
    assert list(result.clean.columns) == list(BAR_COLUMNS)
    assert (result.clean.dtypes == np.float64).all()
    assert result.clean.index.name == "date"
    assert result.clean.index.is_monotonic_increasing
    assert len(result.clean) == len(CLOSES)
    assert list(result.quarantined.columns) == [*BAR_COLUMNS, "reason"]
    assert result.quarantined.empty
    assert result.symbol == "TEST"


def test_duplicate_date_keeps_the_first_row() -> None:
    frame = make_bar_frame(CLOSES)
    repeated = frame.iloc[[2]].copy()
    repeated["close"] = repeated["low"]
    rows = pd.concat([frame.iloc[:5], repeated, frame.iloc[5:]])
    result = guard_frame(rows, "TEST")
    assert list(result.quarantined["reason"]) == [BadBarReason.DUPLICATE_TIMESTAMP.value]
    assert result.quarantined["close"].iloc[0] == repeated["close"].iloc[0]
    pd.testing.assert_frame_equal(result.clean, frame)


def test_immediate_repeat_is_a_duplicate_and_an_earlier_new_date_is_out_of_order() -> None:
    frame = make_bar_frame(CLOSES)
    order = [0, 1, 1, 3, 2, 4, 5, 6, 7]  # row 1 repeated at once; row 2 comes after row 3
    result = guard_frame(frame.iloc[order], "TEST")
    assert list(result.quarantined["reason"]) == [
        BadBarReason.DUPLICATE_TIMESTAMP.value,
        BadBarReason.OUT_OF_ORDER_TIMESTAMP.value,
    ]
    assert list(result.quarantined.index) == [frame.index[1], frame.index[2]]
    pd.testing.assert_frame_equal(result.clean, frame.drop(index=frame.index[2]))


def test_a_bad_bar_does_not_block_a_good_bar_with_the_same_date() -> None:
    frame = make_bar_frame(CLOSES)
    broken = frame.iloc[[4]].copy()
    broken["close"] = np.nan
    rows = pd.concat([frame.iloc[:4], broken, frame.iloc[4:]])
    result = guard_frame(rows, "TEST")
    assert list(result.quarantined["reason"]) == [BadBarReason.NAN_VALUE.value]
    pd.testing.assert_frame_equal(result.clean, frame)


def test_not_a_session_only_with_a_calendar(calendar: TradingCalendar) -> None:
    frame = make_bar_frame(CLOSES)  # 2024-01-02 .. 2024-01-11
    saturday = pd.Timestamp("2024-01-13")
    bar = frame.iloc[[-1]].rename(index={frame.index[-1]: saturday})
    rows = pd.concat([frame, bar]).rename_axis("date")
    assert guard_frame(rows, "TEST").quarantined.empty
    result = guard_frame(rows, "TEST", calendar)
    assert list(result.quarantined["reason"]) == [BadBarReason.NOT_A_SESSION.value]
    assert saturday not in result.clean.index
    guard = BarGuard(calendar)
    values = [float(v) for v in frame.iloc[-1]]
    saturday_close_ns = pd.Timestamp("2024-01-13 16:00", tz="America/New_York").value
    assert guard.check("TEST", saturday_close_ns, *values) is BadBarReason.NOT_A_SESSION
    friday_close_ns = pd.Timestamp("2024-01-12 16:00", tz="America/New_York").value
    assert guard.check("TEST", friday_close_ns, *values) is None


def test_each_quarantined_row_is_logged_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    frame = damaged("close", 1, np.nan)
    frame.iloc[5, frame.columns.get_loc("volume")] = -1.0
    with caplog.at_level(logging.WARNING, logger="data.bar_guard"):
        result = guard_frame(frame, "TEST")
    records = [r for r in caplog.records if r.name == "data.bar_guard" and r.levelno == logging.WARNING]
    assert len(records) == len(result.quarantined) == 2


def test_unusable_frames_raise_data_error() -> None:
    frame = make_bar_frame(CLOSES)
    with pytest.raises(DataError, match="missing columns"):
        guard_frame(frame.drop(columns=["volume"]), "TEST")
    with pytest.raises(DataError, match="tz-naive"):
        guard_frame(frame.tz_localize("UTC"), "TEST")
    with pytest.raises(DataError, match="times of day"):
        guard_frame(frame.set_axis(frame.index + pd.Timedelta(hours=16)), "TEST")


def test_streaming_guard_tracks_the_last_accepted_time_per_symbol() -> None:
    guard = BarGuard()
    bar = (100.0, 101.0, 99.0, 100.5, 1000.0)
    assert guard.check("AAA", 2_000, *bar) is None
    assert guard.check("AAA", 2_000, *bar) is BadBarReason.DUPLICATE_TIMESTAMP
    assert guard.check("AAA", 1_000, *bar) is BadBarReason.OUT_OF_ORDER_TIMESTAMP
    assert guard.check("BBB", 1_000, *bar) is None  # other symbols have their own clock
    assert guard.check("AAA", 3_000, 100.0, 99.0, 101.0, 100.0, 1000.0) is BadBarReason.HIGH_BELOW_LOW
    assert guard.last_accepted_ns("AAA") == 2_000  # a rejected bar does not move it
    assert guard.check("AAA", 3_000, *bar) is None
    assert guard.last_accepted_ns("AAA") == 3_000


prices = st.one_of(
    st.floats(min_value=-10.0, max_value=200.0),
    st.sampled_from([0.0, 50.0, 100.0, 150.0, np.nan, np.inf, -np.inf]),
)
unit = st.floats(min_value=0.0, max_value=1.0)
days = st.integers(min_value=0, max_value=8)


@st.composite
def valid_bars(draw: st.DrawFn) -> tuple[int, float, float, float, float, float]:
    low = draw(st.floats(min_value=0.01, max_value=100.0))
    high = low + draw(st.floats(min_value=0.0, max_value=10.0))
    open_, close = (low + draw(unit) * (high - low) for _ in range(2))
    return draw(days), min(max(open_, low), high), high, low, min(max(close, low), high), draw(unit) * 1e6


bars = st.one_of(valid_bars(), st.tuples(days, prices, prices, prices, prices, prices))


@settings(max_examples=200, deadline=None)
@given(st.lists(bars, min_size=1, max_size=25))
def test_guard_never_lets_a_bad_bar_into_clean(rows: list[tuple[int, float, float, float, float, float]]) -> None:
    dates = pd.DatetimeIndex(pd.Timestamp("2024-01-01") + pd.to_timedelta([r[0] for r in rows], unit="D"), name="date")
    frame = pd.DataFrame([r[1:] for r in rows], columns=list(BAR_COLUMNS), index=dates)
    result = guard_frame(frame, "PROP")
    clean = result.clean
    o, h, lo, c, v = (clean[k].to_numpy() for k in BAR_COLUMNS)
    assert np.isfinite(clean.to_numpy()).all()
    assert (np.minimum.reduce([o, h, lo, c]) > 0).all()
    assert (lo <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    assert (v >= 0).all()
    assert clean.index.is_unique and clean.index.is_monotonic_increasing
    assert len(clean) + len(result.quarantined) == len(frame)
    # The streaming guard, fed the same rows in order, accepts exactly the same bars.
    guard = BarGuard()
    accepted = [
        i
        for i, (day, row) in enumerate(zip(dates, rows, strict=True))
        if guard.check("PROP", day.value, *row[1:]) is None
    ]
    pd.testing.assert_frame_equal(clean, frame.iloc[accepted])
