"""Walk-forward: windows are right, and a test window's data never reaches its train-window optimization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backtester.distributed_runner import SerialRunner
from backtester.grid_search import plan_grid, run_grid
from backtester.sweep import DataRef, config_payload
from backtester.walk_forward import run_walk_forward, walk_forward_windows
from core.config_models import AppConfig, WalkForwardConfig
from data.bar_store import BarStore
from data.calendar import TradingCalendar
from data.synthetic import generate_market

CAL = TradingCalendar()
GRID = {"roc_period": (10, 40), "entry_roc_pct": (1.0, 8.0)}


def test_rolling_and_anchored_windows() -> None:
    rolling = walk_forward_windows(1000, WalkForwardConfig(train_bars=300, test_bars=100, step_bars=100))
    assert [(w.train_start, w.train_end, w.test_end) for w in rolling[:3]] == [
        (0, 300, 400), (100, 400, 500), (200, 500, 600)
    ]
    assert rolling[-1].test_end == 1000 and all(w.test_start == w.train_end for w in rolling)
    anchored = walk_forward_windows(1000, WalkForwardConfig(train_bars=300, test_bars=100, step_bars=100,
                                                            anchored=True))
    assert all(w.train_start == 0 for w in anchored)
    assert [w.train_end for w in anchored] == [w.train_end for w in rolling]
    assert walk_forward_windows(250, WalkForwardConfig(train_bars=300, test_bars=100)) == []


def config() -> AppConfig:
    return AppConfig.model_validate({
        "strategies": {"momentum": {"grid": GRID}},
        "portfolio": {"risk": {"drawdown_throttle_start_pct": 50, "reducing_drawdown_pct": 60,
                               "halt_drawdown_pct": 90, "max_position_weight_pct": 50}},
        "backtest": {"walk_forward": {"train_bars": 300, "test_bars": 120, "step_bars": 120, "warmup_bars": 120}},
    })


def store_with(tmp: Path, name: str, frames: dict) -> DataRef:
    store = BarStore(tmp / name, CAL)
    for symbol, frame in frames.items():
        store.write(symbol, frame)
    return DataRef(spec=str(tmp / name), symbols=None, start=None, end=None, seed=0)


def plant_future_trend(frames: dict, from_row: int) -> dict:
    """After ``from_row`` every symbol rallies 0.6% a day: a fast momentum rule would look brilliant there."""
    planted = {}
    for symbol, frame in frames.items():
        f = frame.copy()
        n = len(f) - from_row
        factor = np.concatenate([np.ones(from_row), 1.006 ** np.arange(1, n + 1)])
        for col in ("open", "high", "low", "close"):
            f[col] = (f[col].to_numpy() * factor).round(2)
        f["high"] = f[["open", "high", "close"]].max(axis=1)
        f["low"] = f[["open", "low", "close"]].min(axis=1)
        planted[symbol] = f
    return planted


@pytest.fixture(scope="module")
def frames() -> dict:
    return generate_market(["AAA", "BBB", "CCC", "DDD"], "2018-01-02", "2020-12-31", 21, CAL)


def test_future_only_information_never_reaches_the_train_window(tmp_path: Path, frames: dict) -> None:
    cfg = config()
    runner = SerialRunner(progress=False)
    clean = store_with(tmp_path, "clean", frames)
    n_rows = len(clean.load().panel.dates)
    windows = walk_forward_windows(n_rows, cfg.backtest.walk_forward)
    first_test = windows[0].test_start
    planted = store_with(tmp_path, "planted", plant_future_trend(frames, first_test))
    a = run_walk_forward(cfg, config_payload(cfg), clean, "momentum", runner, n_rows)
    b = run_walk_forward(cfg, config_payload(cfg), planted, "momentum", runner, n_rows)
    # window 0 trains on rows before the plant: its choice and its in-sample equity must be identical
    assert a.windows[0].chosen.params == b.windows[0].chosen.params
    np.testing.assert_array_equal(a.windows[0].chosen.equity, b.windows[0].chosen.equity)
    # ...and the plant is informative: the test window itself (where it lives) is changed by it
    assert not np.array_equal(a.windows[0].test.equity, b.windows[0].test.equity)
    # a leaky optimizer that also saw window 0's test rows would have judged the grid on the planted data
    leaky_cfg = cfg
    leaky = run_grid(
        leaky_cfg, config_payload(leaky_cfg),
        DataRef(spec=planted.spec, symbols=None, start=None,
                end=str(planted.load().panel.dates[windows[0].test_end - 1].date()), seed=0),
        "momentum", runner,
    )
    honest = run_grid(
        cfg, config_payload(cfg),
        DataRef(spec=planted.spec, symbols=None, start=None,
                end=str(planted.load().panel.dates[windows[0].train_end - 1].date()), seed=0),
        "momentum", runner,
    )
    assert honest.best.params == a.windows[0].chosen.params
    assert leaky.table["sharpe"].tolist() != honest.table["sharpe"].tolist()


def test_stitched_oos_equity_chains_the_test_windows(tmp_path: Path, frames: dict) -> None:
    cfg = config()
    data = store_with(tmp_path, "clean", frames)
    n_rows = len(data.load().panel.dates)
    outcome = run_walk_forward(cfg, config_payload(cfg), data, "momentum", SerialRunner(progress=False), n_rows)
    assert outcome.n_trials == len(outcome.windows) * len(plan_grid(cfg, "momentum")[0])
    tests = [o.test for o in outcome.windows]
    expected = cfg.portfolio.initial_capital * np.prod([t.equity[-1] / t.equity[0] for t in tests])
    assert outcome.oos_equity.iloc[-1] == pytest.approx(expected, rel=1e-12)
    assert outcome.oos_equity.index.is_monotonic_increasing and outcome.oos_equity.index.is_unique
    panel_dates = data.load().panel.dates
    assert outcome.oos_equity.index[0] == panel_dates[outcome.windows[0].window.test_start]
    assert outcome.oos_equity.index[-1] == panel_dates[n_rows - 1]
