"""The synthetic market: deterministic, valid OHLCV, and the stylised facts it promises (volatility clustering,
cross-correlation, overnight gaps), each checked against a control with that feature switched off."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.bar_guard import BAR_COLUMNS, guard_frame
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import SyntheticMarketParams, generate_market, generate_panel

START, END = "2010-01-04", "2019-12-31"


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return generate_panel(20, START, END, 11, TradingCalendar())


def log_returns(panel: BarPanel) -> np.ndarray:
    return np.diff(np.log(panel.close), axis=0)


def mean_squared_return_autocorrelation(returns: np.ndarray) -> float:
    x = returns**2 - (returns**2).mean(axis=0)
    return float(((x[1:] * x[:-1]).sum(axis=0) / (x * x).sum(axis=0)).mean())


def mean_pairwise_correlation(returns: np.ndarray) -> float:
    corr = np.corrcoef(returns.T)
    return float(corr[np.triu_indices_from(corr, k=1)].mean())


def test_same_seed_gives_identical_bytes_and_other_seeds_differ(calendar: TradingCalendar) -> None:
    first = generate_market(4, "2023-01-01", "2023-12-31", 5, calendar)
    second = generate_market(4, "2023-01-01", "2023-12-31", 5, calendar)
    assert list(first) == ["SYM000", "SYM001", "SYM002", "SYM003"]
    for symbol in first:
        assert first[symbol].to_numpy().tobytes() == second[symbol].to_numpy().tobytes()
        assert first[symbol].index.equals(second[symbol].index)
    other = generate_market(4, "2023-01-01", "2023-12-31", 6, calendar)
    assert all(not np.array_equal(first[s].to_numpy(), other[s].to_numpy()) for s in first)
    panel = generate_panel(4, "2023-01-01", "2023-12-31", 5, calendar)
    assert panel.fingerprint() == BarPanel.from_frames(first, calendar).fingerprint()


def test_a_symbol_does_not_depend_on_the_rest_of_the_universe(calendar: TradingCalendar) -> None:
    small = generate_market(["SYM001", "XYZ"], "2023-01-01", "2023-06-30", 5, calendar)
    large = generate_market(10, "2023-01-01", "2023-06-30", 5, calendar)
    pd.testing.assert_frame_equal(small["SYM001"], large["SYM001"])


def test_dates_are_the_calendar_sessions_with_holidays_and_half_days(calendar: TradingCalendar) -> None:
    frames = generate_market(["AAA"], "2024-11-20", "2024-12-31", 1, calendar)
    dates = frames["AAA"].index
    assert dates.equals(calendar.sessions("2024-11-20", "2024-12-31"))
    assert pd.Timestamp("2024-11-28") not in dates and pd.Timestamp("2024-12-25") not in dates
    assert pd.Timestamp("2024-11-29") in dates and calendar.is_half_day("2024-11-29")


def test_ohlcv_relations_cents_and_whole_volumes(panel: BarPanel) -> None:
    o, h, lo, c, v = (getattr(panel, name) for name in BAR_COLUMNS)
    assert np.isfinite(np.stack([o, h, lo, c, v])).all()
    assert (lo > 0).all()
    assert (lo <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
    for prices in (o, h, lo, c):
        np.testing.assert_array_equal(np.round(prices * 100), np.round(prices * 100, 6))
    assert (v >= 1).all() and (v == np.rint(v)).all()
    assert (h > lo).mean() > 0.95  # bars have a range, not open == high == low == close


def test_volatility_clusters(panel: BarPanel, calendar: TradingCalendar) -> None:
    clustered = mean_squared_return_autocorrelation(log_returns(panel))
    control = generate_panel(20, START, END, 11, calendar, SyntheticMarketParams(garch_alpha=0.0, garch_beta=0.0))
    assert clustered > 0.04
    assert abs(mean_squared_return_autocorrelation(log_returns(control))) < 0.02


def test_returns_are_cross_correlated(panel: BarPanel, calendar: TradingCalendar) -> None:
    correlated = mean_pairwise_correlation(log_returns(panel))
    control = generate_panel(20, START, END, 11, calendar, SyntheticMarketParams(market_weight=0.0))
    assert correlated > 0.2
    assert abs(mean_pairwise_correlation(log_returns(control))) < 0.03


def test_open_follows_the_previous_close_with_occasional_gaps(panel: BarPanel, calendar: TradingCalendar) -> None:
    overnight = np.log(panel.open[1:] / panel.close[:-1])
    assert (overnight != 0).mean() > 0.9  # the open is not just the previous close
    assert np.median(np.abs(overnight)) < 0.02
    gaps = int((np.abs(overnight) > 0.1).sum())
    control = generate_panel(20, START, END, 11, calendar, SyntheticMarketParams(gap_probability=0.0))
    assert gaps >= 5
    assert int((np.abs(np.log(control.open[1:] / control.close[:-1])) > 0.1).sum()) < gaps / 5


def test_volume_rises_with_the_size_of_the_move(panel: BarPanel) -> None:
    moves = np.abs(log_returns(panel)).ravel()
    volume = panel.volume[1:].ravel()
    big = moves > np.quantile(moves, 0.9)
    small = moves < np.quantile(moves, 0.5)
    assert np.median(volume[big]) > 1.2 * np.median(volume[small])


def test_annual_volatility_is_near_the_parameter(panel: BarPanel) -> None:
    annual = log_returns(panel).std(axis=0) * np.sqrt(252)
    assert 0.2 < float(np.median(annual)) < 0.45


def test_every_generated_frame_passes_the_guard(calendar: TradingCalendar) -> None:
    frames = generate_market(50, START, END, 2, calendar)
    for symbol, frame in frames.items():
        assert guard_frame(frame, symbol, calendar).quarantined.empty, symbol


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    vol=st.floats(min_value=0.05, max_value=1.5),
    gap=st.floats(min_value=0.0, max_value=0.3),
)
def test_any_seed_and_volatility_pass_the_guard(seed: int, vol: float, gap: float) -> None:
    calendar = TradingCalendar()
    params = SyntheticMarketParams(base_annual_vol=vol, gap_probability=gap, start_price_min=1.0)
    for symbol, frame in generate_market(5, "2018-01-01", "2019-12-31", seed, calendar, params).items():
        assert guard_frame(frame, symbol, calendar).quarantined.empty, symbol


def test_invalid_params_are_refused() -> None:
    with pytest.raises(ValueError, match="alpha"):
        SyntheticMarketParams(garch_alpha=0.2, garch_beta=0.85)
    with pytest.raises(ValueError, match="market_weight"):
        SyntheticMarketParams(market_weight=1.5)


def test_500_symbols_by_2520_sessions_in_under_3_seconds(calendar: TradingCalendar) -> None:
    started = time.perf_counter()
    frames = generate_market(500, "2010-01-04", "2020-01-07", 9, calendar)
    elapsed = time.perf_counter() - started
    assert len(frames) == 500 and len(frames["SYM499"]) == 2520
    assert elapsed < 3.0, elapsed
