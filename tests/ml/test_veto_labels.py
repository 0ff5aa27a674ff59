"""Labels of entry signals, hand-computed on tiny bar series: triple barrier (profit first, stop first, both in one
bar, the horizon) and fixed horizon, for longs and shorts, and the signals whose outcome the data does not reach."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.config_models import VetoTrainingConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from ml.veto_labels import label_rule, label_signals

CAL = TradingCalendar()


def panel_from(highs: list[float], lows: list[float], closes: list[float]) -> BarPanel:
    dates = CAL.sessions("2024-01-02", "2024-12-31")[: len(closes)]
    frame = pd.DataFrame({"open": closes, "high": highs, "low": lows, "close": closes, "volume": 1000.0}, index=dates)
    return BarPanel.from_frames({"AAA": frame}, CAL)


def label(panel: BarPanel, t0: int, code: int = 1, stop: float = 2.0, **cfg) -> pd.DataFrame:
    codes = np.zeros(panel.close.shape, dtype=np.int8)
    codes[t0, 0] = code
    rule = VetoTrainingConfig(**{"horizon_bars": 3, **cfg})
    return label_signals(panel, codes, np.full(panel.close.shape, stop), rule, allow_short=True)


#            t:   0    1    2    3    4    5
CLOSE = [100, 100, 100, 100, 100, 100]


def test_the_first_barrier_touched_decides_and_its_session_ends_the_label() -> None:
    profit_first = panel_from([100, 101, 102.5, 100, 100, 100], [100, 99, 99, 97, 100, 100], CLOSE)
    [row] = label(profit_first, 0).events.itertuples()
    assert (row.label, row.outcome, row.t0, row.t1) == (1, "profit_take", 0, 2)  # high 102.5 >= 100 + 2
    assert row.trade_return == pytest.approx(0.02)
    assert row.decision_ns == profit_first.ts_event_ns[0] and row.label_end_ns == profit_first.ts_event_ns[2]
    stop_first = panel_from([100, 101, 103, 100, 100, 100], [100, 97.5, 99, 100, 100, 100], CLOSE)
    [row] = label(stop_first, 0).events.itertuples()
    assert (row.label, row.outcome, row.t1) == (0, "stop", 1)


def test_both_barriers_in_one_bar_count_as_the_stop() -> None:
    both = panel_from([100, 103, 100, 100, 100, 100], [100, 97, 100, 100, 100, 100], CLOSE)
    [row] = label(both, 0).events.itertuples()
    assert (row.label, row.outcome, row.t1) == (0, "stop", 1)


def test_no_barrier_by_the_horizon_labels_by_the_close_there() -> None:
    flat = panel_from([101] * 6, [99] * 6, [100, 100.5, 101, 100.2, 99, 99])
    [row] = label(flat, 0).events.itertuples()
    assert (row.label, row.outcome, row.t1) == (1, "horizon", 3)  # 100.2 > 100 at t0 + 3
    [row] = label(flat, 1).events.itertuples()
    assert (row.label, row.t1) == (0, 4)  # 99 < 100.5


def test_short_signals_mirror_the_barriers() -> None:
    falls = panel_from([100, 101, 100, 100, 100, 100], [100, 97.9, 100, 100, 100, 100], CLOSE)
    [row] = label(falls, 0, code=-1).events.itertuples()
    assert (row.direction, row.label, row.outcome) == (-1, 1, "profit_take")  # low 97.9 <= 100 - 2
    rises = panel_from([100, 102.1, 100, 100, 100, 100], [100, 99, 100, 100, 100, 100], CLOSE)
    assert label(rises, 0, code=-1).events["label"].tolist() == [0]


def test_fixed_horizon_ignores_barriers_and_needs_no_stop() -> None:
    spiky = panel_from([100, 110, 100, 100, 100, 100], [100, 90, 100, 100, 100, 100], [100, 100, 100, 101, 100, 100])
    [row] = label(spiky, 0, stop=np.nan, label="fixed_horizon").events.itertuples()
    assert (row.label, row.outcome, row.t1) == (1, "horizon", 3)


def test_signals_whose_outcome_the_data_does_not_reach_are_dropped_and_counted() -> None:
    flat = panel_from([101] * 6, [99] * 6, CLOSE)
    late = label(flat, 4)  # the horizon t0 + 3 = 7 is past the last session 5, and no barrier was touched
    assert late.events.empty and late.dropped == {"outcome_after_data_end": 1}
    no_stop = label(flat, 0, stop=np.nan)
    assert no_stop.events.empty and no_stop.dropped == {"no_stop_distance": 1}
    touched = label(panel_from([101, 101, 101, 101, 101, 103], [99] * 6, CLOSE), 4)
    assert touched.events["outcome"].tolist() == ["profit_take"]  # known before the data ends: kept


def test_short_entries_are_ignored_when_shorting_is_not_allowed_and_the_rule_is_recorded() -> None:
    flat = panel_from([101] * 6, [99] * 6, CLOSE)
    codes = np.zeros(flat.close.shape, dtype=np.int8)
    codes[0, 0], codes[1, 0] = -1, 2  # a SHORT and an EXIT: neither is an entry of a long-only book
    out = label_signals(flat, codes, np.full(flat.close.shape, 2.0), VetoTrainingConfig(horizon_bars=3),
                        allow_short=False)  # fmt: skip
    assert out.events.empty
    assert label_rule(VetoTrainingConfig())["kind"] == "triple_barrier"
    assert "profit_take_multiple" not in label_rule(VetoTrainingConfig(label="fixed_horizon"))
