"""bar_features: the seven features against hand-computed values, close-time stamps (half days), causality."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from data.bar_features import BAR_FEATURE_NAMES, FEATURE_FRAME_COLUMNS, bar_features, empty_feature_frame
from data.calendar import TradingCalendar
from data.panel import BarPanel
from testkit.bars import make_bar_frame, synthetic_panel


def _frame(closes: list[float], volumes: list[float] | None = None, start: str = "2024-01-02") -> pd.DataFrame:
    frame = make_bar_frame(closes, start=start)
    if volumes is not None:
        frame["volume"] = np.asarray(volumes, dtype=np.float64)
    return frame


def _one(frame: pd.DataFrame, calendar: TradingCalendar) -> pd.DataFrame:
    return bar_features({"ABC": frame}, calendar)


def test_columns_dtypes_and_order(calendar: TradingCalendar) -> None:
    features = bar_features(synthetic_panel(3, "2024-01-02", "2024-03-28"))
    assert tuple(features.columns) == FEATURE_FRAME_COLUMNS
    assert str(features["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(features["created_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(features[name].dtype == np.float64 for name in BAR_FEATURE_NAMES)
    assert features["symbol"].tolist() == sorted(features["symbol"].tolist())
    for _, rows in features.groupby("symbol"):
        assert rows["event_timestamp"].is_monotonic_increasing and rows["event_timestamp"].is_unique
    assert tuple(empty_feature_frame().columns) == FEATURE_FRAME_COLUMNS


def test_simple_returns_by_hand(calendar: TradingCalendar) -> None:
    closes = [100.0 + 2.0 * i for i in range(25)]  # 100, 102, ..., 148
    features = _one(_frame(closes), calendar)
    assert features["ret_1d"].iloc[1] == pytest.approx(102 / 100 - 1)  # 0.02
    assert features["ret_1d"].iloc[24] == pytest.approx(148 / 146 - 1)
    assert features["ret_5d"].iloc[5] == pytest.approx(110 / 100 - 1)  # 0.10
    assert features["ret_5d"].iloc[24] == pytest.approx(148 / 138 - 1)
    assert features["ret_20d"].iloc[20] == pytest.approx(140 / 100 - 1)  # 0.40
    assert features["ret_20d"].iloc[24] == pytest.approx(148 / 108 - 1)
    assert features["ret_1d"].iloc[:1].isna().all() and features["ret_1d"].iloc[1:].notna().all()
    assert features["ret_5d"].iloc[:5].isna().all() and features["ret_5d"].iloc[5:].notna().all()
    assert features["ret_20d"].iloc[:20].isna().all() and features["ret_20d"].iloc[20:].notna().all()


def test_vol_20d_is_the_sample_sd_of_the_last_20_returns(calendar: TradingCalendar) -> None:
    # Returns alternate +1 % / -1 %: their mean is 0, so the sample sd (ddof 1) is 0.01 * sqrt(20 / 19)
    # (ddof 0 would give exactly 0.01).
    closes = [100.0]
    for i in range(24):
        closes.append(closes[-1] * (1.01 if i % 2 == 0 else 0.99))
    features = _one(_frame(closes), calendar)
    assert features["vol_20d"].iloc[:20].isna().all()
    assert features["vol_20d"].iloc[20] == pytest.approx(0.01 * math.sqrt(20 / 19), rel=1e-9)
    # Row 24's window is returns 5..24: still ten of each sign, same figure.
    assert features["vol_20d"].iloc[24] == pytest.approx(0.01 * math.sqrt(20 / 19), rel=1e-9)


def test_vol_20d_matches_numpy_ddof_1_on_irregular_returns(calendar: TradingCalendar) -> None:
    rng = np.random.default_rng(5)
    closes = list(100.0 * np.cumprod(1.0 + rng.normal(0, 0.02, 40)))
    features = _one(_frame(closes), calendar)
    returns = np.asarray(closes[1:]) / np.asarray(closes[:-1]) - 1.0
    for t in (20, 31, 39):
        assert features["vol_20d"].iloc[t] == pytest.approx(np.std(returns[t - 20 : t], ddof=1), rel=1e-9)


def test_volume_z_20_by_hand(calendar: TradingCalendar) -> None:
    # Volumes 1000, 2000, ..., 20000 at rows 0..19: mean 10500; the squared deviations of 1..20 from 10.5 sum to
    # 20 * (20**2 - 1) / 12 = 665, so the sample sd is 1000 * sqrt(665 / 19) = 1000 * sqrt(35) and
    # z = (20000 - 10500) / (1000 * sqrt(35)) = 9.5 / sqrt(35).
    volumes = [1000.0 * k for k in range(1, 21)] + [10500.0]
    features = _one(_frame([50.0] * 21, volumes), calendar)
    assert features["volume_z_20"].iloc[:19].isna().all()
    assert features["volume_z_20"].iloc[19] == pytest.approx(9.5 / math.sqrt(35), rel=1e-12)
    # Row 20: window 2000..20000 and 10500; mean 11000 - 500/20 = 10975.
    window = np.asarray(volumes[1:21])
    expected = (10500.0 - window.mean()) / window.std(ddof=1)
    assert features["volume_z_20"].iloc[20] == pytest.approx(expected, rel=1e-12)


def test_volume_z_20_is_nan_when_volume_never_changed(calendar: TradingCalendar) -> None:
    features = _one(_frame([50.0] * 25), calendar)  # make_bar_frame: constant volume
    assert features["volume_z_20"].isna().all()


def test_rsi_and_atr_are_talib_over_the_symbol_history(calendar: TradingCalendar) -> None:
    frame = _frame(list(100.0 * np.cumprod(1.0 + np.random.default_rng(9).normal(0, 0.015, 60))))
    features = _one(frame, calendar)
    close, high, low = (frame[c].to_numpy() for c in ("close", "high", "low"))
    np.testing.assert_allclose(features["rsi_14"], talib.RSI(close, timeperiod=14), equal_nan=True)
    np.testing.assert_allclose(
        features["atr_14_pct"], talib.ATR(high, low, close, timeperiod=14) / close, equal_nan=True
    )
    assert features["rsi_14"].iloc[:14].isna().all() and features["rsi_14"].iloc[14:].notna().all()
    assert features["atr_14_pct"].iloc[:14].isna().all() and features["atr_14_pct"].iloc[14:].notna().all()


def test_event_timestamp_is_the_session_close_in_utc_half_days_at_13_new_york(calendar: TradingCalendar) -> None:
    frame = make_bar_frame([10.0, 11.0, 12.0, 13.0, 14.0], start="2024-11-26")  # 26, 27, 29 (half day), Dec 2, 3
    features = _one(frame, calendar)
    stamps = features["event_timestamp"].tolist()
    assert stamps == [
        pd.Timestamp("2024-11-26 21:00", tz="UTC"),  # 16:00 EST
        pd.Timestamp("2024-11-27 21:00", tz="UTC"),
        pd.Timestamp("2024-11-29 18:00", tz="UTC"),  # the day after Thanksgiving closes at 13:00 EST
        pd.Timestamp("2024-12-02 21:00", tz="UTC"),
        pd.Timestamp("2024-12-03 21:00", tz="UTC"),
    ]
    july = _one(make_bar_frame([10.0, 11.0, 12.0], start="2024-07-02"), calendar)["event_timestamp"].tolist()
    assert july == [
        pd.Timestamp("2024-07-02 20:00", tz="UTC"),  # 16:00 EDT
        pd.Timestamp("2024-07-03 17:00", tz="UTC"),  # Independence Day eve: 13:00 EDT
        pd.Timestamp("2024-07-05 20:00", tz="UTC"),
    ]
    assert [ts.tz_convert("America/New_York").hour for ts in stamps] == [16, 16, 13, 16, 16]


def test_created_timestamp_defaults_to_the_event_timestamp_or_takes_the_callers(calendar: TradingCalendar) -> None:
    frame = make_bar_frame([10.0, 11.0, 12.0])
    default = _one(frame, calendar)
    assert (default["created_timestamp"] == default["event_timestamp"]).all()
    created_ns = pd.Timestamp("2024-06-01 02:00", tz="UTC").value
    stamped = bar_features({"ABC": frame}, calendar, created_ns=created_ns)
    assert (stamped["created_timestamp"] == pd.Timestamp(created_ns, tz="UTC")).all()


def test_a_missing_bar_is_skipped_not_poisoning_later_windows(calendar: TradingCalendar) -> None:
    closes = [100.0 + i for i in range(30)]
    full = make_bar_frame(closes)
    gappy = full.drop(full.index[10])  # no bar on the 11th session (quarantined, say)
    other = make_bar_frame([50.0] * 30)
    panel = BarPanel.from_frames({"ABC": gappy, "XYZ": other}, calendar)
    features = bar_features(panel)
    abc = features[features["symbol"] == "ABC"].reset_index(drop=True)
    assert len(abc) == 29  # one row per valid bar; none for the missing session
    assert pd.Timestamp(full.index[10]).date() not in set(
        abc["event_timestamp"].dt.tz_convert("America/New_York").dt.date
    )
    # The row after the gap compares with the last bar the symbol had, k bars back in its own history.
    assert abc["ret_1d"].iloc[10] == pytest.approx(111.0 / 109.0 - 1)
    assert abc["rsi_14"].iloc[14:].notna().all() and abc["vol_20d"].iloc[20:].notna().all()


def test_frames_and_panel_give_the_same_features(calendar: TradingCalendar) -> None:
    panel = synthetic_panel(2, "2023-01-03", "2023-06-30")
    frames = {
        s: pd.DataFrame(
            {c: getattr(panel, c)[:, j] for c in ("open", "high", "low", "close", "volume")}, index=panel.dates
        )
        for j, s in enumerate(panel.symbols)
    }
    pd.testing.assert_frame_equal(bar_features(panel), bar_features(frames, calendar))


def test_causal_each_row_is_unchanged_by_later_bars() -> None:
    panel = synthetic_panel(3, "2022-01-03", "2022-12-30")
    full = bar_features(panel).set_index(["symbol", "event_timestamp"])
    for n_rows in (30, 100, 200):
        head = bar_features(panel.truncate(n_rows)).set_index(["symbol", "event_timestamp"])
        pd.testing.assert_frame_equal(head, full.loc[head.index])
