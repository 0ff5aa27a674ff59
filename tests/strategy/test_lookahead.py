"""No look-ahead: a strategy run on data truncated at day t gives exactly the signals it gives on the full data."""

from __future__ import annotations

import numpy as np
import pytest

from core.config_models import AppConfig, StrategiesConfig
from data.calendar import TradingCalendar
from data.panel import BarPanel
from data.synthetic import generate_panel
from strategy.base import BarArrays, SignalArrays, Strategy
from strategy.registry import STRATEGY_NAMES, build_strategy


@pytest.fixture(scope="module")
def panel() -> BarPanel:
    return generate_panel(8, "2018-01-02", "2021-12-31", seed=11, calendar=TradingCalendar())


def arrays(panel: BarPanel) -> BarArrays:
    return BarArrays(panel.symbols, panel.open, panel.high, panel.low, panel.close, panel.volume)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
def test_truncated_history_gives_identical_signals(panel: BarPanel, name: str) -> None:
    strategy = build_strategy(name, StrategiesConfig())
    full = strategy.compute_signals(arrays(panel))
    assert (full.codes != 0).sum() > 0, "the test needs signals to compare"
    for t in (strategy.warmup_bars, 300, 517, len(panel.dates) - 2):
        part = strategy.compute_signals(arrays(panel.truncate(t + 1)))
        np.testing.assert_array_equal(part.codes, full.codes[: t + 1])
        np.testing.assert_array_equal(part.stop_distance, full.stop_distance[: t + 1])


class PeekingStrategy(Strategy):
    """Deliberately cheats (buys the day before a rise) to prove the test above can fail."""

    def compute_signals(self, bars: BarArrays) -> SignalArrays:
        codes = np.zeros(bars.close.shape, dtype=np.int8)
        codes[:-1][bars.close[1:] > bars.close[:-1]] = 1
        return SignalArrays(codes, np.full(bars.close.shape, 1.0))


def test_the_truncation_check_catches_a_peeking_strategy(panel: BarPanel) -> None:
    strategy = PeekingStrategy("peek")
    full = strategy.compute_signals(arrays(panel))
    part = strategy.compute_signals(arrays(panel.truncate(300)))
    assert not np.array_equal(part.codes, full.codes[:300])


@pytest.mark.parametrize("order_type", ["MKT", "MOC", "LMT"])
def test_backtest_on_truncated_data_matches_the_full_run_up_to_the_cut(panel: BarPanel, order_type: str) -> None:
    from backtester.engine import build_backtest

    config = AppConfig.model_validate({"strategies": {"momentum": {"order_type": order_type}}})
    calendar = TradingCalendar()
    cut = 700
    full = build_backtest(config, panel, [build_strategy("momentum", config.strategies)], calendar).run()
    part = build_backtest(config, panel.truncate(cut), [build_strategy("momentum", config.strategies)], calendar).run()
    assert len(full.fills) > 0
    np.testing.assert_array_equal(part.equity.to_numpy(), full.equity.to_numpy()[:cut])
    early = full.fills[full.fills["date"] <= part.equity.index[-1]]
    assert part.fills[["symbol", "side", "quantity", "price"]].equals(
        early[["symbol", "side", "quantity", "price"]].reset_index(drop=True)
    )
