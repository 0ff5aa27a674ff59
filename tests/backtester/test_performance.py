"""Metrics against hand-computed values, FIFO round trips against the cash they realise."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtester.performance import (
    METRIC_KEYS,
    TRADE_COLUMNS,
    _calendar_days,
    _has_numpy_fill_columns,
    _round_trips_general,
    _round_trips_numpy,
    compute_metrics,
    drawdown_series,
    monthly_returns,
    round_trips_from_fills,
)

NO_TRADES = pd.DataFrame()
NO_FILLS = pd.DataFrame()


def _equity(values: list[float], start: str = "2024-01-01", freq: str = "D") -> pd.Series:
    return pd.Series(values, index=pd.date_range(start, periods=len(values), freq=freq), dtype=float)


def _fills(rows: list[tuple[str, str, str, int, float, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["date", "symbol", "side", "quantity", "price", "commission"])
    frame["date"] = pd.to_datetime(frame["date"])
    frame["slippage_cost"] = 0.0
    return frame


def _trades_with_pnl(pnls: list[float]) -> pd.DataFrame:
    dates = pd.date_range("2024-01-01", periods=len(pnls), freq="D")
    return pd.DataFrame({"symbol": "X", "entry_date": dates, "exit_date": dates + pd.Timedelta(days=1),
                         "quantity": 1, "entry_price": 1.0, "exit_price": 1.0, "pnl": pnls, "return_pct": 0.0,
                         "commission": 0.0, "bars_held": 1})


# --- compute_metrics ----------------------------------------------------------------------------------------------


def test_metrics_keys_are_exactly_the_documented_set() -> None:
    metrics = compute_metrics(_equity([100, 101, 102]), NO_TRADES, NO_FILLS, 100.0)
    assert list(metrics) == list(METRIC_KEYS)
    assert len(METRIC_KEYS) == 20


def test_hand_computed_metrics_on_four_points() -> None:
    metrics = compute_metrics(_equity([100, 110, 99, 120]), NO_TRADES, NO_FILLS, 100.0)
    assert metrics["final_equity"] == 120.0
    assert metrics["total_return"] == pytest.approx(0.20)
    assert metrics["max_drawdown"] == pytest.approx(0.10)
    assert metrics["max_drawdown_duration_days"] == 2  # peak on Jan 2, back above it on Jan 4
    assert metrics["best_day"] == pytest.approx(120 / 99 - 1)
    assert metrics["worst_day"] == pytest.approx(-0.10)


def test_drawdown_duration_runs_to_the_end_when_never_recovered() -> None:
    equity = pd.Series([100, 120, 90, 110], index=pd.to_datetime(["2024-01-01", "2024-01-10", "2024-02-01",
                                                                 "2024-03-01"]), dtype=float)
    metrics = compute_metrics(equity, NO_TRADES, NO_FILLS, 100.0)
    assert metrics["max_drawdown"] == pytest.approx(0.25)
    assert metrics["max_drawdown_duration_days"] == (pd.Timestamp("2024-03-01") - pd.Timestamp("2024-01-10")).days


def test_drawdown_duration_is_the_longest_episode_not_the_deepest() -> None:
    # deep but short: 100 -> 50 -> 100 in 2 days; shallow but long: 100 -> 99 for 10 days -> 101
    values = [100, 50, 100, *[99] * 9, 101]
    metrics = compute_metrics(_equity(values), NO_TRADES, NO_FILLS, 100.0)
    assert metrics["max_drawdown"] == pytest.approx(0.5)
    assert metrics["max_drawdown_duration_days"] == 10


def test_constant_equity_has_zero_volatility_and_undefined_ratios() -> None:
    metrics = compute_metrics(_equity([100.0] * 30), NO_TRADES, NO_FILLS, 100.0)
    assert metrics["total_return"] == 0.0
    assert metrics["annual_volatility"] == 0.0
    assert math.isnan(metrics["sharpe"])
    assert math.isnan(metrics["sortino"])
    assert math.isnan(metrics["calmar"])
    assert metrics["max_drawdown"] == 0.0
    assert metrics["max_drawdown_duration_days"] == 0


def test_sharpe_and_sortino_match_an_independent_numpy_computation() -> None:
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0005, 0.01, 500)
    equity = _equity(list(1_000.0 * np.cumprod(np.concatenate([[1.0], 1.0 + returns]))), freq="B")
    metrics = compute_metrics(equity, NO_TRADES, NO_FILLS, 1_000.0, risk_free_rate_pct=3.0, periods_per_year=252)
    rf_daily = 1.03 ** (1 / 252) - 1
    excess = returns - rf_daily
    expected_sharpe = excess.mean() / excess.std(ddof=1) * np.sqrt(252)
    expected_sortino = excess.mean() / np.sqrt(np.mean(np.clip(excess, None, 0.0) ** 2)) * np.sqrt(252)
    assert metrics["sharpe"] == pytest.approx(expected_sharpe, rel=1e-9)
    assert metrics["sortino"] == pytest.approx(expected_sortino, rel=1e-9)
    assert metrics["annual_volatility"] == pytest.approx(returns.std(ddof=1) * np.sqrt(252), rel=1e-9)


def test_cagr_over_exactly_two_years() -> None:
    start = pd.Timestamp("2020-01-01")
    equity = pd.Series([100.0, 121.0], index=[start, start + pd.Timedelta(days=2 * 365.25)])
    metrics = compute_metrics(equity, NO_TRADES, NO_FILLS, 100.0)
    assert metrics["cagr"] == pytest.approx(0.10, rel=1e-12)
    assert math.isnan(metrics["calmar"])  # no drawdown


def test_cagr_uses_calendar_days_over_365_25() -> None:
    equity = pd.Series([100.0, 90.0, 150.0], index=pd.to_datetime(["2021-01-04", "2021-06-01", "2023-01-03"]))
    metrics = compute_metrics(equity, NO_TRADES, NO_FILLS, 100.0)
    expected = 1.5 ** (365.25 / (pd.Timestamp("2023-01-03") - pd.Timestamp("2021-01-04")).days) - 1
    assert metrics["cagr"] == pytest.approx(expected, rel=1e-12)
    assert metrics["calmar"] == pytest.approx(expected / 0.10, rel=1e-9)


def test_profit_factor_win_rate_and_average_on_hand_made_trades() -> None:
    metrics = compute_metrics(_equity([100, 101]), _trades_with_pnl([100, -50, 30, -25, 0]), NO_FILLS, 100.0)
    assert metrics["n_trades"] == 5
    assert metrics["win_rate"] == pytest.approx(0.4)
    assert metrics["profit_factor"] == pytest.approx(130 / 75)
    assert metrics["avg_trade_pnl"] == pytest.approx(11.0)


def test_profit_factor_is_inf_without_losses_and_zero_without_trades() -> None:
    only_wins = compute_metrics(_equity([100, 101]), _trades_with_pnl([5, 7]), NO_FILLS, 100.0)
    assert only_wins["profit_factor"] == math.inf
    none = compute_metrics(_equity([100, 101]), NO_TRADES, NO_FILLS, 100.0)
    assert none["n_trades"] == 0
    assert none["profit_factor"] == 0.0
    assert math.isnan(none["win_rate"])
    assert math.isnan(none["avg_trade_pnl"])


@pytest.mark.parametrize("values", [[], [100.0]])
def test_degenerate_equity_never_raises(values: list[float]) -> None:
    metrics = compute_metrics(_equity(values), NO_TRADES, NO_FILLS, 100.0)
    assert metrics["max_drawdown"] == 0.0
    assert metrics["max_drawdown_duration_days"] == 0
    assert metrics["turnover"] == 0.0
    assert metrics["commissions"] == 0.0
    for undefined in ("cagr", "annual_volatility", "sharpe", "sortino", "best_day", "worst_day"):
        assert math.isnan(metrics[undefined]), undefined


def test_exposure_uses_gross_exposure_when_given() -> None:
    equity = _equity([100, 100, 200, 200])
    gross = pd.Series([0.0, 50.0, 100.0, 0.0], index=equity.index)
    metrics = compute_metrics(equity, NO_TRADES, NO_FILLS, 100.0, gross_exposure=gross)
    assert metrics["exposure"] == pytest.approx((0 + 0.5 + 0.5 + 0) / 4)


def test_exposure_without_gross_exposure_is_the_fraction_of_days_in_a_trade() -> None:
    equity = _equity([100.0] * 10)
    trades = _trades_with_pnl([1.0])
    trades["entry_date"] = [pd.Timestamp("2024-01-02")]
    trades["exit_date"] = [pd.Timestamp("2024-01-05")]  # held over the closes of Jan 2, 3 and 4
    metrics = compute_metrics(equity, trades, NO_FILLS, 100.0)
    assert metrics["exposure"] == pytest.approx(0.3)


def test_turnover_commissions_and_slippage_from_fills() -> None:
    start = pd.Timestamp("2020-01-01")
    equity = pd.Series([1_000.0, 1_000.0], index=[start, start + pd.Timedelta(days=365.25)])
    fills = _fills([("2020-01-02", "A", "BUY", 10, 50.0, 1.5), ("2020-06-01", "A", "SELL", 10, 70.0, 2.5)])
    fills["slippage_cost"] = [0.25, 0.75]
    metrics = compute_metrics(equity, NO_TRADES, fills, 1_000.0)
    assert metrics["turnover"] == pytest.approx((500 + 700) / 1_000.0)
    assert metrics["commissions"] == pytest.approx(4.0)
    assert metrics["slippage_cost"] == pytest.approx(1.0)


# --- drawdown_series / monthly_returns ----------------------------------------------------------------------------


def test_drawdown_series_is_fraction_below_running_peak() -> None:
    drawdown = drawdown_series(_equity([100, 110, 99, 120, 60]))
    assert drawdown.tolist() == pytest.approx([0.0, 0.0, -0.1, 0.0, -0.5])
    assert (drawdown <= 0).all()


def test_monthly_returns_hand_computed() -> None:
    equity = pd.Series([100.0, 110.0, 121.0, 108.9, 130.68],
                       index=pd.to_datetime(["2023-12-15", "2023-12-29", "2024-01-31", "2024-02-15", "2024-02-29"]))
    table = monthly_returns(equity)
    assert list(table.columns) == list(range(1, 13))
    assert list(table.index) == [2023, 2024]
    assert table.loc[2023, 12] == pytest.approx(0.10)  # first month measured from the first point
    assert table.loc[2024, 1] == pytest.approx(0.10)
    assert table.loc[2024, 2] == pytest.approx(130.68 / 121.0 - 1)
    assert math.isnan(table.loc[2024, 3])


def test_monthly_returns_compound_to_the_total_return() -> None:
    rng = np.random.default_rng(5)
    dates = pd.bdate_range("2019-03-11", "2023-08-17")
    equity = pd.Series(500.0 * np.cumprod(1 + rng.normal(0.0003, 0.012, len(dates))), index=dates)
    table = monthly_returns(equity)
    compounded = np.prod(1.0 + table.stack().to_numpy()) - 1.0
    assert compounded == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1.0, rel=1e-10)
    assert table.notna().sum().sum() == len(pd.period_range("2019-03", "2023-08", freq="M"))


# --- round_trips_from_fills ---------------------------------------------------------------------------------------


def test_round_trips_on_partial_closes_split_commission_pro_rata() -> None:
    fills = _fills([
        ("2024-01-02", "A", "BUY", 10, 100.0, 2.0),
        ("2024-01-03", "A", "SELL", 4, 110.0, 1.0),
        ("2024-01-05", "A", "SELL", 6, 90.0, 3.0),
    ])
    trades = round_trips_from_fills(fills)
    assert list(trades.columns) == list(TRADE_COLUMNS)
    assert trades["quantity"].tolist() == [4, 6]
    assert trades["commission"].tolist() == pytest.approx([0.8 + 1.0, 1.2 + 3.0])
    assert trades["pnl"].tolist() == pytest.approx([4 * 10 - 1.8, 6 * -10 - 4.2])
    assert trades["return_pct"].tolist() == pytest.approx([38.2 / 400 * 100, -64.2 / 600 * 100])
    assert trades["entry_date"].tolist() == [pd.Timestamp("2024-01-02")] * 2
    assert trades["exit_date"].tolist() == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-05")]
    assert trades["bars_held"].tolist() == [1, 3]


def test_round_trips_flip_through_zero_opens_a_short_with_its_share_of_commission() -> None:
    fills = _fills([
        ("2024-01-02", "A", "BUY", 5, 10.0, 1.0),
        ("2024-01-03", "A", "SELL", 15, 12.0, 3.0),  # closes 5 long (1.0 of commission), opens 10 short (2.0)
        ("2024-01-04", "A", "BUY", 10, 11.0, 0.5),
    ])
    trades = round_trips_from_fills(fills)
    assert trades["quantity"].tolist() == [5, -10]
    assert trades["entry_price"].tolist() == [10.0, 12.0]
    assert trades["commission"].tolist() == pytest.approx([2.0, 2.5])
    assert trades["pnl"].tolist() == pytest.approx([5 * 2 - 2.0, -10 * (11 - 12) - 2.5])
    assert trades["entry_date"].tolist() == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]


def test_round_trips_match_fifo_per_symbol_and_leave_open_lots_out() -> None:
    fills = _fills([
        ("2024-01-02", "A", "BUY", 10, 10.0, 0.0),
        ("2024-01-02", "B", "SELL", 3, 50.0, 0.0),
        ("2024-01-03", "A", "BUY", 10, 20.0, 0.0),
        ("2024-01-04", "A", "SELL", 15, 30.0, 0.0),  # FIFO: 10 @ 10, then 5 @ 20
        ("2024-01-05", "B", "BUY", 3, 40.0, 0.0),
    ])
    trades = round_trips_from_fills(fills)
    assert trades[["symbol", "quantity", "entry_price", "pnl"]].values.tolist() == [
        ["A", 10, 10.0, 200.0], ["A", 5, 20.0, 50.0], ["B", -3, 50.0, 30.0],
    ]


def test_round_trips_count_bars_on_the_given_sessions() -> None:
    sessions = pd.DatetimeIndex(["2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"])  # Jul 4 is a holiday
    fills = _fills([("2024-07-02", "A", "BUY", 1, 1.0, 0.0), ("2024-07-08", "A", "SELL", 1, 1.0, 0.0)])
    assert round_trips_from_fills(fills, sessions=sessions)["bars_held"].tolist() == [3]
    assert round_trips_from_fills(fills)["bars_held"].tolist() == [4]  # business days know no holidays


def test_round_trips_from_no_fills_is_an_empty_frame_with_the_columns() -> None:
    trades = round_trips_from_fills(pd.DataFrame())
    assert trades.empty
    assert list(trades.columns) == list(TRADE_COLUMNS)


def test_round_trips_reject_an_unknown_side() -> None:
    with pytest.raises(ValueError, match="'BUY' or 'SELL'"):
        round_trips_from_fills(_fills([("2024-01-02", "A", "HOLD", 1, 1.0, 0.0)]))


_FILL = st.tuples(
    st.sampled_from(["A", "B"]),
    st.integers(min_value=-40, max_value=40).filter(lambda q: q != 0),
    st.floats(min_value=1.0, max_value=500.0, allow_nan=False),
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_FILL, min_size=1, max_size=30), st.floats(min_value=1.0, max_value=500.0))
def test_round_trip_pnl_equals_realised_cash_when_flat(
    fills_spec: list[tuple[str, int, float, float]], closing_price: float
) -> None:
    rows, position = [], {"A": 0, "B": 0}
    dates = pd.date_range("2024-01-01", periods=len(fills_spec) + 2, freq="D")
    for date, (symbol, signed, price, commission) in zip(dates, fills_spec, strict=False):
        rows.append((date, symbol, "BUY" if signed > 0 else "SELL", abs(signed), price, commission))
        position[symbol] += signed
    for symbol, held in position.items():
        if held:
            rows.append((dates[-1], symbol, "SELL" if held > 0 else "BUY", abs(held), closing_price, 1.0))
    fills = _fills(rows)
    trades = round_trips_from_fills(fills)
    signed_qty = np.where(fills["side"] == "BUY", 1, -1) * fills["quantity"]
    cash_pnl = float((-signed_qty * fills["price"]).sum() - fills["commission"].sum())
    assert trades["pnl"].sum() == pytest.approx(cash_pnl, rel=1e-9, abs=1e-6)
    assert trades["commission"].sum() == pytest.approx(fills["commission"].sum(), rel=1e-9, abs=1e-9)
    assert trades["quantity"].abs().sum() * 2 == fills["quantity"].sum()


# --- numpy fast paths against the general paths they shortcut -----------------------------------------------------


_TIMED_FILL = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.integers(min_value=-40, max_value=40),  # 0 is a fill both paths skip
    st.floats(min_value=1.0, max_value=500.0, allow_nan=False),
    st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
    st.integers(min_value=0, max_value=30),  # day offset: fills arrive unsorted, several on a day
    st.sampled_from([0, 9 * 60 + 30, 16 * 60]),  # minutes after midnight
)


def _timed_fills(spec: list[tuple[str, int, float, float, int, int]], float_quantity: bool) -> pd.DataFrame:
    start = pd.Timestamp("1969-12-24")  # crosses the epoch: flooring negative nanoseconds to midnight must hold
    frame = pd.DataFrame({
        "date": [start + pd.Timedelta(days=day, minutes=minute) for *_, day, minute in spec],
        "symbol": [symbol for symbol, *_ in spec],
        "side": ["BUY" if signed >= 0 else "SELL" for _, signed, *_ in spec],
        "quantity": [abs(signed) for _, signed, *_ in spec],
        "price": [price for _, _, price, *_ in spec],
        "commission": [commission for _, _, _, commission, *_ in spec],
        "slippage_cost": 0.0,
    })
    return frame.astype({"quantity": float}) if float_quantity else frame


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_TIMED_FILL, min_size=1, max_size=40),
    st.booleans(),
    st.sampled_from(["none", "index", "list"]),
)
def test_numpy_round_trips_equal_the_general_path(
    spec: list[tuple[str, int, float, float, int, int]], float_quantity: bool, sessions_kind: str
) -> None:
    fills = _timed_fills(spec, float_quantity)
    session_index = pd.bdate_range("1969-12-22", periods=40)
    sessions = {"none": None, "index": session_index, "list": list(session_index)}[sessions_kind]
    assert _has_numpy_fill_columns(fills)
    fast = _round_trips_numpy(fills, sessions)
    general = _round_trips_general(fills, sessions)
    pd.testing.assert_frame_equal(fast, general, check_exact=True)
    assert fast.dtypes.equals(general.dtypes)
    pd.testing.assert_frame_equal(round_trips_from_fills(fills, sessions=sessions), general, check_exact=True)


def test_only_plain_naive_fills_take_the_numpy_path() -> None:
    fills = _fills([("2024-01-02", "A", "BUY", 1, 1.0, 0.0), ("2024-01-03", "A", "SELL", 1, 2.0, 0.0)])
    assert _has_numpy_fill_columns(fills)
    assert not _has_numpy_fill_columns(fills.assign(date=fills["date"].dt.tz_localize("America/New_York")))
    assert not _has_numpy_fill_columns(fills.assign(date=fills["date"].astype(object)))
    assert not _has_numpy_fill_columns(fills.assign(quantity=fills["quantity"].astype("Int64")))
    assert not _has_numpy_fill_columns(fills.assign(date=[pd.NaT, pd.Timestamp("2024-01-03")]))


def _same_metrics(left: dict[str, float | int], right: dict[str, float | int]) -> None:
    assert list(left) == list(right)
    for key, value in left.items():
        assert type(value) is type(right[key]), key
        assert value == right[key] or (math.isnan(value) and math.isnan(right[key])), key


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.just(0.0), st.floats(min_value=1.0, max_value=300.0)), max_size=60),  # 0: inf returns
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_clean_equity_shortcut_equals_cleaning_it(values: list[float], shuffle: random.Random, use_gross: bool) -> None:
    equity = _equity(values, freq="B")
    gross = pd.Series(np.linspace(0.0, 900.0, len(values)), index=equity.index)
    trades = _trades_with_pnl([1.0, -2.0])
    messy = pd.concat([equity, pd.Series([np.nan], index=[pd.Timestamp("2030-01-01")])])  # cleaning drops it
    order = list(range(len(messy)))
    shuffle.shuffle(order)
    messy, messy_gross = messy.iloc[order], gross.iloc[::-1]  # cleaning sorts it; gross takes the reindex path
    clean_metrics = compute_metrics(equity, trades, NO_FILLS, 100.0, gross_exposure=gross if use_gross else None)
    messy_metrics = compute_metrics(messy, trades, NO_FILLS, 100.0, gross_exposure=messy_gross if use_gross else None)
    _same_metrics(clean_metrics, messy_metrics)


@pytest.mark.parametrize("dates", [
    pd.DatetimeIndex(["2024-03-01", "2024-03-09 23:00", "2024-03-11 01:00", "2024-11-04"]),
    pd.DatetimeIndex(["2024-03-01", "2024-03-09 23:00", "2024-03-11 01:00", "2024-11-04"]).as_unit("s"),
    pd.DatetimeIndex(["2024-03-01", "2024-03-09 23:00", "2024-03-11 01:00", "2024-11-04"], tz="America/New_York"),
])
def test_calendar_days_in_numpy_count_as_timedelta_days(dates: pd.DatetimeIndex) -> None:
    starts, ends = np.array([0, 0, 1, 2]), np.array([1, 3, 2, 3])
    assert _calendar_days(dates, starts, ends) == list((dates[ends] - dates[starts]).days)
