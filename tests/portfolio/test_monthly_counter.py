"""Monthly trade cap: months in New York time, reduce-only orders never refused but counted, None = unlimited."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.clock import NS_PER_SECOND
from core.events import Side
from portfolio.monthly_counter import MonthlyTradeCounter
from testkit.orders import make_order


def _ns(iso_utc: str) -> int:
    return int(datetime.fromisoformat(iso_utc).replace(tzinfo=UTC).timestamp()) * NS_PER_SECOND


JAN_15 = _ns("2024-01-15T15:00:00")
FEB_1_0300_UTC = _ns("2024-02-01T03:00:00")  # 22:00 on 31 January in New York (EST, UTC-5)
FEB_1_0500_UTC = _ns("2024-02-01T05:00:00")  # midnight, 1 February in New York


def test_month_boundary_is_in_new_york_time() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=5)
    counter.record(make_order(), JAN_15)
    assert counter.count(FEB_1_0300_UTC) == 1
    assert counter.count(FEB_1_0500_UTC - 1) == 1
    assert counter.count(FEB_1_0500_UTC) == 0


def test_month_boundary_in_utc_when_asked() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=5, tz="UTC")
    counter.record(make_order(), JAN_15)
    assert counter.count(FEB_1_0300_UTC) == 0


def test_cap_refuses_an_exposure_increasing_order_once_reached() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=2)
    counter.record(make_order(), JAN_15)
    assert counter.check(make_order(), JAN_15) is None
    counter.record(make_order(), JAN_15 + 1)
    rejection = counter.check(make_order(symbol="BBB"), FEB_1_0300_UTC)
    assert rejection is not None and rejection.check == "max_trades_per_month"
    assert "2 trades" in rejection.reason and "2024-01" in rejection.reason and "limit is 2" in rejection.reason
    assert counter.check(make_order(symbol="BBB"), FEB_1_0500_UTC) is None  # a new month in New York


def test_reduce_only_is_never_refused_but_is_counted() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=1)
    counter.record(make_order(), JAN_15)
    exit_order = make_order(side=Side.SELL, reduce_only=True)
    assert counter.check(exit_order, JAN_15) is None
    counter.record(exit_order, JAN_15)
    assert counter.count(JAN_15) == 2


def test_reduce_only_flag_is_verified_when_the_position_is_given() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=1)
    counter.record(make_order(), JAN_15)
    exit_order = make_order(side=Side.SELL, quantity=100, reduce_only=True)
    assert counter.check(exit_order, JAN_15, position=100) is None
    assert counter.check(exit_order, JAN_15, position=50) is not None


def test_none_is_unlimited() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=None)
    for i in range(1_000):
        counter.record(make_order(), JAN_15 + i)
    assert counter.check(make_order(), JAN_15) is None and counter.count(JAN_15) == 1_000


def test_check_does_not_count() -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=1)
    for _ in range(3):
        assert counter.check(make_order(), JAN_15) is None
    assert counter.count(JAN_15) == 0


@pytest.mark.parametrize(("cap", "tz"), [(0, "America/New_York"), (1, "America/Gotham")])
def test_bad_arguments_are_refused(cap: int, tz: str) -> None:
    with pytest.raises(ValueError):
        MonthlyTradeCounter(max_trades_per_month=cap, tz=tz)


@given(st.lists(st.integers(_ns("2023-01-01T00:00:00"), _ns("2025-12-31T00:00:00")), max_size=40))
def test_counts_agree_with_pandas_month_in_new_york(timestamps: list[int]) -> None:
    counter = MonthlyTradeCounter(max_trades_per_month=None)
    for ts in sorted(timestamps):
        counter.record(make_order(), ts)
    months = pd.to_datetime(pd.Series(timestamps, dtype="int64"), utc=True).dt.tz_convert("America/New_York")
    keys = list(zip(months.dt.year, months.dt.month, strict=True))
    for ts, key in zip(timestamps, keys, strict=True):
        assert counter.count(ts) == keys.count(key)


ZONES = ["America/New_York", "Europe/London", "Asia/Tokyo", "America/Sao_Paulo", "Australia/Lord_Howe",
         "Pacific/Apia", "Asia/Kathmandu", "Asia/Manila"]  # fmt: skip


@given(
    st.lists(
        st.tuples(st.integers(1800, 2190), st.integers(1, 12), st.integers(-3 * 86_400, 3 * 86_400)),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(ZONES),
)
def test_the_kept_month_bounds_give_the_month_of_every_instant(
    near_month_starts: list[tuple[int, int, int]], tz: str
) -> None:
    """Instants around local month starts, in any order, in zones whose clocks jump (at midnight in Sao Paulo's
    past, by a whole day in Samoa at the end of 2011, from local mean time before 1900, under the rules of the
    zone's POSIX string after its last listed change): the span kept from the last call never answers for an
    instant outside its month."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    counter = MonthlyTradeCounter(max_trades_per_month=None, tz=tz)
    for year, month, offset_s in near_month_starts:
        second = int(datetime(year, month, 1, tzinfo=zone).timestamp()) + offset_s
        for instant in (second, second - 1, second + 1):
            expected = datetime.fromtimestamp(instant, tz=zone)
            assert counter._month(instant * NS_PER_SECOND) == (expected.year, expected.month), (tz, instant)


@given(
    st.integers(1800, 2190),
    st.integers(1, 12),
    st.integers(0, 31 * 86_400),
    st.booleans(),
    st.integers(-2 * 86_400, 2 * 86_400),
    st.sampled_from(ZONES),
)
@example(2024, 3, 20 * 86_400, False, -1_800, "America/New_York")  # the last half hour of February, in EST
@example(2011, 12, 29 * 86_400 + 43_200, False, -3_600, "Pacific/Apia")  # after a day the clocks skipped: 30 Dec 2011
def test_a_span_kept_from_anywhere_in_a_month_holds_only_that_month(
    year: int, month: int, anchor_s: int, at_end: bool, probe_s: int, tz: str
) -> None:
    """The span kept from one instant of a month (after the clocks changed in it, say) must not reach into the
    months on either side: the instant looked up next lies near the month's first or last midnight."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    start = int(datetime(year, month, 1, tzinfo=zone).timestamp())
    end = int(datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone).timestamp())
    anchor = start + anchor_s % (end - start)
    probe = (end if at_end else start) + probe_s
    counter = MonthlyTradeCounter(max_trades_per_month=None, tz=tz)
    for instant in (anchor, probe):
        expected = datetime.fromtimestamp(instant, tz=zone)
        assert counter._month(instant * NS_PER_SECOND) == (expected.year, expected.month), (tz, instant)
