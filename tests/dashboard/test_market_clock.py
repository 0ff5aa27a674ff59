"""The page's market clock (``dashboard.market_clock``): the rate is measured, the time to the close follows it."""

from __future__ import annotations

import pytest

from dashboard.market_clock import MarketClock

S = 1_000_000_000


def test_the_rate_is_measured_and_the_time_to_the_close_is_given_in_wall_seconds() -> None:
    clock = MarketClock()
    clock.observe(market_ns=1_000 * S, next_close_ns=4_600 * S, wall_ns=0)
    assert clock.view(0)["to_close_wall_s"] is None  # one sample: no rate yet
    clock.observe(market_ns=1_120 * S, next_close_ns=4_600 * S, wall_ns=2 * S)  # 120 market s in 2 wall s
    view = clock.view(3 * S)
    assert view["rate"] == pytest.approx(60)
    assert view["market_time_ns"] == 1_180 * S  # carried forward one wall second at x60
    assert view["to_close_market_s"] == pytest.approx(3_420)
    assert view["to_close_wall_s"] == pytest.approx(57)


def test_the_carried_clock_never_passes_the_close() -> None:
    clock = MarketClock()
    clock.observe(market_ns=0, next_close_ns=100 * S, wall_ns=0)
    clock.observe(market_ns=60 * S, next_close_ns=100 * S, wall_ns=1 * S)
    assert clock.view(10 * S)["market_time_ns"] == 100 * S
    assert clock.view(10 * S)["to_close_market_s"] == 0


def test_unknown_until_the_engine_has_seen_a_bar() -> None:
    clock = MarketClock()
    clock.observe(market_ns=None, next_close_ns=None, wall_ns=0)
    assert clock.view(0)["market_time_ns"] is None
